package peer

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ServerOptions configures NewHandler.
type ServerOptions struct {
	// Health is called on every request, so it must be cheap: a cached
	// record, not a read of the whole state (package server provides one).
	// Staleness is judged against Now on every request, so a cached Health
	// never makes an old run look fresh. An error makes the verdict
	// JobProblem. A nil Health counts as an error.
	Health func() (Health, error)
	// ServerName and Version are reported by GET /status.
	ServerName, Version string
	// StaleAfter is how old the last completed cron run may be; zero means
	// DefaultStaleAfter.
	StaleAfter time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Privileged reports whether a request may see the details behind a
	// verdict (the mail server's reply, a crash message, why the state
	// cannot be read), which can name hosts, accounts and files. Nil means
	// no request may.
	Privileged func(*http.Request) bool
	// Log receives problems the server cannot report to the peer, such as
	// why Health failed, at most once a minute for the same problem; nil
	// discards them.
	Log *slog.Logger
}

// Handler answers peers. GET / answers 200, text/plain, with exactly one
// verdict and no newline, as the Python tool did; GET /status answers the
// same verdict as a JSON StatusDoc. HEAD is answered like GET without a
// body. Handler serves both paths itself; a server composing several
// handlers mounts ServeVerdict and ServeStatus instead.
type Handler struct {
	o   ServerOptions
	mux *http.ServeMux

	mu         sync.Mutex // guards lastLogged and loggedAt
	lastLogged string
	loggedAt   time.Time
}

// NewHandler returns the peer status handler for o.
func NewHandler(o ServerOptions) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{o: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.ServeVerdict)
	h.mux.HandleFunc("GET /status", h.ServeStatus)
	return h
}

// ServeHTTP serves GET / and GET /status; other paths get 404, other
// methods 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// ServeVerdict answers with the bare verdict, for peers.
func (h *Handler) ServeVerdict(w http.ResponseWriter, r *http.Request) {
	a, _ := h.verdict()
	writeBody(w, "text/plain; charset=utf-8", []byte(a.Verdict))
}

// ServeStatus answers with the verdict as a JSON StatusDoc; the detail only
// for privileged requests.
func (h *Handler) ServeStatus(w http.ResponseWriter, r *http.Request) {
	a, health := h.verdict()
	doc := StatusDoc{Status: a.Verdict, Server: h.o.ServerName, Version: h.o.Version, Reason: a.Reason}
	if h.o.Privileged != nil && h.o.Privileged(r) {
		doc.Detail = a.Detail
	}
	if !health.LastRunEnd.IsZero() {
		t := health.LastRunEnd.UTC()
		doc.LastRun = &t
	}
	body, err := json.Marshal(doc)
	if err != nil {
		h.logProblem("encoding the status document", err)
		http.Error(w, "cannot encode the status", http.StatusInternalServerError)
		return
	}
	writeBody(w, "application/json", body)
}

// verdict reads the health and judges it.
func (h *Handler) verdict() (Assessment, Health) {
	if h.o.Health == nil {
		return Assessment{Verdict: JobProblem, Reason: "the server has no health source"}, Health{}
	}
	health, err := h.o.Health()
	if err != nil {
		h.logProblem("reading the health for a status request", err)
		return Assessment{Verdict: JobProblem, Reason: "the server cannot read its state",
			Detail: oneLine(err.Error(), maxDetail)}, Health{}
	}
	return assess(health, h.o.Now(), h.o.StaleAfter), health
}

// logEvery is how often the same problem is logged: every request of a
// flood would otherwise write a line.
const logEvery = time.Minute

// logProblem logs err unless the same text was logged within logEvery.
func (h *Handler) logProblem(what string, err error) {
	if h.o.Log == nil {
		return
	}
	msg := err.Error()
	now := h.o.Now()
	h.mu.Lock()
	if msg == h.lastLogged && now.Sub(h.loggedAt) < logEvery {
		h.mu.Unlock()
		return
	}
	h.lastLogged, h.loggedAt = msg, now
	h.mu.Unlock()
	h.o.Log.Error("peer status: "+what, "err", msg)
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
