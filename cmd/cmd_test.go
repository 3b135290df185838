package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs checker in-process with args and returns stdout, stderr and
// the exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code := execute(g, args)
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMergeCrontabIsIdempotent(t *testing.T) {
	block := crontabBlock("/usr/local/bin/checker", "/etc/checker/settings.cfg")
	other := "MAILTO=ops@example.com\n*/5 * * * * /usr/bin/backup\n"
	once, err := mergeCrontab(other, block, "/etc/checker/settings.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(once, other) || !strings.HasSuffix(once, block) {
		t.Fatalf("first merge should append the block after the user's lines:\n%s", once)
	}
	twice, err := mergeCrontab(once, block, "/etc/checker/settings.cfg")
	if err != nil || twice != once {
		t.Fatalf("second merge changed the crontab (err %v):\n%s", err, twice)
	}
	// A changed binary path replaces the block in place, keeping what follows.
	moved := crontabBlock("/opt/checker/checker", "/etc/checker/settings.cfg")
	after, err := mergeCrontab(once+"0 3 * * * /usr/bin/later\n", moved, "/etc/checker/settings.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(after, "/usr/local/bin/checker") || !strings.Contains(after, "/opt/checker/checker -f") || !strings.HasSuffix(after, "/usr/bin/later\n") {
		t.Fatalf("replacing the block:\n%s", after)
	}
	// Another settings file gets its own block.
	second := crontabBlock("/usr/local/bin/checker", "/srv/b/settings.cfg")
	both, _ := mergeCrontab(once, second, "/srv/b/settings.cfg")
	if strings.Count(both, "# BEGIN checker") != 2 {
		t.Fatalf("two settings files should have two blocks:\n%s", both)
	}
	if _, err := mergeCrontab("# BEGIN checker /etc/checker/settings.cfg\n1 * * * * x\n", block, "/etc/checker/settings.cfg"); err == nil {
		t.Error("a begin marker without an end must be refused, not guessed at")
	}
}

func TestCrontabEscapesPercent(t *testing.T) {
	block := crontabBlock("/opt/100%/checker", "/etc/checker/settings.cfg")
	if !strings.Contains(block, `'/opt/100\%/checker' -f`) {
		t.Errorf("cron turns a bare %% into a newline; want it escaped:\n%s", block)
	}
}

func TestCrontabBlockSchedule(t *testing.T) {
	block := crontabBlock("/usr/local/bin/checker", "/etc/my checker/settings.cfg")
	for _, want := range []string{
		"1-59 * * * * /usr/local/bin/checker -f '/etc/my checker/settings.cfg' cron minute\n",
		"0 1-11,13-23 * * * /usr/local/bin/checker -f '/etc/my checker/settings.cfg' cron hour\n",
		"0 0 * * * /usr/local/bin/checker -f '/etc/my checker/settings.cfg' cron day\n",
		"0 12 * * * /usr/local/bin/checker -f '/etc/my checker/settings.cfg' cron day_noon\n",
	} {
		if !strings.Contains(block, want) {
			t.Errorf("block lacks %q:\n%s", want, block)
		}
	}
}

// TestCrontabInstall runs --install twice against a fake crontab command
// that keeps the table in a file.
func TestCrontabInstall(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "table")
	writeFile(t, dir, "table", "MAILTO=root\n", 0o600)
	writeFile(t, dir, "crontab", `#!/bin/sh
case "$1" in
-l) cat "`+table+`" ;;
-) cat > "`+table+`" ;;
*) exit 2 ;;
esac
`, 0o755)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n", 0o600)

	for i := 0; i < 2; i++ {
		out, errOut, code := runCLI(t, nil, "-f", cfg, "crontab", "--install")
		if code != 0 {
			t.Fatalf("install %d: exit %d: %s %s", i, code, out, errOut)
		}
	}
	b, _ := os.ReadFile(table)
	got := string(b)
	if !strings.HasPrefix(got, "MAILTO=root\n") || strings.Count(got, "cron minute") != 1 || !strings.Contains(got, "-f "+cfg+" cron day_noon") {
		t.Fatalf("crontab after two installs:\n%s", got)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.cfg", "[email]\nnomail = yes\n[tcp:x]\ntarget = 127.0.0.1:1\n", 0o600)
	bad := writeFile(t, dir, "bad.cfg", "[general]\nconcurency = 3\n[email]\nnomail = maybe\n[nosuch:x]\n", 0o600)

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStdout bool
	}{
		{"validate ok", []string{"-f", good, "config", "validate"}, 0, "OK (1 job)", "", false},
		{"validate lists every problem", []string{"-f", bad, "config", "validate"}, 78, "", "3 problems", true},
		{"cron on bad settings", []string{"-f", bad, "cron", "minute"}, 78, "", "concurency: unknown key", true},
		{"cron bad tier", []string{"-f", good, "cron", "weekly"}, 2, "", "not a tier", true},
		{"missing settings", []string{"-f", filepath.Join(dir, "nope.cfg"), "list"}, 78, "", "does not exist", true},
		{"check bad args is UNKNOWN", []string{"check", "tcp"}, 3, "UNKNOWN - ", "", false},
		{"check bad target is UNKNOWN", []string{"check", "tcp", "nope"}, 3, "UNKNOWN - \"nope\" is not host:port", "", false},
		{"check bad flag value names the flag", []string{"check", "tls", "--warn-days", "-1", "127.0.0.1:1"}, 3, "TLS UNKNOWN - --warn-days: -1 is less than 0", "", false},
		{"check closed port is CRITICAL", []string{"check", "tcp", "127.0.0.1:1"}, 2, "CRITICAL - cannot connect to 127.0.0.1:1", "", false},
		{"check warning", []string{"check", "command", "--", "sh", "-c", "echo disk 91%; exit 1"}, 1, "WARNING - disk 91%", "", false},
		{"run unknown job", []string{"-f", good, "run", "tcp:y"}, 2, "", "no such job: tcp:y", true},
		{"unknown command", []string{"frobnicate"}, 2, "", "unknown command", true},
		{"check without a check is UNKNOWN", []string{"check"}, 3, "UNKNOWN - name a check", "", false},
		{"check with a mistyped check is UNKNOWN", []string{"check", "tcpx", "127.0.0.1:1"}, 3, "UNKNOWN - ", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) || (tc.noStdout && out != "") {
				t.Errorf("exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)", code, tc.code, out, tc.stdout, errOut, tc.stderr)
			}
		})
	}
}

