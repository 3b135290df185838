package e2e_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/internal/testcert"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// serveProc is a `checker serve` subprocess.
type serveProc struct {
	t      *testing.T
	url    string
	client *http.Client
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before done closes
	stderr bytes.Buffer  // read only after done
}

// startServe runs `checker -f CFG serve --listen HOST:PORT` for the instance,
// with base the URL it will answer on ("http://127.0.0.1:PORT/" or https).
// It returns once GET / answers, using client (nil: a plain client), and
// kills the process in t.Cleanup unless it was stopped before.
func (in *instance) startServe(base string, client *http.Client) *serveProc {
	in.t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		in.t.Fatal(err)
	}
	if client == nil {
		client = &http.Client{}
	}
	client.Timeout = 5 * time.Second
	p := &serveProc{t: in.t, url: base, client: client, done: make(chan struct{})}
	p.cmd = exec.Command(checkerBin, "-f", in.cfg, "serve", "--listen", u.Host)
	p.cmd.Env = in.env
	p.cmd.Dir = in.dir
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		in.t.Fatalf("starting checker serve: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	in.t.Cleanup(p.kill)

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(base)
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.done:
			in.t.Fatalf("checker serve on %s exited early (%v):\n%s", u.Host, p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("checker serve on %s did not answer within 10s: %v", u.Host, err)
		}
	}
}

// kill ends the process at once and waits for it; it does nothing once the
// process has exited.
func (p *serveProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.client.CloseIdleConnections()
}

// terminate sends SIGTERM and returns the exit code; it fails the test if
// the process has not exited within 10s.
func (p *serveProc) terminate() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		p.t.Fatal("checker serve did not exit within 10s of SIGTERM")
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		p.t.Logf("checker serve stderr:\n%s", p.stderr.String())
		return ee.ExitCode()
	} else if p.err != nil {
		p.t.Fatalf("checker serve: %v", p.err)
	}
	return 0
}

