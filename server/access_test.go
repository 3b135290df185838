package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/heartbeat"
	"checker/peer"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		remote string
		want   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"192.0.2.1:5000", false},
		{"[2001:db8::1]:5000", false},
		{"[::ffff:192.0.2.1]:5000", false},
		{"localhost:5000", false}, // never a name
		{"", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Forwarded-For", "127.0.0.1")
			if got := IsLoopback(r); got != tt.want {
				t.Errorf("IsLoopback(%q) = %v, want %v", tt.remote, got, tt.want)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		token, header string
		want          bool
	}{
		{"s3cret", "Bearer s3cret", true},
		{"s3cret", "bearer  s3cret ", true},
		{"s3cret", "Bearer s3cre", false},
		{"s3cret", "Bearer s3cretx", false},
		{"s3cret", "Basic czNjcmV0", false},
		{"s3cret", "", false},
		{"", "Bearer ", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.token+"|"+tt.header, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if got := Bearer(tt.token)(r); got != tt.want {
				t.Errorf("Bearer(%q) with %q = %v, want %v", tt.token, tt.header, got, tt.want)
			}
		})
	}
}

func TestLoopbackOrToken(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		loopback bool
		auth     string
		code     int
		reply    string
	}{
		{"no token, loopback", "", true, "", 200, "page"},
		{"no token, other host", "", false, "", 403, "set [serve] ui_token"},
		{"token, other host, with it", "t", false, "Bearer t", 200, "page"},
		{"token, loopback, without it", "t", true, "", 401, "bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := LoopbackOrToken(tt.token, "[serve] ui_token", func(*http.Request) bool { return tt.loopback }, text("page"))
			r := httptest.NewRequest("GET", "/ui/", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.reply) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body.String(), tt.code, tt.reply)
			}
		})
	}
}

// TestCheckerRoutes serves checker's routes on a real listener: the
// verdict, the status document with details only for the token holder, and
// pushes from loopback without a token but not from other hosts.
func TestCheckerRoutes(t *testing.T) {
	now := time.Now()
	health := peer.Health{MailChecked: true, MailFailed: peer.MailSend, MailFailedAt: now,
		MailError: "sending mail failed: dial tcp 10.9.8.7:587: connect: connection refused", LastRunEnd: now}
	tests := []struct {
		name      string
		token     string
		loopback  bool
		nomail    bool
		auth      string
		method    string
		path      string
		code      int
		contains  string
		notInBody string
	}{
		{name: "verdict", method: "GET", path: "/", code: 200, contains: "MailProblem", loopback: true},
		{name: "verdict with nomail", nomail: true, method: "GET", path: "/", code: 200, contains: "True", loopback: true},
		{name: "status without token", token: "tok", method: "GET", path: "/status", code: 200,
			contains: "the last notification send failed at", notInBody: "10.9.8.7"},
		{name: "status with token", token: "tok", auth: "Bearer tok", method: "GET", path: "/status", code: 200, contains: "10.9.8.7:587"},
		{name: "status with a wrong token", token: "tok", auth: "Bearer nope", method: "GET", path: "/status", code: 200, notInBody: "10.9.8.7"},
		{name: "status without a token configured", method: "GET", path: "/status", auth: "Bearer ", code: 200, notInBody: "10.9.8.7"},
		{name: "push from loopback", loopback: true, method: "POST", path: "/heartbeat/backup", code: 200},
		{name: "push from another host", method: "POST", path: "/heartbeat/backup", code: 403, contains: "push_token"},
		{name: "push from another host with the token", token: "tok", auth: "Bearer tok", method: "POST", path: "/heartbeat/backup", code: 200},
		{name: "no such path", method: "GET", path: "/etc/passwd", code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb, err := heartbeat.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer hb.Close()
			s := newServer(t, Options{}, Checker{
				ServerName: "alpha", Version: "9", StaleAfter: time.Hour, NoMail: tt.nomail, PushToken: tt.token,
				Health:     func() (peer.Health, error) { return health, nil },
				Heartbeats: hb,
				IsLoopback: func(*http.Request) bool { return tt.loopback },
				Log:        slog.New(slog.DiscardHandler),
			}.Routes()...)
			base := start(t, s)
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.contains)
			}
			if tt.notInBody != "" && strings.Contains(body, tt.notInBody) {
				t.Errorf("body %q reveals %q", body, tt.notInBody)
			}
			if tt.path == "/status" {
				var doc peer.StatusDoc
				if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Server != "alpha" || doc.Version != "9" {
					t.Errorf("status document %q (%v)", body, err)
				}
			}
		})
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRateLimit(t *testing.T) {
	var buf logBuffer
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	log := slog.New(RateLimit(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), time.Minute, func() time.Time { return now }))
	for range 100 {
		log.Warn("push refused", "from", "192.0.2.1")
		log.Debug("push accepted")
	}
	log.Error("other problem")
	now = now.Add(2 * time.Minute)
	log.Warn("push refused", "from", "192.0.2.2")
	got := buf.String()
	if n := strings.Count(got, "push refused"); n != 2 {
		t.Errorf("%d warnings passed, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "from=192.0.2.2 suppressed=99") {
		t.Errorf("the second warning does not count the 99 held back:\n%s", got)
	}
	if n := strings.Count(got, "push accepted"); n != 100 {
		t.Errorf("%d debug lines passed, want all 100", n)
	}
	if !strings.Contains(got, "other problem") {
		t.Errorf("another message was held back:\n%s", got)
	}
}

// TestLogFileReopen: after logrotate moved the file, Reopen writes to a new
// file at the old path.
func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log", "checker.log")
	lf, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lf.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	lf.Write([]byte("still to the moved file\n"))
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	lf.Write([]byte("after\n"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\nstill to the moved file\n" || string(cur) != "after\n" {
		t.Errorf("moved file %q, new file %q", old, cur)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new log file mode %v (%v), want 0600", fi.Mode(), err)
	}
	// A path that cannot be opened keeps the old file in use.
	if err := os.Chmod(filepath.Dir(path), 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Dir(path), 0o700)
	os.Remove(path)
	if os.Geteuid() != 0 {
		if err := lf.Reopen(); err == nil {
			t.Error("Reopen in a read-only directory succeeded")
		}
	}
}
