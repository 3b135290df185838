package redistest_test

import (
	"testing"

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

func TestClosedAddr(t *testing.T) {
	if addr := redistest.ClosedAddr(t); redistest.Ping(addr) {
		t.Errorf("something answers on %s", addr)
	}
}
