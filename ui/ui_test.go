package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"checker/heartbeat"
)

func pct(v float64) *float64 { return &v }

// sampleStatus has a succeeding, a failing and a never-run job, with text
// that must not be taken as markup or as control characters.
func sampleStatus() Status {
	return Status{
		Jobs: []Job{
			{Name: "http:web", Type: "http", Target: "https://www.example.com/", State: "succeeding", Status: "OK",
				Message: "HTTP 200 in 12ms", Since: now.Add(-3 * time.Hour), LastRun: now.Add(-time.Minute),
				Uptime: [3]*float64{pct(100), pct(99.5), nil}},
			{Name: "command:<b>raw</b>", Type: "command", Target: "check_thing", State: "failing", Status: "CRITICAL",
				Message: "disk \x1b[31mfull\u202e <script>alert(1)</script>", Failures: 3, Since: now.Add(-10 * time.Minute),
				LastRun: now.Add(-30 * time.Second), Notes: []string{"silenced until 2030-01-01 00:00:00 UTC by ops (deploy)"}},
			{Name: "tcp:new", Type: "tcp", Target: "127.0.0.1:1", State: "never run"},
		},
		LastRun: &Run{Tier: "minute", Finished: now.Add(-20 * time.Second), Took: 150 * time.Millisecond},
		Mail:    "healthy",
		Outbox:  2,
	}
}

func newUI(t *testing.T, store heartbeat.Store, o Options) *UI {
	t.Helper()
	if o.Status == nil {
		o.Status = func(context.Context) (Status, error) { return sampleStatus(), nil }
	}
	if o.IsLoopback == nil {
		o.IsLoopback = func(*http.Request) bool { return true }
	}
	if store != nil {
		f := NewFeed(store, FeedOptions{Resync: time.Hour})
		t.Cleanup(f.Close)
		o.Feed = f
	}
	o.Server = "mon1"
	return New(o)
}

// TestPageWithoutJavaScript reads the page as a plain HTTP client: the
// server-rendered tables hold every job and heartbeat, problems first,
// with hostile text shown as text.
func TestPageWithoutJavaScript(t *testing.T) {
	store := localStore(t)
	put(t, store, beatOf("billing", now.Add(-10*time.Second)))
	evil := beatOf("backup", now.Add(-time.Hour))
	evil.InstanceID = "\u202e<img src=x onerror=alert(1)>"
	evil.Data = map[string]any{"note": "</td><script>alert(2)</script>"}
	put(t, store, evil)
	srv := serve(t, newUI(t, store, Options{}))

	resp, body := get(t, srv.URL+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	doc := parsePage(t, body)

	jobs := rows(t, doc, "jobs-table")
	var names, states []string
	for _, r := range jobs {
		names = append(names, attr(r, "data-job"))
		states = append(states, cell(r, "state"))
	}
	wantNames := []string{"command:<b>raw</b>", "http:web", "tcp:new"}
	if strings.Join(names, "|") != strings.Join(wantNames, "|") {
		t.Errorf("jobs %q, want %q (failing first)", names, wantNames)
	}
	if !strings.HasPrefix(states[0], "failing (CRITICAL) 3 failures in a row silenced until 2030") {
		t.Errorf("failing job's state cell: %q", states[0])
	}
	if states[1] != "succeeding" || states[2] != "never run" {
		t.Errorf("states %q", states)
	}
	failing := jobs[0]
	if got := cell(failing, "result"); got != `CRITICAL - disk \x1b[31mfull\u202e <script>alert(1)</script>` {
		t.Errorf("result shown as %q", got)
	}
	if got := cell(jobs[1], "uptime"); got != "100% / 99.50% / –" {
		t.Errorf("uptime %q", got)
	}
	if got := cell(jobs[1], "since"); got != "3h 0m ago" {
		t.Errorf("since %q", got)
	}

	beats := rows(t, doc, "beats")
	if len(beats) != 2 {
		t.Fatalf("%d heartbeat rows, want 2", len(beats))
	}
	got := map[string]*html.Node{}
	for _, r := range beats {
		got[attr(r, "data-service")] = r
	}
	if s := cell(got["billing"], "state"); s != "alive" {
		t.Errorf("billing is %q, want alive", s)
	}
	if s := cell(got["backup"], "state"); s != "dead" {
		t.Errorf("backup is %q, want dead", s)
	}
	if s := cell(got["backup"], "data"); s != `note=</td><script>alert(2)</script>` {
		t.Errorf("data shown as %q", s)
	}
	if s := cell(got["backup"], "instance"); !strings.Contains(s, `\u202e`) {
		t.Errorf("instance %q: the bidi override is not made visible", s)
	}
	scripts := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "script" })
	if len(scripts) != 1 || attr(scripts[0], "src") != "/ui/static/app.js" {
		t.Errorf("the page has %d script elements; only the page's own is allowed", len(scripts))
	}
	if imgs := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "img" }); len(imgs) > 0 {
		t.Error("heartbeat text became an element")
	}
	summary := textOf(find(doc, func(n *html.Node) bool { return attr(n, "id") == "summary" })[0])
	for _, want := range []string{"3 jobs: 1 failing 1 never run", "2 heartbeats: 1 alive 0 stale 1 dead", "Mail: healthy · 2 notices waiting"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary %q lacks %q", summary, want)
		}
	}
}

