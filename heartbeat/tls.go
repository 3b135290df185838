package heartbeat

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadTLSConfig builds the TLS settings for a rediss:// store from PEM
// files, as [heartbeat] tls_ca, tls_cert and tls_key name them; pass the
// result to OpenRedis with WithTLSConfig. Any of the paths may be empty:
//
//   - caFile holds the CA certificates that sign the server's certificate
//     (a private CA); empty means the system's roots.
//   - certFile and keyFile are the client certificate and its key, for a
//     server that requires one (tls-auth-clients yes); give both or
//     neither.
//
// Each error names the file and what is wrong with it. The files are read
// once, here.
func LoadTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadCAFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "":
		return nil, fmt.Errorf("heartbeat TLS: client key %s given without its certificate (tls_cert)", keyFile)
	case keyFile == "":
		return nil, fmt.Errorf("heartbeat TLS: client certificate %s given without its key (tls_key)", certFile)
	default:
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("heartbeat TLS: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("heartbeat TLS: CA file %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("heartbeat TLS: CA file %s holds no PEM certificate (want -----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("heartbeat TLS: client certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("heartbeat TLS: client key: %w", err)
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		return tls.Certificate{}, fmt.Errorf("heartbeat TLS: client certificate %s holds no PEM certificate", certFile)
	}
	if !hasPEM(keyPEM, "PRIVATE KEY") {
		return tls.Certificate{}, fmt.Errorf("heartbeat TLS: client key %s holds no PEM private key", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors do not say which file; the pair is all it has.
		return tls.Certificate{}, fmt.Errorf("heartbeat TLS: client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// hasPEM reports whether b holds a PEM block whose type ends in kind
// ("PRIVATE KEY" matches "EC PRIVATE KEY" and "RSA PRIVATE KEY" too).
func hasPEM(b []byte, kind string) bool {
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if len(block.Type) >= len(kind) && block.Type[len(block.Type)-len(kind):] == kind {
			return true
		}
	}
}

// errTLSWithoutRediss is returned when TLS settings come with a redis://
// URL, which says not to use TLS.
var errTLSWithoutRediss = errors.New("TLS settings (tls_ca, tls_cert, tls_key) are given but the URL is redis://; use rediss:// for TLS")
