package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/internal/testcert"
)

// start runs s.Serve until the test ends and returns its base URL
// ("http://127.0.0.1:PORT") once it listens.
func start(t *testing.T, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start listening")
	}
	scheme := "http://"
	if s.TLS() {
		scheme = "https://"
	}
	return scheme + s.Addr()
}

// newServer builds a loopback server for routes with o (Addr defaulted).
func newServer(t *testing.T, o Options, routes ...Route) *Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s, err := New(o, routes)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// text answers every request with body.
func text(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
}

// fetch does method url with hc and returns status and body, failing the
// test on a transport error.
func fetch(t *testing.T, hc *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// selfSignedCert writes a certificate for 127.0.0.1 and localhost, valid
// until notAfter, and its key into a temporary directory. It returns the
// file names and a pool that trusts the certificate.
func selfSignedCert(t *testing.T, notAfter time.Time) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testcert.NewCA(t)
	certFile, keyFile = testcert.WriteLeaf(t, t.TempDir(), ca.Leaf(t, notAfter))
	return certFile, keyFile, ca.Pool()
}

// trustingClient returns an HTTP client that trusts only pool.
func trustingClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// within fails the test if done is not closed within a generous limit; it
// guards against hangs, not for speed.
func within(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not finish", what)
	}
}

// logBuffer is a concurrency-safe buffer for a test's log.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