// TestPageSaysWhatCannotBeRead: a broken state or store is said on the
// page, without details (paths, addresses) that are for the log only.
func TestPageSaysWhatCannotBeRead(t *testing.T) {
	u := newUI(t, nil, Options{Status: func(context.Context) (Status, error) {
		return Status{}, errors.New("open /var/lib/checker/checker.state: permission denied")
	}})
	srv := serve(t, u)
	resp, body := get(t, srv.URL+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	if strings.Contains(body, "all succeeding") || !strings.Contains(body, "unknown: the state cannot be read") || !strings.Contains(body, "<title>(state unreadable)") {
		t.Errorf("an unreadable state must not read as all succeeding:\n%s", body)
	}
	if !strings.Contains(body, "The state cannot be read") || strings.Contains(body, "/var/lib") {
		t.Errorf("page:\n%s", body)
	}
	if strings.Contains(body, `id="beats"`) {
		t.Error("a heartbeat table without a store")
	}
}

// movedOn is cookie v with its expiry put a year later, its MAC kept.
func movedOn(v string) string {
	_, mac, _ := strings.Cut(v, ".")
	return strconv.FormatInt(time.Now().AddDate(1, 0, 0).Unix(), 10) + "." + mac
}

// TestAccess is who may see the page, the stream and the assets.
func TestAccess(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name     string
		token    string
		loopback bool
		path     string
		header   []string
		want     int
		says     string
	}{
		{"loopback without token", "", true, "/ui/", nil, 200, "checker status"},
		{"other host without token", "", false, "/ui/", nil, 403, "set [serve] ui_token"},
		{"other host without token, stream", "", false, "/ui/events", nil, 403, "set [serve] ui_token"},
		{"bearer from elsewhere", "", false, "/ui/", []string{"Authorization", "Bearer " + token}, 403, "set [serve] ui_token"},
		{"token set, nothing sent: login form", token, true, "/ui/", nil, 401, `name="token"`},
		{"token set, nothing sent, stream", token, false, "/ui/events", nil, 401, "missing or wrong token"},
		{"wrong bearer", token, false, "/ui/", []string{"Authorization", "Bearer nope"}, 401, `name="token"`},
		{"right bearer from elsewhere", token, false, "/ui/", []string{"Authorization", "Bearer " + token}, 200, "checker status"},
		{"right cookie", token, false, "/ui/", []string{"Cookie", cookieName + "=" + cookieValue(token, time.Now().Add(time.Hour))}, 200, "checker status"},
		{"expired cookie", token, false, "/ui/", []string{"Cookie", cookieName + "=" + cookieValue(token, time.Now().Add(-time.Second))}, 401, `name="token"`},
		{"cookie with its expiry moved on", token, false, "/ui/", []string{"Cookie", cookieName + "=" + movedOn(cookieValue(token, time.Now().Add(-time.Second)))}, 401, `name="token"`},
		{"cookie of another token", token, false, "/ui/", []string{"Cookie", cookieName + "=" + cookieValue("old", time.Now().Add(time.Hour))}, 401, `name="token"`},
		{"cookie holding the token itself", token, false, "/ui/", []string{"Cookie", cookieName + "=" + token}, 401, `name="token"`},
		{"wrong ?token", token, false, "/ui/?token=nope", nil, 401, "not the one set"},
		{"assets are open", token, false, "/ui/static/style.css", nil, 200, "checker status page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUI(t, localStore(t), Options{Token: tc.token, IsLoopback: func(*http.Request) bool { return tc.loopback }, PingEvery: time.Hour})
			srv := serve(t, u)
			if tc.path == "/ui/events" && tc.want == 200 {
				t.Fatal("streams are tested elsewhere")
			}
			resp, body := get(t, srv.URL+tc.path, tc.header...)
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.says) {
				t.Errorf("%s: %s, want %d saying %q:\n%.400s", tc.path, resp.Status, tc.want, tc.says, body)
			}
		})
	}
}

