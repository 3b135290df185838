package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/state"
)

const admin = "ops@example.test"

// notice is a notice of job in thread for admin, created at fixedNow.
func notice(job, kind, status, thread string, first bool) state.Notice {
	return state.Notice{
		Job: job, Kind: kind, Status: status, Thread: thread, First: first,
		Subject: job + " " + kind, Body: job + " body\n", To: []state.Delivery{{To: admin}},
		Created: fixedNow(), Queued: fixedNow(),
	}
}

// sendComposed composes items for admin, sends the mail through a real
// SMTP conversation and returns what the server received.
func sendComposed(t *testing.T, srv *mailtest.Server, c Composer, items ...state.Notice) mailtest.Received {
	t.Helper()
	before := len(srv.Received())
	if err := smtpFor(srv, "none").Send(context.Background(), c.Compose(admin, items)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return srv.WaitReceived(t, before+1, 5*time.Second)[before]
}

// threading is what a received mail says about its place in a thread.
type threading struct {
	id         string
	inReplyTo  []string
	references []string
}

func threadingOf(t *testing.T, r mailtest.Received) threading {
	t.Helper()
	id := r.Header.Get("Message-Id")
	if !msgIDGrammar.MatchString(id) || !strings.HasSuffix(id, "@example.test>") {
		t.Errorf("Message-ID %q is not a valid msg-id in the user's domain", id)
	}
	return threading{
		id:         id,
		inReplyTo:  msgIDs(t, "In-Reply-To", r.Header.Get("In-Reply-To")),
		references: msgIDs(t, "References", r.Header.Get("References")),
	}
}

func assertHeaders(t *testing.T, r mailtest.Received, want map[string]string) {
	t.Helper()
	for field, v := range want {
		if got := r.Header.Get(field); got != v {
			t.Errorf("%s = %q, want %q (subject %q)", field, got, v, r.Subject)
		}
	}
}

// TestThreadRecoveryAnswersFailure sends an outage's failure, a reminder
// and the recovery, and checks on the received mails that the later ones
// answer the first.
func TestThreadRecoveryAnswersFailure(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := Composer{ServerName: "web1", Now: fixedNow}

	failure := sendComposed(t, srv, c, notice("tcp:db", state.KindFailure, "CRITICAL", "tcp:db/1", true))
	reminder := sendComposed(t, srv, c, notice("tcp:db", state.KindFailure, "WARNING", "tcp:db/1", false))
	recovery := sendComposed(t, srv, c, notice("tcp:db", state.KindRecovery, "OK", "tcp:db/1", false))
	next := sendComposed(t, srv, c, notice("tcp:db", state.KindFailure, "CRITICAL", "tcp:db/2", true))

	root := threadingOf(t, failure)
	if want := "<" + c.ThreadRoot("tcp:db/1", admin) + "@example.test>"; root.id != want {
		t.Errorf("failure Message-ID %q, want the thread root %q", root.id, want)
	}
	if len(root.inReplyTo)+len(root.references) != 0 {
		t.Errorf("failure answers %v / %v, want nothing", root.inReplyTo, root.references)
	}
	for name, r := range map[string]mailtest.Received{"reminder": reminder, "recovery": recovery} {
		th := threadingOf(t, r)
		if th.id == root.id {
			t.Errorf("%s reuses the failure's Message-ID", name)
		}
		if !slices.Equal(th.inReplyTo, []string{root.id}) || !slices.Equal(th.references, []string{root.id}) {
			t.Errorf("%s: In-Reply-To %v References %v, want both %s", name, th.inReplyTo, th.references, root.id)
		}
	}
	if th := threadingOf(t, next); th.id == root.id || len(th.references) != 0 {
		t.Errorf("the next outage's failure %+v joins the old thread", th)
	}

	for _, tc := range []struct {
		r     mailtest.Received
		state string
	}{{failure, "CRITICAL"}, {reminder, "WARNING"}, {recovery, "OK"}} {
		assertHeaders(t, tc.r, map[string]string{
			"Auto-Submitted":           "auto-generated",
			"X-Auto-Response-Suppress": "All",
			HeaderServer:               "web1",
			HeaderJob:                  "tcp:db",
			HeaderState:                tc.state,
		})
	}
}

// TestThreadRecoveryAfterDigest sends two failures as one digest, then
// each recovery alone: both thread with the digest.
func TestThreadRecoveryAfterDigest(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := Composer{ServerName: "web1", Now: fixedNow}

	digest := sendComposed(t, srv, c,
		notice("http:shop", state.KindFailure, "WARNING", "http:shop/1", true),
		notice("tcp:db", state.KindFailure, "CRITICAL", "tcp:db/1", true),
		notice("heartbeat:store", state.KindSystem, "", "", false),
	)
	assertHeaders(t, digest, map[string]string{
		HeaderServer: "web1",
		HeaderJob:    "http:shop, tcp:db, heartbeat:store",
		HeaderState:  "CRITICAL",
	})
	d := threadingOf(t, digest)
	shopRoot := "<" + c.ThreadRoot("http:shop/1", admin) + "@example.test>"
	dbRoot := "<" + c.ThreadRoot("tcp:db/1", admin) + "@example.test>"
	if d.id != shopRoot || !slices.Equal(d.references, []string{dbRoot}) || len(d.inReplyTo) != 0 {
		t.Errorf("digest threading %+v, want ID %s and References %s", d, shopRoot, dbRoot)
	}

	shop := threadingOf(t, sendComposed(t, srv, c, notice("http:shop", state.KindRecovery, "OK", "http:shop/1", false)))
	db := threadingOf(t, sendComposed(t, srv, c, notice("tcp:db", state.KindRecovery, "OK", "tcp:db/1", false)))
	if !slices.Equal(shop.inReplyTo, []string{d.id}) {
		t.Errorf("http:shop recovery answers %v, want the digest %s", shop.inReplyTo, d.id)
	}
	if !slices.Equal(db.inReplyTo, []string{dbRoot}) || !slices.Contains(d.references, db.inReplyTo[0]) {
		t.Errorf("tcp:db recovery answers %v, want %s, which the digest references", db.inReplyTo, dbRoot)
	}
}

func TestComposeThreading(t *testing.T) {
	c := Composer{ServerName: "web1", Now: fixedNow}
	root := func(thread string) string { return c.ThreadRoot(thread, admin) }
	for _, tc := range []struct {
		name           string
		items          []state.Notice
		id             string // "" means random
		inReplyTo, ref []string
	}{
		{"no thread", []state.Notice{notice("x", state.KindSystem, "", "", false)}, "", nil, nil},
		{"no thread, marked first", []state.Notice{notice("x", state.KindFailure, "", "", true)}, "", nil, nil},
		{"failure and its recovery in one digest",
			[]state.Notice{notice("a", state.KindFailure, "CRITICAL", "A", true), notice("a", state.KindRecovery, "OK", "A", false)},
			root("A"), nil, nil},
		{"reminders of two outages",
			[]state.Notice{notice("a", state.KindFailure, "CRITICAL", "A", false), notice("b", state.KindFailure, "CRITICAL", "B", false)},
			"", []string{root("A"), root("B")}, []string{root("A"), root("B")}},
		{"a reminder and a new outage",
			[]state.Notice{notice("a", state.KindFailure, "CRITICAL", "A", false), notice("b", state.KindFailure, "CRITICAL", "B", true)},
			root("B"), []string{root("A")}, []string{root("A")}},
		{"the same thread twice",
			[]state.Notice{notice("a", state.KindFailure, "CRITICAL", "A", false), notice("a", state.KindRecovery, "OK", "A", false)},
			"", []string{root("A")}, []string{root("A")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := c.Compose(admin, tc.items)
			if m.ID != tc.id || !slices.Equal(m.InReplyTo, tc.inReplyTo) || !slices.Equal(m.References, tc.ref) {
				t.Errorf("ID %q In-Reply-To %v References %v, want %q %v %v", m.ID, m.InReplyTo, m.References, tc.id, tc.inReplyTo, tc.ref)
			}
		})
	}
}

func TestThreadRootIsPerServerAndRecipient(t *testing.T) {
	a, b := Composer{ServerName: "web1"}, Composer{ServerName: "web2"}
	if a.ThreadRoot("T", admin) != a.ThreadRoot("T", " OPS@Example.test ") {
		t.Error("the root depends on the spelling of the address")
	}
	for _, other := range []string{a.ThreadRoot("T", "dev@example.test"), a.ThreadRoot("U", admin), b.ThreadRoot("T", admin)} {
		if other == a.ThreadRoot("T", admin) {
			t.Errorf("two threads share the root %q", other)
		}
	}
}

func TestComposeStateAndJobHeaders(t *testing.T) {
	c := Composer{ServerName: "web1", Now: fixedNow}
	for _, tc := range []struct {
		name      string
		items     []state.Notice
		job, stat string
	}{
		{"status given", []state.Notice{notice("a", state.KindFailure, "warning", "", false)}, "a", "WARNING"},
		{"failure without status", []state.Notice{notice("a", state.KindFailure, "", "", false)}, "a", "CRITICAL"},
		{"recovery without status", []state.Notice{notice("a", state.KindRecovery, "", "", false)}, "a", "OK"},
		{"system notice", []state.Notice{notice("state", state.KindSystem, "", "", false)}, "state", "UNKNOWN"},
		{"garbage status", []state.Notice{notice("a", state.KindRecovery, "FINE", "", false)}, "a", "OK"},
		{"digest: most severe, each job once", []state.Notice{
			notice("a", state.KindRecovery, "OK", "", false),
			notice("b", state.KindFailure, "UNKNOWN", "", false),
			notice("a", state.KindFailure, "WARNING", "", false),
		}, "a, b", "UNKNOWN"},
		{"digest: CRITICAL over UNKNOWN", []state.Notice{
			notice("a", state.KindFailure, "CRITICAL", "", false),
			notice("b", state.KindFailure, "UNKNOWN", "", false),
		}, "a, b", "CRITICAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := c.Compose(admin, tc.items)
			if m.Header[HeaderJob] != tc.job || m.Header[HeaderState] != tc.stat || m.Header[HeaderServer] != "web1" {
				t.Errorf("headers %v, want job %q state %q", m.Header, tc.job, tc.stat)
			}
		})
	}

	// A digest of thousands of jobs keeps its job header bounded.
	var many []state.Notice
	for i := range 3000 {
		many = append(many, notice(fmt.Sprintf("http:site%04d", i), state.KindFailure, "CRITICAL", "", false))
	}
	job := c.Compose(admin, many).Header[HeaderJob]
	if len(job) > maxJobHeader+40 || !strings.HasPrefix(job, "http:site0000, http:site0001") || !strings.HasSuffix(job, " more") {
		t.Errorf("job header of %d bytes: %q…%q", len(job), job[:40], job[len(job)-40:])
	}
}

