package heartbeat

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/internal/redistest"
)

func TestLoadTLSConfigErrors(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.TLSOptions{})
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name                string
		ca, cert, key, want string
	}{
		{"missing CA", missing, "", "", "CA file: open " + missing},
		{"CA not PEM", junk, "", "", "CA file " + junk + " holds no PEM certificate"},
		{"cert without key", "", srv.CertFile, "", "client certificate " + srv.CertFile + " given without its key (tls_key)"},
		{"key without cert", "", "", srv.KeyFile, "client key " + srv.KeyFile + " given without its certificate (tls_cert)"},
		{"cert not PEM", "", junk, srv.KeyFile, "client certificate " + junk + " holds no PEM certificate"},
		{"key not PEM", "", srv.CertFile, junk, "client key " + junk + " holds no PEM private key"},
		{"key is a certificate", "", srv.CertFile, srv.CAFile, "client key " + srv.CAFile + " holds no PEM private key"},
		{"missing key", "", srv.CertFile, missing, "client key: open " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadTLSConfig(tt.ca, tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadTLSConfig = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// A key that is not the certificate's.
	other := redistest.StartTLS(t, redistest.TLSOptions{})
	_, err := LoadTLSConfig("", srv.CertFile, other.KeyFile)
	if err == nil || !strings.Contains(err.Error(), srv.CertFile) || !strings.Contains(err.Error(), other.KeyFile) {
		t.Errorf("mismatched pair: %v, want an error naming both files", err)
	}
}

// TestRedisTLS runs the store against a TLS-only redis-server with a
// private CA that requires client certificates.
func TestRedisTLS(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.TLSOptions{AuthClients: true, Extra: []string{"--requirepass", "s3#cr/t"}})
	url := "rediss://:s3%23cr%2Ft@" + srv.Addr + "/0"
	ctx := context.Background()

	t.Run("CA and client certificate from files", func(t *testing.T) {
		s, err := OpenStore(StoreConfig{Redis: url, TLSCA: srv.CAFile, TLSCert: srv.CertFile, TLSKey: srv.KeyFile})
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		defer s.Close()
		m := Message{ServiceName: "tls-svc", Timestamp: time.Now().UTC().Truncate(time.Microsecond), HeartbeatCount: 7}
		if err := s.Put(ctx, m); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, ok, err := s.Get(ctx, "tls-svc")
		if err != nil || !ok || got.HeartbeatCount != 7 {
			t.Fatalf("Get = %+v, %v, %v", got, ok, err)
		}
		watchFor(t, s, func(m Message) bool { return m.ServiceName == "tls-svc" && m.HeartbeatCount == 8 }, func() {
			_ = s.Put(ctx, Message{ServiceName: "tls-svc", Timestamp: time.Now(), HeartbeatCount: 8})
		})
	})

	t.Run("no client certificate", func(t *testing.T) {
		cfg, err := LoadTLSConfig(srv.CAFile, "", "")
		if err != nil {
			t.Fatal(err)
		}
		s := openTestRedis(t, url, Patterns{}, WithTLSConfig(cfg))
		_, _, err = s.Get(ctx, "tls-svc")
		if err == nil {
			t.Fatal("a server requiring client certificates served a client without one")
		}
		t.Logf("without a client certificate: %v", err)
		if !strings.Contains(err.Error(), "TLS handshake failed") || IsUnavailable(err) || strings.Contains(err.Error(), "unreachable") {
			t.Errorf("error %q does not say the TLS handshake failed, or calls the server unreachable", err)
		}
		if strings.Contains(err.Error(), "s3") {
			t.Errorf("error %q leaks the password", err)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		s := openTestRedis(t, url, Patterns{}, WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{srv.ClientCert}}))
		_, _, err := s.Get(ctx, "tls-svc")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Get with the system roots = %v, want a certificate error", err)
		}
		t.Logf("with an unknown CA: %v", err)
		if !strings.Contains(err.Error(), "TLS handshake failed") || !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("error %q does not say the TLS handshake with %s failed", err, srv.Addr)
		}
	})

	t.Run("TLS settings with a plain list turn TLS on", func(t *testing.T) {
		cfg, err := LoadTLSConfig(srv.CAFile, srv.CertFile, srv.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		s := openTestRedis(t, srv.Addr, Patterns{}, WithTLSConfig(cfg))
		_, _, err = s.Get(ctx, "tls-svc")
		if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Fatalf("Get over TLS without the password = %v, want NOAUTH (TLS worked, auth did not)", err)
		}
	})
}

// TestRedisACLUserWithoutInfo: a user whose ACL forbids INFO can still use
// a standalone server; the store says it could not ask.
func TestRedisACLUserWithoutInfo(t *testing.T) {
	srv := startRedis(t, "--user", "default", "off", "--user", "hb", "on", ">pw", "~heartbeat:*", "&heartbeat:*", "+@all", "-info")
	sink := &errorSink{}
	s := openTestRedis(t, "redis://hb:pw@"+srv.Addr, Patterns{}, WithStoreLog(sink.log))
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "acl", Timestamp: time.Now()}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, ok, err := s.Get(ctx, "acl"); err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	if !sink.contains("cannot tell whether it is a cluster node") {
		t.Errorf("store log %q does not say INFO was refused", sink.String())
	}
	if strings.Contains(sink.String(), "pw@") {
		t.Errorf("store log leaks the password: %s", sink.String())
	}
}
