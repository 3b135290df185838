package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"checker/jobs"
)

type runOptions struct {
	record bool
	json   bool
}

func newRunCommand(g *globalOptions) *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:   "run JOB...",
		Short: "Run configured jobs now, by name",
		Long: `Runs the named jobs at once, whatever their schedule, and prints their results.
A section with a list (targets = …) runs all its entries. Without --record
nothing is saved and no mail is sent; with --record the rules are applied,
notices are sent and the state is saved, as cron would.`,
		Example: "  checker run http:website\n  checker run 'tcp:dns[ns1.example.com:53]' --record",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runJobs(c.Context(), g, o, args)
		},
	}
	c.Flags().BoolVar(&o.record, "record", false, "apply the rules, send notices and save the state")
	c.Flags().BoolVar(&o.json, "json", false, "print results as JSON")
	return c
}

// runJobs is `checker run`.
func runJobs(ctx context.Context, g *globalOptions, o runOptions, names []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	selected, err := jobs.Select(a.allJobs(ctx), names)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	outcomes, err := a.runner(a.newEnv()).RunNow(ctx, selected, o.record)
	if err != nil {
		return err
	}
	printOutcomes(g.stdout, outcomes, o.json)
	for _, oc := range outcomes {
		if oc.Job.Policy.Failed(oc.Result) {
			return &exitError{code: 1}
		}
	}
	return nil
}

func printOutcomes(w io.Writer, outcomes []jobs.Outcome, asJSON bool) {
	if asJSON {
		type row struct {
			Job      string  `json:"job"`
			Status   string  `json:"status"`
			Message  string  `json:"message"`
			Detail   string  `json:"detail,omitempty"`
			Seconds  float64 `json:"seconds"`
			Decision string  `json:"notice,omitempty"`
		}
		rows := make([]row, len(outcomes))
		for i, oc := range outcomes {
			rows[i] = row{Job: oc.Job.Name, Status: oc.Result.Status.String(), Message: oc.Result.Message, Detail: oc.Result.Detail, Seconds: oc.Result.Duration.Seconds()}
			if oc.Decision != jobs.Quiet {
				rows[i].Decision = oc.Decision.String()
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, oc := range outcomes {
		fmt.Fprintf(tw, "%s\t%s\n", oc.Job.Name, oc.Result.Line())
	}
	tw.Flush()
}