// TestHeldNoticeSaysWhenQueued sends notices that waited out a mail outage
// and checks the bodies the server received.
func TestHeldNoticeSaysWhenQueued(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := Composer{ServerName: "web1", Now: fixedNow}

	held := notice("tcp:db", state.KindFailure, "CRITICAL", "T", true)
	held.Queued = fixedNow().Add(-2*time.Hour - 15*time.Minute)
	held.To[0].Attempts = 135
	held.To[0].LastError = "smtp dial 127.0.0.1:25: connect: connection refused\nsecond line"
	got := sendComposed(t, srv, c, held)
	body := strings.ReplaceAll(got.Body, "\r\n", "\n")
	want := "Held back: this notice was first queued at 2024-03-09 12:15:00 UTC, 2h15m0s ago, and could not be sent until now " +
		"(135 failed attempts; last error: smtp dial 127.0.0.1:25: connect: connection refused second line).\n\ntcp:db body\n"
	if body != want {
		t.Errorf("held notice body:\n%s\nwant:\n%s", body, want)
	}

	// Queued long ago but never tried (the run that queued it died before
	// sending, say).
	late := notice("tcp:db", state.KindFailure, "CRITICAL", "T", false)
	late.Queued = fixedNow().Add(-10 * time.Minute)
	late.Created = late.Queued
	got = sendComposed(t, srv, c, late)
	if !strings.HasPrefix(got.Body, "Held back: this notice was first queued at 2024-03-09 14:20:00 UTC, 10m0s ago, and could not be sent until now.") {
		t.Errorf("late notice body %q", got.Body)
	}

	// A reminder that replaced an older notice keeps its queue time for
	// the recipients the older one did not reach; to one it reached, with
	// no failed attempt, the reminder is fresh.
	reminder := notice("tcp:db", state.KindFailure, "CRITICAL", "T", false)
	reminder.Queued = fixedNow().Add(-time.Hour)
	if note := heldNote(reminder, admin, fixedNow()); note != "" {
		t.Errorf("note for a fresh reminder to a recipient that got the last one: %q", note)
	}

	// A fresh notice says nothing of the kind; in a digest only the held
	// notice does.
	fresh := notice("http:shop", state.KindFailure, "CRITICAL", "S", true)
	fresh.Queued = fixedNow().Add(-20 * time.Second)
	if got := sendComposed(t, srv, c, fresh); strings.Contains(got.Body, "Held back") {
		t.Errorf("fresh notice body %q", got.Body)
	}
	got = sendComposed(t, srv, c, fresh, held)
	body = strings.ReplaceAll(got.Body, "\r\n", "\n")
	if strings.Count(body, "Held back") != 1 || strings.Index(body, "Held back") < strings.Index(body, "2. tcp:db failure") {
		t.Errorf("digest body:\n%s", body)
	}

	// A failed attempt is enough, however recent the notice.
	retried := notice("tcp:db", state.KindFailure, "CRITICAL", "T", false)
	retried.Queued = fixedNow().Add(-30 * time.Second)
	retried.To[0].Attempts, retried.To[0].LastError = 1, "smtp send: 451 try again later"
	if note := heldNote(retried, admin, fixedNow()); note != "Held back: this notice was first queued at 2024-03-09 14:29:30 UTC, 30s ago, "+
		"and could not be sent until now (1 failed attempt; last error: smtp send: 451 try again later)." {
		t.Errorf("note after one failed attempt: %q", note)
	}

	// Created stands in for a missing Queued.
	old := notice("tcp:db", state.KindFailure, "CRITICAL", "T", false)
	old.Queued, old.Created = time.Time{}, fixedNow().Add(-time.Hour)
	if note := heldNote(old, admin, fixedNow()); !strings.Contains(note, "13:30:00 UTC, 1h0m0s ago") {
		t.Errorf("note from Created: %q", note)
	}
	// A clock that went back does not make a notice late.
	future := notice("tcp:db", state.KindFailure, "CRITICAL", "T", false)
	future.Queued = fixedNow().Add(time.Hour)
	if note := heldNote(future, admin, fixedNow()); note != "" {
		t.Errorf("note for a notice queued in the future: %q", note)
	}
}

