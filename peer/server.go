package peer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ServerOptions configures NewHandler.
type ServerOptions struct {
	// Health is called on every request, so each answer reflects the state
	// file as cron last wrote it. An error makes the verdict JobProblem.
	// A nil Health counts as an error.
	Health func() (Health, error)
	// ServerName and Version are reported by GET /status.
	ServerName, Version string
	// StaleAfter is how old the last completed cron run may be; zero means
	// DefaultStaleAfter.
	StaleAfter time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Extra mounts more routes on the same mux, keyed by http.ServeMux
	// pattern, e.g. "POST /heartbeat/{service}". The handlers must bound
	// what they read from request bodies themselves. A pattern that is
	// invalid or conflicts with "GET /{$}" or "GET /status" panics, as
	// http.ServeMux.Handle does.
	Extra map[string]http.Handler
	// Log receives problems the server cannot report to the peer, such as
	// why Health failed; nil discards them.
	Log func(format string, args ...any)
}

// NewHandler returns the peer status handler. GET / answers 200, text/plain,
// with exactly one verdict and no newline, as the Python tool did; GET
// /status answers the same verdict as a JSON StatusDoc. HEAD is answered
// like GET without a body; other methods get 405, other paths 404.
func NewHandler(o ServerOptions) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		v, _, _ := o.verdict()
		writeBody(w, "text/plain; charset=utf-8", []byte(v))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		v, reason, h := o.verdict()
		doc := StatusDoc{Status: v, Server: o.ServerName, Version: o.Version, Reason: reason}
		if !h.LastRunEnd.IsZero() {
			t := h.LastRunEnd.UTC()
			doc.LastRun = &t
		}
		body, err := json.Marshal(doc)
		if err != nil {
			o.Log("peer: encoding status document: %v", err)
			http.Error(w, "cannot encode status", http.StatusInternalServerError)
			return
		}
		writeBody(w, "application/json", body)
	})
	for pattern, h := range o.Extra {
		mux.Handle(pattern, h)
	}
	return mux
}

// verdict reads the health and judges it.
func (o ServerOptions) verdict() (Verdict, string, Health) {
	if o.Health == nil {
		return JobProblem, "server has no health source", Health{}
	}
	h, err := o.Health()
	if err != nil {
		o.Log("peer: reading health for status request: %v", err)
		return JobProblem, "the server cannot read its state", Health{}
	}
	v, reason := assess(h, o.Now(), o.StaleAfter)
	return v, reason, h
}

// writeBody writes a 200 answer that no cache keeps.
func writeBody(w http.ResponseWriter, contentType string, body []byte) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the peer hung up; nothing to do
}

// Limits of the status server. They are small because the answers are.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 5 * time.Second
)

// Server serves a handler over HTTP, or HTTPS when given a certificate, with
// timeouts and size limits suited to the open internet. Build it with
// NewServer; call ListenAndServe once.
type Server struct {
	// Log, if set before listening, receives errors of the underlying
	// http.Server, such as failed TLS handshakes; nil means the standard
	// logger.
	Log func(format string, args ...any)

	addr              string
	certFile, keyFile string
	srv               *http.Server
	ready             chan struct{} // closed once ln is set

	mu sync.Mutex   // guards ln
	ln net.Listener // nil until Listen succeeds
}

// NewServer returns a Server for h on addr ("host:port"; ":0" picks a free
// port). When certFile and keyFile are both set it serves TLS 1.2 or later.
func NewServer(addr string, h http.Handler, certFile, keyFile string) *Server {
	return &Server{
		addr:     addr,
		certFile: certFile,
		keyFile:  keyFile,
		ready:    make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
		},
	}
}

// useTLS reports whether the server is to serve TLS.
func (s *Server) useTLS() bool { return s.certFile != "" || s.keyFile != "" }

// Listen binds the address and loads the certificate, without serving yet,
// so that a caller learns of a busy port or a bad key before it forks off
// ListenAndServe. Calling it again once it succeeded does nothing.
// ListenAndServe calls it when the caller did not.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.useTLS() {
		if s.certFile == "" || s.keyFile == "" {
			return fmt.Errorf("peer server on %s: TLS needs both a certificate and a key (cert %q, key %q)",
				s.addr, s.certFile, s.keyFile)
		}
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return fmt.Errorf("peer server on %s: loading TLS certificate %s and key %s: %w",
				s.addr, s.certFile, s.keyFile, err)
		}
		s.srv.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		}
	}
	if s.Log != nil {
		s.srv.ErrorLog = log.New(logWriter(s.Log), "", 0)
	}
	addr := s.addr
	if addr == "" {
		addr = ":http"
		if s.useTLS() {
			addr = ":https"
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("peer server: listening on %s: %w", addr, err)
	}
	s.ln = ln
	close(s.ready)
	return nil
}

// Ready returns a channel that is closed once the server listens; Addr then
// reports the bound address.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address the server listens on, with the port the system
// picked for ":0"; before listening it returns the configured address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// ListenAndServe listens (unless Listen already did) and serves until ctx is
// cancelled, then shuts down gracefully, giving requests in flight up to 5s.
// It returns nil after a clean shutdown, and an error naming the address if
// listening, serving or the shutdown failed.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	addr := ln.Addr().String()

	served := make(chan error, 1)
	go func() {
		if s.useTLS() {
			served <- s.srv.ServeTLS(ln, "", "") // certificate is in TLSConfig
		} else {
			served <- s.srv.Serve(ln)
		}
	}()

	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("peer server on %s: %w", addr, err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close() // the error that matters is the one from Shutdown
		<-served
		return fmt.Errorf("peer server on %s: graceful shutdown: %w", addr, err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("peer server on %s: %w", addr, err)
	}
	return nil
}

// logWriter adapts a printf-style function to the io.Writer log.Logger needs.
type logWriter func(format string, args ...any)

func (f logWriter) Write(p []byte) (int, error) {
	f("%s", trimNewline(p))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}
