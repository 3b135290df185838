package heartbeat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushServer serves PushHandler the way checker serve mounts it.
func pushServer(t *testing.T, store Store, token string, now func() time.Time) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/heartbeat/{service}", PushHandler(store, token, now))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type pushReply struct {
	code   int
	body   string
	header http.Header
}

func doPush(t *testing.T, srv *httptest.Server, method, path, auth string, body io.Reader) pushReply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return pushReply{resp.StatusCode, string(b), resp.Header}
}

func TestPushHandler(t *testing.T) {
	now := time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	oversize := strings.Repeat(" ", MaxMessageSize+1)

	tests := []struct {
		name     string
		token    string
		method   string
		path     string
		auth     string
		body     string
		chunked  bool // send without Content-Length
		code     int
		reply    string // substring of the reply body
		stored   string // service expected in the store afterwards
		checkMsg func(t *testing.T, m Message)
	}{
		{name: "empty body, no token", method: "POST", path: "/heartbeat/backup", code: 200, reply: "OK\n", stored: "backup",
			checkMsg: func(t *testing.T, m Message) {
				if !m.Timestamp.Equal(now) || m.InstanceID != "push-127.0.0.1" {
					t.Errorf("stored %+v, want timestamp now and instance push-127.0.0.1", m)
				}
			}},
		{name: "JSON body", method: "POST", path: "/heartbeat/backup",
			body: `{"service_name":"backup","instance_id":"nas1","timestamp":"2025-01-16T08:29:00+01:00","bytes":123}`,
			code: 200, stored: "backup",
			checkMsg: func(t *testing.T, m Message) {
				if m.InstanceID != "nas1" || !m.Timestamp.Equal(time.Date(2025, 1, 16, 7, 29, 0, 0, time.UTC)) || m.Data["bytes"] == nil {
					t.Errorf("stored %+v", m)
				}
			}},
		{name: "JSON body without name or timestamp", method: "POST", path: "/heartbeat/backup", body: `{"files": 3}`,
			code: 200, stored: "backup",
			checkMsg: func(t *testing.T, m Message) {
				if !m.Timestamp.Equal(now) || m.Data["files"] == nil {
					t.Errorf("stored %+v", m)
				}
			}},
		{name: "token required and given", token: "t0k", method: "POST", path: "/heartbeat/backup", auth: "Bearer t0k", code: 200, stored: "backup"},
		{name: "token scheme is case-insensitive", token: "t0k", method: "POST", path: "/heartbeat/backup", auth: "bearer t0k", code: 200, stored: "backup"},
		{name: "token missing", token: "t0k", method: "POST", path: "/heartbeat/backup", code: 401, reply: "bearer token"},
		{name: "token wrong", token: "t0k", method: "POST", path: "/heartbeat/backup", auth: "Bearer nope", code: 401},
		{name: "token prefix is not enough", token: "t0k", method: "POST", path: "/heartbeat/backup", auth: "Bearer t0", code: 401},
		{name: "basic auth refused", token: "t0k", method: "POST", path: "/heartbeat/backup", auth: "Basic dDBrOg==", code: 401},
		{name: "bad service name", method: "POST", path: "/heartbeat/bad%20name", code: 400, reply: "not allowed"},
		{name: "service name too long", method: "POST", path: "/heartbeat/" + strings.Repeat("a", 129), code: 400, reply: "longer than 128"},
		{name: "mismatched service_name", method: "POST", path: "/heartbeat/backup",
			body: `{"service_name":"other","timestamp":"2025-01-16T08:29:00Z"}`, code: 400, reply: `"other" in the body does not match "backup"`},
		{name: "malformed JSON", method: "POST", path: "/heartbeat/backup", body: `{"x":`, code: 400, reply: "not valid JSON"},
		{name: "not an object", method: "POST", path: "/heartbeat/backup", body: `done`, code: 400, reply: "not a JSON object"},
		{name: "bad timestamp", method: "POST", path: "/heartbeat/backup", body: `{"timestamp":"now"}`, code: 400, reply: "RFC 3339"},
		{name: "oversize body", method: "POST", path: "/heartbeat/backup", body: oversize, code: 413, reply: "limit"},
		{name: "oversize chunked body", method: "POST", path: "/heartbeat/backup", body: oversize, chunked: true, code: 413, reply: "limit"},
		{name: "GET refused", method: "GET", path: "/heartbeat/backup", code: 405, reply: "use POST"},
		{name: "method checked before token", token: "t0k", method: "PUT", path: "/heartbeat/backup", code: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openTestLocal(t)
			srv := pushServer(t, store, tt.token, clock)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length from net/http
				}
			}
			r := doPush(t, srv, tt.method, tt.path, tt.auth, body)
			if r.code != tt.code {
				t.Fatalf("status %d (%q), want %d", r.code, r.body, tt.code)
			}
			if !strings.Contains(r.body, tt.reply) {
				t.Errorf("reply %q does not contain %q", r.body, tt.reply)
			}
			if tt.code == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", r.header.Get("Allow"))
			}
			if tt.code == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
			list, err := store.List(context.Background())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if tt.stored == "" {
				if len(list) != 0 {
					t.Errorf("stored %+v for a refused request", list)
				}
				return
			}
			if len(list) != 1 || list[0].ServiceName != tt.stored {
				t.Fatalf("store holds %+v, want one heartbeat of %s", list, tt.stored)
			}
			if tt.checkMsg != nil {
				tt.checkMsg(t, list[0])
			}
		})
	}
}

