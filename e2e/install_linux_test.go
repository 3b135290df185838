package e2e_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The install tests run `make build` and `make install` from the module
// root, the way the README tells an operator to.
const repoRoot = ".."

var (
	makeBuildOnce sync.Once
	makeBuildDir  string
	makeBuildErr  error
)

// madeBuild runs `make build` once into a directory of its own and returns
// it: the binary, man/ and completions/.
func madeBuild(t *testing.T) string {
	t.Helper()
	makeBuildOnce.Do(func() {
		makeBuildDir = filepath.Join(filepath.Dir(checkerBin), "make-build")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "make", "-C", repoRoot, "build", "BUILDDIR="+makeBuildDir).CombinedOutput()
		if err != nil {
			makeBuildErr = fmt.Errorf("make build: %v\n%s", err, out)
		}
	})
	if makeBuildErr != nil {
		t.Fatal(makeBuildErr)
	}
	return makeBuildDir
}

// noGoPath is a PATH without Go, as root's is under sudo on Debian; "" if
// Go is found there anyway.
func noGoPath() string {
	const path = "/usr/sbin:/usr/bin:/sbin:/bin"
	for _, dir := range filepath.SplitList(path) {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			return ""
		}
	}
	return path
}

// makeInstall runs `make install` with a PATH that has no Go.
func makeInstall(t *testing.T, vars ...string) (string, error) {
	t.Helper()
	path := noGoPath()
	if path == "" {
		t.Log("go is in /usr/bin or /bin: cannot show that make install does without it")
		path = os.Getenv("PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-C", repoRoot, "install"}, vars...)...)
	cmd.Env = []string{"PATH=" + path, "HOME=" + os.TempDir(), "LANG=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestStaticBinary: make build's binary has no program interpreter and
// needs no shared library, so it runs on any Linux of its architecture.
func TestStaticBinary(t *testing.T) {
	bin := filepath.Join(madeBuild(t), "checker")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a PT_INTERP program header: dynamically linked (built with cgo?)", bin)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (err %v)", bin, libs, err)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "checker ") {
		t.Errorf("checker version: %q, %v", out, err)
	}
}

// TestDocToolsStayOutOfBinary: cobra's doc package and its markdown
// renderer are for make build only; every cron run would pay their init.
func TestDocToolsStayOutOfBinary(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/spf13/cobra/doc") || strings.Contains(pkg, "go-md2man") || strings.Contains(pkg, "blackfriday") {
			t.Errorf("the checker binary links %s", pkg)
		}
	}
}

func TestMakeInstallWithoutBuildFails(t *testing.T) {
	empty := t.TempDir()
	dest := t.TempDir()
	out, err := makeInstall(t, "BUILDDIR="+empty, "DESTDIR="+dest)
	if err == nil || !strings.Contains(out, "run 'make build' first") {
		t.Errorf("make install without a build: err %v, output:\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Errorf("make install without a build installed %d entries", len(entries))
	}
}

// installedFiles are where make install puts things, under DESTDIR, for
// PREFIX=/usr/local and the default SYSCONFDIR.
var installedFiles = []string{
	"usr/local/bin/checker",
	"usr/local/share/man/man1/checker.1",
	"usr/local/share/man/man1/checker-config-validate.1",
	"usr/local/share/man/man1/checker-crontab.1",
	"usr/local/share/man/man1/checker-heartbeat-publish.1",
	"usr/local/share/bash-completion/completions/checker",
	"usr/local/share/zsh/site-functions/_checker",
	"usr/local/share/fish/vendor_completions.d/checker.fish",
	"usr/local/lib/systemd/system/checker.service",
	"etc/logrotate.d/checker",
	"usr/local/share/doc/checker/settings.cfg.example",
	"usr/local/share/doc/checker/crontab.example",
}

// serviceUser is a temporary system user (and its group) the test creates
// to run checker as, as the README has operators do.
type serviceUser struct {
	name     string
	uid, gid uint32
}

func newServiceUser(t *testing.T) serviceUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("running as uid %d: creating a temporary system user needs root", os.Geteuid())
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/useradd"); serr != nil {
			t.Skip("no useradd on this machine: cannot create a temporary system user")
		}
		useradd = "/usr/sbin/useradd"
	}
	name := fmt.Sprintf("ckt%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, useradd, "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		userdel := filepath.Join(filepath.Dir(useradd), "userdel")
		if out, err := exec.CommandContext(ctx, userdel, name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
		// userdel removes the user's group with it; be sure.
		exec.CommandContext(ctx, filepath.Join(filepath.Dir(useradd), "groupdel"), name).Run()
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return serviceUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// run runs a program as the user, bounded in time.
func (u serviceUser) run(t *testing.T, env []string, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{u.gid}}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %v as %s did not finish within 60s", prog, args, u.name)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v as %s: %v", prog, args, u.name, err)
	}
	return r
}

