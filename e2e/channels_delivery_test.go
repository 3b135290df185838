package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/notify"
	"checker/state"
)

// The secrets of the channels these tests configure: none may appear in
// any output, log, state or message.
const (
	hookSecret = "hook-s3cret-8d2f71"
	ntfyPass   = "ntfy-pa55-77aa01"
	ntfyTopic  = "topic-s3cret-c3e9"
)

// chatServer is a loopback stand-in for a chat service: it answers 200
// (with a JSON body, as ntfy does) while up; while down it answers 503, or
// with dropped set closes each connection without an answer (a crashed
// server behind a proxy); it keeps what it received while up.
type chatServer struct {
	srv *httptest.Server

	mu   sync.Mutex // guards down, drop and got
	down bool
	drop bool
	got  []chatMessage
}

// chatMessage is one message a chatServer accepted: the JSON webhook's
// document, or ntfy's Title header and text body.
type chatMessage struct {
	Title, Text string
	Doc         map[string]any
}

func newChatServer(t *testing.T) *chatServer {
	t.Helper()
	c := &chatServer{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.down && c.drop {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if c.down {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		m := chatMessage{Title: r.Header.Get("Title"), Text: string(b)}
		if json.Unmarshal(b, &m.Doc) == nil {
			m.Title, _ = m.Doc["title"].(string)
			m.Text, _ = m.Doc["message"].(string)
		}
		c.got = append(c.got, m)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"e2e","event":"message"}`)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *chatServer) host() string { return strings.TrimPrefix(c.srv.URL, "http://") }

func (c *chatServer) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

// setDropping makes a down server close connections instead of answering.
func (c *chatServer) setDropping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down, c.drop = true, true
}

func (c *chatServer) messages() []chatMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chatMessage(nil), c.got...)
}

// count is how many accepted messages hold s in their title or text.
func (c *chatServer) count(s string) int {
	n := 0
	for _, m := range c.messages() {
		if strings.Contains(m.Title, s) || strings.Contains(m.Text, s) {
			n++
		}
	}
	return n
}

// channelSettings are the [channels] of the tests: a JSON webhook and ntfy.
func channelSettings(hook, push *chatServer) string {
	return fmt.Sprintf("[channels]\nhook = http://%s/in/%s\npush = ntfy://alice:%s@%s/%s?disabletls=yes\n",
		hook.host(), hookSecret, ntfyPass, push.host(), ntfyTopic)
}

// noSecretsAnywhere checks that no secret of the settings is in the
// outputs given, the state file, the mails received or the channel
// messages.
func noSecretsAnywhere(t *testing.T, in *instance, mail *mailtest.Server, chats []*chatServer, outputs ...string) {
	t.Helper()
	secrets := []string{hookSecret, ntfyPass, ntfyTopic, mail.Pass}
	check := func(where, text string) {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %q", where, s)
			}
		}
	}
	for i, o := range outputs {
		check(fmt.Sprintf("output %d", i+1), o)
	}
	raw, err := os.ReadFile(in.statePath())
	if err != nil {
		t.Fatal(err)
	}
	check("the state file", string(raw))
	for _, m := range mail.Received() {
		check("mail "+m.Subject, m.Subject+"\n"+m.Body)
	}
	for _, c := range chats {
		for _, m := range c.messages() {
			check("channel message "+m.Title, m.Title+"\n"+m.Text)
		}
	}
}

// backdateFailure makes the state say that sends to destination have
// failed for d already, as if the runs of the last d minutes had failed.
func (in *instance) backdateFailure(destination string, d time.Duration) {
	in.t.Helper()
	err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
		rc, found, err := tx.Recipient(destination)
		if err != nil || !found || !rc.Failing {
			return fmt.Errorf("no failing destination %q in the state (%v)", destination, err)
		}
		rc.Since = rc.Since.Add(-d)
		return tx.PutRecipient(&rc)
	})
	if err != nil {
		in.t.Fatal(err)
	}
}

// owedTo counts the notices still owed to a destination.
func owedTo(st *state.Snapshot, to string) int {
	n := 0
	for _, no := range st.Outbox {
		for _, d := range no.To {
			if strings.EqualFold(d.To, to) && !d.Done {
				n++
			}
		}
	}
	return n
}

// TestChannelsReceiveNotices: a failing job's notice reaches its mail
// address and both channels of notify_to, each as the mail says it, and
// nothing stays owed.
func TestChannelsReceiveNotices(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	hook, push := newChatServer(t), newChatServer(t)
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf("[general]\nservername = chan-e2e\nalertcontact = ops@example.test\n%s%s[tcp:db]\ntarget = %s\nnotify = hour\nnotify_to = ops@example.test, hook, PUSH\n",
		mailSettings(mail), channelSettings(hook, push), db.addr))

	stderr := in.cron("minute")
	got := mailsTo(mail.WaitReceived(t, 1, 10*time.Second))
	if len(got["ops@example.test"]) != 1 || !strings.Contains(got["ops@example.test"][0], "tcp:db is failing") {
		t.Errorf("mail: %v", got)
	}
	hm := hook.messages()
	if len(hm) != 1 || !strings.HasPrefix(hm[0].Title, "[chan-e2e] tcp:db is failing") || !strings.Contains(hm[0].Text, "tcp:db is failing on chan-e2e") ||
		hm[0].Doc["status"] != "CRITICAL" || hm[0].Doc["jobs"] != "tcp:db" || hm[0].Doc["server"] != "chan-e2e" || hm[0].Doc["notices"] != 1.0 || hm[0].Doc["schema"] != 1.0 {
		t.Errorf("webhook got %+v", hm)
	}
	pm := push.messages()
	if len(pm) != 1 || !strings.HasPrefix(pm[0].Title, "[chan-e2e] tcp:db is failing") || !strings.Contains(pm[0].Text, "Failing since") {
		t.Errorf("ntfy got %+v", pm)
	}
	st := in.state()
	if len(st.Outbox) != 0 {
		t.Errorf("outbox %+v after every destination got the notice", st.Outbox)
	}
	in.nextMinute()
	in.cron("minute") // notify = hour: nothing new, nothing sent twice
	if len(mail.Received()) != 1 || len(hook.messages()) != 1 || len(push.messages()) != 1 {
		t.Errorf("a second run sent again: %d mails, %d webhook, %d ntfy", len(mail.Received()), len(hook.messages()), len(push.messages()))
	}
	status := in.run("status")
	noSecretsAnywhere(t, in, mail, []*chatServer{hook, push}, stderr, status.stdout, status.stderr)
}

// TestChannelOutage: a channel whose server is down keeps its notice owed
// while mail and the other channel get theirs; after five minutes of
// failing, the other destinations hear once that it fails; when it is
// back it gets the owed notice exactly once, and the others hear once
// that it works again.
func TestChannelOutage(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	hook, push := newChatServer(t), newChatServer(t)
	hook.setDropping() // its errors name the URL the service posted to
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf("[general]\nservername = chan-e2e\nalertcontact = ops@example.test\n%s%s[tcp:db]\ntarget = %s\nnotify = hour\nnotify_to = ops@example.test, hook, push\n",
		mailSettings(mail), channelSettings(hook, push), db.addr))

	var outputs []string
	for run := 1; run <= 3; run++ {
		outputs = append(outputs, in.cron("minute"))
		in.nextMinute()
	}
	st := in.state()
	if owedTo(st, "hook") != 1 || len(mail.Received()) != 1 || push.count("tcp:db is failing") != 1 {
		t.Fatalf("after 3 runs with the webhook down: owed to it %d, mails %d, ntfy %d; want 1, 1, 1",
			owedTo(st, "hook"), len(mail.Received()), push.count("tcp:db is failing"))
	}
	if !st.Mail.SendOK {
		t.Errorf("mail health %+v: a channel down is not a mail problem", st.Mail)
	}
	if got := mailsTo(mail.Received()); len(got["ops@example.test"]) != 1 {
		t.Errorf("the outage was reported before it lasted 5 minutes: %v", got)
	}

	in.backdateFailure("hook", 5*time.Minute)
	outputs = append(outputs, in.cron("minute")) // queued in this run
	in.nextMinute()
	if n := push.count("channel hook is failing"); n != 0 {
		t.Errorf("the run that found the webhook failing told the ntfy channel in a second message (%d)", n)
	}
	outputs = append(outputs, in.cron("minute")) // told in this run's digest
	in.nextMinute()
	if n := push.count("channel hook is failing"); n != 1 {
		t.Errorf("the run after the webhook failed for 5 minutes did not tell the ntfy channel (%d)", n)
	}
	for run := 1; run <= 2; run++ {
		outputs = append(outputs, in.cron("minute"))
		in.nextMinute()
	}
	got := mailsTo(mail.WaitReceived(t, 2, 10*time.Second))
	if n := countContaining(got["ops@example.test"], "channel hook is failing"); n != 1 {
		t.Errorf("ops heard %d times that the webhook fails, want once: %v", n, got)
	}
	if n := push.count("channel hook is failing"); n != 1 {
		t.Errorf("the ntfy channel heard %d times that the webhook fails, want once", n)
	}

	hook.setDown(false)
	outputs = append(outputs, in.cron("minute"))
	in.nextMinute()
	outputs = append(outputs, in.cron("minute"))
	in.nextMinute()
	if n := push.count("channel hook works again"); n != 1 {
		t.Errorf("the run after the webhook worked again did not tell the ntfy channel (%d)", n)
	}
	for run := 1; run <= 1; run++ {
		outputs = append(outputs, in.cron("minute"))
		in.nextMinute()
	}
	if n := hook.count("tcp:db is failing"); n != 1 || len(hook.messages()) != 1 {
		t.Errorf("the webhook got the owed notice %d times (%d messages), want exactly once", n, len(hook.messages()))
	} else if !strings.Contains(hook.messages()[0].Text, "Held back: this notice was first queued at") {
		t.Errorf("the owed notice does not say it was held back: %q", hook.messages()[0].Text)
	}
	got = mailsTo(mail.WaitReceived(t, 3, 10*time.Second))
	if n := countContaining(got["ops@example.test"], "channel hook works again"); n != 1 {
		t.Errorf("ops heard %d times that the webhook works again, want once: %v", n, got)
	}
	if n := push.count("channel hook works again"); n != 1 {
		t.Errorf("the ntfy channel heard %d times that the webhook works again, want once", n)
	}
	if st := in.state(); len(st.Outbox) != 0 {
		t.Errorf("outbox %+v after the webhook came back", st.Outbox)
	}
	noSecretsAnywhere(t, in, mail, []*chatServer{hook, push}, outputs...)
}

// TestMailOutageThroughChannel: with the SMTP server stopped, the channel
// hears once that mail fails (no peer needed) and once that it works
// again; the held mail goes out once.
func TestMailOutageThroughChannel(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	hook, push := newChatServer(t), newChatServer(t)
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf("[general]\nservername = chan-e2e\nalertcontact = ops@example.test\n%s%s[tcp:db]\ntarget = %s\nnotify = hour\n",
		mailSettings(mail), channelSettings(hook, push), db.addr))
	mail.StopSMTP()

	var outputs []string
	outputs = append(outputs, in.cron("minute"))
	if !strings.HasPrefix(outputs[0], mailWarning) {
		t.Errorf("first run with mail down: stderr %q, want the one warning line", outputs[0])
	}
	in.nextMinute()
	in.backdateFailure("ops@example.test", 5*time.Minute)
	outputs = append(outputs, in.cron("minute")) // queued in this run
	in.nextMinute()
	outputs = append(outputs, in.cron("minute")) // told in this run's digest
	in.nextMinute()
	if n := hook.count("mail to ops@example.test is failing"); n != 1 {
		t.Errorf("the run after mail failed for 5 minutes did not tell the channel (%d)", n)
	}
	for run := 1; run <= 3; run++ {
		outputs = append(outputs, in.cron("minute"))
		in.nextMinute()
	}
	for _, c := range []*chatServer{hook, push} {
		if n := c.count("mail to ops@example.test is failing"); n != 1 {
			t.Errorf("a channel heard %d times that mail fails, want once", n)
		}
	}
	if st := in.state(); st.Mail.SendOK || owedTo(st, "ops@example.test") != 1 {
		t.Errorf("mail health %+v, owed to ops %d: want a mail problem and the notice kept", st.Mail, owedTo(st, "ops@example.test"))
	}

	mail.StartSMTP()
	for run := 1; run <= 3; run++ {
		outputs = append(outputs, in.cron("minute"))
		in.nextMinute()
	}
	got := mailsTo(mail.WaitReceived(t, 1, 10*time.Second))
	if n := countContaining(got["ops@example.test"], "tcp:db is failing"); n != 1 {
		t.Errorf("ops got the held notice %d times, want once: %v", n, got)
	}
	for _, c := range []*chatServer{hook, push} {
		if n := c.count("mail to ops@example.test works again"); n != 1 {
			t.Errorf("a channel heard %d times that mail works again, want once", n)
		}
	}
	if st := in.state(); !st.Mail.SendOK || len(st.Outbox) != 0 {
		t.Errorf("after mail came back: health %+v, outbox %+v", st.Mail, st.Outbox)
	}
	noSecretsAnywhere(t, in, mail, []*chatServer{hook, push}, outputs...)
}

// TestNotifyTestCommand: `checker notify test` reaches every destination,
// prints one line each (channels by name and service), exits 1 when one
// fails and 2 for an unknown destination, queues nothing, and records an
// event.
func TestNotifyTestCommand(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	hook, push := newChatServer(t), newChatServer(t)
	in := newInstance(t, fmt.Sprintf("[general]\nservername = chan-e2e\nalertcontact = ops@example.test\n%s%s[tcp:db]\ntarget = 127.0.0.1:1\nnotify_to = dba@example.test, push\n",
		mailSettings(mail), channelSettings(hook, push)))

	all := in.run("notify", "test")
	if all.code != 0 || all.stderr != "" {
		t.Fatalf("notify test: exit %d\nstdout: %s\nstderr: %s", all.code, all.stdout, all.stderr)
	}
	want := []string{
		"sent    mail to ops@example.test",
		"sent    mail to dba@example.test",
		"sent    channel hook (webhook at " + hook.host() + ")",
		"sent    channel push (ntfy at " + push.host() + ")",
	}
	if got := strings.Split(strings.TrimSpace(all.stdout), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notify test printed:\n%s\nwant:\n%s", all.stdout, strings.Join(want, "\n"))
	}
	got := mailsTo(mail.WaitReceived(t, 2, 10*time.Second))
	for _, to := range []string{"ops@example.test", "dba@example.test"} {
		if len(got[to]) != 1 || !strings.Contains(got[to][0], "TEST notice, not an alert") {
			t.Errorf("mail to %s: %v", to, got[to])
		}
	}
	if hook.count("TEST notice, not an alert") != 1 || push.count("TEST notice, not an alert") != 1 {
		t.Errorf("channels got %+v and %+v", hook.messages(), push.messages())
	}

	push.setDown(true)
	some := in.run("notify", "test", "--to", "push", "--to", "OPS@example.test")
	if some.code != 1 {
		t.Errorf("notify test with ntfy down: exit %d, want 1\n%s%s", some.code, some.stdout, some.stderr)
	}
	lines := strings.Split(strings.TrimSpace(some.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "FAILED  channel push (ntfy at "+push.host()+"): ") || !strings.Contains(lines[0], "503") ||
		lines[1] != "sent    mail to OPS@example.test" {
		t.Errorf("notify test --to push --to OPS@…: %q", lines)
	}

	bad := in.run("notify", "test", "--to", "hook,pager")
	if bad.code != 2 || !strings.Contains(bad.stderr, "--to pager: neither a mail address nor a channel of [channels] (channels: hook, push)") || bad.stdout != "" {
		t.Errorf("notify test --to pager: exit %d\nstdout: %s\nstderr: %s", bad.code, bad.stdout, bad.stderr)
	}
	before := len(hook.messages())
	dry := in.run("--nomail", "notify", "test", "--to", "hook")
	if dry.code != 0 || !strings.Contains(dry.stdout, "--- channel message not sent (nomail) ---\nTo: hook (webhook at "+hook.host()+")") ||
		!strings.Contains(dry.stdout, "printed channel hook") || len(hook.messages()) != before {
		t.Errorf("notify test --nomail: exit %d, webhook got %d new\n%s%s", dry.code, len(hook.messages())-before, dry.stdout, dry.stderr)
	}

	st := in.state()
	if len(st.Outbox) != 0 || len(st.Recipients) != 0 || len(st.Jobs) != 0 {
		t.Errorf("notify test left state behind: outbox %+v, recipients %+v, jobs %v", st.Outbox, st.Recipients, st.Jobs)
	}
	var events []state.Event
	err := (&state.Store{Path: in.statePath()}).View(func(tx *state.Tx) error {
		return tx.Events(time.Time{}, nil, func(ev state.Event) error {
			events = append(events, ev)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("events %+v, want one per test sent", events)
	}
	for i, ev := range events {
		if ev.Kind != notify.EventTest || ev.Job != notify.TestJob {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if events[1].Status != "CRITICAL" || !strings.Contains(events[1].Message, "reached 1 of 2 destinations; failed: push (") {
		t.Errorf("event of the failed test: %+v", events[1])
	}
	noSecretsAnywhere(t, in, mail, []*chatServer{hook, push}, all.stdout, all.stderr, some.stdout, some.stderr, bad.stdout, bad.stderr, dry.stdout, dry.stderr)
}

// TestChannelValidation: config validate names each bad channel with its
// section and key and never repeats a secret.
func TestChannelValidation(t *testing.T) {
	in := newInstance(t, "[general]\nalertcontact = ops@example.test, pager\n[email]\nnomail = yes\n"+
		"[channels]\nchat = slack://xoxb:"+hookSecret+"@C001\nphone = gotify://gotify.example.test/"+ntfyPass+"\nbird = pigeon://"+ntfyTopic+"@coop\n")
	r := in.run("config", "validate")
	if r.code != 78 {
		t.Errorf("config validate: exit %d, want 78\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{
		"[channels] chat: slack URL: invalid slack token",
		"[channels] phone: gotify URL: the application token",
		`[channels] bird: unknown channel service "pigeon"`,
		`[general] alertcontact: "pager" is neither a mail address nor a channel of [channels] (channels: bird, chat, phone)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config validate does not say %q:\n%s", want, out)
		}
	}
	for _, s := range []string{hookSecret, ntfyPass, ntfyTopic} {
		if strings.Contains(out, s) {
			t.Errorf("config validate repeats the secret %q:\n%s", s, out)
		}
	}
}

func countContaining(list []string, s string) int {
	n := 0
	for _, x := range list {
		if strings.Contains(x, s) {
			n++
		}
	}
	return n
}