// logTo returns a debug logger writing into a buffer the test reads.
func logTo() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPushHandlerStoreFailures(t *testing.T) {
	down := openTestRedis(t, closedAddr(t), Patterns{})
	broken := openTestLocal(t)
	if err := os.RemoveAll(broken.Dir()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		store   Store
		code    int
		reply   string
		secret  string // in the log, never in the reply
		logLine string
	}{
		{"unreachable store", down, http.StatusServiceUnavailable, "the heartbeat store is unreachable", "127.0.0.1:", "the store is unreachable"},
		{"failing store", broken, http.StatusBadGateway, "the heartbeat store failed", broken.Dir(), "the store failed"},
		{"too many services", tooMany{broken}, http.StatusInsufficientStorage, "max_services", "", "maximum number of services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := logTo()
			srv := httptest.NewServer(NewPushHandler(tt.store, PushOptions{Log: log}))
			t.Cleanup(srv.Close)
			r := doPush(t, srv, "POST", "/heartbeat/backup", "", nil)
			if r.code != tt.code || !strings.Contains(r.body, tt.reply) {
				t.Errorf("reply %d %q, want %d containing %q", r.code, r.body, tt.code, tt.reply)
			}
			if tt.secret != "" && strings.Contains(r.body, tt.secret) {
				t.Errorf("reply %q reveals %q", r.body, tt.secret)
			}
			if got := buf.String(); !strings.Contains(got, tt.logLine) || !strings.Contains(got, tt.secret) || !strings.Contains(got, "service=backup") {
				t.Errorf("log %q, want %q with %q and the service", got, tt.logLine, tt.secret)
			}
		})
	}
}

// tooMany is a store that already keeps its maximum of services.
type tooMany struct{ Store }

func (tooMany) Put(context.Context, Message) error {
	return fmt.Errorf("local store: %w", ErrTooManyServices)
}

// TestPushAccess: without a token only this machine may push, judged by the
// TCP peer address alone; with one, only its holders, from anywhere.
func TestPushAccess(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		remote     string
		forwarded  string // X-Forwarded-For, which must change nothing
		auth       string
		code       int
		reply      string
		logRefusal string
	}{
		{name: "loopback, no token", remote: "127.0.0.1:40000", code: 200},
		{name: "another loopback address", remote: "127.0.0.2:40000", code: 200},
		{name: "IPv6 loopback", remote: "[::1]:40000", code: 200},
		{name: "IPv4-mapped loopback", remote: "[::ffff:127.0.0.1]:40000", code: 200},
		{name: "other host, no token", remote: "192.0.2.7:40000", code: 403, reply: "set [serve] push_token", logRefusal: "only this machine may push"},
		{name: "other IPv6 host, no token", remote: "[2001:db8::7]:40000", code: 403, reply: "push_token"},
		{name: "forwarded-for loopback is not loopback", remote: "192.0.2.7:40000", forwarded: "127.0.0.1", code: 403},
		{name: "unparsable peer address", remote: "somewhere", code: 403},
		{name: "other host with the token", token: "t0k", remote: "192.0.2.7:40000", auth: "Bearer t0k", code: 200},
		{name: "other host with a wrong token", token: "t0k", remote: "192.0.2.7:40000", auth: "Bearer nope", code: 401, logRefusal: "missing or wrong token"},
		{name: "loopback needs the token once one is set", token: "t0k", remote: "127.0.0.1:40000", code: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openTestLocal(t)
			log, buf := logTo()
			h := NewPushHandler(store, PushOptions{Token: tt.token, Log: log})
			req := httptest.NewRequest("POST", "/heartbeat/backup", nil)
			req.RemoteAddr = tt.remote
			if tt.forwarded != "" {
				req.Header.Set("X-Forwarded-For", tt.forwarded)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.reply) {
				t.Fatalf("reply %d %q, want %d containing %q", rec.Code, rec.Body.String(), tt.code, tt.reply)
			}
			_, stored, err := store.Get(context.Background(), "backup")
			if err != nil || stored != (tt.code == 200) {
				t.Errorf("stored = %v (%v), want %v", stored, err, tt.code == 200)
			}
			logged := buf.String()
			if tt.code == 200 && !strings.Contains(logged, "level=DEBUG msg=\"heartbeat push accepted\" service=backup") {
				t.Errorf("accepted push not logged at debug: %q", logged)
			}
			if tt.logRefusal != "" && (!strings.Contains(logged, tt.logRefusal) || !strings.Contains(logged, tt.remote)) {
				t.Errorf("log %q, want %q naming %s", logged, tt.logRefusal, tt.remote)
			}
		})
	}
}

