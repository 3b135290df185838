package peer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve starts a loopback HTTP server for h, closed at cleanup.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// reply answers every request with status, content type and body.
func reply(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// check runs c.Check against url, failing the test if it hangs.
func check(t *testing.T, c *Client, url string) Result {
	t.Helper()
	done := make(chan struct{})
	var r Result
	go func() {
		defer close(done)
		r = c.Check(context.Background(), url)
	}()
	within(t, "Check "+url, done)
	return r
}

func TestClientCheck(t *testing.T) {
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		wantOutcome Outcome
		wantVerdict Verdict
		wantDetail  string // substring
	}{
		{"True", reply(200, "text/plain", "True"), Up, OK, ""},
		{"True with newline (Python tool)", reply(200, "text/html; charset=utf-8", "True\n"), Up, OK, ""},
		{"MailProblem", reply(200, "text/plain", "MailProblem"), CannotMail, MailProblem, "MailProblem"},
		{"JobProblem", reply(200, "text/plain", "JobProblem"), JobsNotRunning, JobProblem, "JobProblem"},
		{"JSON form", reply(200, "application/json", `{"status":"JobProblem","server":"b"}`), JobsNotRunning, JobProblem, ""},
		{"garbage", reply(200, "text/plain", "<html>Service Unavailable</html>"), Unexpected, "", `"<html>Service Unavailable</html>"`},
		{"empty body", reply(200, "text/plain", ""), Unexpected, "", "empty"},
		{"500", reply(500, "text/plain", "True"), BadStatus, "", "500 Internal Server Error"},
		{"404", reply(404, "", ""), BadStatus, "", "404 Not Found"},
		{"302 to nowhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/gone", http.StatusFound)
		}, BadStatus, "", "302 Found"},
		{"302 to a True page is not followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ok" {
				io.WriteString(w, "True")
				return
			}
			http.Redirect(w, r, "/ok", http.StatusFound)
		}, BadStatus, "", "not followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handler)
			r := check(t, &Client{HTTP: srv.Client()}, srv.URL+"/")
			if r.Outcome != tt.wantOutcome || r.Verdict != tt.wantVerdict {
				t.Errorf("Check = %+v, want outcome %v verdict %q", r, tt.wantOutcome, tt.wantVerdict)
			}
			if !strings.Contains(r.Detail, tt.wantDetail) {
				t.Errorf("Detail = %q, want it to contain %q", r.Detail, tt.wantDetail)
			}
		})
	}
}

func TestClientSendsUserAgent(t *testing.T) {
	got := make(chan string, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.UserAgent()
		io.WriteString(w, "True")
	})
	check(t, &Client{UserAgent: "checker/1.2.3"}, srv.URL)
	if ua := <-got; ua != "checker/1.2.3" {
		t.Errorf("User-Agent = %q, want checker/1.2.3", ua)
	}
}

func TestClientHugeBody(t *testing.T) {
	tests := []struct {
		name          string
		contentLength bool
	}{
		{"streamed without length", false},
		{"announced length", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const size = 10 << 20
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.contentLength {
					w.Header().Set("Content-Length", fmt.Sprint(size))
				}
				chunk := []byte(strings.Repeat("True", 1024))
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return // the client hung up, as it should
					}
				}
			})
			r := check(t, &Client{}, srv.URL)
			if r.Outcome != Unexpected || !strings.Contains(r.Detail, "too large") {
				t.Errorf("Check = %+v, want Unexpected, too large", r)
			}
		})
	}
}

func TestClientMaxBodyBoundary(t *testing.T) {
	tests := []struct {
		size int
		want Outcome
	}{
		{DefaultMaxBody, Up},
		{DefaultMaxBody + 1, Unexpected},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			body := "True" + strings.Repeat(" ", tt.size-4)
			srv := serve(t, reply(200, "text/plain", body))
			if r := check(t, &Client{}, srv.URL); r.Outcome != tt.want {
				t.Errorf("Check of a %d-byte body = %+v, want %v", tt.size, r, tt.want)
			}
		})
	}
}

