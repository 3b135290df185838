package jobs_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/jobs"
	"checker/notify"
	"checker/state"
)

// hook is a loopback webhook that answers 200 while up and 503 while down,
// and keeps the bodies it got while up.
type hook struct {
	srv *httptest.Server

	mu     sync.Mutex // guards down and bodies
	down   bool
	bodies []string
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		h.bodies = append(h.bodies, string(b))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

// got returns how many messages the hook received that contain s.
func (h *hook) got(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, b := range h.bodies {
		if strings.Contains(b, s) {
			n++
		}
	}
	return n
}

func (h *hook) channel(t *testing.T, name string) *notify.Channel {
	t.Helper()
	c, err := notify.ParseChannel(name, h.srv.URL+"/in/"+name+"-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deliveryRig runs one always-failing job (notify every) with a clock the
// test moves, recording as cron does.
type deliveryRig struct {
	t     *testing.T
	now   time.Time
	r     *jobs.Runner
	job   *jobs.Job
	store *state.Store
}

func newDeliveryRig(t *testing.T, mail notify.Sender, channels map[string]notify.Poster, notifyTo ...string) *deliveryRig {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	every, _ := jobs.ParseNotify("every")
	rig := &deliveryRig{t: t, now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	rig.store = &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
	rig.job = &jobs.Job{Name: "tcp:db", Type: "tcp", Target: closed, Every: jobs.Minute, Timeout: 5 * time.Second, Spec: &jobs.TCP{Addr: closed},
		Policy: jobs.Policy{Notify: every, Failures: 1, Recovery: jobs.RecoveryAuto, WarnIsFailure: true, NotifyTo: notifyTo}}
	rig.r = &jobs.Runner{Store: rig.store, Sender: mail, Channels: channels, Env: jobs.NewEnv(nil),
		Composer: notify.Composer{ServerName: "web1", Now: func() time.Time { return rig.now }}, AlertContact: []string{"ops@example.test"},
		Now: func() time.Time { return rig.now }}
	return rig
}

// run runs the job once, a minute after the last run.
func (rig *deliveryRig) run() {
	rig.t.Helper()
	rig.now = rig.now.Add(time.Minute)
	if _, err := rig.r.RunNow(context.Background(), []*jobs.Job{rig.job}, true); err != nil {
		rig.t.Fatal(err)
	}
}

func (rig *deliveryRig) snapshot() *state.Snapshot {
	rig.t.Helper()
	s, err := rig.store.Snapshot()
	if err != nil {
		rig.t.Fatal(err)
	}
	return s
}

// TestChannelOutageToldOnce: a channel that keeps failing for five minutes
// is reported once to the working destinations, its notices stay owed and
// reach it once when it is back, and its return is reported once. Mail
// health, which peers see, does not depend on a channel.
func TestChannelOutageToldOnce(t *testing.T) {
	var printed strings.Builder
	h := newHook(t)
	h.setDown(true)
	rig := newDeliveryRig(t, &notify.Printer{W: &printed}, map[string]notify.Poster{"hook": h.channel(t, "hook")}, "ops@example.test", "hook")

	for range 5 { // minutes 1 to 5: failing for 4 minutes, not news yet
		rig.run()
	}
	if n := strings.Count(printed.String(), "has not been able to deliver to channel hook"); n != 0 {
		t.Fatalf("outage reported after 4 minutes (%d times)", n)
	}
	rig.run() // minute 6: failing for 5 minutes, queued in this run
	const told = "has not been able to deliver to channel hook since 2026-05-01 10:01:00 UTC (5m0s)"
	if n := strings.Count(printed.String(), told); n != 0 {
		t.Fatalf("outage told %d times in the run that found it, want it in the next run's digest", n)
	}
	before := printed.Len()
	rig.run() // minute 7: one digest with this run's failure notice
	if n := strings.Count(printed.String(), told); n != 1 {
		t.Fatalf("outage reported %d times after 6 minutes, want once:\n%s", n, printed.String())
	}
	if n := strings.Count(printed.String()[before:], "--- mail not sent"); n != 1 || !strings.Contains(printed.String()[before:], "2 notices") {
		t.Errorf("minute 7 printed %d messages, want one digest of 2 notices:\n%s", n, printed.String()[before:])
	}
	if i := strings.Index(printed.String(), told); strings.Contains(printed.String()[i-300:i], "Held back") {
		t.Errorf("the outage notice says it was held back:\n%s", printed.String()[i-300:i+len(told)])
	}
	for range 8 {
		rig.run()
	}
	if n := strings.Count(printed.String(), told); n != 1 {
		t.Fatalf("outage reported %d times in 10 minutes, want once", n)
	}
	snap := rig.snapshot()
	var owed int
	for _, n := range snap.Outbox {
		for _, d := range n.To {
			if d.To == "hook" && !d.Done {
				owed++
				if d.Attempts != 15 || strings.Contains(d.LastError, "s3cret") || !strings.Contains(d.LastError, "503") {
					t.Errorf("delivery to hook %+v", d)
				}
			}
		}
	}
	if owed != 1 {
		t.Errorf("%d notices owed to the hook, want the failure notice", owed)
	}
	if !snap.Mail.SendOK {
		t.Errorf("mail health %+v: a failing channel is not a mail problem", snap.Mail)
	}
	for _, rc := range snap.Recipients {
		if rc.To == "hook" && (!rc.Failing || !rc.Reported || strings.Contains(rc.LastError, "s3cret")) {
			t.Errorf("hook's record %+v", rc)
		}
	}

	h.setDown(false)
	rig.run()
	if n := h.got("tcp:db is failing"); n != 1 {
		t.Errorf("the hook got the owed notice %d times, want once", n)
	}
	rig.run()
	rig.run()
	if n := h.got("tcp:db is failing"); n != 3 {
		t.Errorf("the hook got %d failure notices in 3 runs with notify = every, want 3 (nothing sent twice)", n)
	}
	if n := h.got("Held back: this notice was first queued at"); n != 1 {
		t.Errorf("the held notice does not say it was held back")
	}
	if n := strings.Count(printed.String(), "can deliver to channel hook again"); n != 1 {
		t.Errorf("return reported %d times, want once", n)
	}
	if n := h.got("channel hook is failing") + h.got("channel hook works again"); n != 0 {
		t.Errorf("the hook was told about itself (%d messages)", n)
	}
}

// TestMailOutageToldThroughChannel: with the mail server refusing every
// recipient for a while, the channel hears once that mail fails and once
// that it works again, and the notices owed to mail go out once.
func TestMailOutageToldThroughChannel(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{NoAuth: true})
	srv.SetSMTPFailure(mailtest.FailTempRcpt)
	mail := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.SMTPPort, Security: "none", User: srv.User, Helo: "checker.example.test"})
	h := newHook(t)
	rig := newDeliveryRig(t, mail, map[string]notify.Poster{"hook": h.channel(t, "hook")})

	for range 5 {
		rig.run()
	}
	if n := h.got("mail to ops@example.test is failing"); n != 0 {
		t.Fatalf("the mail outage was told after 4 minutes")
	}
	rig.run() // 5 minutes in: queued, for the next run's digest
	rig.run()
	if n := h.got("mail to ops@example.test is failing"); n != 1 {
		t.Fatalf("the channel heard of the mail outage %d times in the run after 5 minutes, want once", n)
	}
	for range 5 {
		rig.run()
	}
	if n := h.got("mail to ops@example.test is failing"); n != 1 {
		t.Fatalf("the channel heard of the mail outage %d times, want once", n)
	}
	if snap := rig.snapshot(); snap.Mail.SendOK {
		t.Errorf("mail health %+v while every send fails", snap.Mail)
	}
	srv.SetSMTPFailure(mailtest.FailNone)
	rig.run()
	if n := h.got("mail to ops@example.test works again"); n != 0 {
		t.Errorf("the channel heard mail works again %d times in the run it did, want it in the next run", n)
	}
	rig.run()
	if n := h.got("mail to ops@example.test works again"); n != 1 {
		t.Errorf("the channel heard mail works again %d times, want once", n)
	}
	rig.run()
	if n := h.got("mail to ops@example.test works again"); n != 1 {
		t.Errorf("the channel heard mail works again %d times, want once", n)
	}
	got := 0
	for _, m := range srv.Received() {
		if strings.Contains(m.Subject, "tcp:db is failing") {
			got++
		}
	}
	if got != 3 {
		t.Errorf("ops got %d failure mails after the outage, want 3 (the held one, then one a minute)", got)
	}
	if snap := rig.snapshot(); !snap.Mail.SendOK {
		t.Errorf("mail health %+v after mail works again", snap.Mail)
	}
}

// TestOutageToldWhenAnotherDestinationReturns: while mail and the channel
// both fail there is nobody to tell; when mail works again it hears, once,
// that the channel keeps failing, and nobody hears that mail "works again"
// of an outage no one was told about.
func TestOutageToldWhenAnotherDestinationReturns(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{NoAuth: true})
	srv.SetSMTPFailure(mailtest.FailTempRcpt)
	mail := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.SMTPPort, Security: "none", User: srv.User, Helo: "checker.example.test"})
	h := newHook(t)
	h.setDown(true)
	rig := newDeliveryRig(t, mail, map[string]notify.Poster{"hook": h.channel(t, "hook")}, "ops@example.test", "hook")

	for range 8 { // both fail for 7 minutes
		rig.run()
	}
	for _, rc := range rig.snapshot().Recipients {
		if rc.Reported {
			t.Errorf("%s marked reported while nobody could be told: %+v", rc.To, rc)
		}
	}
	srv.SetSMTPFailure(mailtest.FailNone)
	rig.run()
	rig.run()
	count := func(s string) int {
		n := 0
		for _, m := range srv.Received() {
			if strings.Contains(m.Subject, s) {
				n++
			}
		}
		return n
	}
	if n := count("channel hook is failing"); n != 1 {
		t.Errorf("mail heard %d times that the channel keeps failing once it worked again, want once", n)
	}
	if n := count("works again"); n != 0 {
		t.Errorf("%d mails say a destination works again, though no one was told it failed", n)
	}
	h.setDown(false)
	rig.run()
	rig.run()
	if n := count("channel hook works again"); n != 1 {
		t.Errorf("mail heard %d times that the channel works again, want once", n)
	}
	if n := h.got("mail to ops@example.test"); n != 0 {
		t.Errorf("the hook heard %d times about a mail outage nobody was told of", n)
	}
}
