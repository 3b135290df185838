package e2e_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/internal/redistest"
)

// beat stores a fresh heartbeat of each service straight in Redis.
func beat(t *testing.T, srv *redistest.Server, services ...string) {
	t.Helper()
	for _, svc := range services {
		msg := fmt.Sprintf(`{"service_name":%q,"instance_id":"i-%s","timestamp":%q,"uptime_seconds":60,"heartbeat_count":1}`,
			svc, svc, time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := redistest.Do(srv.Addr, "SET", "heartbeat:service:"+svc, msg); err != nil {
			t.Fatalf("SET %s: %v", svc, err)
		}
	}
}

// newMails returns the subjects of the mails received since the last call.
func newMails(t *testing.T, mail *mailtest.Server, seen *int) []string {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // a straggler would arrive now
	all := mail.Received()
	var out []string
	for _, m := range all[*seen:] {
		out = append(out, m.Subject)
	}
	*seen = len(all)
	return out
}

// TestStoreOutagesAndVanishedServices: with discover = yes, every outage of
// the store — the first and the next — is one notice and one recovery; the
// services' jobs keep their state through it; a service whose key vanishes
// (FLUSHDB) is dead and alerts; `heartbeat forget` drops it for good.
func TestStoreOutagesAndVanishedServices(t *testing.T) {
	srv := redistest.Start(t)
	mail := mailtest.Start(t, mailtest.Options{})
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = hb\n%s[heartbeat]\nredis = %s\ndiscover = yes\n",
		mailSettings(mail), srv.URL()))
	seen := 0
	services := []string{"alpha", "beta", "gamma"}
	beat(t, srv, services...)
	in.cron("minute")
	if got := newMails(t, mail, &seen); len(got) != 0 {
		t.Fatalf("first run: mails %q, want none", got)
	}

	for outage := 1; outage <= 2; outage++ {
		srv.Kill()
		for run := 0; run < 2; run++ {
			in.nextMinute()
			r := in.run("cron", "minute")
			if r.code != 0 || r.took > 20*time.Second {
				t.Fatalf("outage %d: cron exit %d after %s: %s", outage, r.code, r.took, r.stderr)
			}
		}
		got := newMails(t, mail, &seen)
		if len(got) != 1 || !strings.Contains(got[0], "heartbeat:store is failing") {
			t.Fatalf("outage %d: mails %q; want one notice that the store is failing", outage, got)
		}
		st := in.state()
		for _, svc := range services {
			if j := st.Jobs["heartbeat:"+svc]; j == nil || j.Failing || !strings.Contains(j.LastMessage, "not checked") {
				t.Errorf("outage %d: heartbeat:%s = %+v; want its state kept, not checked", outage, svc, j)
			}
		}
		// Back, empty (no persistence) but the services publish again.
		srv.Restart(t)
		beat(t, srv, services...)
		in.nextMinute()
		in.cron("minute")
		got = newMails(t, mail, &seen)
		if len(got) != 1 || !strings.Contains(got[0], "heartbeat:store recovered") {
			t.Fatalf("outage %d over: mails %q; want one recovery notice", outage, got)
		}
	}

	// The keys vanish: the remembered services are dead and say so.
	if _, err := redistest.Do(srv.Addr, "FLUSHDB"); err != nil {
		t.Fatal(err)
	}
	in.nextMinute()
	in.cron("minute")
	got := newMails(t, mail, &seen)
	if len(got) != 1 || !strings.Contains(got[0], "3 notices") {
		t.Fatalf("after FLUSHDB: mails %q; want one digest of the three dead services", got)
	}
	body := mail.Received()[seen-1].Body
	for _, svc := range services {
		if !strings.Contains(body, "heartbeat:"+svc+" is failing") || !strings.Contains(body, "vanished") {
			t.Errorf("the digest does not report %s as vanished:\n%s", svc, body)
		}
	}

	// Forgotten: no longer watched, gone from status.
	r := in.run("heartbeat", "forget", "alpha")
	if r.code != 0 || !strings.Contains(r.stdout, "forgot alpha") {
		t.Fatalf("heartbeat forget: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	in.nextMinute()
	in.cron("minute")
	if got := newMails(t, mail, &seen); len(got) != 0 {
		t.Errorf("after forget: mails %q, want none", got)
	}
	r = in.run("status")
	if strings.Contains(r.stdout, "heartbeat:alpha") || !strings.Contains(r.stdout, "heartbeat:beta") {
		t.Errorf("status after forgetting alpha:\n%s", r.stdout)
	}

	// A name that was never remembered but has a heartbeat in the store:
	// the heartbeat is removed, and said; a name that is nowhere: exit 1.
	beat(t, srv, "stray")
	if r := in.run("heartbeat", "forget", "stray"); r.code != 0 || !strings.Contains(r.stdout, "removed the heartbeat of stray from the store (it was not remembered)") {
		t.Errorf("forget of a stored, unremembered service: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n, _ := redistest.Do(srv.Addr, "EXISTS", "heartbeat:service:stray"); n != "0" {
		t.Errorf("the stray heartbeat is still stored (EXISTS %s)", n)
	}
	if r := in.run("heartbeat", "forget", "nowhere"); r.code != 1 || !strings.Contains(r.stderr, "not remembered: nowhere") {
		t.Errorf("forget of an unknown service: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestHungStoreWithManyServices: a store that accepts and never answers
// (CLIENT PAUSE), with 640 services listed: the run ends within one store
// timeout, sends one notice, and leaves the services' state alone.
func TestHungStoreWithManyServices(t *testing.T) {
	srv := redistest.Start(t)
	mail := mailtest.Start(t, mailtest.Options{})
	var names []string
	for i := 0; i < 640; i++ {
		names = append(names, fmt.Sprintf("svc%03d", i))
	}
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = hung\n%s[heartbeat]\nredis = %s\nservices = %s\n",
		mailSettings(mail), srv.URL(), strings.Join(names, ", ")))
	beat(t, srv, names...)
	in.cron("minute")
	seen := 0
	if got := newMails(t, mail, &seen); len(got) != 0 {
		t.Fatalf("first run: mails %q", got)
	}
	if _, err := redistest.Do(srv.Addr, "CLIENT", "PAUSE", "20000", "ALL"); err != nil {
		t.Fatal(err)
	}
	in.nextMinute()
	r := in.run("cron", "minute")
	if r.code != 0 {
		t.Fatalf("cron: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("cron minute with a hung store and 640 services took %s", r.took.Round(time.Millisecond))
	if r.took > 15*time.Second {
		t.Errorf("cron minute took %s with a hung store; want about one store timeout (5s)", r.took)
	}
	got := newMails(t, mail, &seen)
	if len(got) != 1 || !strings.Contains(got[0], "heartbeat:store is failing") {
		t.Errorf("mails %q; want one notice that the store is failing", got)
	}
	st := in.state()
	for _, n := range names {
		if j := st.Jobs["heartbeat:"+n]; j == nil || j.Failing {
			t.Fatalf("heartbeat:%s = %+v; want its state kept", n, j)
		}
	}
}

// TestStatePermissions: a state the running user may not open stops the
// command with exit 77 naming the file, its owner and the user, and changes
// nothing; root refuses to write a state another user owns.
func TestStatePermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as two users")
	}
	db := newTCPPort(t)
	in := newInstance(t, "[email]\nnomail = yes\n[tcp:db]\ntarget = "+db.addr+"\n")
	in.cron("minute")
	before, _ := os.ReadFile(in.statePath())

	// root, on a state that belongs to the service user.
	for _, p := range []string{in.statePath(), in.statePath() + ".lock"} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	r := in.run("run", "--record", "tcp:db")
	if r.code != 77 || !strings.Contains(r.stderr, "sudo -u nobody") || !strings.Contains(r.stderr, in.statePath()) {
		t.Errorf("root on nobody's state: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(in.statePath()); string(after) != string(before) {
		t.Error("root changed another user's state")
	}
	if m, _ := os.ReadDir(in.dir); len(m) == 0 {
		t.Fatal("state directory emptied")
	}
	if r := in.run("cron", "minute"); r.code != 77 {
		t.Errorf("root cron on nobody's state: exit %d, want 77\n%s", r.code, r.stderr)
	}
	// Reading is no takeover: root may look.
	if r := in.run("status"); r.code != 0 || !strings.Contains(r.stdout, "tcp:db") {
		t.Errorf("root status on nobody's state: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if aside, _ := os.ReadDir(in.dir); len(aside) > 4 {
		t.Errorf("files appeared next to the state: %v", aside)
	}
}

// TestPublishOnlyServiceVisibleThroughServe: a service that only PUBLISHes
// its heartbeats (never SETs the key) is seen by check and cron once
// checker serve runs, which mirrors published beats into the keys.
func TestPublishOnlyServiceVisibleThroughServe(t *testing.T) {
	srv := redistest.Start(t)
	in := newInstance(t, "[email]\nnomail = yes\n[heartbeat]\nredis = "+srv.URL()+"\nservices = pubonly\n")
	in.serveWith()
	waitFor(t, "serve to subscribe", func() bool {
		n, err := redistest.Do(srv.Addr, "PUBSUB", "NUMPAT")
		return err == nil && n != "0"
	})
	msg := fmt.Sprintf(`{"service_name":"pubonly","instance_id":"p-1","timestamp":%q,"uptime_seconds":5,"heartbeat_count":3}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := redistest.Do(srv.Addr, "PUBLISH", "heartbeat:service:pubonly", msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mirrored key", func() bool {
		v, err := redistest.Do(srv.Addr, "EXISTS", "heartbeat:service:pubonly")
		return err == nil && v == "1"
	})
	r := in.run("check", "heartbeat", "pubonly")
	if r.code != 0 || !strings.Contains(r.stdout, "pubonly alive") {
		t.Errorf("check heartbeat pubonly: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}
