package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"checker/config"
)

// noEnv is an environment with nothing set.
func noEnv(string) string { return "" }

// envOf returns an Env that serves the given variables.
func envOf(vars map[string]string) config.Env {
	return func(k string) string { return vars[k] }
}

// writeConfig writes a settings file with mode 0600 into a fresh directory
// and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask and ignored for existing
	// files; be explicit.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads text and fails the test on any problem.
func mustLoad(t *testing.T, text string, env config.Env) *config.Settings {
	t.Helper()
	s, err := config.Load(writeConfig(t, text), env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// loadProblems loads text and returns its problems, failing the test if the
// error is anything else.
func loadProblems(t *testing.T, text string) config.Problems {
	t.Helper()
	_, err := config.Load(writeConfig(t, text), noEnv)
	if err == nil {
		t.Fatalf("Load accepted:\n%s", text)
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load error is %T (%v), want config.Problems", err, err)
	}
	return ps
}

// describe prints a problem the way Problem.String does, minus the file
// name and with the line always present: "LINE: [SECTION] KEY: MSG".
func describe(p config.Problem) string {
	q := p
	q.File, q.Line = "", 0
	return fmt.Sprintf("%d%s", p.Line, q.String())
}

// pythonSettings is a settings.cfg as the earlier Python tool's
// settings.cfg.example had users write it: Python's capitalised booleans,
// comments, a password with a semicolon, one peer.
const pythonSettings = `# Settings for checker
[general]
servername = watchman-1
alertcontact = admin@example.com
logfile = /var/log/checker.log
statefile = checker.state

[email]
# Set nomail to True to only log, never mail.
nomail = False
user = checker.bot@gmail.com
pass = hunter2;really
smtpserver = smtp.gmail.com
smtpport = 587
imapserver = imap.gmail.com
# If you don't create the 'auto-delete messages from me' filter, set this to False
ideletesentmessagesautomatically = True
bustgmailthreading = False

[peers]
# name = peer status URL,that peer's admin
watchman-2 = http://watchman-2.example.org:5000/,other-admin@example.org
`

func TestLoadPythonSettings(t *testing.T) {
	path := writeConfig(t, pythonSettings)
	s, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none for a mode 0600 file", s.Warnings)
	}
	if len(s.Jobs) != 0 {
		t.Errorf("Jobs = %v, want none", s.Jobs)
	}

	g := s.General
	if g.ServerName != "watchman-1" {
		t.Errorf("ServerName = %q", g.ServerName)
	}
	if !reflect.DeepEqual(g.AlertContact, []string{"admin@example.com"}) {
		t.Errorf("AlertContact = %q", g.AlertContact)
	}
	if g.LogFile != "/var/log/checker.log" {
		t.Errorf("LogFile = %q", g.LogFile)
	}
	if want := filepath.Join(filepath.Dir(path), "checker.state"); g.StateFile != want {
		t.Errorf("StateFile = %q, want %q", g.StateFile, want)
	}

	want := config.Email{
		NoMail:        false,
		User:          "checker.bot@gmail.com",
		Pass:          "hunter2;really",
		SMTPServer:    "smtp.gmail.com",
		SMTPPort:      587,
		SMTPTLS:       "starttls",
		IMAPServer:    "imap.gmail.com",
		IMAPPort:      993,
		IMAPTLS:       "tls",
		DeleteSent:    true,
		BustThreading: false,
		TrashFolder:   config.DefaultTrashFolder,
		SelfCheckWait: config.DefaultSelfCheckWait,
	}
	if s.Email != want {
		t.Errorf("Email =\n%+v\nwant\n%+v", s.Email, want)
	}
	if !s.Email.Configured() {
		t.Error("Email.Configured() = false")
	}

	wantPeers := []config.Peer{{Name: "watchman-2", URL: "http://watchman-2.example.org:5000/", Admin: "other-admin@example.org"}}
	if !reflect.DeepEqual(s.Peers, wantPeers) {
		t.Errorf("Peers = %+v, want %+v", s.Peers, wantPeers)
	}
}

// TestExample: the example settings load as they are, with nothing that
// looks like an inline comment or a lone '%'.
func TestExample(t *testing.T) {
	s, err := config.Load(filepath.Join("..", "settings.cfg.example"), noEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(s.Hints) != 0 {
		t.Errorf("Hints:\n%v", s.Hints)
	}
	var cmd string
	for _, j := range s.Jobs {
		if j.Name == "command:disk" {
			cmd = j.Get("command")
		}
	}
	if cmd != "/usr/lib/nagios/plugins/check_disk -w 10% -c 5% -p /" {
		t.Errorf("[command:disk] command = %q", cmd)
	}
}

func TestBooleans(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"1", true}, {"0", false},
		{"yes", true}, {"no", false},
		{"YES", true}, {"No", false},
		{"true", true}, {"false", false},
		{"True", true}, {"FALSE", false},
		{"on", true}, {"off", false},
		{"On", true}, {"oFF", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := config.ParseBool(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseBool(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			// Through Load: two keys in two sections, both must come out
			// as written.
			s := mustLoad(t, "[email]\nnomail = yes\nbustgmailthreading = "+tc.in+"\n[heartbeat]\ndiscover = "+tc.in+"\n", noEnv)
			if s.Email.BustThreading != tc.want || s.Heartbeat.Discover != tc.want {
				t.Errorf("bustgmailthreading = %q loaded as %v, discover as %v; want %v", tc.in, s.Email.BustThreading, s.Heartbeat.Discover, tc.want)
			}
		})
	}

	for _, bad := range []string{"maybe", "2", "", "y", "tru", "-1"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := config.ParseBool(bad); err == nil {
				t.Errorf("ParseBool(%q) succeeded", bad)
			}
			ps := loadProblems(t, "[email]\nnomail = yes\nbustgmailthreading = "+bad+"\n")
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), ps)
			}
			p := ps[0]
			if p.Section != "email" || p.Key != "bustgmailthreading" || p.Line != 3 {
				t.Errorf("problem at %d [%s] %s, want line 3 [email] bustgmailthreading", p.Line, p.Section, p.Key)
			}
			if !strings.Contains(p.Msg, fmt.Sprintf("%q is not a boolean", bad)) {
				t.Errorf("message %q does not quote the value", p.Msg)
			}
			if s := p.String(); !strings.Contains(s, "[email] bustgmailthreading: ") {
				t.Errorf("String() = %q does not name section and key", s)
			}
		})
	}
}

