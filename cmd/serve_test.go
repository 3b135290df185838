package cmd

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// startServe runs `checker serve` in-process on a free loopback port with
// the settings in cfg, its log going to log; it returns the address, the
// SIGHUP channel and a function that stops it and returns serve's error.
func startServe(t *testing.T, cfg string, log *syncWriter) (string, chan<- os.Signal, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := &globalOptions{configFile: cfg, stdout: log, stderr: log, getenv: func(k string) string {
		if k == "GOMEMLIMIT" {
			return "off" // the test process keeps its own
		}
		return ""
	}}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, g, addr, hup) }()
	waitUntil(t, "serve listening", func() bool { return strings.Contains(log.String(), "checker serve listening") })
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return addr, hup, stop
}

// TestServeAnswersEverySIGHUP: three SIGHUPs in a row — broken settings,
// good ones, broken again — each get their line in the log, however close
// together: the rate limit that holds back repeated warnings never holds
// back the answer to a reload.
func TestServeAnswersEverySIGHUP(t *testing.T) {
	dir := t.TempDir()
	good := "[general]\nservername = one\n[email]\nnomail = yes\n"
	bad := good + "[serve]\njobs_stale_after = soon\n"
	cfg := writeFile(t, dir, "settings.cfg", good, 0o600)
	var log syncWriter
	_, hup, stop := startServe(t, cfg, &log)

	hupWith := func(content string, want string, n int) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		hup <- syscall.SIGHUP
		waitUntil(t, want, func() bool { return strings.Count(log.String(), want) == n })
	}
	const refused, taken = "SIGHUP: the settings have errors; the ones in force stay", "SIGHUP: settings reloaded"
	for i := 1; i <= 3; i++ {
		hupWith(bad, refused, i)
		hupWith(good, taken, i)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := log.String()
	if strings.Contains(out, "suppressed") {
		t.Errorf("a SIGHUP answer was held back:\n%s", out)
	}
	if strings.Count(out, "jobs_stale_after") != 3 {
		t.Errorf("each refusal should say why:\n%s", out)
	}
}