// blockingStore holds every Put until released or the context ends.
type blockingStore struct {
	Store
	entered chan struct{}
	release chan struct{}
}

func (b blockingStore) Put(ctx context.Context, m Message) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPushInFlightBound: pushes beyond MaxInFlight wait for a turn, then
// are told to retry; a hung store is given StoreTimeout, not forever.
func TestPushInFlightBound(t *testing.T) {
	store := blockingStore{Store: openTestLocal(t), entered: make(chan struct{}, 4), release: make(chan struct{})}
	h := NewPushHandler(store, PushOptions{MaxInFlight: 2, StoreTimeout: time.Hour})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	results := make(chan pushReply, 2)
	for range 2 {
		go func() { results <- doPush(t, srv, "POST", "/heartbeat/a", "", nil) }()
	}
	for range 2 {
		<-store.entered
	}
	// Both turns are taken: the third waits its two seconds, then 503.
	r := doPush(t, srv, "POST", "/heartbeat/b", "", nil)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") || r.header.Get("Retry-After") == "" {
		t.Errorf("push beyond the bound: %d %q, want 503 busy with Retry-After", r.code, r.body)
	}
	close(store.release)
	for range 2 {
		if r := <-results; r.code != 200 {
			t.Errorf("push holding a turn: %d %q, want 200", r.code, r.body)
		}
	}

	hung := blockingStore{Store: openTestLocal(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv2 := httptest.NewServer(NewPushHandler(hung, PushOptions{StoreTimeout: 50 * time.Millisecond}))
	t.Cleanup(srv2.Close)
	if r := doPush(t, srv2, "POST", "/heartbeat/c", "", nil); r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "unreachable") {
		t.Errorf("push to a hung store: %d %q, want 503 unreachable", r.code, r.body)
	}
}

func TestPushHandlerWithoutPathWildcard(t *testing.T) {
	store := openTestLocal(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/heartbeat/cronjob", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	PushHandler(store, "", nil).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d %q", rec.Code, rec.Body.String())
	}
	if _, ok, err := store.Get(context.Background(), "cronjob"); !ok || err != nil {
		t.Errorf("Get(cronjob) = %v, %v", ok, err)
	}
}

// TestPushWaitersBound: beyond the pushes that may wait for a turn, a push
// is told to retry at once rather than holding its connection.
func TestPushWaitersBound(t *testing.T) {
	store := blockingStore{Store: openTestLocal(t), entered: make(chan struct{}, 8), release: make(chan struct{})}
	srv := httptest.NewServer(NewPushHandler(store, PushOptions{MaxInFlight: 1, StoreTimeout: time.Hour}))
	t.Cleanup(srv.Close)
	holder := make(chan pushReply, 1)
	go func() { holder <- doPush(t, srv, "POST", "/heartbeat/holder", "", nil) }()
	<-store.entered // the only turn is taken until the store is released

	// waitersPerTurn of them wait; one more is refused without waiting.
	results := make(chan pushReply, waitersPerTurn+1)
	for i := range waitersPerTurn + 1 {
		go func() { results <- doPush(t, srv, "POST", fmt.Sprintf("/heartbeat/w%d", i), "", nil) }()
	}
	if r := <-results; r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") {
		t.Errorf("first answer while the turn is held: %d %q, want 503 busy", r.code, r.body)
	}
	go func() {
		for range store.entered {
		}
	}()
	close(store.release)
	for range waitersPerTurn {
		if r := <-results; r.code != 200 {
			t.Errorf("push that waited for a turn: %d %q, want 200", r.code, r.body)
		}
	}
	if r := <-holder; r.code != 200 {
		t.Errorf("push holding the turn: %d %q, want 200", r.code, r.body)
	}
	close(store.entered)
}

// TestPushBodyStall: a push whose body stops coming loses its turn after
// bodyStall, long before bodyTimeout, and a push waiting for the turn gets
// it.
func TestPushBodyStall(t *testing.T) {
	h := NewPushHandler(openTestLocal(t), PushOptions{MaxInFlight: 1})
	ph := h.(*pushHandler)
	ph.bodyStall = 100 * time.Millisecond // turnWait is 2s
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /heartbeat/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	deadline := time.Now().Add(20 * time.Second)
	for len(ph.turns) == 0 { // until the slow push holds the turn
		if time.Now().After(deadline) {
			t.Fatal("the slow push never took the turn")
		}
		time.Sleep(time.Millisecond)
	}
	if r := doPush(t, srv, "POST", "/heartbeat/quick", "", nil); r.code != 200 {
		t.Errorf("push waiting behind a stalled body: %d %q, want 200", r.code, r.body)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("stalled push got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("stalled push: %d, want 400", resp.StatusCode)
	}
}
