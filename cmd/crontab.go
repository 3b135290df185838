package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/state"
)

// crontabTimeout bounds each run of crontab(1), which never needs long.
const crontabTimeout = 30 * time.Second

type crontabOptions struct {
	install   bool
	uninstall bool
}

func newCrontabCommand(g *globalOptions) *cobra.Command {
	var o crontabOptions
	c := &cobra.Command{
		Use:   "crontab [--install | --uninstall]",
		Short: "Print, install or remove the crontab lines for this binary and settings file",
		Long: `Prints the four crontab lines that run checker, with absolute paths to this
binary and the settings file: one tier per minute, never two at once. The
binary's path is the one it was run by (a symlink such as
/usr/local/bin/checker stays a symlink), so an upgrade that moves the symlink
needs no new crontab.

--install validates the settings first (exit 78 listing the problems,
installing nothing), refuses a settings file the installing user cannot read
(exit 77), then merges the lines into that user's crontab between marker
comments; running it again replaces them, so it is safe to repeat. Install
it as the user cron should run checker as:
  sudo -u checker checker -f /etc/checker/settings.cfg crontab --install

--uninstall removes the block for the settings file and says whether there
was one; the settings file need not exist any more.`,
		Example: `  checker -f /etc/checker/settings.cfg crontab
  sudo -u checker checker -f /etc/checker/settings.cfg crontab --install
  sudo -u checker checker -f /etc/checker/settings.cfg crontab --uninstall`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return crontab(c.Context(), g, o) },
	}
	c.Flags().BoolVar(&o.install, "install", false, "validate the settings, then merge the lines into the user's crontab")
	c.Flags().BoolVar(&o.uninstall, "uninstall", false, "remove the lines for this settings file from the user's crontab")
	c.MarkFlagsMutuallyExclusive("install", "uninstall")
	return c
}

// crontabBlock is the block of lines for binary and settings file.
func crontabBlock(binary, settings string) string {
	begin, end := crontabMarkers(settings)
	run := fmt.Sprintf("%s -f %s cron", shellQuote(binary), shellQuote(settings))
	return strings.Join([]string{
		begin,
		"1-59 * * * * " + run + " minute",
		"0 1-11,13-23 * * * " + run + " hour",
		"0 0 * * * " + run + " day",
		"0 12 * * * " + run + " day_noon",
		end,
	}, "\n") + "\n"
}

const crontabBeginPrefix = "# BEGIN checker "

func crontabMarkers(settings string) (string, string) {
	return crontabBeginPrefix + settings, "# END checker " + settings
}

// mergeCrontab replaces the block for the same settings file in current, or
// appends it.
func mergeCrontab(current, block, settings string) (string, error) {
	merged, _, err := spliceCrontab(current, block, settings)
	return merged, err
}

// spliceCrontab replaces the block for settings in current with block, or
// appends it; an empty block removes it. found says whether there was one.
func spliceCrontab(current, block, settings string) (merged string, found bool, err error) {
	begin, end := crontabMarkers(settings)
	lines := strings.SplitAfter(current, "\n")
	var out strings.Builder
	inBlock, found := false, false
	for _, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		switch {
		case t == begin:
			if inBlock {
				return "", false, fmt.Errorf("crontab has %q twice without %q between: fix it by hand (crontab -e)", begin, end)
			}
			inBlock = true
			if !found {
				out.WriteString(block)
				found = true
			}
		case t == end && inBlock:
			inBlock = false
		case !inBlock:
			out.WriteString(l)
		}
	}
	if inBlock {
		return "", false, fmt.Errorf("crontab has %q without %q: fix it by hand (crontab -e)", begin, end)
	}
	s := out.String()
	if !found && block != "" {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += block
	}
	return s, found, nil
}

// crontabBlocks lists the settings files that have a block in current.
func crontabBlocks(current string) []string {
	var out []string
	for _, l := range strings.Split(current, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), crontabBeginPrefix); ok {
			out = append(out, s)
		}
	}
	return out
}

// crontab is `checker crontab`.
func crontab(ctx context.Context, g *globalOptions, o crontabOptions) error {
	path, err := config.Locate(g.configFile, g.getenv)
	if err != nil {
		return &exitError{code: exitConfig, err: err}
	}
	settings, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("settings file %s: %w", path, err)
	}
	if o.uninstall {
		return uninstallCrontab(ctx, g, settings)
	}
	if _, err := os.Stat(settings); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return cannotRead(settings)
		}
		return &exitError{code: exitConfig, err: fmt.Errorf("settings file: %w", err)}
	}
	binary, err := invokedBinary(g.arg0)
	if err != nil {
		return err
	}
	block := crontabBlock(binary, settings)
	if !o.install {
		_, err := fmt.Fprint(g.stdout, block)
		return err
	}
	if err := checkInstallable(g, settings); err != nil {
		return err
	}
	current, err := readCrontab(ctx)
	if err != nil {
		return err
	}
	merged, err := mergeCrontab(current, block, settings)
	if err != nil {
		return err
	}
	if merged == current {
		fmt.Fprintf(g.stdout, "crontab of %s already up to date\n", userName())
		return nil
	}
	if err := writeCrontab(ctx, merged); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "installed checker's lines for %s into the crontab of %s\n", settings, userName())
	return nil
}

