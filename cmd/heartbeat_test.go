package cmd

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/heartbeat"
	"checker/internal/redistest"
)

// syncWriter is a buffer a command writes to while the test reads it.
type syncWriter struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitUntil polls cond every 20ms, failing the test after a generous 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHeartbeatWatchSurvivesRestart: `checker -d heartbeat watch` prints
// beats with hostile text escaped, reports undecodable messages at -d, and
// carries on through a redis-server restart, saying so on stderr.
func TestHeartbeatWatchSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\n", 0o600)
	var stdout, stderr syncWriter
	g := &globalOptions{configFile: cfg, debug: true, stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	watchErr := make(chan error, 1)
	go func() { watchErr <- watchHeartbeats(ctx, g) }()
	defer func() {
		cancel()
		if err := <-watchErr; err != nil {
			t.Errorf("watch returned %v", err)
		}
	}()

	pub, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	beatShown := func(count int64, instance string) func() bool {
		return func() bool {
			_ = pub.Put(context.Background(), heartbeat.Message{ServiceName: "web", InstanceID: instance, Timestamp: time.Now(), HeartbeatCount: count})
			return strings.Contains(stdout.String(), "beats "+strconv.FormatInt(count, 10)+" ")
		}
	}
	waitUntil(t, "the first beat on stdout", beatShown(1, "\x1b]0;TITLE\a"))
	if strings.ContainsAny(stdout.String(), "\x1b\a") || !strings.Contains(stdout.String(), `web (\x1b]0;TITLE\x07)`) {
		t.Errorf("watch printed the instance id unescaped:\n%q", stdout.String())
	}

	waitUntil(t, "the undecodable message reported at -d", func() bool {
		_, _ = redistest.Do(srv.Addr, "PUBLISH", "heartbeat:service:web", `{"service_name":"web","timestamp":"2025-01-16T08:30:00"}`)
		return strings.Contains(stderr.String(), "skipped message on channel") && strings.Contains(stderr.String(), "not RFC 3339")
	})

	srv.Restart(t)
	waitUntil(t, "a beat after the restart", beatShown(2, "i-2"))
	for _, want := range []string{"checker: heartbeat watch: subscription lost", "checker: heartbeat watch: subscription restored"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestHeartbeatStatusEscapes: `heartbeat status` never prints control
// characters from a heartbeat, in the table or in JSON.
func TestHeartbeatStatusEscapes(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\n", 0o600)
	store, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Put(context.Background(), heartbeat.Message{ServiceName: "evil", InstanceID: "\x1b]0;TITLE\a\u202e", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"heartbeat", "status"}, {"heartbeat", "status", "--json"}} {
		out, errOut, code := runCLI(t, nil, append([]string{"-f", cfg}, args...)...)
		if code != 0 || !strings.Contains(out, "evil") {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if strings.ContainsAny(out, "\x1b\a\u202e") {
			t.Errorf("%v printed control characters:\n%q", args, out)
		}
	}
}

func TestHeartbeatPublishRefusesStandardFields(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n", 0o600)
	_, errOut, code := runCLI(t, nil, "-f", cfg, "heartbeat", "publish", "--service", "x", "--once", "--data", "timestamp=now")
	if code != exitUsage || !strings.Contains(errOut, "standard heartbeat field") {
		t.Errorf("exit %d, stderr %q; want usage error naming the standard field", code, errOut)
	}
}

// TestHeartbeatThresholdsOfTheJob: `heartbeat status` and `check heartbeat`
// judge a service by its own job's alive/stale, not only [heartbeat]'s.
func TestHeartbeatThresholdsOfTheJob(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\n"+
		"[heartbeat:nightly-backup]\nalive = 26h\nstale = 30h\n", 0o600)
	store, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Both last beat three hours ago: dead by [heartbeat]'s defaults,
	// alive by the backup job's 26 h.
	for _, svc := range []string{"nightly-backup", "web"} {
		if err := store.Put(context.Background(), heartbeat.Message{ServiceName: svc, InstanceID: "i", Timestamp: time.Now().Add(-3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runCLI(t, nil, "-f", cfg, "heartbeat", "status", "--json")
	if code != 0 || !strings.Contains(out, `"name": "nightly-backup",`) {
		t.Fatalf("heartbeat status: exit %d\n%s%s", code, out, errOut)
	}
	for svc, want := range map[string]string{"nightly-backup": "alive", "web": "dead"} {
		i := strings.Index(out, `"name": "`+svc+`"`)
		if i < 0 || !strings.Contains(out[i:], `"state": "`+want+`"`) || strings.Index(out[i:], `"state": "`+want+`"`) > strings.Index(out[i:], "}") {
			t.Errorf("%s: want %s in\n%s", svc, want, out)
		}
	}
	out, errOut, code = runCLI(t, nil, "-f", cfg, "check", "heartbeat", "nightly-backup")
	if code != 0 || !strings.HasPrefix(out, "HEARTBEAT OK") {
		t.Errorf("check heartbeat nightly-backup: exit %d\n%s%s; want OK by its job's thresholds", code, out, errOut)
	}
	if _, _, code := runCLI(t, nil, "-f", cfg, "check", "heartbeat", "web"); code != 2 {
		t.Errorf("check heartbeat web: exit %d, want 2 (dead by [heartbeat]'s thresholds)", code)
	}
}

// TestCheckHeartbeatStoreProblem: `check heartbeat` says why the store
// could not be read and where, as heartbeat status does, and calls it
// unreachable only when it is.
func TestCheckHeartbeatStoreProblem(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "Sekr1t")
	closed := redistest.ClosedAddr(t)
	cases := []struct{ name, url, want, not string }{
		{"stopped", "redis://" + closed + "/0", "unreachable", "Sekr1t"},
		{"wrong password", "redis://:Wr0ngPw@" + srv.Addr + "/0", "WRONGPASS", "unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+c.url+"\n", 0o600)
			addr := strings.TrimSuffix(strings.TrimPrefix(c.url, "redis://"), "/0")
			_, addr, _ = strings.Cut(addr, "@")
			if addr == "" {
				addr = closed
			}
			for _, args := range [][]string{{"check", "heartbeat", "beta"}, {"check", "heartbeat", "beta", "--json"}, {"heartbeat", "status"}} {
				out, errOut, code := runCLI(t, nil, append([]string{"-f", cfg}, args...)...)
				all := out + errOut
				if code == 0 || !strings.Contains(all, c.want) || !strings.Contains(all, addr) {
					t.Errorf("%v: exit %d, output %q; want the reason (%s) and the address %s", args, code, all, c.want, addr)
				}
				if strings.Contains(all, c.not) || strings.Contains(all, "Wr0ngPw") {
					t.Errorf("%v: output %q holds %q or the password", args, all, c.not)
				}
			}
		})
	}
}

// TestHeartbeatPublishRefusesShortIntervals: zero, negative and sub-second
// intervals are usage errors, not the default or a flood.
func TestHeartbeatPublishRefusesShortIntervals(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n", 0o600)
	for _, iv := range []string{"0", "-1s", "1ms", "999ms"} {
		_, errOut, code := runCLI(t, nil, "-f", cfg, "heartbeat", "publish", "--service", "x", "--interval", iv)
		if code != exitUsage || !strings.Contains(errOut, "--interval") || !strings.Contains(errOut, "at least 1s") {
			t.Errorf("--interval %s: exit %d, stderr %q; want a usage error", iv, code, errOut)
		}
	}
}

// TestHeartbeatStatusExtremes: an age of centuries and a missing instance
// id read honestly in the table.
func TestHeartbeatStatusExtremes(t *testing.T) {
	srv := redistest.Start(t)
	cfg := writeFile(t, t.TempDir(), "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\n", 0o600)
	if _, err := redistest.Do(srv.Addr, "SET", "heartbeat:service:ancient", `{"service_name":"ancient","timestamp":"0001-01-01T00:00:01Z"}`); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, nil, "-f", cfg, "heartbeat", "status")
	if code != 0 || !strings.Contains(out, "more than 100 years") || !strings.Contains(out, "(none)") || strings.Contains(out, "2562047h") {
		t.Errorf("heartbeat status: exit %d\n%s%s; want the age as more than 100 years and the instance as (none)", code, out, errOut)
	}
}