// mkdirOwned is `install -d -o uid -g gid -m mode dir`.
func mkdirOwned(t *testing.T, dir string, uid, gid uint32, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// writeOwned writes a file with the owner, group and mode given.
func writeOwned(t *testing.T, path, content string, uid, gid uint32, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestInstallAsServiceUser follows the README's install steps under a
// temporary root: make install (without Go on PATH), settings root:GROUP
// 0640, state and log directories owned by the service user; then, as that
// user, everything cron and an operator do.
func TestInstallAsServiceUser(t *testing.T) {
	u := newServiceUser(t)
	build := madeBuild(t)
	base, err := os.MkdirTemp("", "checker-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}

	dest := filepath.Join(base, "root")
	out, err := makeInstall(t, "BUILDDIR="+build, "DESTDIR="+dest, "PREFIX=/usr/local")
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range installedFiles {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Size() == 0 {
			t.Errorf("make install did not install %s (%v)", f, err)
		}
	}
	if unit, _ := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/checker.service")); !strings.Contains(string(unit), "ExecStart=/usr/local/bin/checker serve") {
		t.Errorf("installed unit does not start the installed binary:\n%s", unit)
	}
	if man, err := exec.LookPath("man"); err == nil {
		page, err := exec.Command(man, "-l", filepath.Join(dest, "usr/local/share/man/man1/checker-crontab.1")).Output()
		if err != nil || !strings.Contains(string(page), "--uninstall") {
			t.Errorf("man -l checker-crontab.1: %v\n%s", err, page)
		}
	}

	// The README's layout, under base.
	etc := filepath.Join(base, "etc", "checker")
	stateDir := filepath.Join(base, "var", "lib", "checker")
	logDir := filepath.Join(base, "var", "log", "checker")
	mkdirOwned(t, etc, 0, u.gid, 0o750)
	mkdirOwned(t, stateDir, u.uid, u.gid, 0o750)
	mkdirOwned(t, logDir, u.uid, u.gid, 0o750)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	settings := filepath.Join(etc, "settings.cfg")
	writeOwned(t, settings, fmt.Sprintf(`[general]
statefile = %s
logfile = %s
[email]
nomail = yes
[tcp:loopback]
target = %s
`, filepath.Join(stateDir, "checker.state"), filepath.Join(logDir, "checker.log"), target.Addr()), 0, u.gid, 0o640)

	bin := filepath.Join(dest, "usr/local/bin/checker")
	fakeBin := filepath.Join(base, "fakebin")
	cronDir := filepath.Join(base, "cron")
	mkdirOwned(t, fakeBin, 0, 0, 0o755)
	mkdirOwned(t, cronDir, u.uid, u.gid, 0o700)
	table := filepath.Join(cronDir, "table")
	calls := filepath.Join(cronDir, "calls")
	writeOwned(t, filepath.Join(fakeBin, "crontab"), `#!/bin/sh
echo "$*" >> '`+calls+`'
case "$1" in
-l) if [ -f '`+table+`' ]; then cat '`+table+`'; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
-) cat > '`+table+`' ;;
*) exit 1 ;;
esac
`, 0, 0, 0o755)
	env := []string{"PATH=" + fakeBin + ":/usr/bin:/bin", "HOME=/nonexistent", "LANG=C"}
	as := func(args ...string) result { return u.run(t, env, bin, args...) }

	if r := as("version"); r.code != 0 || !strings.HasPrefix(r.stdout, "checker ") {
		t.Fatalf("the installed binary does not run as %s: exit %d %q %q", u.name, r.code, r.stdout, r.stderr)
	}
	if r := as("-f", settings, "config", "validate"); r.code != 0 || !strings.Contains(r.stdout, "OK (1 job)") {
		t.Errorf("config validate on root:%s 0640 settings: exit %d\nstdout %s\nstderr %s", u.name, r.code, r.stdout, r.stderr)
	}
	if r := as("-f", settings, "crontab"); r.code != 0 || !strings.Contains(r.stdout, "1-59 * * * * "+bin+" -f "+settings+" cron minute\n") {
		t.Errorf("crontab: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if r := as("-f", settings, "cron", "minute"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("cron minute must succeed silently: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, "checker.state")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != u.uid {
		t.Errorf("the state file is not the service user's: %v", err)
	}

	t.Run("crontab install refuses settings the user cannot read", func(t *testing.T) {
		rootOnly := filepath.Join(etc, "root-only.cfg")
		writeOwned(t, rootOnly, "[email]\nnomail = yes\n", 0, 0, 0o600)
		r := as("-f", rootOnly, "crontab", "--install")
		if r.code != 77 || !strings.Contains(r.stderr, "user "+u.name+" cannot read the settings file "+rootOnly) || !strings.Contains(r.stderr, "root:root 0600") {
			t.Errorf("exit %d, stderr %q: want 77 naming the user and the file", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(calls); len(b) != 0 {
			t.Errorf("crontab was run: %s", b)
		}
	})

	t.Run("crontab install refuses settings in a directory the user cannot enter", func(t *testing.T) {
		closed := filepath.Join(etc, "closed")
		if err := os.Mkdir(closed, 0o700); err != nil {
			t.Fatal(err)
		}
		inside := filepath.Join(closed, "settings.cfg")
		writeOwned(t, inside, "[email]\nnomail = yes\n", 0, 0, 0o644)
		r := as("-f", inside, "crontab", "--install")
		if r.code != 77 || !strings.Contains(r.stderr, "cannot read the settings file "+inside+" (its directory "+closed+" is root:root 0700)") {
			t.Errorf("exit %d, stderr %q: want 77 naming the directory", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(calls); len(b) != 0 {
			t.Errorf("crontab was run: %s", b)
		}
	})

	t.Run("crontab install and uninstall keep the symlink", func(t *testing.T) {
		// A versioned install: /usr/local/bin/checker -> checker-1.2.
		versioned := bin + "-1.2"
		if err := os.Rename(bin, versioned); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Base(versioned), bin); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(bin); os.Rename(versioned, bin) })
		r := as("-f", settings, "crontab", "--install")
		tab, _ := os.ReadFile(table)
		if r.code != 0 || !strings.Contains(string(tab), "1-59 * * * * "+bin+" -f "+settings+" cron minute\n") || strings.Contains(string(tab), "1.2") {
			t.Fatalf("install: exit %d, stderr %q; crontab:\n%s", r.code, r.stderr, tab)
		}
		if r := as("-f", settings, "crontab", "--install"); r.code != 0 || !strings.Contains(r.stdout, "already up to date") {
			t.Errorf("second install: exit %d %q %q", r.code, r.stdout, r.stderr)
		}
		if r := as("-f", settings, "crontab", "--uninstall"); r.code != 0 || !strings.Contains(r.stdout, "removed") {
			t.Errorf("uninstall: exit %d %q %q", r.code, r.stdout, r.stderr)
		}
		if tab, _ := os.ReadFile(table); strings.Contains(string(tab), "checker") {
			t.Errorf("uninstall left:\n%s", tab)
		}
	})

	t.Run("unwritable logfile is reported once, not every minute", func(t *testing.T) {
		rootLogs := filepath.Join(base, "var", "log", "root-only")
		mkdirOwned(t, rootLogs, 0, 0, 0o700)
		cfg := filepath.Join(etc, "badlog.cfg")
		writeOwned(t, cfg, fmt.Sprintf("[general]\nstatefile = %s\nlogfile = %s\n[email]\nnomail = yes\n",
			filepath.Join(stateDir, "badlog.state"), filepath.Join(rootLogs, "checker.log")), 0, u.gid, 0o640)
		first := as("-f", cfg, "cron", "minute")
		if first.code != 0 || strings.Count(first.stderr, "\n") != 1 || !strings.Contains(first.stderr, "cannot open logfile") || !strings.Contains(first.stderr, u.name) {
			t.Errorf("first run: exit %d, stderr %q: want one line naming the logfile and the user", first.code, first.stderr)
		}
		for i := 0; i < 2; i++ {
			if r := as("-f", cfg, "cron", "minute"); r.code != 0 || r.stderr != "" || r.stdout != "" {
				t.Errorf("run %d within the hour: exit %d, stdout %q, stderr %q: cron would mail it", i+2, r.code, r.stdout, r.stderr)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(stateDir, "checker-fallback.log")); !strings.Contains(string(b), "cannot open logfile") {
			t.Errorf("fallback log:\n%s", b)
		}
	})

	t.Run("logrotate snippet", func(t *testing.T) {
		logrotate, err := exec.LookPath("logrotate")
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/logrotate"); serr != nil {
				t.Skip("logrotate is not installed (make deps-test installs it)")
			}
			logrotate = "/usr/sbin/logrotate"
		}
		logFile := filepath.Join(logDir, "checker.log")
		if r := as("-v", "-f", settings, "run", "tcp:loopback"); r.code != 0 {
			t.Fatalf("run: exit %d %q %q", r.code, r.stdout, r.stderr)
		}
		snippet, err := os.ReadFile(filepath.Join(dest, "etc/logrotate.d/checker"))
		if err != nil {
			t.Fatal(err)
		}
		reloaded := filepath.Join(base, "reloaded")
		conf := strings.NewReplacer(
			"/var/log/checker/", logDir+"/",
			"su checker checker", "su "+u.name+" "+u.name,
			"create 0640 checker checker", "create 0640 "+u.name+" "+u.name,
			"systemctl try-reload-or-restart checker.service", "touch "+reloaded,
		).Replace(string(snippet))
		if !strings.Contains(conf, reloaded) || !strings.Contains(conf, logDir) {
			t.Fatalf("the snippet changed shape; adapt this test:\n%s", conf)
		}
		confPath := filepath.Join(base, "logrotate.conf")
		writeOwned(t, confPath, conf, 0, 0, 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, logrotate, "-f", "-s", filepath.Join(base, "logrotate.state"), confPath).CombinedOutput(); err != nil {
			t.Fatalf("logrotate: %v\n%s", err, out)
		}
		old, err := os.ReadFile(logFile + ".1")
		if err != nil || !strings.Contains(string(old), "job ran") {
			t.Fatalf("rotated log: %v\n%s", err, old)
		}
		fi, err := os.Stat(logFile)
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != u.uid || fi.Mode().Perm() != 0o640 {
			t.Fatalf("new log: %v %v", err, fi)
		}
		if _, err := os.Stat(reloaded); err != nil {
			t.Errorf("postrotate did not run: %v", err)
		}
		if r := as("-v", "-f", settings, "run", "tcp:loopback"); r.code != 0 || r.stderr != "" {
			t.Fatalf("run after rotation: exit %d %q %q", r.code, r.stdout, r.stderr)
		}
		if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "job ran") {
			t.Errorf("a run after rotation did not write the new log:\n%s", b)
		}
		if again, _ := os.ReadFile(logFile + ".1"); !bytes.Equal(again, old) {
			t.Errorf("a run after rotation wrote to the rotated log")
		}
	})
}

// TestTyposThroughBinary: a mistyped subcommand or flag, at any level,
// exits 2 and suggests the right one (cobra alone prints help and exits 0
// inside a group).
func TestTyposThroughBinary(t *testing.T) {
	tests := []struct {
		args    []string
		suggest string
	}{
		{[]string{"config", "valdate"}, "\tvalidate\n"},
		{[]string{"heartbeat", "pubish"}, "\tpublish\n"},
		{[]string{"crontab", "--instal"}, "\t--install\n"},
		{[]string{"statuss"}, "\tstatus\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, checkerBin, tc.args...)
			cmd.Dir = t.TempDir()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("err %v, want exit 2", err)
			}
			if !strings.Contains(stderr.String(), "Did you mean this?\n"+tc.suggest) || stdout.Len() != 0 {
				t.Errorf("stdout %q, stderr %q: want the suggestion %q on stderr only", stdout.String(), stderr.String(), tc.suggest)
			}
		})
	}
}
