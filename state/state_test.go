package state_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"checker/state"
)

// newStore returns a store whose file lives in a fresh directory.
func newStore(t *testing.T) *state.Store {
	t.Helper()
	return &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// assertOnlyStateFiles fails unless dir holds exactly the state file, its
// lock file and the extra names given: no leftover temporary files.
func assertOnlyStateFiles(t *testing.T, s *state.Store, extra ...string) {
	t.Helper()
	base := filepath.Base(s.Path)
	want := append([]string{base, base + ".lock"}, extra...)
	slices.Sort(want)
	if got := dirNames(t, filepath.Dir(s.Path)); !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullState sets every saved field of f to something other than its zero
// value.
func fullState(f *state.File) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Jobs["tcp:dns/ns1.example.com:53"] = &state.Job{
		Failing:      true,
		Failures:     3,
		FirstFailure: t0,
		LastNotified: t0.Add(time.Minute),
		Since:        t0,
		LastSlot:     "minute/2024-03-01T12:03",
		LastRun:      t0.Add(3 * time.Minute),
		LastStatus:   "CRITICAL",
		LastMessage:  "dial tcp 192.0.2.1:53: i/o timeout",
		Running:      &state.Claim{PID: 4242, Started: t0.Add(3 * time.Minute), Expires: t0.Add(4 * time.Minute)},
	}
	f.Jobs["http:web"] = &state.Job{Since: t0, LastRun: t0, LastStatus: "OK", LastMessage: "200 OK"}
	f.Outbox = []state.Notice{{
		Job:       "tcp:dns/ns1.example.com:53",
		Kind:      state.KindFailure,
		Subject:   "FAIL tcp:dns ✗",
		Body:      "line one\nline \"two\"\n",
		To:        []string{"ops@example.com", "oncall@example.com"},
		Created:   t0.Add(time.Minute),
		Attempts:  2,
		LastError: "550 mailbox unavailable",
	}}
	f.LastRun = state.Run{Tier: "minute", Started: t0, Finished: t0.Add(time.Second), Error: "one job could not be recorded"}
	f.Mail = state.Mail{
		SelfCheckAt: t0, SelfCheckOK: false, SelfCheckError: "probe mail did not arrive",
		SendAt: t0.Add(time.Minute), SendOK: true, SendError: "",
	}
}

func TestUpdateCreatesPrivateFileAndRoundTrips(t *testing.T) {
	s := newStore(t)
	err := s.Update(t.Context(), func(f *state.File) error {
		if f.Version != state.Version || len(f.Jobs) != 0 || f.Recovered != "" {
			t.Errorf("a missing file should give a fresh state, got %+v", f)
		}
		fullState(f)
		f.Recovered = "not saved"
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}

	fi, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode(); mode != 0o600 {
		t.Errorf("state file mode = %v, want -rw-------", mode)
	}
	if bytes.Contains(mustRead(t, s.Path), []byte("not saved")) {
		t.Error("Recovered was saved")
	}

	want := state.New()
	fullState(want)
	got, err := s.Read()
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("Read =\n%s\nwant\n%s", gj, wj)
	}

	// Update sees the same, and a save without changes keeps the bytes.
	before := mustRead(t, s.Path)
	err = s.Update(t.Context(), func(f *state.File) error {
		if !reflect.DeepEqual(f, want) {
			t.Errorf("Update saw %+v, want %+v", f, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("second Update: %v", err)
	}
	if after := mustRead(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("an unchanged state was saved differently:\n%s\n---\n%s", before, after)
	}
	if fi, _ := os.Stat(s.Path); fi.Mode() != 0o600 {
		t.Errorf("mode after rewrite = %v", fi.Mode())
	}
	assertOnlyStateFiles(t, s)
}

func TestUpdateCreatesDirectory(t *testing.T) {
	s := &state.Store{Path: filepath.Join(t.TempDir(), "var", "lib", "checker.state")}
	if err := s.Update(t.Context(), func(f *state.File) error { f.Job("a").Failures = 1; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	f, err := s.Read()
	if err != nil || f.Jobs["a"].Failures != 1 {
		t.Fatalf("Read = %+v, %v", f, err)
	}
}

func TestReadMissingFileIsEmptyState(t *testing.T) {
	s := newStore(t)
	f, err := s.Read()
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if f.Version != state.Version || f.Jobs == nil || len(f.Jobs) != 0 {
		t.Errorf("Read = %+v, want an empty state", f)
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read created the state file (stat: %v)", err)
	}
}

func TestUpdateLeavesNoTemporaryFiles(t *testing.T) {
	s := newStore(t)
	for i := range 5 {
		if err := s.Update(t.Context(), func(f *state.File) error { f.Job("j").Failures = i; return nil }); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}
	assertOnlyStateFiles(t, s)
}

func TestUpdateFnErrorKeepsOldState(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), func(f *state.File) error { fullState(f); return nil }); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, s.Path)

	boom := errors.New("boom")
	err := s.Update(t.Context(), func(f *state.File) error {
		f.Jobs = nil
		f.Job("new").Failures = 99
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if after := mustRead(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("fn failed but the file changed:\n%s", after)
	}
	assertOnlyStateFiles(t, s)
}

// TestSaveFailureKeepsOldState makes the write of the temporary file fail
// in a child process whose file size limit (RLIMIT_FSIZE) is smaller than
// the new state. Unlike a read-only directory this also works as root.
func TestSaveFailureKeepsOldState(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), func(f *state.File) error { f.Job("small").Failures = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, s.Path)

	out, err := helper(t, "fsize", s.Path, 0).CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "previous state is kept") {
		t.Errorf("helper output %q does not say the previous state is kept", out)
	}
	if after := mustRead(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("a failed save changed the file:\n%s", after)
	}
	assertOnlyStateFiles(t, s)
}

// TestSaveFailureReadOnlyDir covers a directory the checker cannot write
// to. Root ignores directory permissions, hence the skip; the fsize test
// above covers the failed save for everyone.
func TestSaveFailureReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a read-only directory does not stop root")
	}
	s := newStore(t)
	if err := s.Update(t.Context(), func(f *state.File) error { f.Job("a").Failures = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, s.Path)
	dir := filepath.Dir(s.Path)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	err := s.Update(t.Context(), func(f *state.File) error { f.Job("a").Failures = 2; return nil })
	if err == nil || !strings.Contains(err.Error(), "previous state is kept") {
		t.Fatalf("Update = %v, want a save error that keeps the previous state", err)
	}
	if after := mustRead(t, s.Path); !bytes.Equal(before, after) {
		t.Errorf("a failed save changed the file:\n%s", after)
	}
	assertOnlyStateFiles(t, s)
}

// corruptFiles are state files that cannot be trusted.
func corruptFiles() map[string][]byte {
	valid := state.New()
	fullState(valid)
	good, err := json.Marshal(valid)
	if err != nil {
		panic(err)
	}
	random := make([]byte, 512)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	return map[string][]byte{
		"garbage":            []byte("this is not JSON\n"),
		"truncated":          good[:len(good)/2],
		"empty":              {},
		"whitespace":         []byte(" \n\t\n"),
		"binary":             random,
		"nul bytes":          make([]byte, 64),
		"wrong version":      []byte(`{"version": 99, "jobs": {}}`),
		"version zero":       []byte(`{"version": 0, "jobs": {}}`),
		"no version":         []byte(`{"jobs": {"a": {"failures": 1}}}`),
		"version as string":  []byte(`{"version": "1", "jobs": {}}`),
		"null document":      []byte("null"),
		"array":              []byte(`[{"version": 1}]`),
		"number":             []byte("1"),
		"jobs not an object": []byte(`{"version": 1, "jobs": [1, 2]}`),
		"job not an object":  []byte(`{"version": 1, "jobs": {"a": 7}}`),
		"negative failures":  []byte(`{"version": 1, "jobs": {"a": {"failures": -3}}}`),
		"bad time":           []byte(`{"version": 1, "jobs": {"a": {"since": "yesterday"}}}`),
		"trailing brace":     []byte(`{"version": 1, "jobs": {}}}`),
		"two documents":      []byte(`{"version": 1, "jobs": {}} {"version": 1, "jobs": {}}`),
		"trailing garbage":   []byte(`{"version": 1, "jobs": {}} x`),
	}
}

func TestReadCorruptFile(t *testing.T) {
	for name, data := range corruptFiles() {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			if err := os.WriteFile(s.Path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := s.Read()
			var ce *state.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Read = %+v, %v; want a *CorruptError", f, err)
			}
			if ce.Path != s.Path || !strings.Contains(err.Error(), s.Path) {
				t.Errorf("error %q does not name %s", err, s.Path)
			}
			if ce.Unwrap() == nil {
				t.Error("CorruptError without a cause")
			}
			if !bytes.Equal(mustRead(t, s.Path), data) {
				t.Error("Read changed the file")
			}
			if names := dirNames(t, filepath.Dir(s.Path)); len(names) != 1 {
				t.Errorf("Read left %q; it must move nothing", names)
			}
		})
	}
}

