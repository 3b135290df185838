package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"checker/jobs"
)

type checkOptions struct {
	json    bool
	timeout time.Duration
}

func newCheckCommand(g *globalOptions) *cobra.Command {
	o := &checkOptions{}
	c := &cobra.Command{
		Use:   "check",
		Short: "Run one ad-hoc check from the shell (Nagios exit codes)",
		Long: `Runs one check and prints one line in the Nagios plugin style. Touches no
state and sends no mail, so any Nagios or Icinga can call it.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments or settings).`,
	}
	// Without a known check, answer UNKNOWN (exit 3) rather than help and 0:
	// a mistyped Nagios command must not read as OK.
	c.Args = cobra.NoArgs
	c.Annotations = map[string]string{"usage-exit": "3"}
	c.RunE = func(*cobra.Command, []string) error {
		return fmt.Errorf("name a check: tcp, http, tls, command, heartbeat, email or peer (see checker check --help)")
	}
	c.PersistentFlags().BoolVar(&o.json, "json", false, "print the result as JSON")
	c.PersistentFlags().DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long")

	var (
		httpSpec = jobs.HTTP{}
		tlsDays  int
	)
	tcp := &cobra.Command{
		Use: "tcp HOST:PORT", Short: "Can a TCP connection be opened?", Args: cobra.ExactArgs(1),
		Example: "  checker check tcp db.example.com:5432",
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), g, o, "tcp", &jobs.TCP{Addr: args[0]})
		},
	}
	httpc := &cobra.Command{
		Use: "http URL", Short: "Does the URL answer with the expected status (and text)?", Args: cobra.ExactArgs(1),
		Example: "  checker check http https://example.com/health --contains ok",
		RunE: func(c *cobra.Command, args []string) error {
			spec := httpSpec
			spec.URL = args[0]
			return runCheck(c.Context(), g, o, "http", &spec)
		},
	}
	httpc.Flags().StringVar(&httpSpec.Method, "method", "GET", "HTTP method")
	httpc.Flags().IntVar(&httpSpec.ExpectStatus, "expect-status", 200, "expected status code")
	httpc.Flags().StringVar(&httpSpec.Contains, "contains", "", "text the body must contain")
	httpc.Flags().BoolVar(&httpSpec.Insecure, "insecure", false, "do not verify the certificate")
	tlsc := &cobra.Command{
		Use: "tls HOST[:PORT]", Short: "Is the certificate valid and not expiring soon?", Args: cobra.ExactArgs(1),
		Example: "  checker check tls example.com --warn-days 21",
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), g, o, "tls", &jobs.TLS{Addr: args[0], WarnDays: tlsDays})
		},
	}
	tlsc.Flags().IntVar(&tlsDays, "warn-days", 30, "warn when the certificate expires within this many days")
	command := &cobra.Command{
		Use: "command -- CMD [ARGS...]", Short: "Run a Nagios-style plugin or any command", Args: cobra.MinimumNArgs(1),
		Example: "  checker check command -- /usr/lib/nagios/plugins/check_disk -w 10% -c 5% -p /",
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
		c.AddCommand(s)
	}
	return c
}

// extraChecks are check subcommands added by other files (heartbeat,
// email, peer), which need the settings.
var extraChecks []func(*globalOptions, *checkOptions) *cobra.Command

// checkResult is the JSON form of a check.
type checkResult struct {
	Check   string  `json:"check"`
	Target  string  `json:"target"`
	Status  string  `json:"status"`
	Code    int     `json:"code"`
	Message string  `json:"message"`
	Detail  string  `json:"detail,omitempty"`
	Seconds float64 `json:"seconds"`
}

// runCheck validates spec, runs it once and prints the result. The exit
// code is the Nagios status.
func runCheck(ctx context.Context, g *globalOptions, o *checkOptions, typ string, spec jobs.Spec) error {
	return runCheckEnv(ctx, g, o, typ, spec, jobs.NewEnv(nil))
}

func runCheckEnv(ctx context.Context, g *globalOptions, o *checkOptions, typ string, spec jobs.Spec, env *jobs.Env) error {
	defer env.Close()
	var r jobs.Result
	if err := spec.Validate(); err != nil {
		var ke *jobs.KeyError
		if errors.As(err, &ke) {
			err = ke.Err
		}
		r = jobs.Resultf(jobs.Unknown, "%v", err)
	} else {
		j := &jobs.Job{Name: typ, Type: typ, Target: spec.Target(), Timeout: o.timeout, Spec: spec}
		r = j.Run(ctx, env)
	}
	return printCheck(g, o, typ, spec.Target(), r)
}

func printCheck(g *globalOptions, o *checkOptions, typ, target string, r jobs.Result) error {
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(checkResult{Check: typ, Target: target, Status: r.Status.String(), Code: int(r.Status),
			Message: r.Message, Detail: r.Detail, Seconds: r.Duration.Seconds()})
	} else {
		fmt.Fprintln(g.stdout, r.Line())
		if g.debug && r.Detail != "" {
			fmt.Fprintln(g.stderr, r.Detail)
		}
	}
	if r.Status == jobs.OK {
		return nil
	}
	return &exitError{code: int(r.Status)}
}
