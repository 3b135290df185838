package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newListCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the configured jobs: name, type, target, tier, policy",
		Example: "  checker list\n  checker list --json",
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return listJobs(g, asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return c
}

// listSchema is the version of the list JSON document.
const listSchema = 1

type listDoc struct {
	Schema int          `json:"schema"`
	Jobs   []jobListing `json:"jobs"`
}

type jobListing struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Target string `json:"target"`
	Every  string `json:"every"`
	Notify string `json:"notify"`
	// NotifyAfter is the `failures` setting: how many failures in a row
	// before the first notice (status's "failures" is the count so far).
	NotifyAfter    int      `json:"notify_after_failures"`
	Recovery       string   `json:"recovery"`
	TimeoutSeconds float64  `json:"timeout_seconds"`
	NotifyTo       []string `json:"notify_to,omitempty"`
}

// listJobs is `checker list`.
func listJobs(g *globalOptions, asJSON bool) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	all := a.allJobs(context.Background())
	rows := make([]jobListing, len(all))
	for i, j := range all {
		rows[i] = jobListing{Name: j.Name, Type: j.Type, Target: j.Target, Every: string(j.Every),
			Notify: j.Policy.Notify.Label, NotifyAfter: j.Policy.Failures, Recovery: j.Policy.Recovery,
			TimeoutSeconds: j.Timeout.Seconds(), NotifyTo: j.Policy.NotifyTo}
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(listDoc{Schema: listSchema, Jobs: rows})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tTARGET\tEVERY\tPOLICY")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tnotify=%s failures=%d recovery=%s timeout=%s\n", escapeText(r.Name), r.Type, escapeText(r.Target), r.Every,
			r.Notify, r.NotifyAfter, r.Recovery, time.Duration(r.TimeoutSeconds*float64(time.Second)))
	}
	return tw.Flush()
}
