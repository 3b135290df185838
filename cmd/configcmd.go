package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/state"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Settings tools"}
	c.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check settings.cfg and print every problem with its section and key",
		Long: `Loads the settings and the jobs they describe and prints every problem at once,
each with file, line, section and key, and warnings about values that may not
mean what they seem (text after a value that looks like a comment but is part
of it, a '%' kept as written). Connects to nothing. Exit 0 when valid (with or
without warnings), 78 when not.`,
		Example: "  checker -f /etc/checker/settings.cfg config validate",
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return validateConfig(g) },
	})
	return c
}

// validateConfig is `checker config validate`.
func validateConfig(g *globalOptions) error {
	l, err := g.load()
	if err != nil {
		return err
	}
	s, js, problems, path := l.settings, l.jobs, l.problems, l.path
	for _, w := range s.Warnings {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	for _, h := range s.Hints {
		if !sameKey(problems, h) {
			fmt.Fprintf(g.stderr, "warning: %s\n", h)
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(g.stderr, p.String())
		}
		return &exitError{code: exitConfig, err: fmt.Errorf("%s: %d problem%s", path, len(problems), plural(len(problems)))}
	}
	// The settings are sound, but their statefile may be another's.
	store := &state.Store{Path: s.General.StateFile, Owner: settingsOwner(path)}
	if err := store.OwnerConflict(); err != nil {
		return &exitError{code: exitConfig, err: err}
	}
	fmt.Fprintf(g.stdout, "%s: OK (%d job%s)\n", path, len(js), plural(len(js)))
	return nil
}

// sameKey reports whether a problem concerns the key of line h is about: its
// message already says what the hint would.
func sameKey(problems config.Problems, h config.Problem) bool {
	for _, p := range problems {
		if p.Line == h.Line && p.Section == h.Section && p.Key == h.Key {
			return true
		}
	}
	return false
}
