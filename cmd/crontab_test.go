package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCrontab puts a crontab(1) on PATH that keeps the table in a file and
// logs every invocation, so no test touches a real user's crontab. It
// returns the table's path and the log's.
func fakeCrontab(t *testing.T, initial string) (table, calls string) {
	t.Helper()
	dir := t.TempDir()
	table = filepath.Join(dir, "table")
	calls = filepath.Join(dir, "calls")
	if initial != "" {
		writeFile(t, dir, "table", initial, 0o600)
	}
	writeFile(t, dir, "calls", "", 0o600)
	writeFile(t, dir, "crontab", `#!/bin/sh
echo "$*" >> '`+calls+`'
case "$1" in
-l) if [ -f '`+table+`' ]; then cat '`+table+`'; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
-) cat > '`+table+`' ;;
*) echo "usage" >&2; exit 1 ;;
esac
`, 0o755)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return table, calls
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// runAs is runCLI with the path the binary was run by.
func runAs(t *testing.T, arg0 string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, arg0: arg0}
	code := execute(g, args)
	return out.String(), errb.String(), code
}

func TestCrontabInstallAndUninstall(t *testing.T) {
	table, _ := fakeCrontab(t, "")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[tcp:db]\ntarget = 127.0.0.1:1\n", 0o600)
	other := writeFile(t, dir, "other.cfg", "[email]\nnomail = yes\n", 0o600)

	steps := []struct {
		args   []string
		stdout string
		blocks int
	}{
		{[]string{"-f", cfg, "crontab", "--install"}, "installed checker's lines for " + cfg, 1},
		{[]string{"-f", cfg, "crontab", "--install"}, "already up to date", 1},
		{[]string{"-f", other, "crontab", "--install"}, "installed", 2},
		{[]string{"-f", cfg, "crontab", "--uninstall"}, "removed checker's lines for " + cfg, 1},
		{[]string{"-f", cfg, "crontab", "--uninstall"}, "nothing removed (it has lines for " + other, 1},
		{[]string{"-f", other, "crontab", "--uninstall"}, "removed", 0},
		{[]string{"-f", other, "crontab", "--uninstall"}, "nothing removed", 0},
	}
	for i, s := range steps {
		// Lines the user added by hand must survive every step.
		if i == 1 {
			os.WriteFile(table, []byte("MAILTO=root\n"+readString(t, table)+"0 3 * * * /usr/bin/backup\n"), 0o600)
		}
		out, errOut, code := runCLI(t, nil, s.args...)
		if code != 0 || !strings.Contains(out, s.stdout) {
			t.Fatalf("step %d %v: exit %d, stdout %q (want %q), stderr %q", i, s.args, code, out, s.stdout, errOut)
		}
		got := readString(t, table)
		if n := strings.Count(got, "# BEGIN checker "); n != s.blocks || strings.Count(got, "# END checker ") != s.blocks {
			t.Fatalf("step %d %v: %d blocks, want %d:\n%s", i, s.args, n, s.blocks, got)
		}
		if i >= 1 && (!strings.HasPrefix(got, "MAILTO=root\n") || !strings.Contains(got, "0 3 * * * /usr/bin/backup\n")) {
			t.Fatalf("step %d %v: the user's own lines were lost:\n%s", i, s.args, got)
		}
	}
	if got := readString(t, table); got != "MAILTO=root\n0 3 * * * /usr/bin/backup\n" {
		t.Errorf("after uninstalling both, the crontab should be as the user left it:\n%q", got)
	}
}

func TestCrontabUninstallWithoutSettingsFile(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "removed.cfg")
	table, _ := fakeCrontab(t, crontabBlock("/usr/local/bin/checker", gone))
	out, errOut, code := runCLI(t, nil, "-f", gone, "crontab", "--uninstall")
	if code != 0 || !strings.Contains(out, "removed") || readString(t, table) != "" {
		t.Errorf("exit %d, stdout %q, stderr %q, table %q: the block of a deleted settings file must be removable", code, out, errOut, readString(t, table))
	}
}

func TestCrontabUninstallWithoutCrontab(t *testing.T) {
	table, calls := fakeCrontab(t, "")
	cfg := writeFile(t, t.TempDir(), "settings.cfg", "[email]\nnomail = yes\n", 0o600)
	out, errOut, code := runCLI(t, nil, "-f", cfg, "crontab", "--uninstall")
	if code != 0 || !strings.Contains(out, "nothing removed") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(readString(t, calls), "-\n") || readString(t, table) != "" {
		t.Errorf("nothing to remove must write nothing; calls:\n%s", readString(t, calls))
	}
}

