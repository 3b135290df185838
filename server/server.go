package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the server. The answers are small and the clients are peers,
// cron scripts and monitoring: nobody needs a slow connection held open.
const (
	// DefaultMaxConns is the cap on open connections unless the open-file
	// limit calls for less. Each connection costs about 25 KiB of RSS
	// (goroutine, buffers, garbage collector slack; bench/serve.sh), so the
	// cap also bounds memory: 2048 keep serve under 100 MB.
	DefaultMaxConns = 2048
	// DefaultIdleTimeout closes a keep-alive connection idle this long.
	DefaultIdleTimeout = 5 * time.Second
	// DefaultReadHeaderTimeout bounds the wait for a request's headers
	// (slowloris), and a TLS handshake.
	DefaultReadHeaderTimeout = 3 * time.Second

	readTimeout     = 10 * time.Second
	writeTimeout    = 10 * time.Second
	maxHeaderBytes  = 8 << 10
	shutdownTimeout = 5 * time.Second
	// fdReserve is the files serve needs besides connections: the state,
	// the log, the heartbeat store.
	fdReserve = 64
	// queueWait is how long a request waits for a slot of a route with
	// MaxInFlight before it is told to retry.
	queueWait = 2 * time.Second
	// drainWait is how long the rest of a body no handler read is
	// drained before the connection is closed.
	drainWait = time.Second
	// maxConnRequests is how many requests one connection may make; the
	// last is answered with "Connection: close". It bounds what one
	// connection costs: a client pipelining thousands of requests in one
	// write would otherwise keep a goroutine answering for as long, while
	// the accept loop, and with it a peer's new connection, waits its turn.
	// Peers make one request per connection; a browser or scraper that
	// makes more opens another connection without a word.
	maxConnRequests = 100
	// maxPipelined is how many requests in a row a connection may send
	// before it has had the previous answer (HTTP pipelining, which no
	// browser or peer uses); the next is answered with "Connection: close".
	// The client sends them at no cost in one write; each costs the server
	// an answer.
	maxPipelined = 4
	// capReportEvery is how often the cap's work is summed up in the log.
	capReportEvery = time.Minute
)

// Options configures a Server.
type Options struct {
	// Addr is the address to listen on, "host:port"; ":0" picks a port.
	Addr string
	// TLSCert and TLSKey, when both set, make the server speak TLS 1.2 or
	// later only.
	TLSCert, TLSKey string
	// MaxConns caps the open connections; zero means DefaultMaxConns, or
	// less when the open-file limit is low (half of what it leaves).
	MaxConns int
	// IdleTimeout and ReadHeaderTimeout; zero means the defaults above.
	IdleTimeout, ReadHeaderTimeout time.Duration
	// Log receives the server's own events: problems accepting, TLS
	// handshake failures (at debug), what the connection cap did. Nil
	// discards them.
	Log *slog.Logger
}

// Route is one handler mounted on the server.
type Route struct {
	// Pattern is an http.ServeMux pattern such as "GET /{$}" or
	// "POST /heartbeat/{service}".
	Pattern string
	// Handler answers the route. Its access rule is its own business (see
	// LoopbackOrToken), so that each route can have another.
	Handler http.Handler
	// MaxInFlight bounds the requests of this route served at once; more
	// wait up to two seconds for a slot, then get 503. Zero means no bound:
	// only for handlers that answer from memory, like the verdict, which
	// must never wait behind costly ones.
	MaxInFlight int
	// WriteTimeout, when set, bounds the writing of the answer from when
	// the handler starts, instead of the server's 10 s: for small answers
	// from memory, a client that has not taken them within a second or two
	// is not reading them, and its connection is better closed.
	WriteTimeout time.Duration
}

// Server is checker serve's HTTP server: the routes it is given, behind a
// cap on connections that sheds waiting ones first, short timeouts, and a
// guard that hangs up on request bodies nobody reads. Routes and the TLS
// certificate can be replaced while it serves. Build it with New; call
// Serve once.
type Server struct {
	o     Options
	srv   *http.Server
	conns *connTracker
	mux   atomic.Pointer[http.ServeMux]
	cert  atomic.Pointer[tls.Certificate]
	ready chan struct{} // closed once ln is set

	mu sync.Mutex   // guards ln
	ln net.Listener // nil until Listen succeeds
}

// New returns a Server for routes. It fails on a route pattern that is
// invalid or conflicts with another.
func New(o Options, routes []Route) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = defaultMaxConns()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	s := &Server{o: o, conns: newConnTracker(o.MaxConns, monotonic()), ready: make(chan struct{})}
	if err := s.SetRoutes(routes); err != nil {
		return nil, err
	}
	// HTTP/1.1 only: an HTTP/2 connection multiplexes requests the
	// connection cap cannot see, and peers need nothing more.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         s.conns.hook,
		ConnContext:       withConn,
		Protocols:         &protocols,
		ErrorLog:          log.New(errorLogWriter{o.Log}, "", 0),
	}
	return s, nil
}

