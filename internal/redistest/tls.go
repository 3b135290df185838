package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"checker/internal/testcert"
)

// TLSServer is a redis-server that speaks only TLS, with certificates made
// for the test: a CA, a server certificate for 127.0.0.1 and a client
// certificate the server accepts.
type TLSServer struct {
	*Server
	// CAFile is the PEM file of the CA that signed both certificates.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key (PEM).
	CertFile, KeyFile string
	// Pool holds the CA; ClientCert is the client certificate.
	Pool       *x509.CertPool
	ClientCert tls.Certificate
}

// TLSOptions choose how StartTLS configures the server.
type TLSOptions struct {
	// AuthClients makes the server require a client certificate signed by
	// the CA (tls-auth-clients yes); otherwise it asks for none.
	AuthClients bool
	// Extra arguments for redis-server, e.g. --requirepass.
	Extra []string
}

// StartTLS runs redis-server with TLS only (no plain port) on a free
// loopback port, as Start does.
func StartTLS(t testing.TB, o TLSOptions) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	day := time.Now().Add(24 * time.Hour)
	s := &TLSServer{
		CAFile:     ca.WritePEM(t, dir),
		Pool:       ca.Pool(),
		ClientCert: ca.Issue(t, testcert.LeafOptions{NotAfter: day, Client: true}),
	}
	srvCertFile, srvKeyFile := testcert.WriteLeaf(t, mkdir(t, dir, "server"), ca.Issue(t, testcert.LeafOptions{NotAfter: day}))
	s.CertFile, s.KeyFile = testcert.WriteLeaf(t, mkdir(t, dir, "client"), s.ClientCert)

	auth := "no"
	if o.AuthClients {
		auth = "yes"
	}
	port := FreePort(t)
	args := append([]string{
		"--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", srvCertFile, "--tls-key-file", srvKeyFile,
		"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", auth,
	}, o.Extra...)
	s.Server = start(t, port, args, s.ping)
	return s
}

// URL returns the server's rediss:// URL for database 0.
func (s *TLSServer) URL() string { return "rediss://" + s.Addr + "/0" }

// ping is Ping over TLS, with the client certificate.
func (s *TLSServer) ping(addr string) bool {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
		&tls.Config{RootCAs: s.Pool, Certificates: []tls.Certificate{s.ClientCert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return false
	}
	defer c.Close()
	return answers(roundTrip(c, "PING"))
}

// mkdir makes the directory name in dir and returns its path.
func mkdir(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}
