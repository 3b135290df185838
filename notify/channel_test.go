package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/state"
)

// receiver is a loopback HTTP server standing in for a chat service: it
// records every request and answers with status and body, or not at all
// while hang is set.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex // guards the fields below
	got    []request
	status int
	body   string
	hang   chan struct{} // non-nil: requests wait for it to close
}

// request is one request a receiver got.
type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

func newReceiver(t *testing.T, body string) *receiver {
	t.Helper()
	r := &receiver{t: t, status: http.StatusOK, body: body}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.got = append(r.got, request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: b})
	status, body, hang := r.status, r.body, r.hang
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// host is the receiver's host:port.
func (r *receiver) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func (r *receiver) answer(status int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body = status, body
}

// only returns the one request the receiver got, failing the test unless
// there was exactly one.
func (r *receiver) only() request {
	r.t.Helper()
	got := r.requests()
	if len(got) != 1 {
		r.t.Fatalf("receiver got %d requests, want 1: %+v", len(got), got)
	}
	return got[0]
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mustChannel parses and checks a channel, failing the test on an error.
func mustChannel(t *testing.T, name, raw string) *Channel {
	t.Helper()
	c, err := ParseChannel(name, raw)
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		t.Fatalf("ParseChannel(%q): %v", name, err)
	}
	return c
}

// post posts m and fails the test if Post does not return within a
// generous guard (not a timing assertion: it catches a hang).
func post(t *testing.T, c *Channel, m ChatMessage) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Post(context.Background(), m) }()
	select {
	case err := <-done:
		return err
	case <-time.After(c.Timeout + 30*time.Second):
		t.Fatal("Post did not return")
		return nil
	}
}

// noSecrets fails the test if any secret appears in text.
func noSecrets(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds the secret %q: %s", what, s, text)
		}
	}
}

var testMessage = ChatMessage{
	Title:  "[web1] tcp:db is failing: CRITICAL - refused",
	Text:   "tcp:db is failing on web1.\n\nResult: CRITICAL - refused",
	Fields: map[string]string{FieldServer: "web1", FieldStatus: "CRITICAL", FieldJobs: "tcp:db", FieldNotices: "1", FieldKind: "failure"},
}

func TestChannelWebhookPostsJSON(t *testing.T) {
	rcv := newReceiver(t, "")
	c := mustChannel(t, "hook", "http://"+rcv.host()+"/hooks/s3cretpath?x=1")
	if c.Service != "webhook" || c.String() != "hook (webhook at "+rcv.host()+")" {
		t.Errorf("channel %q service %q", c.String(), c.Service)
	}
	if err := post(t, c, testMessage); err != nil {
		t.Fatalf("Post: %v", err)
	}
	req := rcv.only()
	if req.Method != http.MethodPost || req.Path != "/hooks/s3cretpath" || req.Query != "x=1" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s?%s, Content-Type %q", req.Method, req.Path, req.Query, req.Header.Get("Content-Type"))
	}
	var doc WebhookDoc
	if err := json.Unmarshal(req.Body, &doc); err != nil {
		t.Fatalf("body %q: %v", req.Body, err)
	}
	want := WebhookDoc{Schema: 1, Title: testMessage.Title, Message: testMessage.Text, Server: "web1", Status: "CRITICAL",
		Kind: "failure", Jobs: "tcp:db", Notices: 1}
	if doc != want {
		t.Errorf("posted %+v, want %+v", doc, want)
	}
}

func TestChannelWebhookAnswers(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string // "" for success
	}{
		{200, "", ""},
		{204, "", ""},
		{302, "", "webhook answered 302 Found"},
		{404, "no such hook\n", "webhook answered 404 Not Found: no such hook"},
		{500, strings.Repeat("x", 5000), "webhook answered 500 Internal Server Error: xxx"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			rcv := newReceiver(t, tt.body)
			rcv.answer(tt.status, tt.body)
			err := post(t, mustChannel(t, "hook", "http://"+rcv.host()+"/h"), testMessage)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Post: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want) || len(err.Error()) > 300):
				t.Errorf("Post: %v, want %q…, short", err, tt.want)
			}
		})
	}
}

