package heartbeat

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

func TestPushHandlerStoreFailures(t *testing.T) {
	clock := func() time.Time { return time.Now() }

	down := openTestRedis(t, closedAddr(t), Patterns{})
	r := doPush(t, pushServer(t, down, "", clock), "POST", "/heartbeat/backup", "", nil)
	if r.code != http.StatusServiceUnavailable || !strings.HasPrefix(r.body, "heartbeat store unreachable: ") {
		t.Errorf("unreachable store: %d %q, want 503 'heartbeat store unreachable'", r.code, r.body)
	}

	broken := openTestLocal(t)
	if err := os.RemoveAll(broken.Dir()); err != nil {
		t.Fatal(err)
	}
	r = doPush(t, pushServer(t, broken, "", clock), "POST", "/heartbeat/backup", "", nil)
	if r.code != http.StatusBadGateway || !strings.Contains(r.body, broken.Dir()) {
		t.Errorf("failing store: %d %q, want 502 naming the directory", r.code, r.body)
	}
}

func TestPushHandlerWithoutPathWildcard(t *testing.T) {
	store := openTestLocal(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/heartbeat/cronjob", nil)
	PushHandler(store, "", nil).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d %q", rec.Code, rec.Body.String())
	}
	if _, ok, err := store.Get(context.Background(), "cronjob"); !ok || err != nil {
		t.Errorf("Get(cronjob) = %v, %v", ok, err)
	}
}
