package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"checker/jobs"
)

// checkSchema is the version of the JSON object `check --json` prints.
const checkSchema = 1

type checkOptions struct {
	json    bool
	timeout time.Duration
	version bool
}

// timeoutValue is the -t/--timeout flag: seconds ("5", "2.5"), as
// Nagios passes them to plugins, or a Go duration ("5s", "1m30s").
type timeoutValue struct{ d *time.Duration }

func (v timeoutValue) String() string { return v.d.String() }
func (v timeoutValue) Type() string   { return "seconds|duration" }

func (v timeoutValue) Set(s string) error {
	d, err := parseTimeout(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseTimeout reads seconds or a Go duration; it must be positive.
func parseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("%q is neither seconds (5, 2.5) nor a duration (5s, 1m)", s)
		}
		if secs > (100 * 365 * 24 * time.Hour).Seconds() {
			return 0, fmt.Errorf("%q seconds is too long", s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: the timeout must be more than 0", s)
	}
	return d, nil
}

func newCheckCommand(g *globalOptions) *cobra.Command {
	o := &checkOptions{timeout: 10 * time.Second}
	c := &cobra.Command{
		Use:   "check",
		Short: "Run one ad-hoc check from the shell, as a Nagios/Icinga plugin",
		Long: `Runs one check and prints its result as a Monitoring Plugin does:

  TYPE STATUS - text | perfdata

(the long output of 'check command' follows on the next lines). Touches no
state and sends no mail, so any Nagios or Icinga can call it.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also bad arguments,
settings and -V/--version).`,
	}
	// Without a known check, answer UNKNOWN (exit 3) rather than help and 0:
	// a mistyped Nagios command must not read as OK.
	c.Args = cobra.NoArgs
	c.Annotations = map[string]string{"usage-exit": "3"}
	c.RunE = func(*cobra.Command, []string) error {
		if o.version {
			fmt.Fprintf(g.stdout, "checker check %s\n", versionString())
			return &exitError{code: int(jobs.Unknown)}
		}
		return printCheckError(g, o, "check", "", errors.New("name a check: tcp, http, tls, command, heartbeat, email or peer (see checker check --help)"))
	}
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return printCheckError(g, o, c.Name(), "", err)
	})
	pf := c.PersistentFlags()
	pf.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	pf.VarP(timeoutValue{&o.timeout}, "timeout", "t", "give up after this long: seconds (5, 2.5) or a duration (5s)")
	pf.BoolVarP(&o.version, "version", "V", false, "print the version and exit 3 (UNKNOWN), as plugins do")

	var (
		httpSpec = jobs.HTTP{}
		noFollow bool
		tlsDays  int
		tlsCrit  int
	)
	tcp := &cobra.Command{
		Use: "tcp HOST:PORT", Short: "Can a TCP connection be opened?", Args: cobra.ExactArgs(1),
		Example: "  checker check tcp db.example.com:5432 -t 5",
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), g, o, "tcp", &jobs.TCP{Addr: args[0]})
		},
	}
	httpc := &cobra.Command{
		Use:   "http URL",
		Short: "Does the URL answer with the expected status (and text)?",
		Long: `Fetches the URL and compares the status (and, with --contains, the body, of
which at most 1 MiB is read; the whole read must finish within the timeout).
Redirects are followed, except with --no-follow or when the expected status is
a redirect (3xx); a redirect from https to plain http fails unless
--allow-downgrade.`,
		Args:    cobra.ExactArgs(1),
		Example: "  checker check http https://example.com/health --contains ok\n  checker check http http://example.com/ --expect-status 301",
		RunE: func(c *cobra.Command, args []string) error {
			spec := httpSpec
			spec.URL = args[0]
			spec.Follow = !noFollow
			return runCheck(c.Context(), g, o, "http", &spec)
		},
	}
	httpc.Flags().StringVar(&httpSpec.Method, "method", "GET", "HTTP method")
	httpc.Flags().IntVar(&httpSpec.ExpectStatus, "expect-status", 200, "expected status code (a 3xx is checked without following)")
	httpc.Flags().StringVar(&httpSpec.Contains, "contains", "", "text the body must contain")
	httpc.Flags().BoolVar(&httpSpec.Insecure, "insecure", false, "do not verify the certificate")
	httpc.Flags().BoolVar(&noFollow, "no-follow", false, "do not follow redirects")
	httpc.Flags().BoolVar(&httpSpec.AllowDowngrade, "allow-downgrade", false, "follow a redirect from https to plain http")
	tlsc := &cobra.Command{
		Use:   "tls HOST[:PORT]",
		Short: "Is the certificate valid and not expiring soon?",
		Long: `Verifies the certificate chain for the host name and reads the leaf's expiry:
CRITICAL within --crit-days (and when invalid or expired), WARNING within
--warn-days. --crit-days defaults to 7, or to 0 when --warn-days is 7 or less.`,
		Args:    cobra.ExactArgs(1),
		Example: "  checker check tls example.com --warn-days 21 --crit-days 7",
		RunE: func(c *cobra.Command, args []string) error {
			crit := tlsCrit
			if !c.Flags().Changed("crit-days") {
				crit = jobs.CritDaysUnset // the default that fits warn-days
			}
			return runCheck(c.Context(), g, o, "tls", &jobs.TLS{Addr: args[0], WarnDays: tlsDays, CritDays: crit})
		},
	}
	tlsc.Flags().IntVar(&tlsDays, "warn-days", 30, "WARNING when the certificate expires within this many days")
	tlsc.Flags().IntVar(&tlsCrit, "crit-days", 7, "CRITICAL when the certificate expires within this many days (at most --warn-days)")
	command := &cobra.Command{
		Use:   "command -- CMD [ARGS...]",
		Short: "Run a Nagios plugin or any command",
		Long: `Runs the command (no shell) as a command job does: exit status 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN, anything else UNKNOWN. Prints its first line
without the plugin's own status word, its performance data, then its long
output. The command gets checker's environment without any CHECKER_* variable.`,
		Args:    cobra.MinimumNArgs(1),
		Example: "  checker check command -- /usr/lib/nagios/plugins/check_disk -w 20% -c 10% -p /",
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), g, o, "command", &jobs.Command{Argv: args})
		},
	}
	subs := []*cobra.Command{tcp, httpc, tlsc, command}
	for _, add := range extraChecks {
		subs = append(subs, add(g, o))
	}
	for _, s := range subs {
		s.Annotations = map[string]string{"usage-exit": "3"}
		pluginConventions(g, o, s)
		c.AddCommand(s)
	}
	return c
}