// get fetches path below the server's URL and returns the status, content
// type and body.
func (p *serveProc) get(path string) (int, string, string) {
	p.t.Helper()
	resp, err := p.client.Get(strings.TrimSuffix(p.url, "/") + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// verdict is the body of GET /, which must be a 200 text/plain answer.
func (p *serveProc) verdict() string {
	p.t.Helper()
	code, ctype, body := p.get("/")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") {
		p.t.Fatalf("GET / = %d %q %q, want 200 text/plain", code, ctype, body)
	}
	return body
}

// statusDoc is GET /status.
type statusDoc struct {
	Status  string     `json:"status"`
	Server  string     `json:"server"`
	LastRun *time.Time `json:"last_run"`
	Version string     `json:"version"`
}

func (p *serveProc) status() statusDoc {
	p.t.Helper()
	code, ctype, body := p.get("/status")
	var doc statusDoc
	if err := json.Unmarshal([]byte(body), &doc); code != http.StatusOK || ctype != "application/json" || err != nil {
		p.t.Fatalf("GET /status = %d %q %q (%v), want 200 JSON", code, ctype, body, err)
	}
	return doc
}

// waitVerdict polls GET / until it answers want, failing after 10s.
func (p *serveProc) waitVerdict(want string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := p.verdict()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("GET / still answers %q after 10s, want %q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alerts are the mails a server received except the self-check probes,
// which go from user to user.
func alerts(m *mailtest.Server) []mailtest.Received {
	var out []mailtest.Received
	for _, r := range m.Received() {
		if len(r.To) == 1 && r.To[0] == m.User {
			continue
		}
		out = append(out, r)
	}
	return out
}

// describeMails lists recipients and subjects for a failure message.
func describeMails(msgs []mailtest.Received) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n  to %v: %q", m.To, m.Subject)
	}
	return b.String()
}

// TestPeersWatchEachOther runs two checkers that list each other in
// [peers], each with its own serve and its own mail server, and takes B
// through stale jobs, broken mail, a dead serve and back.
func TestPeersWatchEachOther(t *testing.T) {
	db := newTCPPort(t)
	mailA := mailtest.Start(t, mailtest.Options{User: "alpha@example.test"})
	mailB := mailtest.Start(t, mailtest.Options{User: "beta@example.test"})
	urlA := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))
	urlB := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))

	settings := func(name string, m *mailtest.Server, peerName, peerURL, serveExtra string) string {
		return fmt.Sprintf(`[general]
servername = %s
alertcontact = ops-%s@example.test

%sselfcheck_wait = 10s

[serve]
%s
[peers]
%s = %s,admin-%s@example.test

[tcp:db]
target = %s
`, name, name, mailSettings(m), serveExtra, peerName, peerURL, peerName, db.addr)
	}
	a := newInstance(t, settings("alpha", mailA, "beta", urlB, ""))
	settingsB := func(serveExtra string) string { return settings("beta", mailB, "alpha", urlA, serveExtra) }
	b := newInstance(t, settingsB(""))
	writeB := func(serveExtra string) {
		t.Helper()
		if err := os.WriteFile(b.cfg, []byte(settingsB(serveExtra)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serveA := a.startServe(urlA, nil)
	serveB := b.startServe(urlB, nil)

	// adminB returns the alerts about B, which only A may send, and checks
	// that nothing else was mailed by either side: no alert to ops-alpha or
	// admin-alpha, and nothing from B about itself except to ops-beta.
	adminB := func(step string) []string {
		t.Helper()
		var subjects []string
		for _, m := range alerts(mailA) {
			if len(m.To) != 1 || m.To[0] != "admin-beta@example.test" {
				t.Errorf("%s: A mailed someone other than B's admin:%s", step, describeMails([]mailtest.Received{m}))
				continue
			}
			subjects = append(subjects, m.Subject)
		}
		for _, m := range alerts(mailB) {
			if len(m.To) != 1 || m.To[0] != "ops-beta@example.test" {
				t.Errorf("%s: B mailed someone other than its own ops:%s", step, describeMails([]mailtest.Received{m}))
			}
		}
		return subjects
	}

	// 1. Both healthy: minute jobs, then the hourly self-check and peer jobs.
	a.cron("minute")
	b.cron("minute")
	b.cron("hour")
	a.cron("hour")
	for _, c := range []struct {
		name string
		in   *instance
		mail *mailtest.Server
		srv  *serveProc
	}{{"alpha", a, mailA, serveA}, {"beta", b, mailB, serveB}} {
		st := c.in.state()
		if !st.Mail.SelfCheckOK || st.Mail.SelfCheckAt.IsZero() {
			t.Errorf("%s: mail after the self-check = %+v, want self-check OK", c.name, st.Mail)
		}
		if j := st.Jobs["email:selfcheck"]; j == nil || j.LastStatus != "OK" {
			t.Errorf("%s: email:selfcheck = %+v, want OK", c.name, j)
		}
		if j := st.Jobs["peer:"+map[string]string{"alpha": "beta", "beta": "alpha"}[c.name]]; j == nil || j.LastStatus != "OK" {
			t.Errorf("%s: peer job = %+v, want OK", c.name, j)
		}
		if n := len(c.mail.Received()); n != 1 {
			t.Errorf("%s: %d mails received, want the one probe", c.name, n)
		}
		if n := c.mail.MailboxMessages("INBOX"); n != 0 {
			t.Errorf("%s: %d messages left in INBOX, want the probe deleted", c.name, n)
		}
		if v := c.srv.verdict(); v != "True" {
			t.Errorf("%s: GET / = %q, want True", c.name, v)
		}
		if doc := c.srv.status(); doc.Status != "True" || doc.Server != c.name || doc.LastRun == nil || doc.Version == "" {
			t.Errorf("%s: GET /status = %+v", c.name, doc)
		}
	}
	if s := adminB("healthy"); len(s) != 0 {
		t.Fatalf("healthy peers: alerts to B's admin: %q", s)
	}

	// wantAlert requires exactly n alerts to B's admin so far, the last
	// one from A ending with suffix.
	wantAlert := func(step string, n int, suffix string) {
		t.Helper()
		s := adminB(step)
		if len(s) != n {
			t.Fatalf("%s: %d alerts to B's admin, want %d: %q", step, len(s), n, s)
		}
		last := s[n-1]
		if !strings.HasPrefix(last, "[alpha] ") || !strings.HasSuffix(last, suffix) {
			t.Errorf("%s: subject %q, want \"[alpha] …%s\"", step, last, suffix)
		}
	}

	// 2. B's cron stops running: with a 2s jobs_stale_after B soon answers
	// JobProblem, and A tells B's admin.
	serveB.kill()
	writeB("jobs_stale_after = 2s\n")
	serveB = b.startServe(urlB, nil)
	serveB.waitVerdict("JobProblem")
	a.nextMinute()
	a.cron("hour")
	wantAlert("jobs stale", 1, urlB+" reports its jobs are not running.")
	if doc := serveB.status(); doc.Status != "JobProblem" {
		t.Errorf("jobs stale: GET /status = %+v", doc)
	}

	// 3. B's SMTP breaks: its self-check fails and the Email Fetch Failure
	// notice cannot be sent either, so B reports MailProblem (mail is judged
	// before the stale jobs) and A tells B's admin.
	mailB.StopSMTP()
	b.nextMinute()
	b.cron("hour")
	st := b.state()
	if st.Mail.SelfCheckOK || st.Mail.SendOK {
		t.Errorf("SMTP down: B's mail = %+v, want self-check and send failed", st.Mail)
	}
	if len(st.Outbox) != 1 || !strings.Contains(st.Outbox[0].Subject, "Email Fetch Failure") {
		t.Errorf("SMTP down: B's outbox = %+v, want the Email Fetch Failure notice kept", st.Outbox)
	}
	if v := serveB.verdict(); v != "MailProblem" {
		t.Errorf("SMTP down: B's GET / = %q, want MailProblem", v)
	}
	a.nextMinute()
	a.cron("hour")
	wantAlert("SMTP down", 2, urlB+" reports it cannot send email.")

	// 4. B's serve dies.
	serveB.kill()
	a.nextMinute()
	a.cron("hour")
	wantAlert("serve down", 3, urlB+" is not responding.")

	// 5. B comes back: serve (with the default staleness again), SMTP, and
	// a cron run. B's kept notice goes out; A sends B's admin a recovery.
	writeB("")
	serveB = b.startServe(urlB, nil)
	mailB.StartSMTP()
	b.nextMinute()
	b.cron("hour")
	st = b.state()
	if !st.Mail.SelfCheckOK || !st.Mail.SendOK || len(st.Outbox) != 0 {
		t.Errorf("B back: mail %+v, outbox %d, want healthy and empty", st.Mail, len(st.Outbox))
	}
	var fetchFailure bool
	for _, m := range alerts(mailB) {
		fetchFailure = fetchFailure || strings.Contains(m.Subject, "Email Fetch Failure")
	}
	if !fetchFailure {
		t.Errorf("B back: the kept Email Fetch Failure notice never reached ops-beta:%s", describeMails(alerts(mailB)))
	}
	if v := serveB.verdict(); v != "True" {
		t.Errorf("B back: GET / = %q, want True", v)
	}
	a.nextMinute()
	a.cron("hour")
	wantAlert("B back", 4, "")
	if s := adminB("B back"); !strings.HasPrefix(s[3], "[alpha] peer:beta recovered: OK") || !strings.Contains(s[3], urlB) {
		t.Errorf("B back: recovery subject %q", s[3])
	}
	for name, m := range map[string]*mailtest.Server{"alpha": mailA, "beta": mailB} {
		if n := m.MailboxMessages("INBOX"); n != len(alerts(m)) {
			t.Errorf("%s: %d messages in INBOX, want only the %d alerts (every probe deleted)", name, n, len(alerts(m)))
		}
	}
	if j := a.state().Jobs["peer:beta"]; j == nil || j.Failing {
		t.Errorf("B back: A's peer:beta = %+v, want succeeding", j)
	}
	t.Logf("alerts sent by alpha:%s\nalerts sent by beta:%s", describeMails(alerts(mailA)), describeMails(alerts(mailB)))
}

// checkLine requires a check's Nagios result: exit code, one stdout line
// starting with prefix.
func checkLine(t *testing.T, what string, r result, code int, prefix string) string {
	t.Helper()
	if r.code != code || !strings.HasPrefix(r.stdout, prefix) || strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Errorf("%s: exit %d, stdout %q; want exit %d and one line starting %q\nstderr: %s", what, r.code, r.stdout, code, prefix, r.stderr)
	}
	return strings.TrimSuffix(r.stdout, "\n")
}

// TestCheckPeerAndEmailCommands runs `checker check peer` and `checker
// check email` against real servers.
func TestCheckPeerAndEmailCommands(t *testing.T) {
	t.Run("peer", func(t *testing.T) {
		in := newInstance(t, fmt.Sprintf("[email]\nnomail = yes\n[tcp:db]\ntarget = %s\n", newTCPPort(t).addr))
		in.cron("minute")
		live := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))
		in.startServe(live, nil)

		line := checkLine(t, "live peer", in.run("check", "peer", live), 0, "PEER OK - ")
		if !strings.Contains(line, live) || !strings.HasSuffix(line, "True") {
			t.Errorf("live peer: %q, want the URL and True", line)
		}

		closed := fmt.Sprintf("http://127.0.0.1:%d/", freePort(t))
		line = checkLine(t, "closed port", in.run("check", "peer", closed), 2, "PEER CRITICAL - "+closed+" is not responding.")
		t.Logf("closed port: %s", line)
	})

	t.Run("email", func(t *testing.T) {
		mail := mailtest.Start(t, mailtest.Options{Security: "starttls", IMAPSecurity: "tls"})
		settings := func(pass string) string {
			return fmt.Sprintf(`[general]
alertcontact = ops@example.test
[email]
user = %s
pass = %s
smtpserver = 127.0.0.1
smtpport = %d
smtp_tls = starttls
imapserver = 127.0.0.1
imapport = %d
imap_tls = tls
selfcheck_wait = 10s
`, mail.User, pass, mail.SMTPPort, mail.IMAPPort)
		}
		in := newInstance(t, settings(mail.Pass))
		caFile := filepath.Join(in.dir, "mail-ca.pem")
		if err := os.WriteFile(caFile, mail.CertPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		// Without the CA the TLS handshakes must fail: the transports are
		// really TLS and really verified.
		checkLine(t, "check email without the CA", in.run("check", "email"), 2, "EMAIL CRITICAL - ")
		if n := len(mail.Received()); n != 0 {
			t.Errorf("check email without the CA: %d mails received, want none", n)
		}
		in.env = append(in.env, "SSL_CERT_FILE="+caFile)

		checkLine(t, "check email", in.run("check", "email"), 0, "EMAIL OK - ")
		if n := len(mail.Received()); n != 1 {
			t.Errorf("check email: %d mails received, want the one probe", n)
		}
		if n := mail.MailboxMessages("INBOX"); n != 0 {
			t.Errorf("check email: %d messages in INBOX, want the probe deleted", n)
		}
		if _, err := os.Stat(in.statePath()); err == nil {
			t.Error("check email wrote a state file; checks touch no state")
		}

		const wrong = "Wr0ng-pa55;w0rd"
		if err := os.WriteFile(in.cfg, []byte(settings(wrong)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"check", "email"}, {"-d", "check", "email"}} {
			r := in.run(args...)
			line := checkLine(t, strings.Join(args, " "), r, 2, "EMAIL CRITICAL - ")
			t.Logf("%v: %s", args, line)
			if strings.Contains(r.stdout+r.stderr, wrong) {
				t.Errorf("%v: the password appears in the output:\nstdout: %s\nstderr: %s", args, r.stdout, r.stderr)
			}
		}
		if n := len(mail.Received()); n != 1 {
			t.Errorf("wrong password: %d mails received in all, want still 1", n)
		}
	})
}

