package jobs_test

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/jobs"
)

// newHTTPJob returns a validated HTTP spec with the type's defaults.
func newHTTPJob(t *testing.T, url string, edit func(*jobs.HTTP)) *jobs.HTTP {
	t.Helper()
	h := &jobs.HTTP{URL: url, Method: http.MethodGet, ExpectStatus: 200}
	if edit != nil {
		edit(h)
	}
	return validated(t, h)
}

func TestHTTPStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		case "/created":
			w.WriteHeader(http.StatusCreated)
		default:
			io.WriteString(w, "hello")
		}
	}))
	defer srv.Close()

	tests := []struct {
		name   string
		path   string
		expect int
		want   jobs.Status
		msg    []string
	}{
		{"ok", "/", 200, jobs.OK, []string{"200"}},
		{"unavailable", "/down", 200, jobs.Critical, []string{"503", "want 200"}},
		{"expected other status", "/created", 201, jobs.OK, []string{"201"}},
		{"200 when 201 expected", "/", 201, jobs.Critical, []string{"200 OK", "want 201"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHTTPJob(t, srv.URL+tt.path, func(h *jobs.HTTP) { h.ExpectStatus = tt.expect })
			r := runJob(t, h, nil, 5*time.Second)
			wantStatus(t, r, tt.want)
			for _, m := range tt.msg {
				if !strings.Contains(r.Message, m) {
					t.Errorf("message %q does not contain %q", r.Message, m)
				}
			}
		})
	}
}

func TestHTTPFailureDetailHasBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database is down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	r := runJob(t, newHTTPJob(t, srv.URL, nil), nil, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	if !strings.Contains(r.Detail, "database is down") {
		t.Errorf("detail %q does not show the body", r.Detail)
	}
}

func TestHTTPContains(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>all systems operational</html>")
	}))
	defer srv.Close()

	t.Run("match", func(t *testing.T) {
		h := newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Contains = "operational" })
		wantStatus(t, runJob(t, h, nil, 5*time.Second), jobs.OK)
	})
	t.Run("mismatch", func(t *testing.T) {
		h := newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Contains = "degraded" })
		r := runJob(t, h, nil, 5*time.Second)
		wantStatus(t, r, jobs.Critical)
		if !strings.Contains(r.Message, `"degraded"`) {
			t.Errorf("message %q does not name the missing text", r.Message)
		}
	})
}

func TestHTTPBodyCap(t *testing.T) {
	const needle = "NEEDLE"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pad := jobs.MaxHTTPBody
		if r.URL.Path == "/inside" {
			pad -= len(needle) // ends exactly at the cap
		}
		w.Write([]byte(strings.Repeat("a", pad) + needle + strings.Repeat("b", 1000)))
	}))
	defer srv.Close()

	t.Run("beyond the cap", func(t *testing.T) {
		h := newHTTPJob(t, srv.URL+"/beyond", func(h *jobs.HTTP) { h.Contains = needle })
		r := runJob(t, h, nil, 5*time.Second)
		wantStatus(t, r, jobs.Critical)
		if !strings.Contains(r.Message, "does not contain") {
			t.Errorf("message %q", r.Message)
		}
	})
	t.Run("inside the cap", func(t *testing.T) {
		h := newHTTPJob(t, srv.URL+"/inside", func(h *jobs.HTTP) { h.Contains = needle })
		wantStatus(t, runJob(t, h, nil, 5*time.Second), jobs.OK)
	})
}

func TestHTTPMethod(t *testing.T) {
	var (
		mu     sync.Mutex // guards method
		method string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		method = r.Method
		mu.Unlock()
		io.WriteString(w, "body")
	}))
	defer srv.Close()

	for _, m := range []string{"head", "POST", "DELETE"} {
		t.Run(m, func(t *testing.T) {
			h := newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Method = m })
			wantStatus(t, runJob(t, h, nil, 5*time.Second), jobs.OK)
			mu.Lock()
			defer mu.Unlock()
			if method != strings.ToUpper(m) {
				t.Errorf("server saw %s, want %s", method, strings.ToUpper(m))
			}
		})
	}
}

func TestHTTPValidate(t *testing.T) {
	tests := []struct {
		name string
		h    jobs.HTTP
		key  string
	}{
		{"no scheme", jobs.HTTP{URL: "example.com/", Method: "GET", ExpectStatus: 200}, "url"},
		{"ftp", jobs.HTTP{URL: "ftp://example.com/", Method: "GET", ExpectStatus: 200}, "url"},
		{"no host", jobs.HTTP{URL: "http:///path", Method: "GET", ExpectStatus: 200}, "url"},
		{"method", jobs.HTTP{URL: "http://example.com/", Method: "FETCH", ExpectStatus: 200}, "method"},
		{"status", jobs.HTTP{URL: "http://example.com/", Method: "GET", ExpectStatus: 99}, "expect_status"},
		{"status too big", jobs.HTTP{URL: "http://example.com/", Method: "GET", ExpectStatus: 600}, "expect_status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.Validate()
			ke, ok := err.(*jobs.KeyError)
			if !ok || ke.Key != tt.key {
				t.Fatalf("Validate = %v, want a KeyError for %s", err, tt.key)
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	tests := []struct {
		name     string
		roots    *x509.CertPool
		insecure bool
		want     jobs.Status
		msg      string
	}{
		{"trusted", roots, false, jobs.OK, "200"},
		{"system roots", nil, false, jobs.Critical, "unknown authority"},
		{"insecure", nil, true, jobs.OK, "200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &jobs.Env{RootCAs: tt.roots}
			defer env.Close()
			h := newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Insecure = tt.insecure; h.Contains = "secure" })
			r := runJob(t, h, env, 5*time.Second)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
		})
	}
}

// hungListener accepts connections and never answers. They are closed when
// the test ends.
func hungListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex // guards conns
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	return ln
}

func TestHTTPHungEndpoint(t *testing.T) {
	ln := hungListener(t)
	h := newHTTPJob(t, "http://"+ln.Addr().String()+"/", nil)
	r := runJob(t, h, nil, 300*time.Millisecond)
	wantStatus(t, r, jobs.Critical)
	// The check's own message, or Run's if the check overran its grace.
	if !strings.Contains(r.Message, "timeout") && !strings.Contains(r.Message, "timed out") {
		t.Errorf("message %q does not mention the timeout", r.Message)
	}
}

// panicSpec is a job type whose check panics.
type panicSpec struct{}

func (panicSpec) Validate() error                              { return nil }
func (panicSpec) Target() string                               { return "nowhere" }
func (panicSpec) Check(context.Context, *jobs.Env) jobs.Result { panic("boom") }

// TestHTTPRunRecoversPanic checks that Job.Run turns a panicking check
// (here a stand-in type, not HTTP) into UNKNOWN with the panic as reason.
func TestHTTPRunRecoversPanic(t *testing.T) {
	r := runJob(t, panicSpec{}, nil, 5*time.Second)
	wantStatus(t, r, jobs.Unknown)
	if !strings.Contains(r.Message, "check panicked") || !strings.Contains(r.Message, "boom") {
		t.Errorf("message %q", r.Message)
	}
	if !strings.Contains(r.Detail, "panicSpec") {
		t.Errorf("detail does not hold the stack: %q", r.Detail)
	}
}