// pluginConventions makes a check subcommand answer -V/--version with its
// version (exit 3, as plugins do) whatever its arguments, and report bad
// arguments as UNKNOWN in the plugin output shape.
func pluginConventions(g *globalOptions, o *checkOptions, s *cobra.Command) {
	args, run := s.Args, s.RunE
	s.Args = func(c *cobra.Command, a []string) error {
		if o.version || args == nil {
			return nil
		}
		if err := args(c, a); err != nil {
			return printCheckError(g, o, c.Name(), "", err)
		}
		return nil
	}
	s.RunE = func(c *cobra.Command, a []string) error {
		if o.version {
			fmt.Fprintf(g.stdout, "checker check %s %s\n", c.Name(), versionString())
			return &exitError{code: int(jobs.Unknown)}
		}
		return run(c, a)
	}
}

// extraChecks are check subcommands added by other files (heartbeat,
// email, peer), which need the settings.
var extraChecks []func(*globalOptions, *checkOptions) *cobra.Command

// checkJSON is the JSON form of a check's result (--json), schema
// checkSchema. The field names are the vocabulary all --json outputs share.
type checkJSON struct {
	Schema          int     `json:"schema"`
	Name            string  `json:"name"`
	Type            string  `json:"type"`
	Target          string  `json:"target"`
	Status          string  `json:"status"`
	Code            int     `json:"code"`
	Message         string  `json:"message"`
	Perfdata        string  `json:"perfdata"`
	LongOutput      string  `json:"long_output"`
	Detail          string  `json:"detail,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// runCheck validates spec, runs it once and prints the result. The exit
// code is the Nagios status.
func runCheck(ctx context.Context, g *globalOptions, o *checkOptions, typ string, spec jobs.Spec) error {
	env := jobs.NewEnv(nil)
	env.Supervisor = supervisorArgv()
	return runCheckEnv(ctx, g, o, typ, spec, env)
}

// settingsAsFlags names the settings keys of a check's messages as the
// flags that set them.
var settingsAsFlags = strings.NewReplacer("warn_days", "--warn-days", "crit_days", "--crit-days",
	"expect_status", "--expect-status", "fail_on", "--fail-on")

// runCheckEnv is runCheck in the given environment, which it closes.
func runCheckEnv(ctx context.Context, g *globalOptions, o *checkOptions, typ string, spec jobs.Spec, env *jobs.Env) error {
	defer env.Close()
	var r jobs.Result
	if err := spec.Validate(); err != nil {
		var ke *jobs.KeyError
		if errors.As(err, &ke) {
			switch ke.Key {
			case "target", "url", "command", "service":
				err = ke.Err // the argument
			default: // a flag here: warn_days is --warn-days
				flag := "--" + strings.ReplaceAll(ke.Key, "_", "-")
				msg := settingsAsFlags.Replace(ke.Err.Error())
				if !strings.Contains(msg, flag) {
					msg = flag + ": " + msg
				}
				err = errors.New(msg)
			}
		}
		r = jobs.Resultf(jobs.Unknown, "%v", err)
	} else {
		j := &jobs.Job{Name: typ, Type: typ, Target: spec.Target(), Timeout: o.timeout, Spec: spec}
		r = j.Run(ctx, env)
	}
	return printCheckAs(g, o, typ, checkLabel(typ, spec), spec.Target(), r)
}

// printCheckError reports a problem that kept a check from running (bad
// arguments, unusable settings) as UNKNOWN, in the same shape as a result.
// typ names the check (tcp, heartbeat, …).
func printCheckError(g *globalOptions, o *checkOptions, typ, target string, err error) error {
	// A list of settings problems: the first line is the message.
	msg, long, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	return printCheck(g, o, typ, target, jobs.Result{Status: jobs.Unknown, Message: msg, LongOutput: long})
}

// printCheck prints r as a Monitoring Plugin does and returns the exit
// error for its status (nil for OK). This is the one output function of
// every `checker check` subcommand:
//
//	TYPE STATUS - message | perfdata
//	long output…
//
// or, with --json, one checkJSON object. typ is the check's type in lower
// case (its label is the upper case); target is what was checked. With -d
// the result's Detail goes to stderr.
func printCheck(g *globalOptions, o *checkOptions, typ, target string, r jobs.Result) error {
	return printCheckAs(g, o, typ, typ, target, r)
}

// printCheckAs is printCheck with the label shown in front of the status
// given apart from the type.
func printCheckAs(g *globalOptions, o *checkOptions, typ, label, target string, r jobs.Result) error {
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		name := typ
		if target != "" {
			name += ":" + target
		}
		_ = enc.Encode(checkJSON{Schema: checkSchema, Name: name, Type: typ, Target: target,
			Status: r.Status.String(), Code: int(r.Status), Message: r.Message, Perfdata: r.Perfdata,
			LongOutput: r.LongOutput, Detail: r.Detail, DurationSeconds: r.Duration.Seconds()})
	} else {
		writePluginOutput(g.stdout, label, r)
		if g.debug && r.Detail != "" {
			fmt.Fprintln(g.stderr, strings.TrimRight(r.Detail, "\n"))
		}
	}
	if r.Status == jobs.OK {
		return nil
	}
	return &exitError{code: int(r.Status)}
}

// writePluginOutput writes the plugin lines. A '|' in the text would start
// perfdata for whoever parses the lines, so it is shown as '/'.
func writePluginOutput(w io.Writer, label string, r jobs.Result) {
	noBar := strings.NewReplacer("|", "/")
	msg := noBar.Replace(strings.TrimSpace(r.Message))
	if msg == "" {
		msg = r.Status.String()
	}
	line := fmt.Sprintf("%s %s - %s", strings.ToUpper(label), r.Status, msg)
	if r.Perfdata != "" {
		line += " | " + r.Perfdata
	}
	fmt.Fprintln(w, line)
	if long := strings.TrimRight(r.LongOutput, "\n"); long != "" {
		fmt.Fprintln(w, noBar.Replace(long))
	}
}

// checkLabel is the type shown in front of a check's status: the type, or
// for a command the plugin's name without "check_" (check_disk → disk),
// which is the service name plugins print themselves.
func checkLabel(typ string, spec jobs.Spec) string {
	if c, ok := spec.(*jobs.Command); ok && len(c.Argv) > 0 {
		if name, ok := strings.CutPrefix(filepath.Base(c.Argv[0]), "check_"); ok && name != "" {
			return name
		}
	}
	return typ
}