// defaultMaxConns is DefaultMaxConns, or half of what the open-file limit
// leaves after fdReserve when that is less.
func defaultMaxConns() int {
	n := DefaultMaxConns
	if lim, ok := openFileLimit(); ok {
		if avail := (int64(lim) - fdReserve) / 2; avail < int64(n) {
			n = int(max(avail, 16))
		}
	}
	return n
}

// MaxConns returns the cap on open connections in force.
func (s *Server) MaxConns() int { return s.o.MaxConns }

// SetRoutes replaces the routes; requests already being served finish with
// the old ones. On error the old routes stay.
func (s *Server) SetRoutes(routes []Route) (err error) {
	mux := http.NewServeMux()
	for _, r := range routes {
		if r.Handler == nil {
			return fmt.Errorf("server: route %q has no handler", r.Pattern)
		}
		h := r.Handler
		if r.MaxInFlight > 0 {
			h = s.limit(h, r.MaxInFlight)
		}
		if r.WriteTimeout > 0 {
			h = writeWithin(h, r.WriteTimeout)
		}
		if err := handle(mux, r.Pattern, h); err != nil {
			return err
		}
	}
	s.mux.Store(mux)
	return nil
}

// handle is mux.Handle with its panic on a bad pattern turned into an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("server: route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// serveHTTP is the handler of the http.Server: the current routes, behind
// the unread-body guard. While the handler waits on a request body that
// does not come (it reads nothing, or the client sends nothing), the
// connection is marked so, and the cap may close it once it stalled.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	mux := s.mux.Load()
	m := marksOf(connOf(r))
	if m != nil {
		// Only this connection's goroutine serves its requests, one at a
		// time: the counts need no lock.
		if m.nextRequest() {
			w.Header().Set("Connection", "close")
		}
		defer m.requestDone()
	}
	if r.Body == nil || r.Body == http.NoBody {
		mux.ServeHTTP(w, r)
		return
	}
	body := &watchedBody{ReadCloser: r.Body, marks: m}
	if m != nil {
		m.waitBody()
		defer m.bodyDone()
	}
	r.Body = body
	gw := &guardedWriter{ResponseWriter: w, body: body}
	mux.ServeHTTP(gw, r)
	if !body.done {
		// Nobody read the body: net/http reads on, up to 256 KiB, as
		// slowly as the client sends, and the connection stays active. A
		// second is enough for a client that is merely sending to finish
		// and read the answer; meanwhile the cap may close it first. With
		// an eighth of the cap in use, there is no second to give: a draining
		// connection holds a goroutine and buffers (about 30 KiB) that a
		// flood of such requests would multiply, so the connection closes
		// once the answer is out.
		wait := drainWait
		if s.conns.crowded() {
			wait = 0
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(wait))
		if c := connOf(r); c != nil {
			s.conns.answered(c)
		}
	}
}

// watchedBody notes when a request body has been read to its end or
// failed, and tells the connection's marks of every progress.
type watchedBody struct {
	io.ReadCloser
	marks *stallConn // nil when the connection has none
	done  bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err != nil:
		b.done = true
		if b.marks != nil {
			b.marks.bodyDone()
		}
	case n > 0 && b.marks != nil:
		b.marks.waitBody() // it moves: waiting again from now
	}
	return n, err
}

// guardedWriter asks the client to close the connection when the answer
// starts before the body was read.
type guardedWriter struct {
	http.ResponseWriter
	body  *watchedBody
	wrote bool
}

func (w *guardedWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		if !w.body.done {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the server's own writer.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeWithin bounds the writing of h's answers to d from the start of
// the handler.
func writeWithin(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// limit bounds the requests of h served at once to n. A request waiting
// for its turn holds a connection that serves nobody yet: the cap may close
// it like an idle one, so that a flood of costly requests cannot take the
// room a peer's GET / needs.
func (s *Server) limit(h http.Handler, n int) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			c := connOf(r)
			if c != nil {
				s.conns.queued(c)
			}
			t := time.NewTimer(queueWait)
			select {
			case slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				// It stays listed: all it gets is a refusal.
				Refuse(w, http.StatusServiceUnavailable, "busy: too many requests of this kind at once; retry in a second")
				return
			case <-r.Context().Done():
				t.Stop()
				return // the client left
			}
			if c != nil {
				s.conns.dequeued(c) // served from now on
			}
		}
		defer func() { <-slots }()
		h.ServeHTTP(w, r)
	})
}

