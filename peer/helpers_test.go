package peer

import (
	"checker/internal/testcert"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"testing"
	"time"
)

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
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// get fetches url with method and returns the response and its whole body.
func get(t *testing.T, hc *http.Client, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, url, err)
	}
	return resp, body
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