// stalling returns a handler that stalls until the test ends or the client
// hangs up; withHeaders makes it send the headers and part of a body first.
func stalling(t *testing.T, withHeaders bool) http.HandlerFunc {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return func(w http.ResponseWriter, r *http.Request) {
		if withHeaders {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "Tr")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func TestClientSlowServer(t *testing.T) {
	tests := []struct {
		name        string
		withHeaders bool
	}{
		{"never answers", false},
		{"stalls mid-body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(stalling(t, tt.withHeaders))
			t.Cleanup(srv.Close)
			r := check(t, &Client{Timeout: 300 * time.Millisecond}, srv.URL)
			if r.Outcome != NotResponding || !strings.Contains(r.Detail, "300ms") {
				t.Errorf("Check = %+v, want NotResponding naming the 300ms timeout", r)
			}
		})
	}
}

func TestClientCallerContext(t *testing.T) {
	srv := httptest.NewServer(stalling(t, false))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := (&Client{}).Check(ctx, srv.URL); r.Outcome != NotResponding {
		t.Errorf("Check with a cancelled context = %+v, want NotResponding", r)
	}
}

func TestClientClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	r := check(t, &Client{}, url)
	if r.Outcome != NotResponding || r.Detail == "" {
		t.Errorf("Check of a closed port = %+v, want NotResponding with a detail", r)
	}
}

func TestClientTLS(t *testing.T) {
	srv := httptest.NewTLSServer(reply(200, "text/plain", "True"))
	t.Cleanup(srv.Close)
	if r := check(t, &Client{HTTP: srv.Client()}, srv.URL); r.Outcome != Up {
		t.Errorf("Check with the server's pool = %+v, want Up", r)
	}
	// Verification stays on: without the pool the certificate is refused.
	r := check(t, &Client{}, srv.URL)
	if r.Outcome != NotResponding || !strings.Contains(r.Detail, "certificate") {
		t.Errorf("Check without the pool = %+v, want NotResponding about the certificate", r)
	}
}

func TestClientBadURLs(t *testing.T) {
	for _, url := range []string{"", "::", "ftp://127.0.0.1/", "http://", "http://[::1", "\x00"} {
		t.Run(fmt.Sprintf("%q", url), func(t *testing.T) {
			r := check(t, &Client{Timeout: time.Second}, url)
			if r.Outcome != NotResponding || r.Detail == "" {
				t.Errorf("Check(%q) = %+v, want NotResponding with a detail", url, r)
			}
		})
	}
}

func TestClientNilReceiver(t *testing.T) {
	srv := serve(t, reply(200, "text/plain", "True"))
	var c *Client
	if r := check(t, c, srv.URL); r.Outcome != Up {
		t.Errorf("nil Client Check = %+v, want Up", r)
	}
}

func TestClientAgainstHandler(t *testing.T) {
	tests := []struct {
		health Health
		want   Outcome
	}{
		{Health{LastRunEnd: testNow}, Up},
		{Health{MailChecked: true, LastRunEnd: testNow}, CannotMail},
		{Health{}, JobsNotRunning},
	}
	for _, tt := range tests {
		t.Run(tt.want.String(), func(t *testing.T) {
			srv := httptest.NewServer(newTestHandler(fixedHealth(tt.health, nil)))
			t.Cleanup(srv.Close)
			for _, path := range []string{"/", "/status"} {
				if r := check(t, &Client{}, srv.URL+path); r.Outcome != tt.want {
					t.Errorf("Check %s = %+v, want %v", path, r, tt.want)
				}
			}
		})
	}
}

func TestResultSubject(t *testing.T) {
	const url = "https://peer.example:8443/"
	tests := []struct {
		outcome Outcome
		want    string
	}{
		{Up, ""},
		{NotResponding, url + " is not responding."},
		{BadStatus, url + " returned a non-standard status code."},
		{CannotMail, url + " reports it cannot send email."},
		{JobsNotRunning, url + " reports its jobs are not running."},
		{Unexpected, url + " had an unexpected response."},
		{Outcome(0), url + " had an unexpected response."},
	}
	for _, tt := range tests {
		t.Run(tt.outcome.String(), func(t *testing.T) {
			if got := (Result{Outcome: tt.outcome}).Subject(url); got != tt.want {
				t.Errorf("Subject = %q, want %q", got, tt.want)
			}
		})
	}
}