func TestCrontabInstallValidatesFirst(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		file   string
		code   int
		stderr []string
	}{
		{"invalid settings", writeFile(t, dir, "bad.cfg", "[general]\nconcurency = 3\n[email]\nnomail = maybe\n", 0o600), 78,
			[]string{"2 problems", "concurency: unknown key", "nomail", "nothing installed"}},
		// cron runs without --nomail: settings that only validate with it
		// must not be installed.
		{"mail settings missing", writeFile(t, dir, "nomail.cfg", "[tcp:db]\ntarget = 127.0.0.1:1\n", 0o600), 78,
			[]string{"nothing installed"}},
		{"missing file", filepath.Join(dir, "nope.cfg"), 78, []string{"nope.cfg"}},
		// Everything config validate checks, maintenance windows included.
		{"bad maintenance window", writeFile(t, dir, "window.cfg", "[email]\nnomail = yes\n[tcp:db]\ntarget = 127.0.0.1:1\n"+
			"[maintenance:nightly]\nschedule = 61 * * * *\nduration = 1h\njobs = tcp:db\n", 0o600), 78,
			[]string{"1 problem", "[maintenance:nightly] schedule", "nothing installed"}},
		{"state of another settings file", sharedStateSettings(t, dir), 78,
			[]string{"belongs to the settings " + filepath.Join(dir, "owner.cfg"), "nothing installed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table, calls := fakeCrontab(t, "MAILTO=root\n")
			out, errOut, code := runCLI(t, nil, "--nomail", "-f", tc.file, "crontab", "--install")
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tc.code, out, errOut)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if c := readString(t, calls); c != "" {
				t.Errorf("crontab was run (%q) although the settings are wrong", c)
			}
			if got := readString(t, table); got != "MAILTO=root\n" {
				t.Errorf("crontab changed:\n%s", got)
			}
		})
	}
}

func TestCrontabInstallWarnsAboutUnwritablePaths(t *testing.T) {
	fakeCrontab(t, "")
	dir := t.TempDir()
	// A regular file where a directory should be: nobody, root included,
	// can create the log below it.
	writeFile(t, dir, "blocker", "", 0o600)
	cfg := writeFile(t, dir, "settings.cfg", "[general]\nlogfile = "+filepath.Join(dir, "blocker", "checker.log")+"\n[email]\nnomail = yes\n", 0o600)
	out, errOut, code := runCLI(t, nil, "-f", cfg, "crontab", "--install")
	if code != 0 || !strings.Contains(out, "installed") || !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "logfile") {
		t.Errorf("exit %d, stdout %q, stderr %q: want the crontab installed with a warning about the logfile", code, out, errOut)
	}
}

func TestCrontabRefusesUnreadableSettings(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file; e2e TestInstallAsServiceUser covers this as an unprivileged user")
	}
	_, calls := fakeCrontab(t, "")
	cfg := writeFile(t, t.TempDir(), "settings.cfg", "[email]\nnomail = yes\n", 0o000)
	_, errOut, code := runCLI(t, nil, "-f", cfg, "crontab", "--install")
	if code != exitNoPerm || !strings.Contains(errOut, "cannot read the settings file "+cfg) || readString(t, calls) != "" {
		t.Errorf("exit %d, stderr %q, calls %q", code, errOut, readString(t, calls))
	}
}

// TestCrontabBinaryPath: the crontab names the binary by the path it was
// run by; a symlink stays a symlink, so an upgrade that repoints it needs
// no new crontab.
func TestCrontabBinaryPath(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n", 0o600)
	// /opt/checker-1.2 is the real file, /usr/local/bin/checker a symlink.
	opt := filepath.Join(dir, "opt")
	bin := filepath.Join(dir, "usr", "local", "bin")
	other := filepath.Join(dir, "other")
	for _, d := range []string{opt, bin, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	versioned := filepath.Join(opt, "checker-1.2")
	if err := os.Link(exe, versioned); err != nil {
		// Another file system: a symlink still leads to the same file.
		if err := os.Symlink(exe, versioned); err != nil {
			t.Fatal(err)
		}
	}
	stable := filepath.Join(bin, "checker")
	if err := os.Symlink(versioned, stable); err != nil {
		t.Fatal(err)
	}
	unrelated := filepath.Join(other, "checker")
	writeFile(t, other, "checker", "#!/bin/sh\n", 0o755)

	tests := []struct {
		name string
		path string // PATH
		arg0 string
		want string
	}{
		{"symlink run by its path", "/usr/bin", stable, stable},
		{"symlink found on PATH", bin, "checker", stable},
		{"relative path made absolute", "/usr/bin", "./usr/local/bin/checker", stable},
		{"versioned file, stable symlink on PATH", bin, versioned, stable},
		{"versioned file, no symlink on PATH", "/usr/bin", versioned, versioned},
		{"another checker first on PATH is not this one", other + string(os.PathListSeparator) + bin, versioned, versioned},
		{"arg0 that is not this binary", "/usr/bin", unrelated, exe},
		{"no arg0", "/usr/bin", "", exe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			t.Chdir(dir)
			out, errOut, code := runAs(t, tc.arg0, "-f", cfg, "crontab")
			if code != 0 || !strings.Contains(out, "1-59 * * * * "+tc.want+" -f "+cfg+" cron minute\n") {
				t.Errorf("exit %d, stderr %q; want the lines to run %s:\n%s", code, errOut, tc.want, out)
			}
		})
	}
}

// sharedStateSettings writes owner.cfg and runs it once, so that its state
// records it, and returns second.cfg, pointing at the same state.
func sharedStateSettings(t *testing.T, dir string) string {
	t.Helper()
	body := "[email]\nnomail = yes\n[general]\nalertcontact = ops@example.test\nstatefile = " +
		filepath.Join(dir, "shared.state") + "\n[command:ok]\ncommand = true\n"
	owner := writeFile(t, dir, "owner.cfg", body, 0o600)
	if _, errOut, code := runCLI(t, nil, "-f", owner, "cron", "minute"); code != 0 {
		t.Fatalf("cron under owner.cfg: exit %d: %s", code, errOut)
	}
	return writeFile(t, dir, "second.cfg", body, 0o600)
}
