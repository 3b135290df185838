package jobs_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"checker/config"
	"checker/jobs"
)

// hangGuard bounds how long a run may take before a test calls it hung. It
// is far above any timeout the tests configure; it is not a timing assertion.
const hangGuard = 5 * time.Second

// runJob runs spec as a job with the given timeout and fails the test if
// the run does not return within hangGuard.
func runJob(t *testing.T, spec jobs.Spec, env *jobs.Env, timeout time.Duration) jobs.Result {
	t.Helper()
	if env == nil {
		env = &jobs.Env{}
		t.Cleanup(func() { env.Close() })
	}
	j := &jobs.Job{Name: "test", Spec: spec, Timeout: timeout}
	done := make(chan jobs.Result, 1)
	go func() { done <- j.Run(context.Background(), env) }()
	select {
	case r := <-done:
		return r
	case <-time.After(timeout + hangGuard):
		t.Fatalf("run with timeout %s did not return within %s", timeout, timeout+hangGuard)
		return jobs.Result{}
	}
}

// validated calls spec.Validate and fails the test on an error.
func validated[S jobs.Spec](t *testing.T, spec S) S {
	t.Helper()
	if err := spec.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return spec
}

// wantStatus fails the test unless r has status s.
func wantStatus(t *testing.T, r jobs.Result, s jobs.Status) {
	t.Helper()
	if r.Status != s {
		t.Fatalf("status %s, want %s (result %q, detail %q)", r.Status, s, r.Line(), r.Detail)
	}
}

// serveTLS listens on 127.0.0.1 with cert, completes the handshake of every
// connection and closes it. It returns the address; the listener is closed
// when the test ends.
func serveTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(hangGuard))
				_ = c.(*tls.Conn).Handshake() // a client that rejects the certificate aborts it
			})
		}
	})
	return ln.Addr().String()
}

// loadSettings writes text after a mail-less preamble to a settings.cfg in
// a temporary directory, loads it and builds its jobs. It returns the jobs
// and every problem config.Load and jobs.Load found.
func loadSettings(t *testing.T, text string) ([]*jobs.Job, config.Problems) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte("[email]\nnomail = yes\n\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadSettingsFile(t, path)
}

// loadSettingsFile loads path and builds its jobs, returning every problem.
func loadSettingsFile(t *testing.T, path string) ([]*jobs.Job, config.Problems) {
	t.Helper()
	s, err := config.Load(path, func(string) string { return "" })
	var problems config.Problems
	if err != nil {
		ps, ok := err.(config.Problems)
		if !ok || s == nil {
			t.Fatalf("config.Load: %v", err)
		}
		problems = append(problems, ps...)
	}
	js, jobProblems := jobs.Load(s)
	return js, append(problems, jobProblems...)
}

// jobsByName indexes the jobs built from sections of the given types (so
// that system jobs do not disturb the counts).
func jobsByName(all []*jobs.Job, types ...string) map[string]*jobs.Job {
	m := map[string]*jobs.Job{}
	for _, j := range all {
		for _, typ := range types {
			if j.Type == typ {
				m[j.Name] = j
			}
		}
	}
	return m
}