// TestBrowserLogin: the form and the ?token= link set a cookie that
// opens the page, and lead to /ui/ without the token in the address.
func TestBrowserLogin(t *testing.T) {
	const token = "s3cret-token"
	u := newUI(t, nil, Options{Token: token, IsLoopback: func(*http.Request) bool { return false }, SecureCookie: true})
	srv := serve(t, u)
	check := func(resp *http.Response) {
		t.Helper()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
			t.Fatalf("%s to %q, want 303 to /ui/", resp.Status, resp.Header.Get("Location"))
		}
		var c *http.Cookie
		for _, k := range resp.Cookies() {
			if k.Name == cookieName {
				c = k
			}
		}
		if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || strings.Contains(c.Value, token) {
			t.Fatalf("cookie %+v", c)
		}
		page, body := get(t, srv.URL+"/ui/", "Cookie", c.Name+"="+c.Value)
		if page.StatusCode != http.StatusOK || !strings.Contains(body, `id="jobs-table"`) {
			t.Fatalf("with the cookie: %s", page.Status)
		}
	}
	resp, err := noRedirects.PostForm(srv.URL+"/ui/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check(resp)
	resp, _ = get(t, srv.URL+"/ui/?token="+token)
	check(resp)

	resp, err = noRedirects.PostForm(srv.URL+"/ui/login", url.Values{"token": {"guess"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) > 0 {
		t.Errorf("a wrong token: %s, cookies %v", resp.Status, resp.Cookies())
	}
}

// TestStreamDeliversBeats: the stream starts with a snapshot, then passes
// a heartbeat published meanwhile, its text escaped for HTML.
func TestStreamDeliversBeats(t *testing.T) {
	store := localStore(t)
	put(t, store, beatOf("billing", now))
	srv := serve(t, newUI(t, store, Options{PingEvery: time.Hour}))

	s := openStream(t, srv.URL+"/ui/events")
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("%s %q", s.resp.Status, s.resp.Header.Get("Content-Type"))
	}
	ev := s.until("snapshot")
	var snap snapshotEvent
	if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
		t.Fatalf("snapshot %q: %v", ev.data, err)
	}
	if len(snap.Beats) != 1 || snap.Beats[0].Service != "billing" || snap.Now == 0 {
		t.Fatalf("snapshot %+v", snap)
	}

	m := beatOf("payments", time.Now())
	m.Data = map[string]any{"queue": "<b>7</b>"}
	// The watch may not have looked at the directory yet: publish until
	// the beat comes through.
	for i := 0; ; i++ {
		put(t, store, m)
		ev = s.next()
		if ev.name == "beat" {
			break
		}
		if i > 100 {
			t.Fatalf("no beat event, last %+v", ev)
		}
	}
	if strings.Contains(ev.data, "<b>") || !strings.Contains(ev.data, `\u003cb\u003e7\u003c/b\u003e`) {
		t.Errorf("beat event not escaped for HTML: %s", ev.data)
	}
	var be beatEvent
	if err := json.Unmarshal([]byte(ev.data), &be); err != nil {
		t.Fatal(err)
	}
	if be.Beat.Service != "payments" || be.Beat.Data != "queue=<b>7</b>" || be.Beat.Alive != 90000 || be.Beat.Stale != 180000 {
		t.Errorf("beat %+v", be.Beat)
	}
}

