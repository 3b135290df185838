package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"checker/heartbeat"
	"checker/internal/redistest"
)

// TestHeartbeatLocalStore: with no Redis, a heartbeat published by one
// invocation is seen by the next through the local store next to the state
// file, by `check heartbeat` and `heartbeat status`, with its data intact.
func TestHeartbeatLocalStore(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n")

	r := in.run("heartbeat", "publish", "--service", "nightly", "--once", "--data", "files=12", "--data", "host=db1")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("publish --once: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	line := checkLine(t, "check heartbeat nightly", in.run("check", "heartbeat", "nightly"), 0, "HEARTBEAT OK - nightly alive")
	// The age as perfdata, with the alive and stale thresholds (90 s and
	// 180 s by default) as warning and critical.
	if !regexp.MustCompile(` \| age=\d+s;90;180;0;$`).MatchString(line) {
		t.Errorf("check heartbeat nightly: %q, want the age as perfdata", line)
	}
	checkLine(t, "check heartbeat ghost", in.run("check", "heartbeat", "ghost"), 2, "HEARTBEAT CRITICAL - service ghost has never sent a heartbeat")

	r = in.run("heartbeat", "status", "--json")
	var doc struct {
		Schema   int `json:"schema"`
		Services []struct {
			Name     string    `json:"name"`
			Instance string    `json:"instance_id"`
			LastSeen time.Time `json:"last_seen"`
			State    string    `json:"state"`
		} `json:"services"`
	}
	err := json.Unmarshal([]byte(r.stdout), &doc)
	rows := doc.Services
	if r.code != 0 || err != nil || doc.Schema != 1 {
		t.Fatalf("heartbeat status --json: exit %d, %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	if len(rows) != 1 || rows[0].Name != "nightly" || rows[0].State != "alive" || rows[0].Instance == "" || rows[0].LastSeen.IsZero() {
		t.Fatalf("heartbeat status --json = %+v, want nightly alive", rows)
	}
	if r := in.run("heartbeat", "status"); r.code != 0 || !strings.Contains(r.stdout, "nightly") || !strings.Contains(r.stdout, "alive") {
		t.Errorf("heartbeat status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	store, err := heartbeat.OpenLocal(in.dir)
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := store.Get(context.Background(), "nightly")
	if err != nil || !ok {
		t.Fatalf("the local store has no heartbeat of nightly: %v, %v", ok, err)
	}
	if m.Data["files"] != json.Number("12") || m.Data["host"] != "db1" || m.HeartbeatCount != 1 || m.InstanceID != rows[0].Instance {
		t.Errorf("stored heartbeat %+v; want files=12 (a number), host=db1, count 1, instance %s", m, rows[0].Instance)
	}
}

// lockedBuffer collects a subprocess's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond every 20ms, failing the test after a generous 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 10s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHeartbeatRedisWatch: `heartbeat watch` prints what `heartbeat publish`
// sends through a real redis-server, and stops cleanly on SIGTERM.
func TestHeartbeatRedisWatch(t *testing.T) {
	srv := redistest.Start(t)
	in := newInstance(t, "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\n")

	var stdout, stderr lockedBuffer
	watch := exec.Command(checkerBin, "-f", in.cfg, "heartbeat", "watch")
	watch.Env, watch.Dir = in.env, in.dir
	watch.Stdout, watch.Stderr = &stdout, &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error // watch.Wait's result, set before exited closes
	exited := make(chan struct{})
	go func() {
		waitErr = watch.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = watch.Process.Kill()
			<-exited
		}
	})

	// Publish only once watch listens: a PUBLISH before the PSUBSCRIBE
	// reaches nobody.
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	waitFor(t, "heartbeat watch to subscribe", func() bool {
		n, err := raw.PubSubNumPat(context.Background()).Result()
		return err == nil && n > 0
	})

	for run := 1; run <= 2; run++ {
		r := in.run("heartbeat", "publish", "--service", "relay", "--once", "--data", fmt.Sprintf("run=%d", run))
		if r.code != 0 {
			t.Fatalf("publish %d: exit %d: %s", run, r.code, r.stderr)
		}
	}
	waitFor(t, "both heartbeats on watch's stdout", func() bool {
		out := stdout.String()
		return strings.Count(out, "relay (") == 2 && strings.Contains(out, "run: 1") && strings.Contains(out, "run: 2")
	})
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "relay (") && !strings.Contains(line, "beats 1") {
			t.Errorf("watch line %q: want the first beat of a fresh publisher", line)
		}
	}
	checkLine(t, "check heartbeat relay", in.run("check", "heartbeat", "relay"), 0, "HEARTBEAT OK - relay alive")

	if err := watch.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("heartbeat watch after SIGTERM: %v\nstderr: %s", waitErr, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("heartbeat watch did not exit within 10s of SIGTERM")
	}
}

