package redistest_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"checker/internal/redistest"
)

func TestStartAndKill(t *testing.T) {
	srv := redistest.Start(t)
	if !redistest.Ping(srv.Addr) {
		t.Fatalf("no PONG from %s", srv.Addr)
	}
	if got, want := srv.URL(), "redis://"+srv.Addr+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	srv.Kill()
	srv.Kill() // a second Kill is harmless
	if redistest.Ping(srv.Addr) {
		t.Errorf("%s still answers after Kill", srv.Addr)
	}
}

func TestRestartEmptiesTheServer(t *testing.T) {
	srv := redistest.Start(t)
	if _, err := redistest.Do(srv.Addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	oldPID := srv.Cmd().Process.Pid
	srv.Restart(t)
	if srv.Cmd().Process.Pid == oldPID {
		t.Errorf("Restart kept process %d", oldPID)
	}
	if v, err := redistest.Do(srv.Addr, "EXISTS", "k"); err != nil || v != "0" {
		t.Errorf("EXISTS k after Restart = %q, %v; want 0 (nothing persisted)", v, err)
	}
}

func TestClosedAddr(t *testing.T) {
	if addr := redistest.ClosedAddr(t); redistest.Ping(addr) {
		t.Errorf("something answers on %s", addr)
	}
}

func TestStartTLS(t *testing.T) {
	srv := redistest.StartTLS(t, redistest.TLSOptions{AuthClients: true})
	if !strings.HasPrefix(srv.URL(), "rediss://127.0.0.1:") {
		t.Errorf("URL() = %q", srv.URL())
	}
	if redistest.Ping(srv.Addr) {
		t.Error("a TLS-only server answered plain-text PING")
	}
	dial := func(certs []tls.Certificate) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", srv.Addr,
			&tls.Config{RootCAs: srv.Pool, Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 7)
		_, err = c.Read(buf)
		return err
	}
	if err := dial([]tls.Certificate{srv.ClientCert}); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
	if err := dial(nil); err == nil {
		t.Error("a client without a certificate was served although tls-auth-clients is yes")
	}
}

func TestStartCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	if len(cl.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", cl.Addrs())
	}
	for _, n := range cl.Nodes {
		info, err := redistest.Do(n.Addr, "INFO", "cluster")
		if err != nil || !strings.Contains(info, "cluster_enabled:1") {
			t.Errorf("INFO cluster on %s = %q, %v", n.Addr, info, err)
		}
	}
	// Keys spread over the masters; the node NodeFor names accepts its key.
	holders := map[string]bool{}
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		n := cl.NodeFor(t, key)
		holders[n.Addr] = true
		if _, err := redistest.Do(n.Addr, "SET", key, "1"); err != nil {
			t.Errorf("SET %s on %s: %v", key, n.Addr, err)
		}
	}
	if len(holders) < 2 {
		t.Errorf("8 keys all on %v; want them spread", holders)
	}
}