// TestStreamCap: viewers beyond the cap are refused with a clear message
// while the page and the streams already open go on.
func TestStreamCap(t *testing.T) {
	store := localStore(t)
	u := newUI(t, store, Options{MaxStreams: 2, PingEvery: 50 * time.Millisecond})
	srv := serve(t, u)
	var open []*stream
	for range 2 {
		s := openStream(t, srv.URL+"/ui/events")
		s.until("snapshot")
		open = append(open, s)
	}
	for range 3 {
		resp, body := get(t, srv.URL+"/ui/events")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "too many live viewers (at most 2 at once)") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("beyond the cap: %s %q", resp.Status, body)
		}
	}
	if resp, _ := get(t, srv.URL+"/ui/"); resp.StatusCode != http.StatusOK {
		t.Errorf("the page at the stream cap: %s", resp.Status)
	}
	for _, s := range open {
		if ev := s.until(":"); ev.data != "ping" {
			t.Errorf("an open stream got %+v, want a ping", ev)
		}
	}
	// A viewer leaving frees its place.
	open[0].resp.Body.Close()
	for i := 0; ; i++ {
		s := openStream(t, srv.URL+"/ui/events")
		if s.resp.StatusCode == http.StatusOK {
			break
		}
		s.resp.Body.Close()
		if i > 200 {
			t.Fatal("the place of a viewer who left was not freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseEndsStreams: a replaced page ends its streams, so that their
// pages reconnect to the new one.
func TestCloseEndsStreams(t *testing.T) {
	u := newUI(t, localStore(t), Options{PingEvery: time.Hour})
	srv := serve(t, u)
	s := openStream(t, srv.URL+"/ui/events")
	s.until("snapshot")
	u.Close()
	if ev := s.next(); ev.name != "EOF" {
		t.Errorf("after Close: %+v, want the end of the stream", ev)
	}
	resp, _ := get(t, srv.URL+"/ui/events")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a new stream on a closed page: %s", resp.Status)
	}
}

func TestStaticAssets(t *testing.T) {
	srv := serve(t, newUI(t, nil, Options{}))
	for _, tc := range []struct{ path, ctype string }{
		{"/ui/static/app.js", "text/javascript; charset=utf-8"},
		{"/ui/static/style.css", "text/css; charset=utf-8"},
	} {
		resp, body := get(t, srv.URL+tc.path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.ctype || len(body) < 100 {
			t.Fatalf("%s: %s %q", tc.path, resp.Status, resp.Header.Get("Content-Type"))
		}
		etag := resp.Header.Get("ETag")
		again, _ := get(t, srv.URL+tc.path, "If-None-Match", etag)
		if etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("%s: ETag %q, asked again: %s", tc.path, etag, again.Status)
		}
	}
	for _, p := range []string{"/ui/static/nope.js", "/ui/static/..%2ftemplates%2fpage.html"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
	if resp, _ := get(t, srv.URL+"/ui"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %s %q", resp.Status, resp.Header.Get("Location"))
	}
}

func TestLiveness(t *testing.T) {
	th := heartbeat.DefaultThresholds()
	for _, tc := range []struct {
		age  time.Duration
		want string
	}{
		{0, "alive"}, {89 * time.Second, "alive"}, {90 * time.Second, "stale"}, {179 * time.Second, "stale"},
		{180 * time.Second, "dead"}, {-3 * time.Second, "alive"}, {-time.Minute, "future"},
	} {
		t.Run(tc.age.String(), func(t *testing.T) {
			if got := Liveness(beatOf("x", now.Add(-tc.age)), th, now); got != tc.want {
				t.Errorf("age %s: %s, want %s", tc.age, got, tc.want)
			}
		})
	}
}

// TestPageCapsRows: beyond MaxRows, the page shows the first jobs and
// services, problems first, says how many more there are and where to see
// them, and counts them all in the summary; the live stream's snapshot
// holds the services the page shows, and news of the others is left out.
func TestPageCapsRows(t *testing.T) {
	store := localStore(t)
	put(t, store, beatOf("alive-a", now.Add(-10*time.Second)))
	put(t, store, beatOf("alive-b", now.Add(-10*time.Second)))
	put(t, store, beatOf("dead-c", now.Add(-time.Hour)))
	st := sampleStatus()
	for i := range 5 {
		st.Jobs = append(st.Jobs, Job{Name: "tcp:ok" + strconv.Itoa(i), Type: "tcp", State: "succeeding", Status: "OK"})
	}
	u := newUI(t, store, Options{MaxRows: 2, Now: func() time.Time { return now },
		Status: func(context.Context) (Status, error) { return st, nil }})
	srv := serve(t, u)
	_, body := get(t, srv.URL+"/ui/")
	doc := parsePage(t, body)

	jobs := rows(t, doc, "jobs-table")
	if len(jobs) != 2 || attr(jobs[0], "data-job") != "command:<b>raw</b>" {
		t.Errorf("%d job rows, the first %q; want 2, the failing one first", len(jobs), attr(jobs[0], "data-job"))
	}
	more := func(id string) string {
		n := find(doc, func(n *html.Node) bool { return attr(n, "id") == id })
		if len(n) != 1 {
			t.Fatalf("no #%s on the page", id)
		}
		return textOf(n[0])
	}
	if got := more("more-jobs"); !strings.Contains(got, "And 6 more jobs") || !strings.Contains(got, "checker status") {
		t.Errorf("#more-jobs: %q", got)
	}
	beats := rows(t, doc, "beats")
	if len(beats) != 2 || attr(beats[0], "data-service") != "dead-c" {
		t.Errorf("%d heartbeat rows, the first %q; want 2, the dead one first", len(beats), attr(beats[0], "data-service"))
	}
	if got := more("more-beats"); !strings.Contains(got, "And 1 more service") {
		t.Errorf("#more-beats: %q", got)
	}
	summary := textOf(find(doc, func(n *html.Node) bool { return attr(n, "id") == "summary" })[0])
	for _, want := range []string{"8 jobs: 1 failing 1 never run", "3 heartbeats: 2 alive 0 stale 1 dead"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary %q lacks %q", summary, want)
		}
	}

	s := openStream(t, srv.URL+"/ui/events")
	var snap snapshotEvent
	if err := json.Unmarshal([]byte(s.until("snapshot").data), &snap); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range snap.Beats {
		names = append(names, b.Service)
	}
	if len(names) != 2 || names[0] != "dead-c" {
		t.Errorf("snapshot of %q, want 2 services, dead-c first", names)
	}
	shown, hidden := names[1], "alive-a"
	if shown == "alive-a" {
		hidden = "alive-b"
	}
	put(t, store, beatOf(hidden, now))
	put(t, store, beatOf(shown, now))
	var ev beatEvent
	if err := json.Unmarshal([]byte(s.until("beat").data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Beat.Service != shown {
		t.Errorf("the stream sent a beat of %q, which the page does not show; want %q", ev.Beat.Service, shown)
	}
}

// TestDetailsOnlyWithAToken: the mail server's reply and the last run's
// error reach only a request carrying a token (ui_token as bearer or
// cookie, or the other token Privileged accepts); a loopback viewer
// without one (every viewer behind a local reverse proxy) sees the class.
func TestDetailsOnlyWithAToken(t *testing.T) {
	const secret = "smtp dial mail.internal.example:25 user secretacct@corp"
	st := sampleStatus()
	st.Mail, st.MailProblem, st.MailClass = "problem", "sending mail failed: "+secret, "the last notification send failed at 2030-01-01T00:00:00Z"
	st.LastRun.Error = "state at /var/lib/checker/checker.state: " + secret
	status := func(context.Context) (Status, error) { return st, nil }
	push := func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer push-token" }
	for _, tc := range []struct {
		name, token string
		header      []string
		detail      bool
	}{
		{"loopback, no token set", "", nil, false},
		{"loopback, push token", "", []string{"Authorization", "Bearer push-token"}, true},
		{"ui_token as bearer", "ui-token", []string{"Authorization", "Bearer ui-token"}, true},
		{"ui_token cookie", "ui-token", []string{"Cookie", cookieName + "=" + cookieValue("ui-token", time.Now().Add(time.Hour))}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, newUI(t, nil, Options{Token: tc.token, Status: status, Privileged: push}))
			resp, body := get(t, srv.URL+"/ui/", tc.header...)
			if resp.StatusCode != 200 {
				t.Fatalf("GET /ui/: %s", resp.Status)
			}
			if got := strings.Contains(body, "secretacct"); got != tc.detail {
				t.Errorf("details shown: %v, want %v", got, tc.detail)
			}
			if !tc.detail && (!strings.Contains(body, "the last notification send failed at 2030-01-01T00:00:00Z") || strings.Contains(body, "/var/lib/checker")) {
				t.Errorf("without a token the page should give the class and no path:\n%.2000s", body)
			}
		})
	}
	if st.LastRun.Error == "" || !strings.Contains(st.MailProblem, "secretacct") {
		t.Error("the shared status was changed")
	}
}
