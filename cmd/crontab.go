package cmd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"checker/config"
)

func newCrontabCommand(g *globalOptions) *cobra.Command {
	var install bool
	c := &cobra.Command{
		Use:   "crontab [--install]",
		Short: "Print (or install) the crontab lines for this binary and settings file",
		Long: `Prints the four crontab lines that run checker, with absolute paths to this
binary and the settings file: one tier per minute, never two at once.
--install merges them into the current user's crontab between marker
comments; running it again replaces them, so it is safe to repeat.`,
		Example: "  checker -f /etc/checker/settings.cfg crontab --install",
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return crontab(g, install) },
	}
	c.Flags().BoolVar(&install, "install", false, "merge the lines into the user's crontab")
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

func crontabMarkers(settings string) (string, string) {
	return "# BEGIN checker " + settings, "# END checker " + settings
}

// mergeCrontab replaces the block for the same settings file in current, or
// appends it.
func mergeCrontab(current, block, settings string) (string, error) {
	begin, end := crontabMarkers(settings)
	lines := strings.SplitAfter(current, "\n")
	var out strings.Builder
	inBlock, replaced := false, false
	for _, l := range lines {
		t := strings.TrimRight(l, "\n")
		switch {
		case t == begin:
			if inBlock {
				return "", fmt.Errorf("crontab has %q twice without %q between", begin, end)
			}
			inBlock = true
			if !replaced {
				out.WriteString(block)
				replaced = true
			}
		case t == end && inBlock:
			inBlock = false
		case !inBlock:
			out.WriteString(l)
		}
	}
	if inBlock {
		return "", fmt.Errorf("crontab has %q without %q: fix it by hand (crontab -e)", begin, end)
	}
	s := out.String()
	if !replaced {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += block
	}
	return s, nil
}

// crontab is `checker crontab`.
func crontab(g *globalOptions, install bool) error {
	path, err := config.Locate(g.configFile, g.getenv)
	if err != nil {
		return &exitError{code: exitConfig, err: err}
	}
	settings, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(settings); err != nil {
		return &exitError{code: exitConfig, err: fmt.Errorf("settings file: %w", err)}
	}
	binary, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this binary's path: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(binary); err == nil {
		binary = resolved
	}
	block := crontabBlock(binary, settings)
	if !install {
		_, err := fmt.Fprint(g.stdout, block)
		return err
	}
	var current bytes.Buffer
	var stderr bytes.Buffer
	list := exec.Command("crontab", "-l")
	list.Stdout, list.Stderr = &current, &stderr
	if err := list.Run(); err != nil {
		// "no crontab for user" is an empty crontab; anything else is not.
		if !strings.Contains(stderr.String(), "no crontab") {
			return fmt.Errorf("crontab -l: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		current.Reset()
	}
	merged, err := mergeCrontab(current.String(), block, settings)
	if err != nil {
		return err
	}
	if merged == current.String() {
		fmt.Fprintln(g.stdout, "crontab already up to date")
		return nil
	}
	write := exec.Command("crontab", "-")
	write.Stdin = strings.NewReader(merged)
	write.Stderr = &stderr
	if out, err := write.Output(); err != nil {
		return fmt.Errorf("crontab -: %v: %s%s", err, out, strings.TrimSpace(stderr.String()))
	}
	fmt.Fprintf(g.stdout, "installed checker's lines for %s into the crontab\n", settings)
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
