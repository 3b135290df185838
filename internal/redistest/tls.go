package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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
	ca := newCA(t)
	srvCert := ca.issue(t, x509.ExtKeyUsageServerAuth)
	cliCert := ca.issue(t, x509.ExtKeyUsageClientAuth)
	s := &TLSServer{
		CAFile: writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw),
		Pool:   x509.NewCertPool(),
	}
	s.Pool.AddCert(ca.cert)
	srvCertFile, srvKeyFile := writeKeyPair(t, dir, "server", srvCert)
	s.CertFile, s.KeyFile = writeKeyPair(t, dir, "client", cliCert)
	s.ClientCert = cliCert

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

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue signs a certificate for 127.0.0.1, ::1 and localhost with one
// extended key usage: OpenSSL, and so redis-server, refuses a client
// certificate that is only for servers.
func (ca *testCA) issue(t testing.TB, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := newKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "redistest"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeKeyPair writes c's certificate and key as PEM files name.pem and
// name.key in dir.
func writeKeyPair(t testing.TB, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", c.Certificate[0]),
		writePEM(t, dir, name+".key", "PRIVATE KEY", keyDER)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
