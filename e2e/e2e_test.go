// Package e2e_test runs the real checker binary against real servers on
// loopback: HTTP, TCP and TLS endpoints that go up and down between runs,
// and an SMTP server (with its IMAP side) that catches the alert mail.
package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/internal/testcert"
	"checker/state"
)

var checkerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "checker-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	checkerBin = filepath.Join(dir, "checker")
	build := exec.Command("go", "build", "-o", checkerBin, ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building checker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one checker installation: a directory with settings.cfg and
// its state file.
type instance struct {
	t   *testing.T
	dir string
	cfg string
	env []string
}

func newInstance(t *testing.T, settings string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, dir: dir, cfg: filepath.Join(dir, "settings.cfg"), env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}}
	if err := os.WriteFile(in.cfg, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// run runs the binary and returns its output and exit code. A run that
// outlives a generous guard fails the test rather than hanging it.
func (in *instance) run(args ...string) result {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, checkerBin, append([]string{"-f", in.cfg}, args...)...)
	cmd.Env = in.env
	cmd.Dir = in.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		in.t.Fatalf("checker %v did not finish within 60s", args)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatalf("checker %v: %v", args, err)
	}
	return r
}

// mailWarning starts the one line cron prints when mail stops going out.
const mailWarning = "checker: cannot send mail; "

// cron runs `checker cron TIER` and requires the silent success cron wants:
// exit 0, nothing on stdout, and nothing on stderr but, when mail has just
// stopped going out, the one warning line, which it returns.
func (in *instance) cron(tier string) string {
	in.t.Helper()
	r := in.run("cron", tier)
	warned := strings.HasPrefix(r.stderr, mailWarning) && strings.Count(r.stderr, "\n") == 1
	if r.code != 0 || r.stdout != "" || (r.stderr != "" && !warned) {
		in.t.Fatalf("cron %s: exit %d\nstdout: %s\nstderr: %s", tier, r.code, r.stdout, r.stderr)
	}
	return r.stderr
}

func (in *instance) statePath() string { return filepath.Join(in.dir, "checker.state") }

func (in *instance) state() *state.Snapshot {
	in.t.Helper()
	f, err := (&state.Store{Path: in.statePath()}).Snapshot()
	if err != nil {
		in.t.Fatal(err)
	}
	return f
}

// nextMinute makes the state look as if the jobs' slots had passed, so the
// next `cron minute` runs them again without waiting for the clock.
func (in *instance) nextMinute() {
	in.t.Helper()
	err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
		var names []string
		var recs []state.Job
		err := tx.ForEachJob(func(name string, j state.Job, err error) error {
			j.LastSlot = ""
			names, recs = append(names, name), append(recs, j)
			return err
		})
		for i := range names {
			if err := tx.PutJob(names[i], &recs[i]); err != nil {
				return err
			}
		}
		// Claims of runs that died were for this minute's slots.
		claims, cerr := tx.AllClaims()
		for _, c := range claims {
			if err := tx.DeleteClaims(c.PID); err != nil {
				return err
			}
		}
		return errors.Join(err, cerr)
	})
	if err != nil {
		in.t.Fatal(err)
	}
}

// toggleHTTP answers 200 "all good" while up, 503 while down.
func toggleHTTP(t *testing.T) (*httptest.Server, *atomic.Bool) {
	up := &atomic.Bool{}
	up.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "all good")
	}))
	t.Cleanup(srv.Close)
	return srv, up
}

// tcpPort is a TCP port that can be opened and closed.
type tcpPort struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func newTCPPort(t *testing.T) *tcpPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPort{t: t, addr: ln.Addr().String()}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpPort) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (p *tcpPort) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

func (p *tcpPort) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// tlsServer serves a handshake with cert on loopback.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func mailSettings(m *mailtest.Server) string {
	return fmt.Sprintf(`[email]
user = %s
pass = %s
smtpserver = 127.0.0.1
smtpport = %d
smtp_tls = none
imapserver = 127.0.0.1
imapport = %d
imap_tls = none
`, m.User, m.Pass, m.SMTPPort, m.IMAPPort)
}