// TestInlineComments: there are none. What follows a value is part of it,
// as in Python's configparser; config validate hints at it, without
// quoting a secret.
func TestInlineComments(t *testing.T) {
	s := mustLoad(t, `[email]
nomail = yes
pass = yourpass ;word
user = abc#def
trashfolder = Trash ; where deleted mail goes
[general]
servername = a # c
logfile = /var/log/checker.log	
[http:site]
url = http://x/a#frag ; comment
contains = 50%%; off # sale ; ends here
`, noEnv)
	for _, tc := range []struct{ name, got, want string }{
		{"pass", s.Email.Pass, "yourpass ;word"},
		{"user", s.Email.User, "abc#def"},
		{"trashfolder", s.Email.TrashFolder, "Trash ; where deleted mail goes"},
		{"servername", s.General.ServerName, "a # c"},
		{"logfile", s.General.LogFile, "/var/log/checker.log"},
		{"url", s.Jobs[0].Get("url"), "http://x/a#frag ; comment"},
		{"contains", s.Jobs[0].Get("contains"), "50%; off # sale ; ends here"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	want := []string{
		"3: [email] pass: inline comments are not comments",
		"5: [email] trashfolder: inline comments are not comments: \"; where deleted mail goes\" is part of the value",
		"7: [general] servername: inline comments are not comments: \"# c\" is part of the value",
		"10: [http:site] url: inline comments are not comments: \"; comment\" is part of the value",
		"11: [http:site] contains: inline comments are not comments: \"# sale ; ends here\" is part of the value",
	}
	if len(s.Hints) != len(want) {
		t.Fatalf("got %d hints, want %d: %v", len(s.Hints), len(want), s.Hints)
	}
	for i, h := range s.Hints {
		if !strings.Contains(describe(h), want[i]) {
			t.Errorf("hint %d = %q, want %q", i, describe(h), want[i])
		}
	}
	if strings.Contains(s.Hints[0].Msg, "word") || strings.Contains(s.Hints[0].Msg, "yourpass") {
		t.Errorf("the hint about pass shows the password: %q", s.Hints[0].Msg)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("Warnings = %q: hints are not run-time warnings", s.Warnings)
	}
}

// TestInlineCommentMakesValueInvalid: where the comment-like text makes a
// value invalid, the problem says why.
func TestInlineCommentMakesValueInvalid(t *testing.T) {
	ps := loadProblems(t, "[email]\nnomail = yes  # for now\n[general]\ntimeout = 10s ; per job\n")
	if len(ps) != 2 {
		t.Fatalf("problems = %v, want 2", ps)
	}
	for i, want := range []string{
		`2: [email] nomail: "yes  # for now" is not a boolean (use yes/no, true/false, on/off or 1/0) (inline comments are not comments: "# for now" is part of the value`,
		`4: [general] timeout: "10s ; per job" is not a duration (examples: 10s, 1m30s, 2h, 7d) (inline comments are not comments: "; per job" is part of the value`,
	} {
		if !strings.Contains(describe(ps[i]), want) {
			t.Errorf("problem %d = %q, want %q", i, describe(ps[i]), want)
		}
	}
}

func TestInlineCommentHint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hour", ""},
		{"http://x/a#frag", ""},
		{"50%;off", ""},
		{"hour  # reminder", ` (inline comments are not comments: "# reminder" is part of the value; put comments on a line of their own)`},
		{"hour\t; reminder", ` (inline comments are not comments: "; reminder" is part of the value; put comments on a line of their own)`},
		{"# all of it", ` (inline comments are not comments: "# all of it" is part of the value; put comments on a line of their own)`},
		{"a#b c ;d\nnext line", ` (inline comments are not comments: ";d" is part of the value; put comments on a line of their own)`},
		{"x\u00a0#y", ` (inline comments are not comments: "#y" is part of the value; put comments on a line of their own)`},
	} {
		if got := config.InlineCommentHint(tc.in); got != tc.want {
			t.Errorf("InlineCommentHint(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPythonSettingsProblems are the ways a settings file written for the
// earlier Python tool went wrong before the reader followed configparser.
func TestPythonSettingsProblems(t *testing.T) {
	s := mustLoad(t, `[general]
alertcontact = a@example.com,
    # b@example.com is on holiday
    c@example.com
[email]
nomail = yes
pass = 100%%sure
[tcp:dns]
targets = ns1.example.com:53,

    ns2.example.com:53
; between the sections
[http:site]
url = https://example.com/a%%20b
`, noEnv)
	if want := []string{"a@example.com", "c@example.com"}; !reflect.DeepEqual(s.General.AlertContact, want) {
		t.Errorf("AlertContact = %q, want %q", s.General.AlertContact, want)
	}
	if s.Email.Pass != "100%sure" {
		t.Errorf("Pass = %q, want 100%%sure", s.Email.Pass)
	}
	if got, want := config.SplitList(s.Jobs[0].Get("targets")), []string{"ns1.example.com:53", "ns2.example.com:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %q, want %q", got, want)
	}
	if got := s.Jobs[1].Get("url"); got != "https://example.com/a%20b" {
		t.Errorf("url = %q", got)
	}
	if len(s.Hints) != 0 {
		t.Errorf("Hints = %v, want none", s.Hints)
	}
}

func TestInterpolation(t *testing.T) {
	s := mustLoad(t, `[DEFAULT]
domain = example.com
[general]
servername = mon.%(domain)s
alertcontact = ops@%(Domain)s, %(servername)s-admin@%(domain)s
[email]
nomail = yes
user = checker@%(domain)s
pass = 50%% off
[peers]
friend = http://friend.%(domain)s:5000/,admin@%(domain)s
`, noEnv)
	if s.General.ServerName != "mon.example.com" {
		t.Errorf("ServerName = %q", s.General.ServerName)
	}
	if want := []string{"ops@example.com", "mon.example.com-admin@example.com"}; !reflect.DeepEqual(s.General.AlertContact, want) {
		t.Errorf("AlertContact = %q, want %q", s.General.AlertContact, want)
	}
	if s.Email.User != "checker@example.com" || s.Email.Pass != "50% off" {
		t.Errorf("User, Pass = %q, %q", s.Email.User, s.Email.Pass)
	}
	want := []config.Peer{{Name: "friend", URL: "http://friend.example.com:5000/", Admin: "admin@example.com"}}
	if !reflect.DeepEqual(s.Peers, want) {
		t.Errorf("Peers = %+v, want %+v: [DEFAULT] keys are no peers", s.Peers, want)
	}

	t.Run("lone percent", func(t *testing.T) {
		s := mustLoad(t, "[email]\nnomail = yes\npass = 50%off\n[tcp:x]\ntarget = a:1\nnotify_to = a%b@example.com\n", noEnv)
		if s.Email.Pass != "50%off" || s.Jobs[0].Get("notify_to") != "a%b@example.com" {
			t.Errorf("Pass, notify_to = %q, %q; want them as written", s.Email.Pass, s.Jobs[0].Get("notify_to"))
		}
		if len(s.Hints) != 2 || s.Hints[0].Line != 3 || s.Hints[0].Key != "pass" || s.Hints[1].Line != 6 ||
			!strings.Contains(s.Hints[0].Msg, "write %% for a literal %") || strings.Contains(s.Hints[0].Msg, "50") {
			t.Errorf("Hints = %v, want one for pass (not showing it) and one for notify_to", s.Hints)
		}
	})

	t.Run("missing key", func(t *testing.T) {
		ps := loadProblems(t, "[email]\nnomail = yes\nuser = me@%(domain)s\n")
		if len(ps) != 1 || ps[0].Line != 3 || ps[0].Key != "user" || !strings.Contains(ps[0].Msg, `%(domain)s refers to "domain", which is not set in [email] or [DEFAULT]`) {
			t.Errorf("problems = %v", ps)
		}
	})

	t.Run("loop", func(t *testing.T) {
		ps := loadProblems(t, "[email]\nnomail = yes\nuser = %(pass)s\npass = %(user)s\n")
		if len(ps) != 2 || !strings.Contains(ps[0].Msg, "nest deeper than 10 levels") || ps[0].Key != "user" || ps[1].Key != "pass" {
			t.Errorf("problems = %v", ps)
		}
		if strings.Contains(ps.Error(), "%(user)s") {
			t.Errorf("a problem about pass shows its value: %v", ps)
		}
	})

	t.Run("references that multiply", func(t *testing.T) {
		// Twenty references to a value with twenty references, ten levels
		// deep: 20^10 steps unless bounded. Loading must stop early.
		var b strings.Builder
		b.WriteString("[email]\nnomail = yes\n[tcp:x]\ntarget = a:1\nv0 = x\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "v%d = %s\n", i, strings.Repeat(fmt.Sprintf("%%(v%d)s", i-1), 20))
		}
		s, err := config.Load(writeConfig(t, b.String()), noEnv)
		var ps config.Problems
		if !errors.As(err, &ps) || s == nil {
			t.Fatalf("Load = %v", err)
		}
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p.Msg, "too much work") || strings.Contains(p.Msg, "grows by more than")
		}
		if !found {
			t.Errorf("problems = %v, want one about the references", ps)
		}
	})

	t.Run("huge value taken in everywhere", func(t *testing.T) {
		// 2 MiB copied into each of 300 sections is 600 MiB of work:
		// loading stops at the budget with one problem.
		var b strings.Builder
		b.WriteString("[DEFAULT]\nbig = " + strings.Repeat("x", 2<<20) + "%%\n[email]\nnomail = yes\n")
		for i := range 300 {
			fmt.Fprintf(&b, "[tcp:j%d]\ntarget = a:1\n", i)
		}
		ps := loadProblems(t, b.String())
		if len(ps) != 1 || ps[0].Line != 2 || ps[0].Key != "big" || !strings.Contains(ps[0].Msg, "too much work") ||
			!strings.Contains(ps[0].Msg, "(the value comes from [DEFAULT]) (the same in") {
			t.Errorf("problems = %.500v", ps)
		}
	})
}

// TestDefaultSection: [DEFAULT] values are fallbacks visible in every
// section, never unknown keys of one, and no entries of [peers].
func TestDefaultSection(t *testing.T) {
	s := mustLoad(t, `[DEFAULT]
notify = hour
timeout = 5s
host = example.com
[general]
alertcontact = ops@%(host)s
[email]
nomail = yes
[heartbeat]
services = web
[peers]
[tcp:a]
target = %(host)s:53
[tcp:b]
target = b:53
timeout = 2s
`, noEnv)
	if s.General.Timeout != 5*time.Second {
		t.Errorf("[general] timeout = %v, want 5s from [DEFAULT]", s.General.Timeout)
	}
	if len(s.Peers) != 0 {
		t.Errorf("Peers = %v, want none", s.Peers)
	}
	a, b := s.Jobs[0], s.Jobs[1]
	if !reflect.DeepEqual(a.Keys(), []string{"target"}) {
		t.Errorf("Keys() = %q, want only the section's own", a.Keys())
	}
	for k, want := range map[string]string{"target": "example.com:53", "notify": "hour", "timeout": "5s", "host": "example.com"} {
		if got, ok := a.Lookup(k); !ok || got != want {
			t.Errorf("[tcp:a] %s = %q, %v; want %q", k, got, ok, want)
		}
	}
	if a.KeyLine("notify") != 2 || a.KeyLine("target") != 13 || a.Has("every") {
		t.Errorf("[tcp:a] lines: notify %d, target %d", a.KeyLine("notify"), a.KeyLine("target"))
	}
	if b.Get("timeout") != "2s" || b.KeyLine("timeout") != 16 {
		t.Errorf("[tcp:b] timeout = %q at line %d; its own value wins", b.Get("timeout"), b.KeyLine("timeout"))
	}
	if h := s.Heartbeat.Section; h.Get("notify") != "hour" || h.Has("host") {
		t.Errorf("[heartbeat] notify = %q, host set %v: want the [DEFAULT] keys it knows", h.Get("notify"), h.Has("host"))
	}

	t.Run("bad value", func(t *testing.T) {
		ps := loadProblems(t, "[DEFAULT]\ntimeout = soon\n[general]\n[email]\nnomail = yes\n")
		if len(ps) != 1 || ps[0].Line != 2 || ps[0].Section != "general" || ps[0].Key != "timeout" {
			t.Errorf("problems = %v, want one at line 2 for [general] timeout", ps)
		}
	})
	t.Run("absent section", func(t *testing.T) {
		// Python has no [general] to read timeout from: nothing to check.
		s := mustLoad(t, "[DEFAULT]\ntimeout = soon\n[email]\nnomail = yes\n", noEnv)
		if s.General.Timeout != config.DefaultTimeout {
			t.Errorf("Timeout = %v", s.General.Timeout)
		}
	})
}

func TestSectionNamesAreCaseSensitive(t *testing.T) {
	ps := loadProblems(t, "[Email]\nnomail = yes\n[default]\nx = 1\n")
	var got []string
	for _, p := range ps {
		got = append(got, describe(p))
	}
	for _, want := range []string{
		"1: [Email] unknown section: section names are case-sensitive, did you mean [email]?",
		"3: [default] unknown section: the section of fallbacks for every section is [DEFAULT], in capitals",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
}

func TestEncoding(t *testing.T) {
	t.Run("latin-1", func(t *testing.T) {
		ps := loadProblems(t, "[email]\nnomail = yes\n[general]\nservername = caf\xe9\n")
		if len(ps) != 1 || ps[0].Line != 4 || ps[0].Section != "general" || ps[0].Key != "servername" ||
			!strings.Contains(ps[0].Msg, "not valid UTF-8: byte 0xE9 at column 17") || !strings.Contains(ps[0].Msg, "iconv -f latin1") {
			t.Errorf("problems = %v", ps)
		}
	})
	t.Run("binary file", func(t *testing.T) {
		data := strings.Repeat("\xff\xfe\x00garbage\n", 1000)
		ps := loadProblems(t, data)
		utf8Problems := 0
		for _, p := range ps {
			if strings.Contains(p.Msg, "UTF-8") {
				utf8Problems++
			}
		}
		// Five lines named, then one line for the rest; plus the text
		// outside any section and the missing mail settings.
		if utf8Problems != 6 || len(ps) > 9 || !strings.Contains(ps.Error(), "995 more lines are not valid UTF-8") {
			t.Errorf("%d problems:\n%v", len(ps), ps)
		}
	})
	t.Run("byte order mark", func(t *testing.T) {
		s := mustLoad(t, "\ufeff[general]\nservername = box\n[email]\nnomail = yes\n", noEnv)
		if s.General.ServerName != "box" {
			t.Errorf("ServerName = %q", s.General.ServerName)
		}
	})
}

func TestHugeLine(t *testing.T) {
	long := strings.Repeat("x", 3<<20)
	s := mustLoad(t, "[email]\nnomail = yes\n[http:big]\nurl = http://127.0.0.1/\ncontains = "+long+"\n", noEnv)
	if got := s.Jobs[0].Get("contains"); got != long {
		t.Errorf("contains has %d bytes, want %d", len(got), len(long))
	}
	ps := loadProblems(t, "[email]\nnomail = yes\n"+long+"\n")
	if len(ps) != 1 || ps[0].Line != 3 || len(ps[0].Msg) > 200 {
		t.Errorf("problem about a huge bad line: %.300v", ps)
	}
}

func TestFileTooLarge(t *testing.T) {
	path := writeConfig(t, "[email]\nnomail = yes\n")
	// A sparse file: no disk space, no time.
	if err := os.Truncate(path, 65<<20); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path, noEnv)
	if s != nil || err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") || !strings.Contains(err.Error(), path) {
		t.Errorf("Load = %v, %v; want an error naming the file and its size", s, err)
	}
}