func TestConfigLocation(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "elsewhere.cfg", "[email]\nnomail = yes\n", 0o600)
	out, _, code := runCLI(t, map[string]string{"CHECKER_CONFIG": cfg}, "config", "validate")
	if code != 0 || !strings.Contains(out, cfg) {
		t.Errorf("$CHECKER_CONFIG not used: exit %d, %q", code, out)
	}
}

func TestPasswordWarning(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nalertcontact = a@example.test\n[email]\nuser = u@example.test\npass = hunter2\nsmtpserver = 127.0.0.1\nimapserver = 127.0.0.1\n", 0o644)
	_, errOut, code := runCLI(t, nil, "-f", cfg, "config", "validate")
	if code != 0 || !strings.Contains(errOut, "readable by others") || strings.Contains(errOut, "hunter2") {
		t.Errorf("exit %d, stderr %q: want a warning about the mode that does not show the password", code, errOut)
	}
}

// TestSharedStatefileRefused: a second settings file pointing at the state
// of a first one that still exists is a settings problem (exit 78) naming
// both, and its run records nothing.
func TestSharedStatefileRefused(t *testing.T) {
	dir := t.TempDir()
	settings := func(name string) string {
		return writeFile(t, dir, name, "[general]\nservername = "+name+"\nalertcontact = ops@example.test\nstatefile = "+
			filepath.Join(dir, "shared.state")+"\n[email]\nnomail = yes\n[command:ok]\ncommand = true\n", 0o600)
	}
	a, b := settings("a.cfg"), settings("b.cfg")
	if _, errOut, code := runCLI(t, nil, "-f", a, "cron", "minute"); code != 0 {
		t.Fatalf("cron under a.cfg: exit %d: %s", code, errOut)
	}
	_, errOut, code := runCLI(t, nil, "-f", b, "cron", "minute")
	if code != 78 || !strings.Contains(errOut, "belongs to the settings "+a+", not "+b) {
		t.Errorf("cron under b.cfg: exit %d, stderr %q; want 78 naming both settings files", code, errOut)
	}
	if _, errOut, code := runCLI(t, nil, "-f", b, "config", "validate"); code != 78 || !strings.Contains(errOut, "belongs to the settings "+a) {
		t.Errorf("config validate of b.cfg: exit %d, stderr %q; want 78 naming a.cfg", code, errOut)
	}
	if out, errOut, code := runCLI(t, nil, "-f", a, "config", "validate"); code != 0 {
		t.Errorf("config validate of a.cfg: exit %d, %s %s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, nil, "-f", b, "silence", "ok", "--for", "1h"); code != 78 {
		t.Errorf("silence under b.cfg: exit %d, stderr %q; want 78", code, errOut)
	}
	if out, _, code := runCLI(t, nil, "-f", b, "status", "--json"); code != 0 || strings.Contains(out, `"silence"`) {
		t.Errorf("status under b.cfg (reading is allowed): exit %d, %s", code, out)
	}
}

// TestForgetAsRootChangesNothing: root refused by another user's state
// directory (exit 77) creates nothing there, not even the local
// heartbeat store's directory.
func TestForgetAsRootChangesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(stateDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nalertcontact = ops@example.test\nstatefile = "+
		filepath.Join(stateDir, "checker.state")+"\n[email]\nnomail = yes\n[heartbeat]\ndiscover = yes\n", 0o600)
	_, errOut, code := runCLI(t, nil, "-f", cfg, "heartbeat", "forget", "old-importer")
	if code != 77 || !strings.Contains(errOut, stateDir) {
		t.Errorf("forget: exit %d, stderr %q; want 77 naming %s", code, errOut, stateDir)
	}
	if entries, _ := os.ReadDir(stateDir); len(entries) != 0 {
		t.Errorf("the refused forget left %d entries in %s (%s…)", len(entries), stateDir, entries[0].Name())
	}
}

// TestWritingCommandSaysStateWasReplaced: an operator's command that finds
// the state corrupt and starts a fresh one says so on stderr at once.
func TestWritingCommandSaysStateWasReplaced(t *testing.T) {
	dir := t.TempDir()
	statePath := filepath.Join(dir, "checker.state")
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nalertcontact = ops@example.test\nstatefile = "+statePath+
		"\n[email]\nnomail = yes\n[command:ok]\ncommand = true\n", 0o600)
	writeFile(t, dir, "checker.state", "not a database at all", 0o600)
	_, errOut, code := runCLI(t, nil, "-f", cfg, "silence", "ok", "--for", "1h")
	if code != 0 || !strings.Contains(errOut, "checker: warning: state file "+statePath+" is corrupt") || !strings.Contains(errOut, "moved aside to") {
		t.Errorf("silence on a corrupt state: exit %d, stderr %q; want a warning that it was replaced", code, errOut)
	}
}