func TestChannelNtfy(t *testing.T) {
	rcv := newReceiver(t, `{"id":"x1","event":"message","topic":"alerts-9f3k"}`)
	c := mustChannel(t, "push", "ntfy://bob:pa55word@"+rcv.host()+"/alerts-9f3k?disabletls=yes&priority=high")
	if c.String() != "push (ntfy at "+rcv.host()+")" {
		t.Errorf("String() = %q", c.String())
	}
	if err := post(t, c, testMessage); err != nil {
		t.Fatalf("Post: %v", err)
	}
	req := rcv.only()
	if req.Path != "/alerts-9f3k" || string(req.Body) != testMessage.Text {
		t.Errorf("request %s body %q", req.Path, req.Body)
	}
	if got := req.Header.Get("Title"); got != testMessage.Title {
		t.Errorf("Title header %q, want %q", got, testMessage.Title)
	}
	if got, want := req.Header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:pa55word")); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if !strings.EqualFold(req.Header.Get("Priority"), "high") {
		t.Errorf("Priority header %q, want the URL's priority", req.Header.Get("Priority"))
	}
}

func TestChannelGotify(t *testing.T) {
	const token = "AbCdEfGhIjKlMn0"
	rcv := newReceiver(t, `{"id":1,"appid":1,"message":"m","title":"t","priority":0,"date":"2026-01-01T00:00:00Z"}`)
	c := mustChannel(t, "phone", "gotify://"+rcv.host()+"/"+token+"?disabletls=yes")
	if err := post(t, c, testMessage); err != nil {
		t.Fatalf("Post: %v", err)
	}
	req := rcv.only()
	if req.Path != "/message" || !strings.Contains(req.Query, "token="+token) {
		t.Errorf("request %s?%s", req.Path, req.Query)
	}
	var doc struct{ Title, Message string }
	if err := json.Unmarshal(req.Body, &doc); err != nil || doc.Title != testMessage.Title || doc.Message != testMessage.Text {
		t.Errorf("body %s (%v)", req.Body, err)
	}
}

func TestChannelMattermostTitleInText(t *testing.T) {
	rcv := newReceiver(t, "")
	c := mustChannel(t, "mm", "mattermost://"+rcv.host()+"/hooktoken1234?disabletls=yes")
	if err := post(t, c, testMessage); err != nil {
		t.Fatalf("Post: %v", err)
	}
	req := rcv.only()
	var doc struct{ Text string }
	if err := json.Unmarshal(req.Body, &doc); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	if req.Path != "/hooks/hooktoken1234" || doc.Text != testMessage.Title+"\n\n"+testMessage.Text {
		t.Errorf("request %s text %q", req.Path, doc.Text)
	}
}