func TestPasswordSources(t *testing.T) {
	const mail = "[general]\nalertcontact = ops@example.com\n[email]\nuser = u@example.com\nsmtpserver = smtp.example.com\nimapserver = imap.example.com\n"

	t.Run("pass", func(t *testing.T) {
		s := mustLoad(t, mail+"pass = from-file\n", envOf(map[string]string{"CHECKER_EMAIL_PASS": "from-env"}))
		if s.Email.Pass != "from-file" {
			t.Errorf("Pass = %q, want the one in the file", s.Email.Pass)
		}
	})

	t.Run("pass_file relative to the config", func(t *testing.T) {
		path := writeConfig(t, mail+"pass_file = secrets/mail.pass\n")
		dir := filepath.Dir(path)
		if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secrets", "mail.pass"), []byte("p;a#s s\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Run from elsewhere: the path is relative to the config, not the
		// working directory.
		t.Chdir(t.TempDir())
		s, err := config.Load(path, envOf(map[string]string{"CHECKER_EMAIL_PASS": "from-env"}))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if s.Email.Pass != "p;a#s s" {
			t.Errorf("Pass = %q, want the file's content without the newline", s.Email.Pass)
		}
		if len(s.Warnings) != 0 {
			t.Errorf("Warnings = %q, want none: the settings file holds no password", s.Warnings)
		}
	})

	t.Run("pass_file missing", func(t *testing.T) {
		ps := loadProblems(t, mail+"pass_file = nowhere.pass\n")
		if len(ps) != 1 || ps[0].Key != "pass_file" || ps[0].Line != 7 || !strings.Contains(ps[0].Msg, "cannot read password file") {
			t.Errorf("problems = %v, want one about pass_file at line 7", ps)
		}
	})

	t.Run("env", func(t *testing.T) {
		s := mustLoad(t, mail, envOf(map[string]string{"CHECKER_EMAIL_PASS": "from-env"}))
		if s.Email.Pass != "from-env" {
			t.Errorf("Pass = %q, want CHECKER_EMAIL_PASS", s.Email.Pass)
		}
		if len(s.Warnings) != 0 {
			t.Errorf("Warnings = %q, want none", s.Warnings)
		}
	})

	t.Run("none", func(t *testing.T) {
		s := mustLoad(t, mail, noEnv)
		if s.Email.Pass != "" {
			t.Errorf("Pass = %q, want empty", s.Email.Pass)
		}
	})

	for _, tc := range []struct {
		mode os.FileMode
		text string
		warn bool
	}{
		{0o644, mail + "pass = secret\n", true},
		{0o604, mail + "pass = secret\n", true},
		// root:checker 0640 is how a service user reads the file.
		{0o640, mail + "pass = secret\n", false},
		{0o600, mail + "pass = secret\n", false},
		{0o644, mail, false}, // no password in the file: nothing to hide
	} {
		t.Run(fmt.Sprintf("mode %04o warn %v", tc.mode, tc.warn), func(t *testing.T) {
			path := writeConfig(t, tc.text)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			s, err := config.Load(path, envOf(map[string]string{"CHECKER_EMAIL_PASS": "from-env"}))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			warned := len(s.Warnings) == 1 && strings.Contains(s.Warnings[0], "readable by others") &&
				strings.Contains(s.Warnings[0], path)
			if warned != tc.warn || (!tc.warn && len(s.Warnings) != 0) {
				t.Errorf("Warnings = %q, want a warning: %v", s.Warnings, tc.warn)
			}
		})
	}
}

