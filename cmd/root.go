// Package cmd is checker's command line: one file per command, each a
// constructor that builds the cobra command and a plain function that does
// the work by calling into the packages below.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"checker/state"

	"github.com/spf13/pflag"
)

// Exit codes beyond 0 and 1.
const (
	exitUsage    = 2
	exitTempFail = 75 // EX_TEMPFAIL: the state lock was held too long
	exitNoPerm   = 77 // EX_NOPERM: this user may not read or write a file checker needs
	exitConfig   = 78 // EX_CONFIG: the settings are wrong
)

// exitError carries an exit code to main. A nil err exits silently.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile string
	verbose    bool
	debug      bool
	nomail     bool
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
	// arg0 is the path the binary was run by (os.Args[0]); crontab writes
	// it into the crontab as given, never with symlinks resolved. Empty:
	// the running executable's path.
	arg0 string
	// now is the clock; nil means time.Now.
	now func() time.Time
}

func (g *globalOptions) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

const exitCodesHelp = `Exit codes:
  0   success (for cron: the run completed, whatever the jobs found)
  1   an error; for status and run: a job shown is failing; for check: WARNING
  2   bad usage (for check: CRITICAL)
  3   for check: UNKNOWN (bad arguments or settings)
  75  cron: another invocation held the state lock too long
  77  this user may not use a file checker needs: the state file, or the
      settings file for crontab --install
  78  the settings file has errors or cannot be read (see checker config validate),
      or its statefile belongs to another settings file`

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "checker",
		Short: "Monitor ports, web endpoints, certificates, heartbeats and peers; mail the admins",
		Long: `checker is run by cron every minute. It runs the jobs that are due, applies
the failure and notification rules, mails the admins and saves its state.
'checker serve' answers peers and accepts heartbeat pushes.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "f", "", "settings file (default: $CHECKER_CONFIG, else ./settings.cfg, else /etc/checker/settings.cfg)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "debug log to [general] logfile")
	pf.BoolVarP(&g.debug, "debug", "d", false, "debug log to stderr")
	pf.BoolVar(&g.nomail, "nomail", false, "do everything except send notices (mail and channels); print what would be sent")

	root.AddCommand(
		newCronCommand(g),
		newRunCommand(g),
		newListCommand(g),
		newStatusCommand(g),
		newCheckCommand(g),
		newConfigCommand(g),
		newCrontabCommand(g),
		newVersionCommand(g),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	// Added here rather than by cobra at execution so that the walk below
	// and the generated documentation see it.
	root.InitDefaultCompletionCmd()
	root.SetHelpCommand(newHelpCommand())
	root.SetFlagErrorFunc(flagError)
	rejectUnknownSubcommands(root)

	// --version by hand: cobra's Version field prints through a template,
	// and any template in the binary keeps every exported method alive in
	// the linker (12 MB → 21 MB, and more memory for every cron run).
	showVersion := root.Flags().BoolP("version", "V", false, "print the version (as checker version)")
	group := root.RunE
	root.RunE = func(c *cobra.Command, args []string) error {
		if *showVersion {
			_, err := fmt.Fprintln(g.stdout, versionLine())
			return err
		}
		if group == nil {
			return c.Help()
		}
		return group(c, args)
	}
	return root
}

// NewRootCommand builds checker's whole command tree, writing to stdout and
// stderr and reading the environment. The documentation generator
// (internal/gendocs) walks it for the man pages and shell completions.
func NewRootCommand() *cobra.Command {
	return newRootCommand(&globalOptions{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
}

// extraCommands are added by command files that need nothing else wired.
var extraCommands []func(*globalOptions) *cobra.Command

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}

// Execute runs checker with os.Args and returns the exit code.
func Execute() int {
	// go-redis logs connection trouble process-wide on stderr; the same
	// errors reach checker as return values and are reported once, clearly.
	redis.SetLogger(quietRedisLogger{})
	g := &globalOptions{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, arg0: os.Args[0], now: time.Now}
	return execute(g, os.Args[1:])
}

func execute(g *globalOptions, args []string) int {
	root := newRootCommand(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(g.stderr, "checker: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(g.stderr, "checker: %v\n", err)
	var pe *state.PermissionError
	if errors.As(err, &pe) {
		return exitNoPerm
	}
	var oe *state.OwnerError
	if errors.As(err, &oe) {
		return exitConfig // a settings problem: two settings files, one statefile
	}
	if cmd != nil && cmd.Annotations["usage-exit"] != "" {
		// check reports bad arguments as UNKNOWN, per the Nagios convention:
		// one line on stdout, the rest (suggestions) went to stderr above.
		first, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(g.stdout, "%s UNKNOWN - %s\n", strings.ToUpper(cmd.Name()), first)
		return 3
	}
	if isUsageError(err) {
		return exitUsage
	}
	return 1
}

// isUsageError recognises cobra's argument and flag errors, which are plain
// errors without a type of their own.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// rejectUnknownSubcommands makes every command group reject an unknown
// subcommand with exit 2 and cobra's suggestions. Cobra does that only for
// the root: a group without its own Run prints its help and exits 0 on any
// argument, so "checker config valdate" would read as success. A group with
// no argument still prints its help. Groups with their own Run keep it, and
// an argument their Args reject is reported the same way.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() {
		return
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if c.Run != nil || c.RunE != nil {
		validate := c.Args
		if validate == nil {
			return
		}
		c.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				if len(args) > 0 {
					return unknownCommand(c, args[0])
				}
				return err
			}
			return nil
		}
		return
	}
	c.Args = cobra.ArbitraryArgs
	if c.ValidArgsFunction == nil {
		c.ValidArgsFunction = cobra.NoFileCompletions
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return unknownCommand(c, args[0])
	}
}

// newHelpCommand is cobra's "help [command]" except that a topic that is
// no command is a usage error (exit 2 with suggestions), as the same typo
// is without "help": cobra's own prints the root's help and exits 0.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help about any command: checker help [command path], as checker [command path] --help.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return unknownCommand(c.Root(), args[0])
			}
			if len(rest) > 0 {
				return unknownCommand(cmd, rest[0])
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}

// unknownCommand is the usage error for an unknown subcommand name of c.
func unknownCommand(c *cobra.Command, name string) error {
	suggestions := c.SuggestionsFor(name)
	if len(suggestions) == 0 {
		// A subcommand given without its group: "checker valdate" means
		// "checker config validate".
		for _, group := range c.Commands() {
			for _, sub := range group.Commands() {
				if sub.IsAvailableCommand() && len(suggest(name, []string{sub.Name()}, 2)) > 0 {
					suggestions = append(suggestions, group.Name()+" "+sub.Name())
				}
			}
		}
	}
	return fmt.Errorf("unknown command %q for %q%s", name, c.CommandPath(),
		didYouMean(suggestions, c.CommandPath()))
}

// flagError adds suggestions to cobra's "unknown flag" errors, which have
// none of their own (crontab --instal), and says where the usage is.
func flagError(c *cobra.Command, err error) error {
	var suggestions []string
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		var names []string
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Deprecated == "" {
				names = append(names, f.Name)
			}
		})
		for _, s := range suggest(name, names, 2) {
			suggestions = append(suggestions, "--"+s)
		}
	}
	return fmt.Errorf("%w%s", err, didYouMean(suggestions, c.CommandPath()))
}

// didYouMean is the tail of a usage error: the suggestions, if any, and
// where to find the usage.
func didYouMean(suggestions []string, path string) string {
	var b strings.Builder
	if len(suggestions) > 0 {
		b.WriteString("\n\nDid you mean this?\n")
		for _, s := range suggestions {
			fmt.Fprintf(&b, "\t%s\n", s)
		}
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nRun '%s --help' for usage.", path)
	return b.String()
}

// suggest returns the candidates that typed is a prefix of or within
// maxDistance edits of, as cobra suggests command names.
func suggest(typed string, candidates []string, maxDistance int) []string {
	var out []string
	lower := strings.ToLower(typed)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if strings.HasPrefix(lc, lower) || editDistance(lower, lc) <= maxDistance {
			out = append(out, c)
		}
	}
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