// TestChannelErrorsHoldNoSecret: whatever goes wrong — the server refuses,
// is down, hangs — the error says so without any secret of the URL, also
// those the service puts into its API URL (gotify's token as a query
// parameter).
func TestChannelErrorsHoldNoSecret(t *testing.T) {
	const (
		gotifyToken = "AsEcReTtOkEn123"
		ntfyPass    = "n7fyPassw0rd"
		hookPath    = "zq8webhooksecret"
	)
	rcv := newReceiver(t, `{"error":"boom"}`)
	down := closedAddr(t)
	tests := []struct {
		name    string
		url     string
		setup   func()
		want    string
		secrets []string
	}{
		{"webhook 500", "http://" + rcv.host() + "/" + hookPath, func() { rcv.answer(500, "no") }, "500", []string{hookPath}},
		{"webhook down", "http://" + down + "/" + hookPath, nil, "connection refused", []string{hookPath}},
		{"gotify down", "gotify://" + down + "/" + gotifyToken + "?disabletls=yes", nil, "connection refused", []string{gotifyToken}},
		{"gotify 401", "gotify://" + rcv.host() + "/" + gotifyToken + "?disabletls=yes", func() { rcv.answer(401, `{"error":"Unauthorized","errorCode":401,"errorDescription":"bad token"}`) }, "", []string{gotifyToken}},
		{"ntfy down", "ntfy://u1:" + ntfyPass + "@" + down + "/topic-zz?disabletls=yes", nil, "connection refused", []string{ntfyPass}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			c := mustChannel(t, "x", tt.url)
			err := post(t, c, testMessage)
			if err == nil {
				t.Fatal("Post succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			noSecrets(t, "error", err.Error(), tt.secrets...)
		})
	}
}

// TestChannelHungServerTimesOut: a server that never answers costs the
// channel's timeout, for the webhook (which takes a context) and for a
// shoutrrr service (which does not).
func TestChannelHungServerTimesOut(t *testing.T) {
	for _, tt := range []struct{ name, url, want string }{
		{"webhook", "http://%s/h", "webhook: no answer within 300ms"},
		{"ntfy", "ntfy://%s/topic?disabletls=yes", "ntfy: no answer within 300ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, "")
			rcv.mu.Lock()
			rcv.hang = make(chan struct{})
			rcv.mu.Unlock()
			c := mustChannel(t, "x", fmt.Sprintf(tt.url, rcv.host()))
			c.Timeout = 300 * time.Millisecond
			if err := post(t, c, testMessage); err == nil || err.Error() != tt.want {
				t.Fatalf("Post to a hung server: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestParseChannel checks URLs without connecting: each service's required
// parts, unknown services, bad names; and no message repeats a secret.
func TestParseChannel(t *testing.T) {
	tests := []struct {
		name, url string
		service   string // on success
		want      string // error text, "" for success
		secrets   []string
	}{
		{"webhook", "https://hooks.example.com/services/T0/B0/XXXX", "webhook", "", nil},
		{"webhook with basic auth", "https://user:pw@hooks.example.com/in", "webhook", "", nil},
		{"generic is not offered", "generic://example.com/api/post", "", `unknown channel service "generic"`, nil},
		{"slack webhook", "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook", "slack", "", nil},
		{"slack bot", "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L", "slack", "", nil},
		{"slack bad token", "slack://xoxb:short-s3cr3tvalue@C001", "", "invalid slack token", []string{"s3cr3tvalue"}},
		{"telegram", "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@mychannel", "telegram", "", nil},
		{"telegram no chats", "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram", "", "", []string{"AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}},
		{"telegram bad token", "telegram://notanumber:S3cr3tT0k3nAbc@telegram?chats=@x", "", "", []string{"S3cr3tT0k3nAbc"}},
		{"discord", "discord://t0kenv4lue@123456789", "discord", "", nil},
		{"discord no id", "discord://t0kenv4lue@", "", "", []string{"t0kenv4lue"}},
		{"teams", "teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05?host=example.webhook.office.com", "teams", "", nil},
		{"teams no host", "teams://11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/33333333012222222222333333333344/44444444-4444-4444-8444-cccccccccccc/V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05", "", "host", []string{"V2ESyij_gAljSoUQHvZoZYzlpAoAXExyOl26dlf1xHEx05"}},
		{"matrix", "matrix://bot:m4trixpass@matrix.example.com?rooms=!room:example.com", "matrix", "", nil},
		{"matrix no password", "matrix://bot@matrix.example.com", "", "no password or access token", nil},
		{"ntfy", "ntfy://ntfy.example.com/alerts", "ntfy", "", nil},
		{"ntfy no topic", "ntfy://user:ntfypa55@ntfy.example.com", "", "topic", []string{"ntfypa55"}},
		{"ntfy unknown option", "ntfy://ntfy.example.com/alerts?colour=red", "", "colour", nil},
		{"gotify", "gotify://gotify.example.com/AbCdEfGhIjKlMn0", "gotify", "", nil},
		{"gotify bad token", "gotify://gotify.example.com/n0tAt0ken", "", "not a gotify token", []string{"n0tAt0ken"}},
		{"gotify no host", "gotify:///AbCdEfGhIjKlMn0", "", "no host", []string{"AbCdEfGhIjKlMn0"}},
		{"mattermost", "mattermost://chat.example.com/hooktoken", "mattermost", "", nil},
		{"unknown service", "pigeon://coop/s3cr3tbird", "", `unknown channel service "pigeon"`, []string{"s3cr3tbird"}},
		{"no scheme", "just-a-word", "", "not a URL", nil},
		{"unparsable", "https://user:p4ss%zz@host/", "", "not a valid URL", []string{"p4ss"}},
		{"webhook without host", "https:///path/s3cretpath", "", "no host", []string{"s3cretpath"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseChannel("ops", tt.url)
			if err == nil {
				err = c.Check()
				if cerr := CheckChannel("ops", tt.url); (cerr == nil) != (err == nil) {
					t.Errorf("CheckChannel: %v, ParseChannel and Check: %v", cerr, err)
				}
			}
			if tt.service != "" {
				if err != nil {
					t.Fatalf("ParseChannel: %v", err)
				}
				if c.Service != tt.service || !strings.HasPrefix(c.String(), "ops (") {
					t.Errorf("service %q, String %q", c.Service, c.String())
				}
				noSecrets(t, "String()", c.String(), strings.TrimPrefix(tt.url, c.Service+"://"))
				return
			}
			if err == nil {
				t.Fatalf("ParseChannel accepted %q", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
			noSecrets(t, "error", err.Error(), tt.secrets...)
		})
	}
}

func TestParseChannelName(t *testing.T) {
	for _, name := range []string{"ops@example.com", "ops chat", "-x", "", "a,b"} {
		if _, err := ParseChannel(name, "ntfy://ntfy.example.com/alerts"); err == nil {
			t.Errorf("channel name %q accepted", name)
		}
	}
	c, err := ParseChannel("Ops-Chat_2.b", "ntfy://ntfy.example.com/alerts")
	if err != nil || c.Name != "ops-chat_2.b" {
		t.Errorf("ParseChannel: %v, name %q", err, c.Name)
	}
}

func TestRedactLeavesOrdinaryText(t *testing.T) {
	c := mustChannel(t, "hook", "https://hooks.example.com/api/v1/abcdefghijkl?format=json")
	got := c.Redact("POST to hooks.example.com/api/v1/abcdefghijkl failed: json: bad; retry abcdefghijkl")
	if want := "POST to hooks.example.com*** failed: json: bad; retry ***"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}

// TestRedactShortSecretsAlone: a short secret (a webhook path "/hook") is
// removed where it stands alone, not from inside words ("webhook"); a
// long one wherever it is.
func TestRedactShortSecretsAlone(t *testing.T) {
	c := mustChannel(t, "dead-hook", "http://127.0.0.1:1/hook")
	got := c.Redact(`webhook at 127.0.0.1:1: Post "http://127.0.0.1:1/hook": refused; hook, hooks, (hook)`)
	if want := `webhook at 127.0.0.1:1: Post "***": refused; ***, hooks, (***)`; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	c = mustChannel(t, "slack", "http://127.0.0.1:1/T0123/B0456/xoxbs3cretTokenValue")
	got = c.Redact("token xoxbs3cretTokenValue inside Xxoxbs3cretTokenValueX and é/B0456/ too")
	if want := "token *** inside X***X and é/***/ too"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}

// TestDeliverChannelsAndMail: one run owing two notices to a mail address
// and to two channels sends one mail and one message per channel, each a
// digest of both; a channel that fails is reported on its own.
func TestDeliverChannelsAndMail(t *testing.T) {
	hook := newReceiver(t, "")
	push := newReceiver(t, `{"id":"1"}`)
	down := closedAddr(t)
	var printed strings.Builder
	out := Outlets{
		Mail: &Printer{W: &printed},
		Channels: map[string]Poster{
			"hook": mustChannel(t, "hook", "http://"+hook.host()+"/h00ksecret"),
			"push": mustChannel(t, "push", "ntfy://"+push.host()+"/topic?disabletls=yes"),
			"dead": mustChannel(t, "dead", "http://"+down+"/deadsecret"),
		},
	}
	to := []state.Delivery{{To: "ops@example.test"}, {To: "hook"}, {To: "PUSH"}, {To: "dead"}}
	a := state.Notice{Job: "tcp:db", Kind: state.KindFailure, Status: "CRITICAL", Subject: "tcp:db is failing", Body: "db body\n", To: to, Created: fixedNow(), Queued: fixedNow()}
	b := state.Notice{Job: "http:web", Kind: state.KindFailure, Status: "WARNING", Subject: "http:web is failing", Body: "web body\n", To: to, Created: fixedNow(), Queued: fixedNow()}
	rep := Deliver(context.Background(), out, Composer{ServerName: "web1", Now: fixedNow}, []state.Notice{a, b})

	if !rep.Delivered["ops@example.test"] || !rep.Delivered["hook"] || !rep.Delivered["push"] || rep.Mails != 3 {
		t.Errorf("delivered %v (%d)", rep.Delivered, rep.Mails)
	}
	if rep.Failed["dead"] == nil || !rep.Channels["dead"] || rep.Channels["ops@example.test"] {
		t.Errorf("failed %v, channels %v", rep.Failed, rep.Channels)
	}
	if msg := rep.Err().Error(); !strings.HasPrefix(msg, "channel dead: ") || strings.Contains(msg, "deadsecret") {
		t.Errorf("Err() = %q", msg)
	}
	if n := strings.Count(printed.String(), "--- mail not sent"); n != 1 {
		t.Errorf("%d mails printed, want one digest", n)
	}
	var doc WebhookDoc
	if err := json.Unmarshal(hook.only().Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Notices != 2 || doc.Jobs != "tcp:db, http:web" || doc.Status != "CRITICAL" || doc.Kind != "failure" ||
		!strings.HasPrefix(doc.Title, "[web1] 2 notices: tcp:db is failing; http:web is failing") ||
		!strings.Contains(doc.Message, "db body") || !strings.Contains(doc.Message, "web body") {
		t.Errorf("webhook digest %+v", doc)
	}
	if body := string(push.only().Body); !strings.Contains(body, "1. tcp:db is failing") || !strings.Contains(body, "2. http:web is failing") {
		t.Errorf("ntfy digest %q", body)
	}
}

func TestDeliverWithoutMail(t *testing.T) {
	n := state.Notice{Job: "j", Kind: state.KindFailure, Subject: "s", Body: "b", To: []state.Delivery{{To: "ops@example.test"}}}
	rep := Deliver(context.Background(), Outlets{}, Composer{ServerName: "x"}, []state.Notice{n})
	if err := rep.Failed["ops@example.test"]; err == nil || !strings.Contains(err.Error(), "mail is not configured") {
		t.Errorf("mail without a sender: %v", err)
	}
}

func TestComposeChat(t *testing.T) {
	c := Composer{ServerName: "web1", Now: fixedNow, BustThreading: true}
	t.Run("single", func(t *testing.T) {
		n := notice("tcp:db", state.KindFailure, "CRITICAL", "tcp:db/1", true)
		m := c.ComposeChat("hook", []state.Notice{n})
		if m.Title != "[web1] tcp:db failure" || m.Text != "tcp:db body" {
			t.Errorf("title %q text %q (no subject token, the body as the mail's)", m.Title, m.Text)
		}
	})
	t.Run("held back", func(t *testing.T) {
		n := notice("tcp:db", state.KindFailure, "CRITICAL", "", false)
		n.To = []state.Delivery{{To: "hook", Attempts: 3, LastError: "connection refused"}}
		n.Queued = fixedNow().Add(-10 * time.Minute)
		m := c.ComposeChat("hook", []state.Notice{n})
		if !strings.HasPrefix(m.Text, "Held back: this notice was first queued at") || !strings.Contains(m.Text, "3 failed attempts; last error: connection refused") {
			t.Errorf("text %q", m.Text)
		}
	})
	t.Run("huge digest is cut and keeps every subject", func(t *testing.T) {
		var items []state.Notice
		for i := range 40 {
			n := notice(fmt.Sprintf("tcp:j%02d", i), state.KindFailure, "CRITICAL", "", false)
			n.Body = strings.Repeat("long body line\n", 50)
			items = append(items, n)
		}
		m := c.ComposeChat("hook", items)
		if len(m.Text) > maxChatText {
			t.Errorf("text of %d bytes, more than %d", len(m.Text), maxChatText)
		}
		for i := range 40 {
			if !strings.Contains(m.Text, fmt.Sprintf("tcp:j%02d failure", i)) {
				t.Errorf("subject %d missing from the cut digest", i)
			}
		}
		if strings.Contains(m.Text, "long body line") || !strings.Contains(m.Text, "Details cut to fit") {
			t.Errorf("bodies not cut: %q", m.Text[:200])
		}
		if m.Fields[FieldNotices] != "40" || len(m.Title) > maxSubject+len("[web1] ")+3 {
			t.Errorf("fields %v, title of %d bytes", m.Fields, len(m.Title))
		}
	})
}

func TestPrinterPrintsChannelMessages(t *testing.T) {
	var b strings.Builder
	p := &Printer{W: &b}
	c := mustChannel(t, "chat", "ntfy://user:s3cretpw@ntfy.example.com/topic-secret")
	if err := p.Channel(c).Post(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "--- channel message not sent (nomail) ---\nTo: chat (ntfy at ntfy.example.com)\nTitle: "+testMessage.Title) {
		t.Errorf("printed %q", out)
	}
	noSecrets(t, "printed message", out, "s3cretpw", "topic-secret")
}

// benchChannels are one webhook, one shoutrrr service with a server and
// one with a token for a host: what a [channels] section typically holds.
var benchChannels = [][2]string{
	{"hook", "https://hooks.example.com/in/abcdef123456"},
	{"chat", "ntfy://ntfy.example.com/alerts"},
	{"slack", "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook"},
}

// BenchmarkParseChannels is what every run pays per three channels to
// build its outlets.
func BenchmarkParseChannels(b *testing.B) {
	for b.Loop() {
		for _, c := range benchChannels {
			if _, err := ParseChannel(c[0], c[1]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCheckChannels is what loading the settings pays per three
// channels to validate them.
func BenchmarkCheckChannels(b *testing.B) {
	for b.Loop() {
		for _, c := range benchChannels {
			if err := CheckChannel(c[0], c[1]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
