package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixedHealth returns a Health source that always gives h, or err.
func fixedHealth(h Health, err error) func() (Health, error) {
	return func() (Health, error) { return h, err }
}

func newTestHandler(health func() (Health, error)) http.Handler {
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
	tests := []struct {
		name       string
		health     func() (Health, error)
		wantStatus Verdict
		wantLast   *time.Time
		wantReason string // substring; "" means no reason
	}{
		{"healthy", fixedHealth(Health{LastRunEnd: last}, nil), OK, &last, ""},
		{"never ran", fixedHealth(Health{}, nil), JobProblem, nil, "no cron run"},
		{"mail", fixedHealth(Health{MailChecked: true, MailError: "535 denied", LastRunEnd: last}, nil), MailProblem, &last, "535 denied"},
		{"crash hides job detail", fixedHealth(Health{LastRunEnd: last, LastRunError: "job db-backup: boom"}, nil), JobProblem, &last, "crashed"},
		{"health error", fixedHealth(Health{}, errors.New("open /var/lib/checker/state.json: permission denied")), JobProblem, nil, "cannot read its state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(newTestHandler(tt.health))
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
				case "status", "server", "last_run", "version", "reason":
				default:
					t.Errorf("unexpected field %q in %s", k, body)
				}
			}
			for _, leak := range []string{"db-backup", "permission denied", "/var/lib"} {
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
			// Whatever the JSON says, the client reads the same verdict.
			if v, err := ParseReply(resp.Header.Get("Content-Type"), body); err != nil || v != tt.wantStatus {
				t.Errorf("ParseReply(status doc) = %q, %v; want %q", v, err, tt.wantStatus)
			}
		})
	}
}

func TestHandlerLogsHealthError(t *testing.T) {
	var logged atomic.Value
	h := NewHandler(ServerOptions{
		Health: fixedHealth(Health{}, errors.New("state file corrupt")),
		Log:    func(format string, args ...any) { logged.Store(fmt.Sprintf(format, args...)) },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	get(t, srv.Client(), http.MethodGet, srv.URL)
	if msg, _ := logged.Load().(string); !strings.Contains(msg, "state file corrupt") {
		t.Errorf("log = %q, want the health error", msg)
	}
}

func TestHandlerRoutes(t *testing.T) {
	h := NewHandler(ServerOptions{
		Health: fixedHealth(Health{LastRunEnd: testNow}, nil),
		Now:    func() time.Time { return testNow },
		Extra: map[string]http.Handler{
			"POST /heartbeat/{service}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "got %s", r.PathValue("service"))
			}),
		},
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
		{http.MethodPost, "/heartbeat/backup", 200, "got backup"},
		{http.MethodGet, "/heartbeat/backup", 405, "-"},
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

// runServer starts s.ListenAndServe and returns its cancel function and a
// channel that yields its result. The server is stopped at cleanup.
func runServer(t *testing.T, s *Server) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		errc <- s.ListenAndServe(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start listening")
	}
	return cancel, errc
}

// waitNil waits for ListenAndServe's result and wants nil.
func waitNil(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("ListenAndServe returned %v, want nil after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
}

func TestServerServesAndShutsDown(t *testing.T) {
	s := NewServer("127.0.0.1:0", newTestHandler(fixedHealth(Health{LastRunEnd: testNow}, nil)), "", "")
	cancel, errc := runServer(t, s)
	if strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound port", s.Addr())
	}
	if _, body := get(t, http.DefaultClient, http.MethodGet, "http://"+s.Addr()+"/"); string(body) != "True" {
		t.Errorf("body = %q, want True", body)
	}
	cancel()
	waitNil(t, errc)
	if _, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
}

func TestServerFinishesRequestInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	s := NewServer("127.0.0.1:0", h, "", "")
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	cancel, errc := runServer(t, s)

	type reply struct {
		body string
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/")
		if err != nil {
			replies <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- reply{string(b), err}
	}()
	within(t, "request reaching the handler", entered)
	cancel()
	close(release)
	select {
	case r := <-replies:
		if r.err != nil || r.body != "done" {
			t.Errorf("request in flight got %q, %v; want done", r.body, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("request in flight never finished")
	}
	waitNil(t, errc)
}

func TestServerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t, time.Now().Add(time.Hour))
	s := NewServer("127.0.0.1:0", newTestHandler(fixedHealth(Health{LastRunEnd: testNow}, nil)), certFile, keyFile)
	cancel, errc := runServer(t, s)
	url := "https://" + s.Addr() + "/"

	resp, body := get(t, trustingClient(pool), http.MethodGet, url)
	if string(body) != "True" || resp.TLS == nil {
		t.Errorf("body = %q, TLS = %v; want True over TLS", body, resp.TLS != nil)
	}
	if r := (&Client{HTTP: trustingClient(pool)}).Check(context.Background(), url); r.Outcome != Up {
		t.Errorf("Check over TLS = %+v, want Up", r)
	}
	// Plain HTTP to the TLS port must not get a verdict.
	if resp, err := http.Get("http://" + s.Addr() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to the TLS port answered 200")
		}
	}
	cancel()
	waitNil(t, errc)
}

func TestServerTLSRejectsOldVersions(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t, time.Now().Add(time.Hour))
	s := NewServer("127.0.0.1:0", http.NotFoundHandler(), certFile, keyFile)
	runServer(t, s)
	hc := trustingClient(pool)
	hc.Transport.(*http.Transport).TLSClientConfig.MinVersion = 0x0301 // TLS 1.0
	hc.Transport.(*http.Transport).TLSClientConfig.MaxVersion = 0x0302 // TLS 1.1
	if _, err := hc.Get("https://" + s.Addr() + "/"); err == nil {
		t.Error("TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}
}

func TestServerErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certFile, keyFile, _ := selfSignedCert(t, time.Now().Add(time.Hour))

	tests := []struct {
		name              string
		addr              string
		certFile, keyFile string
		want              []string // substrings of the error
	}{
		{"port in use", busy.Addr().String(), "", "", []string{busy.Addr().String()}},
		{"missing cert file", "127.0.0.1:0", "/nonexistent/cert.pem", keyFile, []string{"127.0.0.1:0", "/nonexistent/cert.pem"}},
		{"key is not a key", "127.0.0.1:0", certFile, certFile, []string{certFile}},
		{"cert without key", "127.0.0.1:0", certFile, "", []string{"both a certificate and a key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer(tt.addr, http.NotFoundHandler(), tt.certFile, tt.keyFile)
			done := make(chan struct{})
			var err error
			go func() {
				defer close(done)
				err = s.ListenAndServe(context.Background())
			}()
			within(t, "ListenAndServe with a bad setup", done)
			if err == nil {
				t.Fatal("ListenAndServe returned nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestServerLimits(t *testing.T) {
	s := NewServer("127.0.0.1:0", http.NotFoundHandler(), "", "")
	if s.srv.ReadHeaderTimeout != 5*time.Second || s.srv.ReadTimeout != 10*time.Second ||
		s.srv.WriteTimeout != 10*time.Second || s.srv.IdleTimeout != 60*time.Second ||
		s.srv.MaxHeaderBytes != 16<<10 {
		t.Errorf("limits = %+v", s.srv)
	}
	runServer(t, s)
	// A request whose headers exceed the limit is refused, not buffered.
	req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("oversized headers got status %d, want 431", resp.StatusCode)
		}
	}
}