// TestInvalidConfigs loads every testdata/invalid-*.cfg and checks its
// problems against the file's "# want:" lines (see testdata/README.md).
func TestInvalidConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid-*.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d invalid-*.cfg files; is testdata missing?", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".cfg"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for line := range strings.Lines(string(data)) {
				if w, ok := strings.CutPrefix(line, "# want:"); ok {
					wants = append(wants, strings.TrimSpace(w))
				}
			}
			if len(wants) == 0 {
				t.Fatalf("%s has no '# want:' line", file)
			}

			_, err = config.Load(file, noEnv)
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load error = %v (%T), want config.Problems", err, err)
			}
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = describe(p)
				if p.File != file {
					t.Errorf("problem %q names file %q, want %q", got[i], p.File, file)
				}
			}
			used := make([]bool, len(got))
		want:
			for _, w := range wants {
				for i, g := range got {
					if !used[i] && strings.Contains(g, w) {
						used[i] = true
						continue want
					}
				}
				t.Errorf("no problem matches %q", w)
			}
			if len(got) != len(wants) {
				t.Errorf("got %d problems, want %d", len(got), len(wants))
			}
			if t.Failed() {
				t.Logf("problems:\n\t%s", strings.Join(got, "\n\t"))
			}
		})
	}
}

func TestSeveralProblemsAllReported(t *testing.T) {
	_, err := config.Load(filepath.Join("testdata", "invalid-several.cfg"), noEnv)
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load error = %v, want config.Problems", err)
	}
	if len(ps) != 9 {
		t.Errorf("got %d problems, want 9:\n%v", len(ps), ps)
	}
	for _, p := range ps {
		if p.Line <= 0 || p.Section == "" {
			t.Errorf("problem without line or section: %q", p.String())
		}
	}
	// The error text lists them all, one per line.
	if n := strings.Count(err.Error(), "\n") + 1; n != len(ps) {
		t.Errorf("Error() has %d lines for %d problems", n, len(ps))
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    config.Problem
		want string
	}{
		{config.Problem{File: "s.cfg", Line: 3, Section: "email", Key: "smtpport", Msg: "bad"}, "s.cfg:3: [email] smtpport: bad"},
		{config.Problem{File: "s.cfg", Line: 7, Section: "colours", Msg: "unknown section"}, "s.cfg:7: [colours] unknown section"},
		{config.Problem{File: "s.cfg", Msg: "not a valid INI file"}, "s.cfg: not a valid INI file"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	path := writeConfig(t, "[email]\nnomail = yes\n")
	s, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dir := filepath.Dir(path)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"concurrency", s.General.Concurrency, 64},
		{"timeout", s.General.Timeout, 10 * time.Second},
		{"listen", s.Serve.Listen, ":5000"},
		{"jobs_stale_after", s.Serve.JobsStaleAfter, 120 * time.Second},
		{"smtpport", s.Email.SMTPPort, 587},
		{"smtp_tls", s.Email.SMTPTLS, "starttls"},
		{"imapport", s.Email.IMAPPort, 993},
		{"imap_tls", s.Email.IMAPTLS, "tls"},
		{"trashfolder", s.Email.TrashFolder, "[Gmail]/Trash"},
		{"selfcheck_wait", s.Email.SelfCheckWait, 60 * time.Second},
		{"statefile", s.General.StateFile, filepath.Join(dir, "checker.state")},
		{"key_pattern", s.Heartbeat.KeyPattern, "heartbeat:service:{service}"},
		{"channel_pattern", s.Heartbeat.ChannelPattern, "heartbeat:service:{service}"},
		{"alive", s.Heartbeat.Alive, 90 * time.Second},
		{"stale", s.Heartbeat.Stale, 180 * time.Second},
		{"heartbeat dir", s.Heartbeat.LocalDir, dir}, // the state file's directory
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if host, _ := os.Hostname(); s.General.ServerName != host {
		t.Errorf("servername = %q, want the host name %q", s.General.ServerName, host)
	}

	t.Run("smtp_tls follows the port", func(t *testing.T) {
		for port, want := range map[string]string{"465": "tls", "587": "starttls", "25": "starttls", "2525": "starttls"} {
			s := mustLoad(t, "[email]\nnomail = yes\nsmtpport = "+port+"\n", noEnv)
			if s.Email.SMTPTLS != want {
				t.Errorf("smtpport %s: smtp_tls = %q, want %q", port, s.Email.SMTPTLS, want)
			}
		}
		s := mustLoad(t, "[email]\nnomail = yes\nsmtpport = 465\nsmtp_tls = STARTTLS\n", noEnv)
		if s.Email.SMTPTLS != "starttls" {
			t.Errorf("explicit smtp_tls = %q, want starttls", s.Email.SMTPTLS)
		}
		s = mustLoad(t, "[email]\nnomail = yes\nimapport = 143\n", noEnv)
		if s.Email.IMAPTLS != "starttls" {
			t.Errorf("imapport 143: imap_tls = %q, want starttls", s.Email.IMAPTLS)
		}
	})

	t.Run("relative paths resolve next to the config", func(t *testing.T) {
		path := writeConfig(t, "[general]\nstatefile = var/state.json\nlogfile = checker.log\n[email]\nnomail = yes\n")
		t.Chdir(t.TempDir())
		s, err := config.Load(path, noEnv)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		dir := filepath.Dir(path)
		if want := filepath.Join(dir, "var", "state.json"); s.General.StateFile != want {
			t.Errorf("StateFile = %q, want %q", s.General.StateFile, want)
		}
		if want := filepath.Join(dir, "checker.log"); s.General.LogFile != want {
			t.Errorf("LogFile = %q, want %q", s.General.LogFile, want)
		}
		if want := filepath.Join(dir, "var"); s.Heartbeat.LocalDir != want {
			t.Errorf("Heartbeat.LocalDir = %q, want %q", s.Heartbeat.LocalDir, want)
		}
	})

	t.Run("relative config path", func(t *testing.T) {
		path := writeConfig(t, "[email]\nnomail = yes\n")
		dir := filepath.Dir(path)
		t.Chdir(dir)
		s, err := config.Load("settings.cfg", noEnv)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if want := filepath.Join(dir, "checker.state"); s.General.StateFile != want {
			t.Errorf("StateFile = %q, want the absolute %q", s.General.StateFile, want)
		}
	})

	t.Run("explicit values", func(t *testing.T) {
		s := mustLoad(t, "[general]\nconcurrency = 8\ntimeout = 2.5\n[email]\nnomail = yes\n[serve]\nlisten = 127.0.0.1:8080\njobs_stale_after = 5m\n", noEnv)
		if s.General.Concurrency != 8 || s.General.Timeout != 2500*time.Millisecond ||
			s.Serve.Listen != "127.0.0.1:8080" || s.Serve.JobsStaleAfter != 5*time.Minute {
			t.Errorf("got %+v %+v", s.General, s.Serve)
		}
	})
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.cfg")
	s, err := config.Load(path, noEnv)
	if err == nil || s != nil {
		t.Fatalf("Load = %v, %v; want an error", s, err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error %q should name the file and say it does not exist", err)
	}
}

func TestLocate(t *testing.T) {
	const etc = "/etc/checker/settings.cfg"
	env := envOf(map[string]string{"CHECKER_CONFIG": "/from/env.cfg"})

	t.Run("flag wins", func(t *testing.T) {
		t.Chdir(dirWithSettings(t))
		got, err := config.Locate("/from/flag.cfg", env)
		if err != nil || got != "/from/flag.cfg" {
			t.Errorf("Locate = %q, %v; want the flag", got, err)
		}
	})
	t.Run("CHECKER_CONFIG next", func(t *testing.T) {
		t.Chdir(dirWithSettings(t))
		got, err := config.Locate("", env)
		if err != nil || got != "/from/env.cfg" {
			t.Errorf("Locate = %q, %v; want $CHECKER_CONFIG", got, err)
		}
	})
	t.Run("then ./settings.cfg", func(t *testing.T) {
		t.Chdir(dirWithSettings(t))
		got, err := config.Locate("", noEnv)
		if err != nil || got != "settings.cfg" {
			t.Errorf("Locate = %q, %v; want settings.cfg", got, err)
		}
	})
	t.Run("then /etc", func(t *testing.T) {
		t.Chdir(t.TempDir())
		got, err := config.Locate("", noEnv)
		if _, statErr := os.Stat(etc); statErr == nil {
			if err != nil || got != etc {
				t.Errorf("Locate = %q, %v; want %s", got, err, etc)
			}
			return
		}
		if err == nil {
			t.Fatalf("Locate = %q, want an error", got)
		}
		for _, want := range []string{"-f", "CHECKER_CONFIG", "settings.cfg", etc} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}

func dirWithSettings(t *testing.T) string {
	t.Helper()
	return filepath.Dir(writeConfig(t, "[email]\nnomail = yes\n"))
}

func TestJobSections(t *testing.T) {
	s := mustLoad(t, `[email]
nomail = yes

[tcp:DNS]
targets = ns1.example.com:53, ns2.example.com:53
Every = minute

[HTTP:Web.Example.com]
# the health page
url = http://web.example.com/health#ok
contains = "ok"
notify = 30m

[command:backup]
command = /usr/lib/nagios/plugins/check_file_age -w 90000 -c 180000 /backups/last
`, noEnv)

	want := []struct {
		name   string
		line   int
		keys   []string
		values map[string]string
		lines  map[string]int
	}{
		{"tcp:DNS", 4, []string{"targets", "every"},
			map[string]string{"targets": "ns1.example.com:53, ns2.example.com:53", "every": "minute"},
			map[string]int{"targets": 5, "every": 6}},
		{"HTTP:Web.Example.com", 8, []string{"url", "contains", "notify"},
			map[string]string{"url": "http://web.example.com/health#ok", "contains": `"ok"`, "notify": "30m"},
			map[string]int{"url": 10, "contains": 11, "notify": 12}},
		{"command:backup", 14, []string{"command"},
			map[string]string{"command": "/usr/lib/nagios/plugins/check_file_age -w 90000 -c 180000 /backups/last"},
			map[string]int{"command": 15}},
	}
	if len(s.Jobs) != len(want) {
		t.Fatalf("got %d jobs, want %d: %+v", len(s.Jobs), len(want), s.Jobs)
	}
	for i, w := range want {
		j := s.Jobs[i]
		if j.Name != w.name || j.Line != w.line {
			t.Errorf("job %d = %q at line %d, want %q at line %d", i, j.Name, j.Line, w.name, w.line)
		}
		if !reflect.DeepEqual(j.Keys(), w.keys) {
			t.Errorf("%s: Keys() = %q, want %q", w.name, j.Keys(), w.keys)
		}
		for k, want := range w.values {
			if got := j.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", w.name, k, got, want)
			}
		}
		for k, want := range w.lines {
			if got := j.KeyLine(k); got != want {
				t.Errorf("%s: %s at line %d, want %d", w.name, k, got, want)
			}
		}
		for _, k := range w.keys {
			if !j.Has(k) {
				t.Errorf("%s: Has(%q) = false", w.name, k)
			}
		}
		if j.Has("timeout") {
			t.Errorf("%s: Has(timeout) = true", w.name)
		}
	}
}

func TestJobNamesDifferingByCase(t *testing.T) {
	ps := loadProblems(t, "[email]\nnomail = yes\n[tcp:dns]\ntarget = a:53\n[TCP:DNS]\ntarget = b:53\n")
	if len(ps) != 1 || ps[0].Line != 5 || ps[0].Section != "TCP:DNS" || !strings.Contains(ps[0].Msg, "differs only by case") {
		t.Errorf("problems = %v, want one at line 5 about [TCP:DNS] differing only by case", ps)
	}
}

func TestHeartbeatSection(t *testing.T) {
	s := mustLoad(t, `[email]
nomail = yes
[heartbeat]
redis = redis://127.0.0.1:6379/0
key_pattern = hb:{service}
services = web, worker,
  backup
discover = yes
alive = 30s
stale = 1m
notify = hour
`, noEnv)
	h := s.Heartbeat
	if h.Redis != "redis://127.0.0.1:6379/0" || h.KeyPattern != "hb:{service}" || h.ChannelPattern != "hb:{service}" ||
		!h.Discover || h.Alive != 30*time.Second || h.Stale != time.Minute {
		t.Errorf("Heartbeat = %+v", h)
	}
	if want := []string{"web", "worker", "backup"}; !reflect.DeepEqual(h.Services, want) {
		t.Errorf("Services = %q, want %q", h.Services, want)
	}
	if h.Section.Name != "heartbeat" || h.Section.Get("notify") != "hour" || h.Section.KeyLine("notify") != 11 {
		t.Errorf("Section = %+v", h.Section)
	}
}

func TestBOM(t *testing.T) {
	s := mustLoad(t, "\ufeff[general]\nservername = box\n[email]\nnomail = yes\n", noEnv)
	if s.General.ServerName != "box" {
		t.Errorf("ServerName = %q, want box", s.General.ServerName)
	}
}

// FuzzLoad feeds arbitrary bytes to Load as a settings file. Load must not
// panic, must return the settings it could read, every problem and hint
// must say what and where, and a value it reads must not gain a U+FFFD that
// was not in the file (bad bytes are reported, never replaced silently).
func FuzzLoad(f *testing.F) {
	f.Add([]byte(pythonSettings))
	f.Add([]byte("[email]\nnomail = yes\n[tcp:dns]\ntarget = a:53\n"))
	for _, pattern := range []string{"testdata/invalid-*.cfg", "testdata/python/*.cfg"} {
		for _, file := range mustGlob(f, pattern) {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "settings.cfg")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := config.Load(path, noEnv)
		if s == nil {
			t.Fatalf("Load returned no settings (error %v)", err)
		}
		for _, h := range s.Hints {
			if h.Msg == "" || h.File != path || h.Line <= 0 {
				t.Errorf("hint without message, file or line: %+v", h)
			}
		}
		if !bytes.Contains(data, []byte("\uFFFD")) && !bytes.Contains(data, []byte("\xef\xbf\xbd")) {
			for _, j := range s.Jobs {
				for _, k := range j.Keys() {
					if strings.ContainsRune(j.Get(k), '\uFFFD') {
						t.Errorf("[%s] %s = %q: U+FFFD not in the file", j.Name, k, j.Get(k))
					}
				}
			}
		}
		if err == nil {
			return
		}
		var ps config.Problems
		if !errors.As(err, &ps) {
			t.Fatalf("Load error is %T, want config.Problems: %v", err, err)
		}
		if len(ps) == 0 {
			t.Fatal("Load returned an empty Problems as an error")
		}
		for _, p := range ps {
			if p.Msg == "" || p.File != path {
				t.Errorf("problem without message or file: %+v", p)
			}
		}
	})
}

func mustGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"10":    10 * time.Second,
		" 10 ":  10 * time.Second,
		"1.5":   1500 * time.Millisecond,
		"90s":   90 * time.Second,
		"1m30s": 90 * time.Second,
		"2h":    2 * time.Hour,
		"500ms": 500 * time.Millisecond,
	} {
		if got, err := config.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Each of these once came out as zero or negative without an error.
	for _, in := range []string{"", "soon", "0", "0s", "-5", "-1m", "1e-12", "NaN", "inf", "-inf", "1e300", "9223372037"} {
		if got, err := config.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestParsePositiveInt(t *testing.T) {
	if n, err := config.ParsePositiveInt(" 8 ", 1); err != nil || n != 8 {
		t.Errorf("ParsePositiveInt(8) = %d, %v", n, err)
	}
	for _, in := range []string{"", "abc", "0", "-1", "1.5", "99999999999999999999"} {
		if n, err := config.ParsePositiveInt(in, 1); err == nil {
			t.Errorf("ParsePositiveInt(%q) = %d, want an error", in, n)
		}
	}
}

func TestSectionHeaderWithComment(t *testing.T) {
	s := mustLoad(t, "[general] ; the basics\nservername = box\n[email]\nnomail = yes\n", noEnv)
	if s.General.ServerName != "box" {
		t.Errorf("ServerName = %q, want box", s.General.ServerName)
	}
}

func TestProblemOrderIsStable(t *testing.T) {
	path := writeConfig(t, "[email]\nnomail = yes\nsmtp_tls = ssl\nimap_tls = ssl\n")
	var first string
	for i := range 20 {
		_, err := config.Load(path, noEnv)
		if err == nil {
			t.Fatal("Load accepted bad smtp_tls and imap_tls")
		}
		if i == 0 {
			first = err.Error()
			if strings.Count(first, "is not one of starttls, tls, none") != 2 {
				t.Fatalf("want two problems, got:\n%s", first)
			}
			continue
		}
		if err.Error() != first {
			t.Fatalf("load %d reported\n%s\nafter\n%s", i, err, first)
		}
	}
}

func TestNoMailOption(t *testing.T) {
	// Mail keys missing altogether: an error, unless --nomail says mail is
	// off for this run.
	path := writeConfig(t, "[general]\nservername = box\n")
	if _, err := config.Load(path, noEnv); err == nil || !strings.Contains(err.Error(), "mail is not configured") {
		t.Fatalf("Load = %v, want 'mail is not configured'", err)
	}
	s, err := config.LoadWith(path, noEnv, config.Options{NoMail: true})
	if err != nil {
		t.Fatalf("LoadWith(NoMail): %v", err)
	}
	if !s.Email.NoMail {
		t.Error("Email.NoMail = false with Options.NoMail")
	}
	// Other problems are still reported.
	path = writeConfig(t, "[general]\nconcurrency = lots\n")
	if _, err := config.LoadWith(path, noEnv, config.Options{NoMail: true}); err == nil || !strings.Contains(err.Error(), "concurrency") {
		t.Errorf("LoadWith(NoMail) = %v, want the concurrency problem", err)
	}
}

func TestSectionAccessors(t *testing.T) {
	s := mustLoad(t, "[DEFAULT]\nnotify = hour\n[email]\nnomail = yes\n[tcp:a]\nTarget = a:53\nevery = day\n", noEnv)
	loaded := s.Jobs[0]
	for name, sec := range map[string]config.Section{"loaded": loaded} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				key, value string
				set        bool
				line       int
			}{
				{"target", "a:53", true, 6},
				{"every", "day", true, 7},
				{"notify", "hour", true, 2},
				{"timeout", "", false, 5},
			} {
				v, ok := sec.Lookup(tc.key)
				if v != tc.value || ok != tc.set || sec.Get(tc.key) != tc.value || sec.Has(tc.key) != tc.set || sec.KeyLine(tc.key) != tc.line {
					t.Errorf("%s: Lookup = %q, %v; Get = %q; Has = %v; KeyLine = %d; want %q, %v, line %d",
						tc.key, v, ok, sec.Get(tc.key), sec.Has(tc.key), sec.KeyLine(tc.key), tc.value, tc.set, tc.line)
				}
			}
		})
	}
	if !reflect.DeepEqual(loaded.Keys(), []string{"target", "every"}) {
		t.Errorf("Keys() = %q", loaded.Keys())
	}
	n := config.NewSection("http:x", 3, "URL", "http://127.0.0.1/", "every", "hour")
	if n.Get("url") != "http://127.0.0.1/" || n.KeyLine("every") != 3 || n.Has("timeout") || !reflect.DeepEqual(n.Keys(), []string{"url", "every"}) {
		t.Errorf("NewSection = %+v", n)
	}
	// Sections share backing arrays: appending to one section's keys must
	// not change the next one's.
	two := mustLoad(t, "[email]\nnomail = yes\n[tcp:a]\ntarget = a:53\n[tcp:b]\ntarget = b:53\n", noEnv)
	_ = append(two.Jobs[0].Keys(), "every")
	if got := two.Jobs[1].Keys(); !reflect.DeepEqual(got, []string{"target"}) || two.Jobs[1].Get("target") != "b:53" {
		t.Errorf("[tcp:b] Keys() = %q after appending to [tcp:a]'s", got)
	}
}

func TestDefaultHintOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("[DEFAULT]\nlabel = 50% off\n[email]\nnomail = yes\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "[tcp:j%d]\ntarget = a:1\nnote = %d%%\n", i, i)
	}
	s := mustLoad(t, b.String(), noEnv)
	if len(s.Hints) != 1001 || s.Hints[0].Section != "DEFAULT" || s.Hints[0].Line != 2 {
		t.Errorf("%d hints, first %v; want one for [DEFAULT] label and one per note", len(s.Hints), s.Hints[0])
	}
	if s.Jobs[999].Get("label") != "50% off" || s.Jobs[999].Get("note") != "999%" {
		t.Errorf("values = %q, %q", s.Jobs[999].Get("label"), s.Jobs[999].Get("note"))
	}
}

// TestInterpolationProblemOnce: a value whose reference fails is one
// problem, not a second one for what the unexpanded text is not.
func TestInterpolationProblemOnce(t *testing.T) {
	ps := loadProblems(t, "[general]\ntimeout = %(t)s\n[email]\nnomail = yes\n")
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, `refers to "t"`) {
		t.Errorf("problems = %v, want one", ps)
	}
}
