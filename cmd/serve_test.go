package cmd

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// TestServeWithoutHeartbeatStore: a heartbeat store that cannot be opened
// (here its directory's name is taken by a file; in production, a state
// directory serve's user may not write) does not stop serve: GET / answers,
// pushes get 503, the log names the directory and the user; once fixed, a
// SIGHUP opens the store and pushes are taken.
func TestServeWithoutHeartbeatStore(t *testing.T) {
	dir := t.TempDir()
	// The state directory's path runs through a file: the store's
	// directory cannot be made there.
	blocker := writeFile(t, dir, "var", "not a directory", 0o600)
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nservername = one\nstatefile = var/checker.state\n[email]\nnomail = yes\n", 0o600)
	var log syncWriter
	addr, hup, stop := startServe(t, cfg, &log)

	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/"); code != 200 || (body != "True" && body != "JobProblem") {
		t.Errorf("GET / = %d %q, want a verdict", code, body)
	}
	code, body := get("POST", "/heartbeat/backup")
	if code != http.StatusServiceUnavailable || strings.Contains(body, dir) {
		t.Errorf("push = %d %q, want 503 naming no path", code, body)
	}
	out := log.String()
	for _, want := range []string{"heartbeat store cannot be opened", "dir=" + filepath.Join(dir, "var", "heartbeat"), "serve_user="} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	waitUntil(t, "the reload", func() bool { return strings.Contains(log.String(), "SIGHUP: settings reloaded") })
	if code, body := get("POST", "/heartbeat/backup"); code/100 != 2 {
		t.Errorf("push after the fix and SIGHUP = %d %q, want it taken", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsNoMadeUpDestination: with nomail and no alertcontact, notices
// go to a placeholder that nomail prints; the metrics textfile has no
// destination series for it, and no completed run is not an OK one.
func TestMetricsNoMadeUpDestination(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	prom := filepath.Join(dir, "checker.prom")
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nmetrics_textfile = "+prom+"\n[email]\nnomail = yes\n[tcp:db]\ntarget = "+closed+"\nfailures = 1\n", 0o600)
	for range 2 {
		if _, stderr, code := runCLI(t, nil, "-f", cfg, "cron", "minute"); code != 0 {
			t.Fatalf("cron minute: exit %d: %s", code, stderr)
		}
	}
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, `checker_job_up{name="tcp:db",type="tcp"} 0`) {
		t.Fatalf("the job is not in the textfile:\n%s", text)
	}
	if strings.Contains(text, "alertcontact not set") {
		t.Errorf("a made-up destination in the metrics:\n%s", text)
	}
	if !strings.Contains(text, "checker_last_run_ok 1") {
		t.Errorf("after completed runs checker_last_run_ok should be 1:\n%s", text)
	}
}