// post sends POST url with an empty body and, unless empty, a bearer
// token; it returns the status and body.
func post(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHeartbeatPush: a backup script's curl to `checker serve` is what the
// next cron run's heartbeat job sees.
func TestHeartbeatPush(t *testing.T) {
	const token = "s3cret-push;token"
	in := newInstance(t, "[email]\nnomail = yes\n[serve]\npush_token = "+token+"\n[heartbeat]\nservices = backup\n")
	base := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))
	p := in.startServe(base, nil)
	url := base + "heartbeat/backup"

	checkLine(t, "check heartbeat backup before the push", in.run("check", "heartbeat", "backup"), 2, "HEARTBEAT CRITICAL - service backup has never sent a heartbeat")
	if code, body := post(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("POST without a token = %d %q, want 401", code, body)
	}
	if code, body := post(t, url, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token = %d %q, want 401", code, body)
	}
	if code, body := post(t, url, token); code != http.StatusOK {
		t.Fatalf("POST with the token = %d %q, want 200", code, body)
	}

	in.cron("minute")
	j := in.state().Jobs["heartbeat:backup"]
	if j == nil || j.LastStatus != "OK" || j.Failing || !strings.Contains(j.LastMessage, "backup alive") {
		t.Errorf("heartbeat:backup after the push: %+v, want OK", j)
	}
	if code := p.terminate(); code != 0 {
		t.Errorf("checker serve exited %d on SIGTERM, want 0", code)
	}
}

// TestHeartbeatRedisUnreachable: with Redis down, a cron run still
// completes, promptly; heartbeat:store sends the one notice, and the
// heartbeat jobs are not checked (and so send none).
func TestHeartbeatRedisUnreachable(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n[heartbeat]\nredis = redis://"+redistest.ClosedAddr(t)+"/0\nservices = a, b, c\n")
	r := in.run("cron", "minute")
	if r.code != 0 {
		t.Fatalf("cron minute: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// A generous does-not-hang guard: one job timeout is 10s.
	if r.took > 30*time.Second {
		t.Errorf("cron minute took %s with Redis refusing connections", r.took)
	}
	if strings.Count(r.stdout, "--- mail not sent") != 1 || !strings.Contains(r.stdout, "heartbeat:store is failing") ||
		!strings.Contains(r.stdout, "heartbeat store unreachable") {
		t.Errorf("want one printed notice, from heartbeat:store, saying the store is unreachable:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("cron minute wrote to stderr (cron would mail it):\n%s", r.stderr)
	}
	st := in.state()
	for _, svc := range []string{"a", "b", "c"} {
		j := st.Jobs["heartbeat:"+svc]
		if j == nil || j.Failing || !strings.HasPrefix(j.LastMessage, "not checked: heartbeat store unreachable: redis at ") || j.LastStatus != "UNKNOWN" {
			t.Errorf("heartbeat:%s = %+v, want not checked", svc, j)
		}
	}
	if j := st.Jobs["heartbeat:store"]; j == nil || !j.Failing || j.LastStatus != "CRITICAL" {
		t.Errorf("heartbeat:store = %+v, want failing", j)
	}
}
