package heartbeat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// pushPrefix is the path PushHandler serves under.
const pushPrefix = "/heartbeat/"

// PushOptions configures NewPushHandler.
type PushOptions struct {
	// Token, when set, must come with every push as "Authorization: Bearer
	// TOKEN". Without it, only clients on this machine may push.
	Token string
	// Now stamps heartbeats that carry no timestamp; nil means time.Now.
	Now func() time.Time
	// Log receives accepted pushes (at debug) and refused or failed ones
	// with their reasons, which the client is not told (they can name
	// files and addresses). Nil discards them.
	Log *slog.Logger
	// IsLoopback decides, when no Token is set, whether a request comes
	// from this machine. Nil means by the TCP peer address (RemoteAddr),
	// never by forwarding headers, which the client writes.
	IsLoopback func(*http.Request) bool
	// MaxInFlight bounds the pushes received and stored at once; up to
	// three times as many more wait up to two seconds for a turn, then get
	// 503; beyond those, a push gets 503 at once. Zero means
	// DefaultPushInFlight.
	MaxInFlight int
	// StoreTimeout bounds one store write; zero means DefaultStoreTimeout.
	StoreTimeout time.Duration
}

// Defaults of PushOptions.
const (
	DefaultPushInFlight = 16
	DefaultStoreTimeout = 5 * time.Second
)

// Bounds on one push that are not options.
const (
	// bodyTimeout bounds reading a push body: 64 KiB take a moment even on
	// a slow link, and a slower client holds a turn others need.
	bodyTimeout = 5 * time.Second
	// bodyStall is how long a push body may stop coming before the push
	// is refused: a client that sends nothing for a second while holding
	// a turn is not pushing, it is holding the turn.
	bodyStall = time.Second
	// waitersPerTurn is how many pushes may wait for a turn per turn; a
	// waiting push holds a connection and a goroutine, and a queue longer
	// than this would not be served within turnWait anyway.
	waitersPerTurn = 3
	// turnWait is how long a push waits for a turn.
	turnWait = 2 * time.Second
	// drainWait is how long the rest of a refused push's body is read.
	drainWait = time.Second
)

// PushHandler is NewPushHandler with only a token and a clock.
func PushHandler(store Store, token string, now func() time.Time) http.Handler {
	return NewPushHandler(store, PushOptions{Token: token, Now: now})
}

// NewPushHandler accepts heartbeats over HTTP as POST /heartbeat/{service},
// for hosts without Redis or a plain curl at the end of a script. Register
// it with a pattern that has a {service} wildcard, e.g.
//
//	mux.Handle("POST /heartbeat/{service}", heartbeat.NewPushHandler(store, opts))
//
// (it also works without the wildcard, taking the service from the path).
//
// With a token set, requests must carry "Authorization: Bearer <token>";
// without one, only clients on this machine may push. The body may be
// empty, in which case the heartbeat has only the service, the time (from
// now) and an instance id naming the sender's address; or a JSON heartbeat,
// whose service_name must match the path if present and whose missing
// timestamp and instance id are filled in the same way. Replies: 200 "OK",
// 400 bad service name or body, 401 bad or missing token, 403 not from this
// machine and no token set, 405 not a POST, 413 body over MaxMessageSize,
// 503 store unreachable or too many pushes at once, 507 the store keeps its
// maximum number of services and this one is new, 502 store failed
// otherwise. Errors come as one line of plain text that names no file or
// address; the log has the details.
func NewPushHandler(store Store, o PushOptions) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.IsLoopback == nil {
		o.IsLoopback = fromLoopback
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultPushInFlight
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	h := &pushHandler{store: store, o: o, bodyStall: bodyStall, turns: make(chan struct{}, o.MaxInFlight), waiters: make(chan struct{}, waitersPerTurn*o.MaxInFlight)}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		h.tokenSum = sum[:]
	}
	return h
}

type pushHandler struct {
	store     Store
	o         PushOptions
	tokenSum  []byte // SHA-256 of the token; nil when none is required
	bodyStall time.Duration
	turns     chan struct{}
	waiters   chan struct{} // pushes waiting for a turn
}

