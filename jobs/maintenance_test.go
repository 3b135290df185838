package jobs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/config"
	"checker/jobs"
)

// loadWindows loads settings text and its maintenance windows.
func loadWindows(t *testing.T, text string) ([]*jobs.Window, config.Problems, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte("[email]\nnomail = yes\n\n[tcp:db]\ntarget = 127.0.0.1:5432\n[http:web]\nurl = http://127.0.0.1/\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	js, problems := jobs.Load(s)
	ws, wp, warnings := jobs.LoadWindows(s, js)
	return ws, append(problems, wp...), warnings
}

func TestWindowValidation(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"bad expression", "[maintenance:x]\njobs = tcp:db\nschedule = 61 * * * *\nduration = 1h\n", `"61 * * * *" is not a valid cron expression`},
		{"six fields", "[maintenance:x]\njobs = tcp:db\nschedule = 0 0 2 * * 0\nduration = 1h\n", "not a 5-field cron expression"},
		{"unknown zone", "[maintenance:x]\njobs = tcp:db\nschedule = 0 2 * * 0\nduration = 1h\ntimezone = Mars/Olympus\n", `"Mars/Olympus" is not a time zone`},
		{"both", "[maintenance:x]\njobs = tcp:db\nschedule = 0 2 * * 0\nstart = 2026-11-21 22:00\nduration = 1h\n", "not both"},
		{"neither", "[maintenance:x]\njobs = tcp:db\nduration = 1h\n", "needs start (one-off) or schedule"},
		{"no duration", "[maintenance:x]\njobs = tcp:db\nschedule = 0 2 * * 0\n", "duration: missing"},
		{"no jobs", "[maintenance:x]\nschedule = 0 2 * * 0\nduration = 1h\n", "jobs: missing"},
		{"bad start", "[maintenance:x]\njobs = tcp:db\nstart = tomorrow\nduration = 1h\n", `"tomorrow" is not a start time`},
		{"unknown key", "[maintenance:x]\njobs = tcp:db\nschedule = 0 2 * * 0\nduration = 1h\nrepeat = yes\n", "repeat: unknown key"},
		{"too long", "[maintenance:x]\njobs = tcp:db\nschedule = 0 2 * * 0\nduration = 60d\n", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems, _ := loadWindows(t, tt.text)
			if len(problems) != 1 || !strings.Contains(problems[0].String(), tt.want) || !strings.Contains(problems[0].String(), "[maintenance:x]") {
				t.Errorf("problems %v, want one with %q naming the section", problems, tt.want)
			}
		})
	}
	_, problems, warnings := loadWindows(t, "[maintenance:x]\njobs = tcp:db, nosuch:*\nschedule = 0 2 * * 0\nduration = 1h\n")
	if len(problems) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], `"nosuch:*" matches no configured job`) {
		t.Errorf("a glob matching nothing: problems %v, warnings %v; want one warning", problems, warnings)
	}
}

func TestWindowOpen(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	at := func(utc string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, utc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name   string
		text   string
		open   []string // RFC 3339 instants inside
		closed []string // and outside
	}{
		{"one-off", "start = 2026-11-21 22:00\nduration = 90m\ntimezone = UTC\n",
			[]string{"2026-11-21T22:00:00Z", "2026-11-21T23:29:59Z"},
			[]string{"2026-11-21T21:59:59Z", "2026-11-21T23:30:00Z"}},
		{"weekly, Sunday 02:00 for 2h in Berlin", "schedule = 0 2 * * 0\nduration = 2h\ntimezone = Europe/Berlin\n",
			[]string{"2026-11-22T01:00:00Z", "2026-11-22T02:59:00Z"}, // 02:00–04:00 CET
			[]string{"2026-11-22T00:59:00Z", "2026-11-22T03:00:00Z", "2026-11-21T01:30:00Z"}},
		// The night the clocks fall back in New York (2026-11-01, 02:00 EDT
		// → 01:00 EST): a window from 01:30 for an hour is open until the
		// wall clock says 02:30, through both 01:30s.
		{"fall-back night", "schedule = 30 1 * * *\nduration = 1h\ntimezone = America/New_York\n",
			[]string{"2026-11-01T05:30:00Z", "2026-11-01T05:59:00Z", "2026-11-01T06:45:00Z", "2026-11-01T07:29:00Z"},
			[]string{"2026-11-01T05:29:00Z", "2026-11-01T07:30:00Z"}},
		// The night the clocks spring forward (2026-03-08, 02:00 EST →
		// 03:00 EDT): from 01:30 for an hour would end at 02:30 on the
		// wall, which is skipped; it ends when the wall jumps past it.
		{"spring-forward night", "schedule = 30 1 * * *\nduration = 1h\ntimezone = America/New_York\n",
			[]string{"2026-03-08T06:30:00Z", "2026-03-08T06:59:59Z"},
			[]string{"2026-03-08T06:29:00Z", "2026-03-08T07:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, problems, _ := loadWindows(t, "[maintenance:w]\njobs = tcp:*\n"+tt.text)
			if len(problems) != 0 || len(ws) != 1 {
				t.Fatalf("windows %v, problems %v", ws, problems)
			}
			for _, s := range tt.open {
				if !ws[0].Open(at(s)) {
					t.Errorf("closed at %s (%s), want open", s, at(s).In(ny).Format("15:04 MST"))
				}
			}
			for _, s := range tt.closed {
				if ws[0].Open(at(s)) {
					t.Errorf("open at %s (%s), want closed", s, at(s).In(ny).Format("15:04 MST"))
				}
			}
			covered := jobs.WindowsAt(ws)
			if name, ok := covered("tcp:db", at(tt.open[0])); !ok || name != "w" {
				t.Errorf("tcp:db not covered by w while it is open")
			}
			if _, ok := covered("http:web", at(tt.open[0])); ok {
				t.Errorf("http:web covered by a window for tcp:*")
			}
		})
	}
}