// uninstallCrontab is `checker crontab --uninstall`.
func uninstallCrontab(ctx context.Context, g *globalOptions, settings string) error {
	current, err := readCrontab(ctx)
	if err != nil {
		return err
	}
	merged, removed, err := spliceCrontab(current, "", settings)
	if err != nil {
		return err
	}
	if !removed {
		msg := fmt.Sprintf("no checker lines for %s in the crontab of %s; nothing removed", settings, userName())
		if others := crontabBlocks(current); len(others) > 0 {
			msg += fmt.Sprintf(" (it has lines for %s: choose with -f)", strings.Join(others, ", "))
		}
		fmt.Fprintln(g.stdout, msg)
		return nil
	}
	if err := writeCrontab(ctx, merged); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "removed checker's lines for %s from the crontab of %s\n", settings, userName())
	return nil
}

// checkInstallable makes sure the crontab about to be installed can work:
// the installing user (whom cron will run checker as) can read the settings
// file, and the settings are valid as cron will load them (without
// --nomail). Paths checker must write and cannot are warnings: they may be
// created after the crontab.
func checkInstallable(g *globalOptions, settings string) error {
	f, err := os.Open(settings)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return cannotRead(settings)
		}
		return &exitError{code: exitConfig, err: fmt.Errorf("settings file: %w; nothing installed", err)}
	}
	f.Close()
	l, err := g.loadFile(settings, config.Options{})
	if err != nil {
		return &exitError{code: exitConfig, err: fmt.Errorf("%w; nothing installed", err)}
	}
	for _, w := range l.settings.Warnings {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	if n := len(l.problems); n > 0 {
		return &exitError{code: exitConfig, err: fmt.Errorf("%d problem%s in %s; nothing installed:\n%v",
			n, plural(n), settings, l.problems)}
	}
	for _, w := range unwritable(l.settings) {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	store := &state.Store{Path: l.settings.General.StateFile, Owner: settingsOwner(settings)}
	if err := store.OwnerConflict(); err != nil {
		return &exitError{code: exitConfig, err: fmt.Errorf("%w; nothing installed", err)}
	}
	return nil
}

// cannotRead is the answer when the installing user, whom cron will run
// checker as, cannot read the settings file or enter its directory.
func cannotRead(settings string) error {
	who := userName()
	fix := fmt.Sprintf("chgrp %s %s; chmod 0640 %s", groupName(), settings, settings)
	blocked := settings
	if _, err := os.Stat(settings); err != nil {
		blocked = filepath.Dir(settings)
		fix = fmt.Sprintf("chgrp %s %s; chmod 0750 %s", groupName(), blocked, blocked)
	}
	owner, group, mode := fileOwnership(blocked)
	what := fmt.Sprintf("%s:%s %04o", owner, group, mode)
	if blocked != settings {
		what = fmt.Sprintf("its directory %s is %s", blocked, what)
	}
	return &exitError{code: exitNoPerm, err: fmt.Errorf(
		"user %s cannot read the settings file %s (%s), and cron would run checker as %s: "+
			"let it read the file (%s) or install the crontab as a user who can; nothing installed",
		who, settings, what, who, fix)}
}

// unwritable lists the paths a cron run writes that the current user
// cannot write: the state file and the log file.
func unwritable(s *config.Settings) []string {
	var out []string
	check := func(what, path string) {
		if path == "" {
			return
		}
		target, err := writableTarget(path)
		if err != nil {
			out = append(out, fmt.Sprintf("%s %s: %v", what, path, err))
			return
		}
		if err := syscall.Access(target, 2 /* W_OK */); err != nil {
			out = append(out, fmt.Sprintf("user %s cannot write the %s %s (%s %s: %v)", userName(), what, path, describeFile(target), target, err))
		}
	}
	check("state file", s.General.StateFile)
	check("logfile", s.General.LogFile)
	return out
}

// writableTarget is path if it exists, else its nearest existing ancestor
// directory (where it would be created).
func writableTarget(path string) (string, error) {
	p := path
	for {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}

// describeFile is "owner:group mode" of path, for messages about access.
func describeFile(path string) string {
	owner, group, mode := fileOwnership(path)
	return fmt.Sprintf("%s:%s %04o", owner, group, mode)
}

// fileOwnership is the owner's and group's names (or ids) and the
// permission bits of path; "?" where it cannot be read.
func fileOwnership(path string) (owner, group string, mode fs.FileMode) {
	fi, err := os.Stat(path)
	if err != nil {
		return "?", "?", 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?", "?", fi.Mode().Perm()
	}
	owner = strconv.FormatUint(uint64(st.Uid), 10)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	group = strconv.FormatUint(uint64(st.Gid), 10)
	if gr, err := user.LookupGroupId(group); err == nil {
		group = gr.Name
	}
	return owner, group, fi.Mode().Perm()
}

// groupName is the name of the primary group of the user running checker,
// or its gid.
func groupName() string {
	gid := strconv.Itoa(os.Getgid())
	if g, err := user.LookupGroupId(gid); err == nil {
		return g.Name
	}
	return gid
}

// userName is the name of the user running checker, or its uid.
func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// invokedBinary is the absolute path checker was run by: arg0 made absolute
// by the current directory or a PATH lookup, symlinks kept, so a crontab
// naming /usr/local/bin/checker follows the symlink to each new version.
// When arg0 is the real file and a "checker" found on PATH is a symlink to
// it, that stable name is preferred. Anything that does not lead to the
// running executable falls back to its path.
func invokedBinary(arg0 string) (string, error) {
	exe, exeErr := os.Executable()
	if exeErr != nil && arg0 == "" {
		return "", fmt.Errorf("cannot find this binary's path: %w", exeErr)
	}
	exeInfo, statErr := os.Stat(exe)
	same := func(p string) bool {
		if exeErr != nil || statErr != nil {
			return true // nothing to compare with: trust the path run by
		}
		fi, err := os.Stat(p)
		return err == nil && os.SameFile(fi, exeInfo)
	}
	var path string
	if arg0 != "" {
		p := arg0
		if !strings.Contains(p, "/") {
			if found, err := exec.LookPath(p); err == nil || errors.Is(err, exec.ErrDot) {
				p = found
			}
		}
		if abs, err := filepath.Abs(p); err == nil && same(abs) {
			path = abs
		}
	}
	if path == "" {
		if exeErr != nil {
			return "", fmt.Errorf("cannot find this binary's path: %w", exeErr)
		}
		path = exe
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		if stable, err := exec.LookPath("checker"); err == nil && filepath.IsAbs(stable) {
			if li, err := os.Lstat(stable); err == nil && li.Mode()&fs.ModeSymlink != 0 {
				if si, err := os.Stat(stable); err == nil && os.SameFile(si, fi) {
					path = stable
				}
			}
		}
	}
	return path, nil
}

// readCrontab is the current user's crontab ("" when there is none).
func readCrontab(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, crontabTimeout)
	defer cancel()
	var current, stderr bytes.Buffer
	list := exec.CommandContext(ctx, "crontab", "-l")
	list.Stdout, list.Stderr = &current, &stderr
	if err := list.Run(); err != nil {
		// "no crontab for user" is an empty crontab; anything else is not.
		if strings.Contains(stderr.String(), "no crontab") {
			return "", nil
		}
		return "", crontabError("crontab -l", err, stderr.String())
	}
	return current.String(), nil
}

// crontabError says what went wrong running crontab(1), as whom.
func crontabError(what string, err error, output string) error {
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%s: no crontab command on PATH (is cron installed? apt install cron)", what)
	}
	if out := strings.TrimSpace(output); out != "" {
		return fmt.Errorf("%s (as %s): %v: %s", what, userName(), err, out)
	}
	return fmt.Errorf("%s (as %s): %v", what, userName(), err)
}

// writeCrontab replaces the current user's crontab with table.
func writeCrontab(ctx context.Context, table string) error {
	ctx, cancel := context.WithTimeout(ctx, crontabTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	write := exec.CommandContext(ctx, "crontab", "-")
	write.Stdin = strings.NewReader(table)
	write.Stdout, write.Stderr = &stdout, &stderr
	if err := write.Run(); err != nil {
		return crontabError("crontab -", err, stdout.String()+stderr.String())
	}
	return nil
}

// shellQuote quotes s for the crontab's /bin/sh when needed. Cron turns
// an unescaped % into a newline, so % is escaped for cron as well.
func shellQuote(s string) string {
	return strings.ReplaceAll(shQuote(s), "%", `\%`)
}

func shQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '+' || r == ',' || r == '@' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
