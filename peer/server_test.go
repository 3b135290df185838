package peer

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixedHealth returns a Health source that always gives h, or err.
func fixedHealth(h Health, err error) func() (Health, error) {
	return func() (Health, error) { return h, err }
}

func newTestHandler(health func() (Health, error)) *Handler {
	return NewHandler(ServerOptions{
		Health:     health,
		ServerName: "alpha",
		Version:    "1.2.3",
		StaleAfter: 2 * time.Minute,
		Now:        func() time.Time { return testNow },
	})
}

func TestHandlerRootBody(t *testing.T) {
	fresh := testNow.Add(-time.Minute)
	tests := []struct {
		name   string
		health func() (Health, error)
		want   string
	}{
		{"healthy", fixedHealth(Health{MailChecked: true, MailOK: true, LastRunEnd: fresh}, nil), "True"},
		{"mail failed", fixedHealth(Health{MailChecked: true, LastRunEnd: fresh}, nil), "MailProblem"},
		{"stale", fixedHealth(Health{LastRunEnd: testNow.Add(-time.Hour)}, nil), "JobProblem"},
		{"crashed", fixedHealth(Health{LastRunEnd: fresh, LastRunError: "panic"}, nil), "JobProblem"},
		{"state unreadable", fixedHealth(Health{}, errors.New("state: corrupt")), "JobProblem"},
		{"no health source", nil, "JobProblem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(newTestHandler(tt.health))
			defer srv.Close()
			resp, body := get(t, srv.Client(), http.MethodGet, srv.URL+"/")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
				t.Errorf("Content-Type = %q, want text/plain", resp.Header.Get("Content-Type"))
			}
			if string(body) != tt.want {
				t.Errorf("body = %q, want exactly %q", body, tt.want)
			}
		})
	}
}

func TestHandlerReadsHealthOnEveryRequest(t *testing.T) {
	var calls atomic.Int32
	h := newTestHandler(func() (Health, error) {
		if calls.Add(1) == 1 {
			return Health{LastRunEnd: testNow}, nil
		}
		return Health{MailChecked: true, LastRunEnd: testNow}, nil
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, want := range []string{"True", "MailProblem"} {
		if _, body := get(t, srv.Client(), http.MethodGet, srv.URL); string(body) != want {
			t.Errorf("body = %q, want %q", body, want)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Health called %d times for 2 requests", n)
	}
}

func TestHandlerStatusJSON(t *testing.T) {
	last := testNow.Add(-time.Minute)
	mailDown := Health{MailChecked: true, MailFailed: MailSend, MailFailedAt: last, LastRunEnd: last,
		MailError: "sending mail failed: dial tcp 10.1.2.3:587: 535 5.7.8 account alpha@corp.example rejected"}
	tests := []struct {
		name       string
		health     func() (Health, error)
		privileged bool
		wantStatus Verdict
		wantLast   *time.Time
		wantReason string   // substring; "" means no reason
		wantDetail string   // substring; "" means no detail
		leaks      []string // must not appear in the body
	}{
		{name: "healthy", health: fixedHealth(Health{LastRunEnd: last}, nil), wantStatus: OK, wantLast: &last},
		{name: "never ran", health: fixedHealth(Health{}, nil), wantStatus: JobProblem, wantReason: "no cron run"},
		{name: "mail failure is a class with a time", health: fixedHealth(mailDown, nil), wantStatus: MailProblem, wantLast: &last,
			wantReason: "the last notification send failed at 2025-03-01T11:59:00Z",
			leaks:      []string{"10.1.2.3", "587", "alpha@", "535", "rejected"}},
		{name: "mail detail for the token holder", health: fixedHealth(mailDown, nil), privileged: true, wantStatus: MailProblem, wantLast: &last,
			wantReason: "send failed", wantDetail: "535 5.7.8 account alpha@corp.example rejected"},
		{name: "crash hides job detail", health: fixedHealth(Health{LastRunEnd: last, LastRunError: "job db-backup: boom"}, nil),
			wantStatus: JobProblem, wantLast: &last, wantReason: "crashed", leaks: []string{"db-backup", "boom"}},
		{name: "crash detail for the token holder", health: fixedHealth(Health{LastRunEnd: last, LastRunError: "job db-backup: boom"}, nil),
			privileged: true, wantStatus: JobProblem, wantLast: &last, wantReason: "crashed", wantDetail: "db-backup"},
		{name: "health error", health: fixedHealth(Health{}, errors.New("open /var/lib/checker/state.json: permission denied")),
			wantStatus: JobProblem, wantReason: "cannot read its state", leaks: []string{"permission denied", "/var/lib"}},
		{name: "health error detail for the token holder", health: fixedHealth(Health{}, errors.New("open /var/lib/checker/state.json: permission denied")),
			privileged: true, wantStatus: JobProblem, wantReason: "cannot read its state", wantDetail: "/var/lib/checker/state.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(ServerOptions{
				Health:     tt.health,
				ServerName: "alpha",
				Version:    "1.2.3",
				StaleAfter: 2 * time.Minute,
				Now:        func() time.Time { return testNow },
				Privileged: func(*http.Request) bool { return tt.privileged },
			})
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, body := get(t, srv.Client(), http.MethodGet, srv.URL+"/status")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q; want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var fields map[string]any
			if err := json.Unmarshal(body, &fields); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			for k := range fields {
				switch k {
				case "status", "server", "last_run", "version", "reason", "detail":
				default:
					t.Errorf("unexpected field %q in %s", k, body)
				}
			}
			for _, leak := range tt.leaks {
				if strings.Contains(string(body), leak) {
					t.Errorf("status document leaks %q: %s", leak, body)
				}
			}
			var doc StatusDoc
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			if doc.Status != tt.wantStatus || doc.Server != "alpha" || doc.Version != "1.2.3" {
				t.Errorf("doc = %+v, want status %q server alpha version 1.2.3", doc, tt.wantStatus)
			}
			switch {
			case tt.wantLast == nil && doc.LastRun != nil:
				t.Errorf("last_run = %v, want null", doc.LastRun)
			case tt.wantLast != nil && (doc.LastRun == nil || !doc.LastRun.Equal(*tt.wantLast)):
				t.Errorf("last_run = %v, want %v", doc.LastRun, tt.wantLast)
			}
			if tt.wantReason == "" && doc.Reason != "" || !strings.Contains(doc.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", doc.Reason, tt.wantReason)
			}
			if tt.wantDetail == "" && doc.Detail != "" || !strings.Contains(doc.Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to contain %q", doc.Detail, tt.wantDetail)
			}
			// Whatever the JSON says, the client reads the same verdict.
			if v, err := ParseReply(resp.Header.Get("Content-Type"), body); err != nil || v != tt.wantStatus {
				t.Errorf("ParseReply(status doc) = %q, %v; want %q", v, err, tt.wantStatus)
			}
		})
	}
}

