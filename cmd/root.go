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
	"runtime/debug"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

// Exit codes beyond 0 and 1.
const (
	exitUsage    = 2
	exitTempFail = 75 // EX_TEMPFAIL: the state lock was held too long
	exitConfig   = 78 // EX_CONFIG: the settings are wrong
)

// version is set at build time with -ldflags "-X checker/cmd.version=…".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

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
}

const exitCodesHelp = `Exit codes:
  0   success (for cron: the run completed, whatever the jobs found)
  1   an error (for check: WARNING)
  2   bad usage (for check: CRITICAL)
  3   for check: UNKNOWN (bad arguments or settings)
  75  cron: another invocation held the state lock too long
  78  the settings file has errors (see checker config validate)`

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
	pf.BoolVar(&g.nomail, "nomail", false, "do everything except send mail; print what would be sent")

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
	return root
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
	g := &globalOptions{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
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
	if cmd != nil && cmd.Annotations["usage-exit"] != "" {
		// check reports bad arguments as UNKNOWN, per the Nagios convention.
		fmt.Fprintf(g.stdout, "UNKNOWN - %v\n", err)
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
