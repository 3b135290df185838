package jobs_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"checker/config"
	"checker/jobs"
)

// TestDecodeInvalidConfigs loads each testdata/invalid-*.cfg and expects a
// problem in the given section and key, at the given line, whose message
// holds every wanted text. Every invalid file must have a case here.
func TestDecodeInvalidConfigs(t *testing.T) {
	tests := map[string]struct {
		section string
		key     string
		line    int
		want    []string
	}{
		"invalid-both-target-targets.cfg": {"tcp:x", "targets", 6, []string{"either target or targets, not both"}},
		"invalid-unknown-key.cfg":         {"tcp:x", "colour", 6, []string{"unknown key", "every, failures, notify, notify_to, recovery, target, targets, timeout"}},
		"invalid-unknown-type.cfg":        {"ping:x", "", 4, []string{`unknown job type "ping"`, "known types: " + strings.Join(jobs.TypeNames(), ", ")}},
		"invalid-no-name.cfg":             {"tcp:", "", 4, []string{"needs a name"}},
		"invalid-missing-required.cfg":    {"http:x", "url", 4, []string{"missing required key url"}},
		"invalid-missing-list.cfg":        {"tcp:x", "target", 4, []string{"missing required key target (or targets)"}},
		"invalid-empty-list.cfg":          {"tcp:x", "targets", 5, []string{"empty list"}},
		"invalid-every.cfg":               {"tcp:x", "every", 6, []string{`"fortnight"`, "minute, hour, day, day_noon"}},
		"invalid-email-helo.cfg":          {"email", "helo", 7, []string{`"vm" is not a fully qualified domain name`}},
		"invalid-email-user.cfg":          {"email", "user", 4, []string{`"checker" is not a mail address`}},
		"invalid-heartbeat-redis.cfg":     {"heartbeat", "redis", 4, []string{"http"}},
		"invalid-heartbeat-tls.cfg":       {"heartbeat", "tls_ca", 5, []string{"is a redis:// URL, which says no TLS"}},
		"invalid-notify.cfg":              {"tcp:x", "notify", 6, []string{`"often"`}},
		"invalid-notify-short.cfg":        {"tcp:x", "notify", 6, []string{`"10s"`, "at least 1m"}},
		"invalid-failures-zero.cfg":       {"tcp:x", "failures", 6, []string{"0 is less than 1"}},
		"invalid-recovery.cfg":            {"tcp:x", "recovery", 6, []string{`"maybe" is not auto, yes or no`}},
		"invalid-timeout.cfg":             {"tcp:x", "timeout", 6, []string{`"soon" is not a duration`}},
		"invalid-notify-to.cfg":           {"tcp:x", "notify_to", 6, []string{`"notanemail" is neither a mail address nor a channel of [channels]`}},
		"invalid-duplicate-entry.cfg":     {"tcp:x", "targets", 5, []string{`"a:1" appears twice`}},
		"invalid-case-duplicate.cfg":      {"TCP:Web", "", 7, []string{"duplicate"}},
		"invalid-tcp-target.cfg":          {"tcp:x", "target", 5, []string{`"nope" is not host:port`}},
		"invalid-http-url.cfg":            {"http:x", "url", 5, []string{"not an http:// or https:// URL"}},
		"invalid-http-status.cfg":         {"http:x", "expect_status", 6, []string{`"ok" is not a whole number`}},
		"invalid-bool.cfg":                {"http:x", "insecure", 6, []string{`"maybe" is not a boolean`}},
		"invalid-warn-days.cfg":           {"tls:x", "warn_days", 6, []string{"-1 is less than 0"}},
		"invalid-crit-days.cfg":           {"tls:x", "crit_days", 6, []string{"-3 is less than 0"}},
		"invalid-command-quote.cfg":       {"command:x", "command", 5, []string{"unclosed ' quote"}},
	}

	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected problem in this test", f)
		}
	}
	for file, tt := range tests {
		t.Run(file, func(t *testing.T) {
			_, problems := loadSettingsFile(t, filepath.Join("testdata", file))
			if len(problems) == 0 {
				t.Fatal("no problem reported")
			}
			for _, p := range problems {
				if p.Section == tt.section && p.Key == tt.key && containsAll(p.Msg, tt.want) {
					if p.Line != tt.line {
						t.Errorf("problem %q at line %d, want %d", p, p.Line, tt.line)
					}
					if !strings.Contains(p.String(), "["+tt.section+"]") {
						t.Errorf("problem %q does not name its section", p)
					}
					return
				}
			}
			t.Errorf("no problem in [%s] key %q containing %q; got:\n%s", tt.section, tt.key, tt.want, problems.Error())
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestDecodeAllProblemsInOneRun checks that problems in several sections and
// keys are all reported, not just the first.
func TestDecodeAllProblemsInOneRun(t *testing.T) {
	_, problems := loadSettings(t, `
[tcp:a]
target = nope

[tcp:b]
target = b:1
every = sometimes
failures = 0
colour = red

[ping:c]
target = c

[http:d]
method = GET
`)
	want := []struct{ section, key string }{
		{"tcp:a", "target"},
		{"tcp:b", "every"},
		{"tcp:b", "failures"},
		{"tcp:b", "colour"},
		{"ping:c", ""},
		{"http:d", "url"},
	}
	for _, w := range want {
		found := false
		for _, p := range problems {
			if p.Section == w.section && p.Key == w.key {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem for [%s] %s; got:\n%s", w.section, w.key, problems.Error())
		}
	}
}

// TestLoadRejectsCaseDuplicates builds settings by hand, past config's own
// duplicate-section check, to see that job names are unique ignoring case.
func TestLoadRejectsCaseDuplicates(t *testing.T) {
	s := &config.Settings{File: "settings.cfg", Jobs: []config.Section{
		config.NewSection("tcp:web", 1, "target", "a:1"),
		config.NewSection("TCP:Web", 4, "target", "b:1"),
	}}
	js, problems := jobs.Load(s)
	found := false
	for _, p := range problems {
		if strings.Contains(p.Msg, "duplicate job name") {
			found = true
		}
	}
	if !found {
		t.Errorf("no duplicate-name problem; got:\n%s", problems.Error())
	}
	if n := len(jobsByName(js, "tcp")); n != 1 {
		t.Errorf("%d tcp jobs kept, want 1", n)
	}
}

// TestInlineCommentHint: a job key made invalid by what looks like an
// inline comment says why (settings.cfg has no inline comments).
func TestInlineCommentHint(t *testing.T) {
	_, problems := loadSettings(t, "[tcp:x]\ntarget = 127.0.0.1:1\nnotify = hour  # reminder\n[heartbeat]\nservices = web\nfailures = 2 ; two\n")
	want := []string{
		`6: [tcp:x] notify: `,
		`9: [heartbeat] failures: `,
	}
	if len(problems) != len(want) {
		t.Fatalf("problems = %v, want %d", problems, len(want))
	}
	for i, p := range problems {
		got := fmt.Sprintf("%d: [%s] %s: %s", p.Line, p.Section, p.Key, p.Msg)
		if !strings.HasPrefix(got, want[i]) || !strings.Contains(got, "(inline comments are not comments: ") {
			t.Errorf("problem %d = %q, want %q… with the inline comment hint", i, got, want[i])
		}
	}
}