// Refuse answers with code and a one-line message, and asks the client to
// close the connection.
func Refuse(w http.ResponseWriter, code int, msg string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Connection", "close")
	if code == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

// useTLS reports whether the server is to serve TLS.
func (s *Server) useTLS() bool { return s.o.TLSCert != "" || s.o.TLSKey != "" }

// Listen binds the address and loads the certificate, without serving yet,
// so that a caller learns of a busy port or a bad key at once. Calling it
// again once it succeeded does nothing. Serve calls it when the caller did
// not.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.useTLS() {
		if err := s.loadCert(s.o.TLSCert, s.o.TLSKey); err != nil {
			return fmt.Errorf("server on %s: %w", s.o.Addr, err)
		}
		s.srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		}
	}
	addr := s.o.Addr
	if addr == "" {
		addr = ":http"
		if s.useTLS() {
			addr = ":https"
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", addr, err)
	}
	s.ln = ln
	close(s.ready)
	return nil
}

// loadCert loads the key pair and makes it the one served.
func (s *Server) loadCert(certFile, keyFile string) error {
	if certFile == "" || keyFile == "" {
		return fmt.Errorf("TLS needs both a certificate and a key (cert %q, key %q)", certFile, keyFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("loading TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	s.cert.Store(&cert)
	return nil
}

// ReloadTLS loads the certificate and key again (renewed files, or other
// paths) and serves them to new connections. On error the old pair stays.
// A server started without TLS cannot start it this way.
func (s *Server) ReloadTLS(certFile, keyFile string) error {
	if !s.useTLS() {
		return errors.New("server: this server was started without TLS; restart it to serve TLS")
	}
	return s.loadCert(certFile, keyFile)
}

// TLS reports whether the server speaks TLS.
func (s *Server) TLS() bool { return s.useTLS() }

// Ready returns a channel that is closed once the server listens; Addr then
// reports the bound address.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address the server listens on, with the port the system
// picked for ":0"; before listening it returns the configured address.
func (s *Server) Addr() string {
	if a := s.listenAddr(); a != nil {
		return a.String()
	}
	return s.o.Addr
}

func (s *Server) listenAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// BeyondLoopback reports whether the server can be reached from other
// hosts: it listens on an address that is not a loopback one (the
// unspecified address, ":5000", included).
func (s *Server) BeyondLoopback() bool { return beyondLoopback(s.listenAddr()) }

func beyondLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// ConnStats returns what the connection cap has done so far.
func (s *Server) ConnStats() ConnStats { return s.conns.stats() }

// Serve listens (unless Listen already did) and serves until ctx is
// cancelled, then shuts down gracefully, giving requests in flight up to
// 5s. It returns nil after a clean shutdown, and an error naming the
// address if listening, serving or the shutdown failed.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	addr := ln.Addr().String()

	served := make(chan error, 1)
	// The cap needs to know when a connection's writes stall: its
	// connections come marked (under TLS, if any).
	sl := stallListener{Listener: ln, now: s.conns.now, admit: s.conns.admit}
	go func() {
		if s.useTLS() {
			served <- s.srv.ServeTLS(sl, "", "") // the certificate comes from GetCertificate
		} else {
			served <- s.srv.Serve(sl)
		}
	}()
	reportDone := make(chan struct{})
	go s.reportCap(ctx, reportDone)
	defer func() { <-reportDone }()

	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("server on %s: %w", addr, err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close() // the error that matters is the one from Shutdown
		<-served
		return fmt.Errorf("server on %s: graceful shutdown: %w", addr, err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server on %s: %w", addr, err)
	}
	return nil
}

// reportCap logs, once a minute at most, how many connections the cap
// closed, so that a flood is not a silent one.
func (s *Server) reportCap(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(capReportEvery)
	defer t.Stop()
	var last ConnStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := s.conns.stats()
		shed, refused, over := st.Shed-last.Shed, st.Refused-last.Refused, st.OverShare-last.OverShare
		if shed+refused+over > 0 {
			s.o.Log.Warn("connection cap reached: closed waiting connections to make room",
				"cap", s.o.MaxConns, "closed", shed, "refused_busy", refused, "reset_over_share", over, "open", st.Open, "period", capReportEvery)
		}
		last = st
	}
}

// errorLogWriter takes net/http's own log lines: trouble accepting
// connections is a warning; the rest (a client's failed TLS handshake, a
// broken connection) is the internet's noise, for debugging only.
type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, "http: Accept error") {
		w.log.Warn(msg)
	} else {
		w.log.Debug(msg)
	}
	return len(p), nil
}
