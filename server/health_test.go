package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/peer"
	"checker/state"
)

// jobState makes a state file of n jobs through the state package, with a
// last run that ended at finished, and returns its store.
func jobState(t testing.TB, n int, finished time.Time) *state.Store {
	t.Helper()
	store := &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
	err := store.Update(context.Background(), func(tx *state.Tx) error {
		for i := range n {
			j := state.Job{LastRun: finished, Since: finished.Add(-time.Hour), LastStatus: "OK",
				LastMessage: "HTTP 200 OK in 12ms, 5123 bytes, contains \"healthy\"", LastSlot: finished.Format("2006-01-02T15:04")}
			if err := tx.PutJob(fmt.Sprintf("http:service-%05d", i), &j); err != nil {
				return err
			}
		}
		return tx.PutHealth(&state.Health{LastRun: state.Run{Tier: "minute", Started: finished.Add(-time.Second), Finished: finished},
			Mail: state.Mail{SelfCheckAt: finished.Add(-time.Minute), SelfCheckOK: true}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// update changes the health record of the state.
func update(t *testing.T, store *state.Store, fn func(h *state.Health)) {
	t.Helper()
	err := store.Update(context.Background(), func(tx *state.Tx) error {
		h, err := tx.Health()
		if err != nil {
			return err
		}
		fn(&h)
		return tx.PutHealth(&h)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStateHealthFollowsSaves: each save is seen by the next requests; no
// save, no read.
func TestStateHealthFollowsSaves(t *testing.T) {
	now := time.Now()
	store := jobState(t, 1000, now)
	sh := NewStateHealth(store, func() time.Time { return now }, nil)
	if err := sh.Load(); err != nil {
		t.Fatal(err)
	}
	h, err := sh.Health()
	if err != nil || !h.LastRunEnd.Equal(now) || !h.MailOK || !h.MailChecked {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	update(t, store, func(f *state.Health) {
		f.Mail.SendAt, f.Mail.SendOK, f.Mail.SendError = now, false, "dial tcp 10.0.0.9:25: connection refused"
	})
	eventually(t, "the failed send", func() bool { h, _ := sh.Health(); return !h.MailOK })
	h, _ = sh.Health()
	if h.MailFailed != peer.MailSend || !h.MailFailedAt.Equal(now) || !strings.Contains(h.MailError, "10.0.0.9") {
		t.Errorf("Health after a failed send = %+v", h)
	}
}

func TestHealthRecord(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(f *state.Health)
		check func(t *testing.T, h peer.Health)
	}{
		{"self-check failed", func(f *state.Health) {
			f.Mail = state.Mail{SelfCheckAt: now.Add(-time.Hour), SelfCheckError: "IMAP login failed", SendAt: now, SendOK: true}
		}, func(t *testing.T, h peer.Health) {
			if h.MailOK || h.MailFailed != peer.MailSelfCheck || !h.MailFailedAt.Equal(now.Add(-time.Hour)) || !h.MailCheckedAt.Equal(now) {
				t.Errorf("%+v", h)
			}
		}},
		{"mail from the future", func(f *state.Health) {
			f.Mail = state.Mail{SelfCheckAt: now.Add(24 * time.Hour), SelfCheckOK: true}
		}, func(t *testing.T, h peer.Health) {
			if peer.Judge(h, now, time.Minute) != peer.MailProblem {
				t.Errorf("a self-check dated tomorrow counts: %+v", h)
			}
		}},
		{"run from the future", func(f *state.Health) {
			f.LastRun.Finished = now.Add(time.Hour)
		}, func(t *testing.T, h peer.Health) {
			if peer.Judge(h, now, time.Minute) != peer.JobProblem {
				t.Errorf("a run dated in an hour counts as fresh: %+v", h)
			}
		}},
		{"run error", func(f *state.Health) {
			f.LastRun.Error = "saving the state failed"
		}, func(t *testing.T, h peer.Health) {
			if h.LastRunError != "saving the state failed" {
				t.Errorf("%+v", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := jobState(t, 3, now)
			update(t, store, tt.setup)
			h, err := ReadHealth(store, now)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, h)
		})
	}
}

// TestStateHealthCrashedRun: the entry of a cron run whose process no longer
// exists is a crashed run even though nothing in the file changed since the
// snapshot was taken; a live process's entry is a run in progress.
func TestStateHealthCrashedRun(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	store := jobState(t, 10, now)
	update(t, store, func(f *state.Health) {
		f.Running = []state.Claim{
			{PID: os.Getpid(), Started: now, Expires: now.Add(time.Minute)},
			{PID: dead.Process.Pid, Started: now, Expires: now.Add(time.Minute)},
		}
	})
	clock := now
	sh := NewStateHealth(store, func() time.Time { return clock }, nil)
	if err := sh.Load(); err != nil {
		t.Fatal(err)
	}
	h, _ := sh.Health()
	if peer.Judge(h, now, time.Minute) != peer.JobProblem || !strings.Contains(h.LastRunError, fmt.Sprintf("pid %d", dead.Process.Pid)) {
		t.Errorf("Health = %+v, want the crash of pid %d", h, dead.Process.Pid)
	}
	// A run that started after the dead one and completed is the last
	// run: the crash is history, though its entry has not expired.
	update(t, store, func(f *state.Health) {
		f.LastRun = state.Run{Tier: "minute", Started: now.Add(time.Second), Finished: now.Add(2 * time.Second)}
	})
	clock = now.Add(3 * time.Second)
	eventually(t, "the later run", func() bool { h, _ := sh.Health(); return h.LastRunError == "" })
	if h, _ := sh.Health(); peer.Judge(h, clock, time.Minute) != peer.OK {
		t.Errorf("Health = %+v after a later run completed, want OK", h)
	}
	update(t, store, func(f *state.Health) { f.LastRun = state.Run{} })
	clock = now
	eventually(t, "the crash again", func() bool { h, _ := sh.Health(); return h.LastRunError != "" })
	// Once the dead run's entry expires, the crash is no longer news.
	clock = now.Add(2 * time.Minute)
	if h, _ := sh.Health(); h.LastRunError != "" {
		t.Errorf("after the entry expired: %+v", h)
	}
	// A live run alone is no crash.
	update(t, store, func(f *state.Health) { f.Running = f.Running[:1] })
	clock = now
	eventually(t, "the saved state", func() bool { h, _ := sh.Health(); return h.LastRunError == "" })
}

func TestStateHealthMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	store := &state.Store{Path: filepath.Join(dir, "checker.state")}
	var reported []error
	sh := NewStateHealth(store, nil, func(err error) { reported = append(reported, err) })
	if err := sh.Load(); err != nil {
		t.Fatalf("missing state: %v", err)
	}
	if h, err := sh.Health(); err != nil || !h.LastRunEnd.IsZero() {
		t.Errorf("missing state: %+v, %v; want an empty health", h, err)
	}
	if err := os.WriteFile(store.Path, []byte("not a database, not JSON"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the corrupt file", func() bool { _, err := sh.Health(); return err != nil })
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), store.Path) {
		t.Errorf("reported %v, want the corrupt file once", reported)
	}
}

// verdictHandler is GET / of checker serve on the state of store.
func verdictHandler(t testing.TB, store *state.Store) http.Handler {
	t.Helper()
	sh := NewStateHealth(store, nil, nil)
	if err := sh.Load(); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Addr: "127.0.0.1:0"}, Checker{ServerName: "bench", Health: sh.Health, StaleAfter: time.Hour}.Routes())
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(s.serveHTTP)
}

// BenchmarkVerdict answers GET / in process, from an empty state and from
// one of 10,000 jobs: the cost must not depend on the size.
func BenchmarkVerdict(b *testing.B) {
	for _, n := range []int{0, 10000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			h := verdictHandler(b, jobState(b, n, time.Now()))
			req := httptest.NewRequest("GET", "/", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Body.String() != "True" {
					b.Fatalf("body %q", rec.Body.String())
				}
			}
		})
	}
}