// BenchmarkComposeDigest composes a digest of 100 notices, threads and
// held notes included.
func BenchmarkComposeDigest(b *testing.B) {
	c := Composer{ServerName: "web1", Now: fixedNow}
	items := make([]state.Notice, 100)
	for i := range items {
		items[i] = notice(fmt.Sprintf("http:site%03d", i), state.KindFailure, "CRITICAL", fmt.Sprintf("T%d", i), i%2 == 0)
		items[i].To[0].Attempts = i % 3
	}
	for b.Loop() {
		c.Compose(admin, items)
	}
}

// TestFloodDigest: a run that owes one recipient 100,000 notices sends one
// mail a mail server accepts (here a real SMTP conversation with a 10 MB
// limit, Postfix's default) and a person can read: the first notices in
// full, then subjects, then a count; a bounded subject and headers.
func TestFloodDigest(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	const n = 100_000
	items := make([]state.Notice, n)
	for i := range items {
		job := fmt.Sprintf("tcp:j%06d", i)
		items[i] = notice(job, state.KindFailure, "CRITICAL", "t"+job, true)
	}
	c := Composer{ServerName: "web1"}
	m := c.Compose(admin, items)
	if len(m.Body) > 1<<20 {
		t.Errorf("digest body is %d bytes; want under 1 MiB", len(m.Body))
	}
	for _, want := range []string{
		"100000 notices from checker on web1.",
		"The first 100 are in full",
		"100. tcp:j000099 failure\n---",
		"\nAnd 99900 more:\n101. tcp:j000100 failure\n",
		"1100. tcp:j001099 failure\n… and 98900 more not listed.\n",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("digest body lacks %q", want)
		}
	}
	if strings.Contains(m.Body, "tcp:j001100") {
		t.Error("digest lists more than it says")
	}
	if len(m.Subject) > 200 || len(m.References) > maxThreads || len(m.InReplyTo) > maxThreads {
		t.Errorf("subject %d bytes, %d references, %d in-reply-to", len(m.Subject), len(m.References), len(m.InReplyTo))
	}
	r := sendComposed(t, srv, c, items...)
	if !strings.HasPrefix(r.Subject, "[web1] 100000 notices: tcp:j000000 failure; ") {
		t.Errorf("subject %q", r.Subject)
	}
	if job := r.Header.Get(HeaderJob); len(job) > maxJobHeader+50 || !strings.HasSuffix(job, "more") {
		t.Errorf("%s has %d bytes: %.80q…", HeaderJob, len(job), job)
	}

	chat := c.ComposeChat("ops-chat", items)
	if len(chat.Text) > maxChatText || len(chat.Title) > 200 || !strings.Contains(chat.Text, "1. tcp:j000000 failure") {
		t.Errorf("chat digest: title %d bytes, text %d bytes:\n%.300s", len(chat.Title), len(chat.Text), chat.Text)
	}
}
