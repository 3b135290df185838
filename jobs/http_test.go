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

// TestHTTPBodyDripsPastTimeout: a server that sends its headers and then
// drips the body past the timeout fails, also without contains: an
// endpoint that cannot deliver its page in time is not up.
func TestHTTPBodyDripsPastTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		for range 1000 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	for _, contains := range []string{"", "x"} {
		t.Run("contains="+contains, func(t *testing.T) {
			r := runJob(t, newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Contains = contains }), nil, 300*time.Millisecond)
			wantStatus(t, r, jobs.Critical)
			if !strings.Contains(r.Message, "not complete within the timeout") && !strings.Contains(r.Message, "timed out") {
				t.Errorf("message %q does not say the body was late", r.Message)
			}
		})
	}
}

// TestHTTPBodyCutShort: a body shorter than its Content-Length (the server
// closed the connection early) fails, also without contains.
func TestHTTPBodyCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "only this")
	}))
	defer srv.Close()
	r := runJob(t, newHTTPJob(t, srv.URL, nil), nil, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	if !strings.Contains(r.Message, "reading the body") || !strings.Contains(r.Message, "9 bytes read") {
		t.Errorf("message %q", r.Message)
	}
}

func TestHTTPPerfdata(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	r := runJob(t, newHTTPJob(t, srv.URL, nil), nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if !strings.Contains(r.Message, "200 OK, 5 bytes in ") {
		t.Errorf("message %q does not give status and size", r.Message)
	}
	if !strings.HasPrefix(r.Perfdata, "time=") || !strings.HasSuffix(r.Perfdata, "s;;;0 size=5B;;;0") {
		t.Errorf("perfdata %q, want time=…s;;;0 size=5B;;;0", r.Perfdata)
	}
}

// redirector answers /moved with 301 to target and anything else with 200.
func redirector(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "landed on "+r.Host)
	})
}

func TestHTTPRedirects(t *testing.T) {
	plain := httptest.NewServer(redirector("/"))
	defer plain.Close()
	secure := httptest.NewUnstartedServer(nil)
	secure.Config.Handler = redirector(plain.URL + "/")
	secure.StartTLS()
	defer secure.Close()
	secureSelf := httptest.NewTLSServer(nil)
	secureSelf.Config.Handler = redirector(secureSelf.URL + "/")
	defer secureSelf.Close()
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	roots.AddCert(secureSelf.Certificate())

	tests := []struct {
		name string
		url  string
		edit func(*jobs.HTTP)
		want jobs.Status
		msg  string
	}{
		{"followed by default", plain.URL + "/moved", nil, jobs.OK, "redirected to " + plain.URL + "/"},
		{"follow = no", plain.URL + "/moved", func(h *jobs.HTTP) { h.Follow = false }, jobs.Critical, "status 301 Moved Permanently, want 200 (Location: /)"},
		{"expect 301 is not followed", plain.URL + "/moved", func(h *jobs.HTTP) { h.ExpectStatus = 301 }, jobs.OK, "301 Moved Permanently"},
		{"expect 301, not redirected", plain.URL + "/", func(h *jobs.HTTP) { h.ExpectStatus = 301 }, jobs.Critical, "status 200 OK, want 301"},
		{"https to https", secureSelf.URL + "/moved", nil, jobs.OK, "200 OK"},
		{"https to http refused", secure.URL + "/moved", nil, jobs.Critical, "redirected from " + secure.URL + "/moved to plain http " + plain.URL + "/ (allow_downgrade = yes, or --allow-downgrade"},
		{"https to http allowed", secure.URL + "/moved", func(h *jobs.HTTP) { h.AllowDowngrade = true }, jobs.OK, "redirected to " + plain.URL + "/"},
		{"https to http, contains checked nowhere", secure.URL + "/moved", func(h *jobs.HTTP) { h.Contains = "landed" }, jobs.Critical, "plain http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &jobs.Env{RootCAs: roots}
			defer env.Close()
			h := newHTTPJob(t, tt.url, func(h *jobs.HTTP) {
				h.Follow = true
				if tt.edit != nil {
					tt.edit(h)
				}
			})
			r := runJob(t, h, env, 5*time.Second)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
		})
	}
}

func TestHTTPRedirectLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	defer srv.Close()
	r := runJob(t, newHTTPJob(t, srv.URL, func(h *jobs.HTTP) { h.Follow = true }), nil, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	if !strings.Contains(r.Message, "stopped after 10 redirects") {
		t.Errorf("message %q", r.Message)
	}
}

// TestHTTPRedirectKeys: the follow and allow_downgrade keys reach the job,
// following is on by default.
func TestHTTPRedirectKeys(t *testing.T) {
	js, problems := loadSettings(t, `[http:a]
url = http://127.0.0.1:1/
[http:b]
url = http://127.0.0.1:1/
follow = no
allow_downgrade = yes
expect_status = 301
`)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	m := jobsByName(js, "http")
	if a := m["http:a"].Spec.(*jobs.HTTP); !a.Follow || a.AllowDowngrade {
		t.Errorf("http:a = %+v, want follow on, no downgrade", a)
	}
	if b := m["http:b"].Spec.(*jobs.HTTP); b.Follow || !b.AllowDowngrade || b.ExpectStatus != 301 {
		t.Errorf("http:b = %+v", b)
	}
}
