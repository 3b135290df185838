package heartbeat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// pushPrefix is the path PushHandler serves under.
const pushPrefix = "/heartbeat/"

// PushHandler accepts heartbeats over HTTP as POST /heartbeat/{service}, for
// hosts without Redis or a plain curl at the end of a script. Register it
// with a pattern that has a {service} wildcard, e.g.
//
//	mux.Handle("/heartbeat/{service}", heartbeat.PushHandler(store, token, time.Now))
//
// (it also works without the wildcard, taking the service from the path).
//
// When token is not empty, requests must carry "Authorization: Bearer
// <token>". The body may be empty, in which case the heartbeat has only the
// service, the time (from now) and an instance id naming the sender's
// address; or a JSON heartbeat, whose service_name must match the path if
// present and whose missing timestamp and instance id are filled in the same
// way. Replies: 200 "OK", 400 bad service name or body, 401 bad or missing
// token, 405 not a POST, 413 body over MaxMessageSize, 503 store unreachable,
// 502 store failed otherwise; errors come as one line of plain text.
func PushHandler(store Store, token string, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	h := &pushHandler{store: store, now: now}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		h.tokenSum = sum[:]
	}
	return h
}

type pushHandler struct {
	store    Store
	tokenSum []byte // SHA-256 of the token; nil when none is required
	now      func() time.Time
}

func (h *pushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		pushError(w, http.StatusMethodNotAllowed, "use POST to send a heartbeat")
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="heartbeat"`)
		pushError(w, http.StatusUnauthorized, "missing or wrong bearer token")
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessageSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			pushError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("heartbeat body is over the %d-byte limit", MaxMessageSize))
			return
		}
		pushError(w, http.StatusBadRequest, "reading body: "+err.Error())
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
		m.Timestamp = h.now()
	}
	if m.InstanceID == "" {
		m.InstanceID = "push-" + remoteHost(r)
	}

	if err := h.store.Put(r.Context(), m); err != nil {
		switch {
		case IsUnavailable(err):
			pushError(w, http.StatusServiceUnavailable, err.Error())
		case errors.Is(err, context.Canceled):
			// The client went away; nobody reads the reply.
			pushError(w, http.StatusServiceUnavailable, "request canceled")
		default:
			pushError(w, http.StatusBadGateway, err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "OK\n")
}

// authorized compares the bearer token in constant time; hashing both sides
// first keeps the token's length from leaking too.
func (h *pushHandler) authorized(r *http.Request) bool {
	if h.tokenSum == nil {
		return true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum) == 1
}

// remoteHost returns the host part of the client's address.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func pushError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, strings.ReplaceAll(msg, "\n", "; ")+"\n")
}