func (h *pushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		pushError(w, http.StatusMethodNotAllowed, "use POST to send a heartbeat")
		return
	}
	// Who may push is settled before anything is read or waited for, so
	// that strangers cost nothing but this answer.
	if h.tokenSum != nil && !h.authorized(r) {
		h.o.Log.Warn("heartbeat push refused: missing or wrong token", "from", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="heartbeat"`)
		pushError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	if h.tokenSum == nil && !h.o.IsLoopback(r) {
		h.o.Log.Warn("heartbeat push refused: no push_token is set, so only this machine may push", "from", r.RemoteAddr)
		pushError(w, http.StatusForbidden, "this server takes heartbeat pushes from other machines only with a token: "+
			"set [serve] push_token in its settings and send \"Authorization: Bearer TOKEN\"")
		return
	}
	service := r.PathValue("service")
	if service == "" {
		service = strings.TrimPrefix(r.URL.Path, pushPrefix)
	}
	if err := ValidServiceName(service); err != nil {
		pushError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.ContentLength > MaxMessageSize {
		pushError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("heartbeat body is %d bytes, over the %d-byte limit", r.ContentLength, MaxMessageSize))
		return
	}

	if !h.takeTurn(r.Context()) {
		h.o.Log.Warn("heartbeat push refused: too many at once", "service", service, "from", r.RemoteAddr, "max_in_flight", h.o.MaxInFlight)
		w.Header().Set("Retry-After", "1")
		pushError(w, http.StatusServiceUnavailable, "busy: too many heartbeat pushes at once; retry in a second")
		return
	}
	defer func() { <-h.turns }()

	// A body that trickles in holds a turn; it gets a few seconds, and
	// may not stop coming for longer than bodyStall. (The socket's
	// deadlines are on the real clock, not the injected one.) Without a
	// body there is nothing to wait for, and a read deadline would only
	// end the request: net/http watches the idle connection meanwhile.
	var in io.ReadCloser = http.NoBody
	if r.Body != nil && r.Body != http.NoBody {
		in = &stallReader{ReadCloser: r.Body, rc: http.NewResponseController(w), stall: h.bodyStall, end: time.Now().Add(bodyTimeout)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, in, MaxMessageSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			pushError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("heartbeat body is over the %d-byte limit", MaxMessageSize))
			return
		}
		h.o.Log.Info("heartbeat push: reading the body failed", "service", service, "from", r.RemoteAddr, "err", err)
		pushError(w, http.StatusBadRequest, "reading the request body failed")
		return
	}

	var m Message
	if len(bytes.TrimSpace(body)) > 0 {
		m, err = decode(body, decodeRules{})
		if err != nil {
			pushError(w, http.StatusBadRequest, err.Error())
			return
		}
		if m.ServiceName != "" && m.ServiceName != service {
			pushError(w, http.StatusBadRequest, fmt.Sprintf("service_name %q in the body does not match %q in the path", m.ServiceName, service))
			return
		}
	}
	m.ServiceName = service
	if m.Timestamp.IsZero() {
		m.Timestamp = h.o.Now()
	}
	if m.InstanceID == "" {
		m.InstanceID = "push-" + remoteHost(r)
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.o.StoreTimeout)
	defer cancel()
	if err := h.store.Put(ctx, m); err != nil {
		h.storeFailed(w, r, service, err)
		return
	}
	h.o.Log.Debug("heartbeat push accepted", "service", service, "instance", m.InstanceID, "from", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "OK\n")
}

// stallReader reads a request body, giving each read at most stall and
// all of them together until end.
type stallReader struct {
	io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
	end   time.Time
}

func (s *stallReader) Read(p []byte) (int, error) {
	d := time.Now().Add(s.stall)
	if d.After(s.end) {
		d = s.end
	}
	_ = s.rc.SetReadDeadline(d)
	return s.ReadCloser.Read(p)
}

// takeTurn waits for one of the MaxInFlight turns, up to turnWait or until
// the client leaves; when the waiters are already as many as it allows, it
// does not wait.
func (h *pushHandler) takeTurn(ctx context.Context) bool {
	select {
	case h.turns <- struct{}{}:
		return true
	default:
	}
	select {
	case h.waiters <- struct{}{}:
		defer func() { <-h.waiters }()
	default:
		return false
	}
	t := time.NewTimer(turnWait)
	defer t.Stop()
	select {
	case h.turns <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// storeFailed answers a failed Put with a class of failure and logs the
// details, which can name the store's address or directory.
func (h *pushHandler) storeFailed(w http.ResponseWriter, r *http.Request, service string, err error) {
	switch {
	case errors.Is(err, ErrTooManyServices):
		h.o.Log.Warn("heartbeat push refused: the store keeps its maximum number of services ([heartbeat] max_services)",
			"service", service, "from", r.RemoteAddr)
		pushError(w, http.StatusInsufficientStorage, "this server keeps no more heartbeat services: "+
			"its [heartbeat] max_services is reached; forget unused services or raise the limit")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the reply.
		pushError(w, http.StatusServiceUnavailable, "request canceled")
	case IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded):
		h.o.Log.Error("heartbeat push: the store is unreachable", "service", service, "err", err)
		pushError(w, http.StatusServiceUnavailable, "the heartbeat store is unreachable; the server's log says why")
	default:
		h.o.Log.Error("heartbeat push: the store failed", "service", service, "err", err)
		pushError(w, http.StatusBadGateway, "the heartbeat store failed; the server's log says why")
	}
}

// authorized compares the bearer token in constant time; hashing both sides
// first keeps the token's length from leaking too.
func (h *pushHandler) authorized(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum) == 1
}

// fromLoopback reports whether the TCP peer of r is on this machine.
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// remoteHost returns the host part of the client's address.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// pushError answers with code and one line of text, and closes the
// connection once the answer is out. A body not read yet is drained for a
// second at most, so that a client still sending reads the answer rather
// than a reset, while one that trickles is not waited for (net/http would
// read on, up to 256 KiB, as slowly as the client sends).
func pushError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
	io.WriteString(w, strings.ReplaceAll(msg, "\n", "; ")+"\n")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainWait))
}