func TestUpdateRecoversCorruptFile(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 34, 56, 789, time.UTC)
	for name, data := range corruptFiles() {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			s.Now = func() time.Time { return now }
			if err := os.WriteFile(s.Path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			aside := s.Path + ".corrupt-20240301T123456.000000789Z"

			called := false
			err := s.Update(t.Context(), func(f *state.File) error {
				called = true
				if f.Version != state.Version || f.Jobs == nil || len(f.Jobs) != 0 || len(f.Outbox) != 0 {
					t.Errorf("fn got %+v, want a fresh state", f)
				}
				if !strings.Contains(f.Recovered, aside) || !strings.Contains(f.Recovered, "corrupt") {
					t.Errorf("Recovered = %q, want it to name %s", f.Recovered, aside)
				}
				f.Job("after").Failures = 1
				return nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if !called {
				t.Fatal("fn was not called")
			}
			if got := mustRead(t, aside); !bytes.Equal(got, data) {
				t.Errorf("the file moved aside holds %q, want the original bytes", got)
			}
			f, err := s.Read()
			if err != nil {
				t.Fatalf("Read after recovery: %v", err)
			}
			if len(f.Jobs) != 1 || f.Jobs["after"].Failures != 1 || f.Recovered != "" {
				t.Errorf("saved state = %+v, want fn's fresh state", f)
			}
			assertOnlyStateFiles(t, s, filepath.Base(aside))

			// The next Update finds a healthy file and reports nothing.
			err = s.Update(t.Context(), func(f *state.File) error {
				if f.Recovered != "" || f.Jobs["after"] == nil {
					t.Errorf("second Update got %+v", f)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDecodeTolerates documents what Decode accepts although it is not what
// save writes: none of it loses information.
func TestDecodeTolerates(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		jobs []string
	}{
		"null jobs":        {`{"version": 1, "jobs": null}`, nil},
		"no jobs":          {`{"version": 1}`, nil},
		"a null job":       {`{"version": 1, "jobs": {"gone": null, "kept": {"failures": 2}}}`, []string{"kept"}},
		"unknown fields":   {`{"version": 1, "jobs": {"a": {"new_field": true}}, "future": [1]}`, []string{"a"}},
		"trailing newline": {"{\"version\": 1, \"jobs\": {}}\n\n", nil},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := state.Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if f.Jobs == nil {
				t.Fatal("Jobs is nil")
			}
			var got []string
			for name := range f.Jobs {
				got = append(got, name)
			}
			slices.Sort(got)
			if !reflect.DeepEqual(got, tc.jobs) {
				t.Errorf("jobs = %q, want %q", got, tc.jobs)
			}
		})
	}
}

func TestConcurrentUpdatesGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			// A Store per goroutine, like separate invocations: each opens
			// its own lock file description.
			s := &state.Store{Path: path}
			errs <- s.Update(context.Background(), increment)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := counter(t, path); got != n {
		t.Errorf("counter = %d after %d increments: updates were lost", got, n)
	}
	assertOnlyStateFiles(t, &state.Store{Path: path})
}

func TestConcurrentUpdatesProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	const procs, each = 4, 25
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helper(t, "increment", path, each)
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// Meanwhile this process increments too.
	for range each {
		if err := (&state.Store{Path: path}).Update(t.Context(), increment); err != nil {
			t.Error(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	if got, want := counter(t, path), (procs+1)*each; got != want {
		t.Errorf("counter = %d, want %d: updates were lost", got, want)
	}
	assertOnlyStateFiles(t, &state.Store{Path: path})
}

func TestLockWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- (&state.Store{Path: path}).Update(context.Background(), func(f *state.File) error {
			close(held)
			<-release
			f.Job("holder").Failures = 1
			return nil
		})
	}()
	<-held

	other := &state.Store{Path: path, LockWait: 200 * time.Millisecond}
	err := other.Update(t.Context(), func(*state.File) error {
		t.Error("fn ran while another Update held the lock")
		return nil
	})
	if !errors.Is(err, state.ErrLocked) {
		t.Errorf("Update = %v, want ErrLocked", err)
	}

	// A cancelled context ends the wait too.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = (&state.Store{Path: path}).Update(ctx, func(*state.File) error {
		t.Error("fn ran while another Update held the lock")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context = %v, want context.Canceled", err)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	// Once released, the lock is free again.
	if err := other.Update(t.Context(), func(f *state.File) error {
		if f.Jobs["holder"] == nil {
			t.Error("the holder's update is missing")
		}
		return nil
	}); err != nil {
		t.Errorf("Update after release: %v", err)
	}
}

// increment is an Update fn that adds one to the "counter" job's Failures.
func increment(f *state.File) error {
	f.Job("counter").Failures++
	return nil
}

func counter(t *testing.T, path string) int {
	t.Helper()
	f, err := (&state.Store{Path: path}).Read()
	if err != nil {
		t.Fatal(err)
	}
	if f.Jobs["counter"] == nil {
		return 0
	}
	return f.Jobs["counter"].Failures
}

// helper returns a command that re-runs this test binary as a helper
// process (see TestHelperProcess) doing mode on the state file at path.
func helper(t *testing.T, mode, path string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"STATE_TEST_HELPER="+mode,
		"STATE_TEST_PATH="+path,
		"STATE_TEST_N="+strconv.Itoa(n),
	)
	return cmd
}

// TestHelperProcess is not a test: it is the body of the child processes
// that helper starts, and does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("STATE_TEST_HELPER")
	if mode == "" {
		return
	}
	s := &state.Store{Path: os.Getenv("STATE_TEST_PATH")}
	code := 0
	switch mode {
	case "increment":
		n, _ := strconv.Atoi(os.Getenv("STATE_TEST_N"))
		for range n {
			if err := s.Update(context.Background(), increment); err != nil {
				fmt.Fprintln(os.Stderr, err)
				code = 1
			}
		}
	case "fsize":
		// Files may grow to 4 KiB; the new state is far bigger, so the
		// write of the temporary file fails with EFBIG (Go ignores the
		// SIGXFSZ that comes with it).
		lim := syscall.Rlimit{Cur: 4096, Max: 4096}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			os.Exit(2)
		}
		err := s.Update(context.Background(), func(f *state.File) error {
			f.Job("small").LastMessage = strings.Repeat("x", 64<<10)
			return nil
		})
		if err == nil {
			fmt.Fprintln(os.Stderr, "Update succeeded beyond the file size limit")
			code = 1
		} else {
			fmt.Println(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		code = 2
	}
	os.Exit(code)
}

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic, and
// whatever it accepts must be a sane state that survives a save and a
// second Decode unchanged.
func FuzzDecode(f *testing.F) {
	for _, data := range corruptFiles() {
		f.Add(data)
	}
	full := state.New()
	fullState(full)
	good, _ := json.MarshalIndent(full, "", " ")
	f.Add(good)
	f.Add([]byte(`{"version": 1, "jobs": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := state.Decode(data)
		if err != nil {
			if st != nil {
				t.Errorf("Decode returned a state with error %v", err)
			}
			return
		}
		if st.Version != state.Version || st.Jobs == nil {
			t.Fatalf("Decode accepted version %d, jobs %v", st.Version, st.Jobs)
		}
		for name, j := range st.Jobs {
			if j == nil || j.Failures < 0 {
				t.Fatalf("Decode accepted job %q = %+v", name, j)
			}
		}
		again, err := json.Marshal(st)
		if err != nil {
			// Decode accepted something save could not write.
			t.Fatalf("cannot re-encode an accepted state: %v", err)
		}
		st2, err := state.Decode(again)
		if err != nil {
			t.Fatalf("a re-encoded state does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(normalise(t, st), normalise(t, st2)) {
			t.Fatalf("round trip changed the state:\n%s", again)
		}
	})
}

// normalise re-encodes f so that states equal as JSON compare equal (time
// zones decode to different *Location values).
func normalise(t *testing.T, f *state.File) string {
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnreadableIsMovedAside: a state file that cannot be read (here: a
// directory where the file should be) is moved aside like a corrupt one.
func TestUnreadableIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checker.state")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	var recovered string
	err := (&state.Store{Path: path}).Update(context.Background(), func(f *state.File) error {
		recovered = f.Recovered
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(recovered, "unreadable") || !strings.Contains(recovered, "moved aside") {
		t.Errorf("Recovered = %q", recovered)
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("a fresh state file should replace it: %v", err)
	}
}

// TestDamagedClaimsHoldNothing: a claim with pid 0 (kill(0, 0) succeeds for
// the caller's process group) or an absurd expiry must not keep a job off.
func TestDamagedClaimsHoldNothing(t *testing.T) {
	now := time.Now()
	for _, c := range []state.Claim{
		{PID: 0, Started: now, Expires: now.Add(time.Minute)},
		{PID: -1, Started: now, Expires: now.Add(time.Minute)},
		{PID: os.Getpid(), Started: now, Expires: now.AddDate(70, 0, 0)},
	} {
		if c.Alive(now) {
			t.Errorf("claim %+v counts as alive", c)
		}
	}
	if live := (state.Claim{PID: os.Getpid(), Started: now, Expires: now.Add(time.Minute)}); !live.Alive(now) {
		t.Error("a claim of this live process should hold")
	}
}