// TestServeTLSAndShutdown serves the peer status over HTTPS and stops on
// SIGTERM.
func TestServeTLSAndShutdown(t *testing.T) {
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := testcert.WriteLeaf(t, dir, ca.Leaf(t, time.Now().Add(30*24*time.Hour)))
	in := newInstance(t, fmt.Sprintf(`[general]
servername = secure
[email]
nomail = yes
[serve]
tls_cert = %s
tls_key = %s
[tcp:db]
target = %s
`, certFile, keyFile, newTCPPort(t).addr))
	in.env = append(in.env, "SSL_CERT_FILE="+ca.WritePEM(t, in.dir))
	in.cron("minute")

	base := fmt.Sprintf("https://127.0.0.1:%d/", freePort(t))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	srv := in.startServe(base, client)
	if v := srv.verdict(); v != "True" {
		t.Errorf("GET / over TLS = %q, want True", v)
	}
	if doc := srv.status(); doc.Status != "True" || doc.Server != "secure" {
		t.Errorf("GET /status over TLS = %+v", doc)
	}
	// A client that does not trust the CA gets no answer.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA completed the TLS handshake")
	}
	// checker itself, trusting the CA through SSL_CERT_FILE, sees True.
	checkLine(t, "check peer over TLS", in.run("check", "peer", base), 0, "PEER OK - ")

	if code := srv.terminate(); code != 0 {
		t.Errorf("checker serve exited %d after SIGTERM, want 0", code)
	}
}
