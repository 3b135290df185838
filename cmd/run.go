package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"checker/heartbeat"
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
		Example:           "  checker run http:website\n  checker run 'tcp:dns[ns1.example.com:53]' --record",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeJobNames(g),
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

// runSchema is the version of the run JSON document.
const runSchema = 1

func printOutcomes(w io.Writer, outcomes []jobs.Outcome, asJSON bool) {
	if asJSON {
		type row struct {
			Name            string  `json:"name"`
			Type            string  `json:"type"`
			Status          string  `json:"status"`
			Code            int     `json:"code"`
			Message         string  `json:"message"`
			Perfdata        string  `json:"perfdata,omitempty"`
			LongOutput      string  `json:"long_output,omitempty"`
			Detail          string  `json:"detail,omitempty"`
			DurationSeconds float64 `json:"duration_seconds"`
			Notice          string  `json:"notice,omitempty"`
		}
		doc := struct {
			Schema  int   `json:"schema"`
			Results []row `json:"results"`
		}{Schema: runSchema, Results: make([]row, len(outcomes))}
		for i, oc := range outcomes {
			r := oc.Result
			doc.Results[i] = row{Name: oc.Job.Name, Type: oc.Job.Type, Status: r.Status.String(), Code: int(r.Status), Message: r.Message,
				Perfdata: r.Perfdata, LongOutput: r.LongOutput, Detail: r.Detail, DurationSeconds: r.Duration.Seconds()}
			if oc.Decision != jobs.Quiet {
				doc.Results[i].Notice = oc.Decision.String()
			}
		}
		b, _ := json.MarshalIndent(doc, "", "  ")
		w.Write(append(heartbeat.EscapeJSON(b), '\n'))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, oc := range outcomes {
		fmt.Fprintf(tw, "%s\t%s\n", escapeText(oc.Job.Name), escapeText(oc.Result.Line()))
	}
	tw.Flush()
}
