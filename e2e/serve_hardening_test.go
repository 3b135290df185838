package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/state"
)

// liveServe is a `checker serve` whose stderr the test can read while it
// runs.
type liveServe struct {
	t      *testing.T
	base   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// serveWith runs `checker [flags] -f CFG serve --listen 127.0.0.1:PORT` and
// waits until GET / answers. It is killed at cleanup unless stopped.
func (in *instance) serveWith(flags ...string) *liveServe {
	in.t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", freePort(in.t))
	args := append(append([]string{}, flags...), "-f", in.cfg, "serve", "--listen", strings.TrimPrefix(base, "http://"))
	p := &liveServe{t: in.t, base: base, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(checkerBin, args...)
	p.cmd.Env, p.cmd.Dir, p.cmd.Stderr = in.env, in.dir, p.stderr
	if err := p.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	in.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	waitFor(in.t, "checker serve to answer", func() bool {
		select {
		case <-p.done:
			in.t.Fatalf("checker serve exited early (%v):\n%s", p.err, p.stderr)
		default:
		}
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return p
}

// do sends method path with an optional bearer token and returns the
// status and body.
func (p *liveServe) do(method, path, token string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *liveServe) status(token string) map[string]any {
	p.t.Helper()
	code, body := p.do("GET", "/status", token)
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		p.t.Fatalf("GET /status = %d %q (%v)", code, body, err)
	}
	return doc
}

func (p *liveServe) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// alive fails the test if the process has exited.
func (p *liveServe) alive(when string) {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("checker serve exited %s (%v):\n%s", when, p.err, p.stderr)
	default:
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *liveServe) stop() int {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatal("checker serve did not exit within 10s of SIGTERM")
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// TestServeSIGHUP: SIGHUP reopens the log file after logrotate moved it and
// puts edited settings in force; settings with errors are refused with a
// log line and the old ones stay; the process never exits until SIGTERM,
// which ends it with 0.
func TestServeSIGHUP(t *testing.T) {
	port := newTCPPort(t)
	settings := func(name string) string {
		return fmt.Sprintf("[general]\nservername = %s\nlogfile = %s\n[email]\nnomail = yes\n[tcp:db]\ntarget = %s\n",
			name, filepath.Join("logs", "checker.log"), port.addr)
	}
	in := newInstance(t, settings("before"))
	logFile := filepath.Join(in.dir, "logs", "checker.log")
	in.cron("minute")
	p := in.serveWith("-v")
	if doc := p.status(""); doc["server"] != "before" || doc["status"] != "True" {
		t.Fatalf("GET /status = %v", doc)
	}
	waitFor(t, "the start in the log file", func() bool { return fileContains(logFile, "checker serve listening") })

	// logrotate moves the file, then sends SIGHUP.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.cfg, []byte(settings("after")), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	waitFor(t, "the reload in a new log file", func() bool { return fileContains(logFile, "SIGHUP: settings reloaded") })
	p.alive("after SIGHUP")
	if doc := p.status(""); doc["server"] != "after" {
		t.Errorf("after SIGHUP GET /status = %v, want server after", doc)
	}
	if fileContains(logFile+".1", "SIGHUP") {
		t.Error("the reload was logged into the rotated file")
	}

	// Settings with an error: logged, not taken.
	if err := os.WriteFile(in.cfg, []byte(settings("broken")+"[serve]\njobs_stale_after = soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	waitFor(t, "the refusal in the log", func() bool { return fileContains(logFile, "the settings have errors; the ones in force stay") })
	p.alive("after SIGHUP with bad settings")
	if doc := p.status(""); doc["server"] != "after" || doc["status"] != "True" {
		t.Errorf("after a bad reload GET /status = %v, want the settings in force (server after)", doc)
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "jobs_stale_after") {
		t.Errorf("the log does not say what is wrong:\n%s", b)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr)
	}
}

// TestServeTellsNoSecrets: the verdict's reasons are classes; the mail
// server's address, the account and its reply, and file paths reach only a
// client with the push token.
func TestServeTellsNoSecrets(t *testing.T) {
	const token = "peer-token-1"
	in := newInstance(t, "[general]\nservername = alpha\nalertcontact = ops@corp.example\n[email]\nuser = alpha@corp.example\n"+
		"smtpserver = 127.0.0.1\nimapserver = 127.0.0.1\n[serve]\npush_token = "+token+"\n")
	failedAt := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
		return tx.PutHealth(&state.Health{LastRun: state.Run{Tier: "minute", Started: time.Now(), Finished: time.Now()},
			Mail: state.Mail{SendAt: failedAt, SendError: "dial tcp smtp.corp.example:587 (10.20.30.40): 535 5.7.8 alpha@corp.example: bad credentials"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	p := in.serveWith()
	if code, body := p.do("GET", "/", ""); code != 200 || body != "MailProblem" {
		t.Errorf("GET / = %d %q, want MailProblem", code, body)
	}
	doc := p.status("")
	raw, _ := json.Marshal(doc)
	for _, secret := range []string{"smtp.corp.example", "10.20.30.40", "587", "alpha@", "535", "credentials", in.dir} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("GET /status without the token reveals %q: %s", secret, raw)
		}
	}
	if want := "the last notification send failed at " + failedAt.Format(time.RFC3339); doc["reason"] != want {
		t.Errorf("reason = %v, want %q", doc["reason"], want)
	}
	if d, _ := p.status(token)["detail"].(string); !strings.Contains(d, "535 5.7.8 alpha@corp.example") {
		t.Errorf("with the token, detail = %q, want the server's reply", d)
	}

	// A corrupt state file: JobProblem, and its path only for the token.
	if err := os.WriteFile(in.statePath(), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "JobProblem for a corrupt state", func() bool { _, body := p.do("GET", "/", ""); return body == "JobProblem" })
	if raw, _ := json.Marshal(p.status("")); strings.Contains(string(raw), in.dir) {
		t.Errorf("GET /status reveals the state file's path: %s", raw)
	}
	if d, _ := p.status(token)["detail"].(string); !strings.Contains(d, in.statePath()) {
		t.Errorf("with the token, detail = %q, want the state file named", d)
	}
	// A failed push names no path either.
	if err := os.RemoveAll(filepath.Join(in.dir, "heartbeat")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in.dir, "heartbeat"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := p.do("POST", "/heartbeat/backup", token); code == 200 || strings.Contains(body, in.dir) {
		t.Errorf("push into a broken store = %d %q, want a failure that names no path", code, body)
	}
}

// TestServeClockSteppedBack: a last run dated in the future is stale.
func TestServeClockSteppedBack(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n")
	tests := []struct {
		name     string
		finished time.Time
		want     string
	}{
		{"run just now", time.Now(), "True"},
		{"run an hour ahead of the clock", time.Now().Add(time.Hour), "JobProblem"},
	}
	p := in.serveWith()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
				return tx.PutHealth(&state.Health{LastRun: state.Run{Tier: "minute", Started: tt.finished, Finished: tt.finished}})
			})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the verdict "+tt.want, func() bool { _, body := p.do("GET", "/", ""); return body == tt.want })
		})
	}
}

// TestServePushWithoutToken: without push_token, a push from this machine
// is taken and logged at debug; serve on loopback does not warn.
func TestServePushWithoutToken(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n[heartbeat]\nservices = backup\n")
	p := in.serveWith("-d")
	if code, body := p.do("POST", "/heartbeat/backup", ""); code != 200 {
		t.Fatalf("push from loopback without a token = %d %q, want 200", code, body)
	}
	waitFor(t, "the push in the debug log", func() bool {
		return strings.Contains(p.stderr.String(), `msg="heartbeat push accepted" service=backup`)
	})
	if strings.Contains(p.stderr.String(), "beyond loopback") {
		t.Errorf("serve on 127.0.0.1 warned about listening beyond loopback:\n%s", p.stderr)
	}
	checkLine(t, "check heartbeat backup", in.run("check", "heartbeat", "backup"), 0, "HEARTBEAT OK - ")
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