// mailsTo returns the subjects of received mail per recipient.
func mailsTo(msgs []mailtest.Received) map[string][]string {
	out := map[string][]string{}
	for _, m := range msgs {
		for _, to := range m.To {
			out[to] = append(out[to], m.Subject)
		}
	}
	return out
}

func TestCronEndToEnd(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	web, webUp := toggleHTTP(t)
	api, apiUp := toggleHTTP(t)
	db := newTCPPort(t)
	ca := testcert.NewCA(t)
	site := tlsServer(t, ca.Leaf(t, time.Now().Add(90*24*time.Hour)))
	soon := tlsServer(t, ca.Leaf(t, time.Now().Add(5*24*time.Hour)))

	in := newInstance(t, fmt.Sprintf(`[general]
servername = e2e-host
alertcontact = ops@example.test

%s
[http:web]
url = %s/
contains = all good

[http:api]
url = %s/v1
notify = every

[tcp:db]
target = %s
notify = every
notify_to = dba@example.test

[tls:site]
targets = %s, %s
warn_days = 30
crit_days = 3
notify = day
`, mailSettings(mail), web.URL, api.URL, db.addr, site, soon))
	in.env = append(in.env, "SSL_CERT_FILE="+ca.WritePEM(t, in.dir))

	// Run 1: everything up except the expiring certificate.
	in.cron("minute")
	got := mailsTo(mail.WaitReceived(t, 1, 10*time.Second))
	if len(got) != 1 || len(got["ops@example.test"]) != 1 {
		t.Fatalf("run 1: want one mail to ops about the certificate, got %v", got)
	}
	if s := got["ops@example.test"][0]; !strings.HasPrefix(s, "[e2e-host] tls:site["+soon+"] is failing: WARNING - certificate of "+soon+" expires in 4 days") {
		t.Errorf("run 1 subject: %q", s)
	}
	st := in.state()
	for _, name := range []string{"http:web", "http:api", "tcp:db", "tls:site[" + site + "]"} {
		if j := st.Jobs[name]; j == nil || j.Failing || j.LastStatus != "OK" {
			t.Errorf("run 1: job %s = %+v, want OK", name, j)
		}
	}
	if !st.Mail.SendOK || st.LastRun.Finished.IsZero() || st.LastRun.Tier != "minute" {
		t.Errorf("run 1: mail %+v, last run %+v", st.Mail, st.LastRun)
	}

	// Run 2: web, api and db go down. ops gets one digest for web and api;
	// dba gets db on its own; the certificate (notify = day) stays quiet.
	webUp.Store(false)
	apiUp.Store(false)
	db.down()
	in.nextMinute()
	in.cron("minute")
	msgs := mail.WaitReceived(t, 3, 10*time.Second)[1:]
	got = mailsTo(msgs)
	if len(msgs) != 2 || len(got["ops@example.test"]) != 1 || len(got["dba@example.test"]) != 1 {
		t.Fatalf("run 2: want one digest to ops and one mail to dba, got %v", got)
	}
	digest := got["ops@example.test"][0]
	if !strings.HasPrefix(digest, "[e2e-host] 2 notices: ") || !strings.Contains(digest, "http:web is failing") || !strings.Contains(digest, "http:api is failing") {
		t.Errorf("run 2 digest subject: %q", digest)
	}
	for _, m := range msgs {
		if m.To[0] == "ops@example.test" {
			for _, want := range []string{"2 notices from checker on e2e-host", "status 503 Service Unavailable, want 200", "Failing since", "1 consecutive failed run"} {
				if !strings.Contains(m.Body, want) {
					t.Errorf("run 2 digest body lacks %q:\n%s", want, m.Body)
				}
			}
		}
	}
	if s := got["dba@example.test"][0]; !strings.HasPrefix(s, "[e2e-host] tcp:db is failing: CRITICAL - cannot connect to "+db.addr) {
		t.Errorf("run 2 dba subject: %q", s)
	}

	// Run 3: web and api come back, db stays down. web (state_change) sends
	// a recovery; api (every, recovery auto) does not; db (every) repeats.
	webUp.Store(true)
	apiUp.Store(true)
	in.nextMinute()
	in.cron("minute")
	msgs = mail.WaitReceived(t, 5, 10*time.Second)[3:]
	got = mailsTo(msgs)
	if len(msgs) != 2 || len(got["ops@example.test"]) != 1 || len(got["dba@example.test"]) != 1 {
		t.Fatalf("run 3: want a recovery to ops and a repeat to dba, got %v", got)
	}
	if s := got["ops@example.test"][0]; !strings.HasPrefix(s, "[e2e-host] http:web recovered: OK") {
		t.Errorf("run 3 ops subject: %q", s)
	}
	st = in.state()
	if j := st.Jobs["tcp:db"]; !j.Failing || j.Failures != 2 || j.LastNotified.IsZero() {
		t.Errorf("run 3: tcp:db = %+v, want failing twice and notified", j)
	}
	if j := st.Jobs["http:web"]; j.Failing || j.Failures != 0 {
		t.Errorf("run 3: http:web = %+v, want succeeding", j)
	}

	// Run 4: db comes back: notify = every has no recovery notice by default.
	db.up()
	in.nextMinute()
	in.cron("minute")
	time.Sleep(200 * time.Millisecond) // nothing should arrive; give a stray mail a moment
	if n := len(mail.Received()); n != 5 {
		t.Errorf("run 4: %d mails in all, want still 5", n)
	}
	if j := in.state().Jobs["tcp:db"]; j.Failing {
		t.Errorf("run 4: tcp:db still failing: %+v", j)
	}

	// Status shows it all, and --json parses.
	r := in.run("status", "--json")
	var doc struct {
		Jobs []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"jobs"`
	}
	failing := strings.Contains(r.stdout, `"state": "failing"`)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || (r.code != 0) != failing || len(doc.Jobs) != 6 {
		t.Fatalf("status --json: exit %d, err %v, %d jobs\n%s", r.code, err, len(doc.Jobs), r.stdout)
	}
	// Mail is configured, so the hourly self-check is a job too; cron
	// minute does not run it.
	if last := doc.Jobs[len(doc.Jobs)-1]; last.Name != "email:selfcheck" || last.State != "never run" {
		t.Errorf("want the self-check listed and not yet run, got %+v", last)
	}
}

// TestSMTPDownThenUp: the mail server is down for two runs; the alert is
// kept in the outbox and arrives exactly once, on the third run.
func TestSMTPDownThenUp(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf(`[general]
alertcontact = ops@example.test
servername = flaky-mail
%s
[tcp:db]
target = %s
notify = every
`, mailSettings(mail), db.addr))

	mail.StopSMTP()
	for run := 1; run <= 2; run++ {
		// The first failed send says so once on stderr (cron mails it);
		// the next run, still failing, stays quiet.
		if warned := in.cron("minute"); (run == 1) != strings.HasPrefix(warned, mailWarning) {
			t.Errorf("run %d: stderr %q", run, warned)
		}
		st := in.state()
		if len(st.Outbox) != 1 || st.Outbox[0].To[0].Attempts != run || st.Mail.SendOK || st.Mail.SendError == "" {
			t.Fatalf("run %d: outbox %+v, mail %+v; want one pending notice tried %d times and mail unhealthy", run, st.Outbox, st.Mail, run)
		}
		if !st.Jobs["tcp:db"].LastNotified.IsZero() {
			t.Fatalf("run %d: last-notified advanced although nothing was delivered", run)
		}
		r := in.run("status")
		if !strings.Contains(r.stdout, "Mail: PROBLEM") || !strings.Contains(r.stdout, "Outbox: 1 notice waiting") {
			t.Errorf("run %d status:\n%s", run, r.stdout)
		}
		in.nextMinute()
	}
	if n := len(mail.Received()); n != 0 {
		t.Fatalf("%d mails received while SMTP was down", n)
	}
	mail.StartSMTP()
	in.cron("minute")
	mail.WaitReceived(t, 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	msgs := mail.Received()
	if len(msgs) != 1 {
		t.Fatalf("want exactly one mail after recovery, got %d", len(msgs))
	}
	if !strings.HasPrefix(msgs[0].Subject, "[flaky-mail] tcp:db is failing") || !strings.Contains(msgs[0].Body, "3 consecutive failed runs") {
		t.Errorf("mail: %q\n%s", msgs[0].Subject, msgs[0].Body)
	}
	st := in.state()
	if len(st.Outbox) != 0 || !st.Mail.SendOK || st.Jobs["tcp:db"].LastNotified.IsZero() {
		t.Errorf("after delivery: outbox %d, mail %+v, job %+v", len(st.Outbox), st.Mail, st.Jobs["tcp:db"])
	}
}

// TestHungEndpoint: an endpoint that accepts and never answers fails its
// job at the job's timeout, and the run ends.
func TestHungEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	in := newInstance(t, fmt.Sprintf(`[email]
nomail = yes
[http:hung]
url = http://%s/
timeout = 1s
[tcp:fine]
target = %s
`, ln.Addr(), ln.Addr()))
	r := in.run("cron", "minute")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.took > 20*time.Second {
		t.Fatalf("the run took %s with a 1s job timeout", r.took)
	}
	st := in.state()
	hung := st.Jobs["http:hung"]
	if hung == nil || hung.LastStatus != "CRITICAL" || !strings.Contains(hung.LastMessage, "no answer within the timeout") {
		t.Errorf("hung job: %+v", hung)
	}
	if f := st.Jobs["tcp:fine"]; f == nil || f.LastStatus != "OK" {
		t.Errorf("the other job: %+v", f)
	}
	if !strings.Contains(r.stdout, "http:hung is failing") {
		t.Errorf("nomail should print the notice:\n%s", r.stdout)
	}
}

// TestConcurrentInvocations: `cron minute` and `cron hour` started at the
// same moment run every minute job once and lose no update.
func TestConcurrentInvocations(t *testing.T) {
	// Keep both invocations inside one calendar minute.
	if s := time.Now().Second(); s > 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("[email]\nnomail = yes\n")
	const n = 12
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "[command:c%02d]\ncommand = sh -c 'echo ran >> %s/c%02d.log; sleep 0.2'\n", i, dir, i)
	}
	cfg.WriteString("[command:hourly]\nevery = hour\ncommand = sh -c 'echo ran >> " + dir + "/hourly.log'\n")
	in := newInstance(t, cfg.String())

	var wg sync.WaitGroup
	results := make([]result, 4)
	tiers := []string{"minute", "hour", "minute", "hour"}
	for i, tier := range tiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = in.run("cron", tier)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("invocation %d (%s): exit %d: %s", i, tiers[i], r.code, r.stderr)
		}
	}
	// Once more in the same minute, after the others finished: the slot is
	// taken, so nothing runs again.
	in.cron("minute")
	st := in.state()
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("c%02d.log", i)))
		if err != nil || string(b) != "ran\n" {
			t.Errorf("job c%02d ran %q, want exactly once (%v)", i, b, err)
		}
		j := st.Jobs[fmt.Sprintf("command:c%02d", i)]
		if j == nil || j.LastStatus != "OK" || len(st.Claims) != 0 {
			t.Errorf("job c%02d state %+v: update lost or claim left behind", i, j)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hourly.log")); string(b) != "ran\n" {
		t.Errorf("hourly job ran %q, want once", b)
	}
}
