package jobs_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"checker/jobs"
)

func TestTCPOpenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	r := runJob(t, validated(t, &jobs.TCP{Addr: ln.Addr().String()}), nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if !strings.Contains(r.Message, ln.Addr().String()) {
		t.Errorf("message %q does not name the target", r.Message)
	}
}

func TestTCPClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	r := runJob(t, validated(t, &jobs.TCP{Addr: addr}), nil, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	for _, want := range []string{addr, "connection refused"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q does not contain %q", r.Message, want)
		}
	}
}

func TestTCPValidate(t *testing.T) {
	for _, addr := range []string{"nope", "", "host:1:2"} {
		err := (&jobs.TCP{Addr: addr}).Validate()
		var ke *jobs.KeyError
		if !errors.As(err, &ke) || ke.Key != "target" {
			t.Errorf("Validate(%q) = %v, want a KeyError for target", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:22", "example.com:53", "[::1]:80"} {
		if err := (&jobs.TCP{Addr: addr}).Validate(); err != nil {
			t.Errorf("Validate(%q) = %v", addr, err)
		}
	}
}

func TestTCPPerfdata(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r := runJob(t, validated(t, &jobs.TCP{Addr: ln.Addr().String()}), nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if !strings.HasPrefix(r.Perfdata, "time=0.") || !strings.HasSuffix(r.Perfdata, "s;;;0") {
		t.Errorf("perfdata %q, want time=…s;;;0", r.Perfdata)
	}
}