// recordLog returns a logger whose text output lands in the returned buffer.
func recordLog() (*slog.Logger, *lockedBuffer) {
	var b lockedBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHandlerLogsHealthErrorOnce: the reason reaches the log, but a flood
// of requests against an unreadable state writes it once, not per request.
func TestHandlerLogsHealthErrorOnce(t *testing.T) {
	log, buf := recordLog()
	now := testNow
	h := NewHandler(ServerOptions{
		Health: fixedHealth(Health{}, errors.New("state file corrupt")),
		Now:    func() time.Time { return now },
		Log:    log,
	})
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Body.String() != "JobProblem" {
			t.Fatalf("body = %q, want JobProblem", rec.Body.String())
		}
	}
	if n := strings.Count(buf.String(), "state file corrupt"); n != 1 {
		t.Errorf("the health error was logged %d times for 100 requests, want once:\n%s", n, buf)
	}
	now = now.Add(2 * logEvery)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if n := strings.Count(buf.String(), "state file corrupt"); n != 2 {
		t.Errorf("after %s the error was logged %d times in all, want again (2)", 2*logEvery, n)
	}
}

// TestHandlerJudgesEveryRequestAgainstNow: a cached Health does not freeze
// the verdict; the same record turns stale as the clock moves on.
func TestHandlerJudgesEveryRequestAgainstNow(t *testing.T) {
	now := testNow
	h := NewHandler(ServerOptions{
		Health:     fixedHealth(Health{LastRunEnd: testNow}, nil),
		StaleAfter: 2 * time.Minute,
		Now:        func() time.Time { return now },
	})
	for _, step := range []struct {
		at   time.Time
		want string
	}{
		{testNow, "True"},
		{testNow.Add(2 * time.Minute), "True"},
		{testNow.Add(2*time.Minute + time.Second), "JobProblem"},
		{testNow.Add(-time.Hour), "JobProblem"}, // clock stepped back: the run lies in the future
	} {
		now = step.at
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Body.String() != step.want {
			t.Errorf("at %s: body = %q, want %q", step.at.Format(time.TimeOnly), rec.Body.String(), step.want)
		}
	}
}

func TestHandlerRoutes(t *testing.T) {
	h := NewHandler(ServerOptions{
		Health: fixedHealth(Health{LastRunEnd: testNow}, nil),
		Now:    func() time.Time { return testNow },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string // checked when not "-"
	}{
		{http.MethodGet, "/", 200, "True"},
		{http.MethodHead, "/", 200, ""},
		{http.MethodHead, "/status", 200, ""},
		{http.MethodPost, "/", 405, "-"},
		{http.MethodDelete, "/status", 405, "-"},
		{http.MethodGet, "/nope", 404, "-"},
		{http.MethodGet, "/status/x", 404, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := get(t, srv.Client(), tt.method, srv.URL+tt.path)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantBody != "-" && string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}
