package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/jobs"
	"checker/state"
)

func init() { extraCommands = append(extraCommands, newHistoryCommand) }

type historyOptions struct {
	since time.Duration
	json  bool
}

func newHistoryCommand(g *globalOptions) *cobra.Command {
	var o historyOptions
	var since string
	c := &cobra.Command{
		Use:   "history [JOB|GLOB...] [--since DURATION] [--json]",
		Short: "Show what happened: state changes, notices, silences, acknowledgements",
		Long: `Shows the history the state keeps ([general] history, default 90 days), newest
last: jobs starting to fail, escalating and recovering; notices queued,
delivered (and to whom) and refused; silences, acknowledgements and held
notices; jobs forgotten. With names or globs, only those jobs' events.`,
		Example: "  checker history --since 12h\n  checker history tcp:db --since 30d\n  checker history --json | jq '.events[] | select(.kind == \"delivered\")'",
		RunE: func(c *cobra.Command, args []string) error {
			d, err := config.ParseDuration(since)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("--since: %v", err)}
			}
			o.since = d
			return showHistory(g, o, args)
		},
		ValidArgsFunction: completeJobNames(g),
	}
	c.Flags().StringVar(&since, "since", "7d", "how far back (e.g. 12h, 30d)")
	c.Flags().BoolVar(&o.json, "json", false, "print as JSON (schema in the README)")
	return c
}

// historySchema is the version of the history JSON document.
const historySchema = 1

type historyDoc struct {
	Schema int            `json:"schema"`
	Since  time.Time      `json:"since"`
	Events []historyEvent `json:"events"`
}

type historyEvent struct {
	Time    time.Time `json:"time"`
	Name    string    `json:"name,omitempty"`
	Kind    string    `json:"kind"`
	Status  string    `json:"status,omitempty"`
	Message string    `json:"message,omitempty"`
	To      []string  `json:"to,omitempty"`
	By      string    `json:"by,omitempty"`
}

// showHistory is `checker history`.
func showHistory(g *globalOptions, o historyOptions, patterns []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	since := time.Now().Add(-o.since)
	doc := historyDoc{Schema: historySchema, Since: since, Events: []historyEvent{}}
	err = a.store().View(func(tx *state.Tx) error {
		return tx.Events(since, nil, func(ev state.Event) error {
			if len(patterns) > 0 && !matchesAny(patterns, ev.Job) {
				return nil
			}
			doc.Events = append(doc.Events, historyEvent{Time: ev.Time, Name: ev.Job, Kind: ev.Kind, Status: ev.Status,
				Message: ev.Message, To: ev.To, By: ev.By})
			return nil
		})
	})
	if err != nil {
		return stateError(err)
	}
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printHistory(g.stdout, doc)
	return nil
}

func matchesAny(patterns []string, job string) bool {
	if job == "" {
		return false
	}
	for _, p := range patterns {
		if jobs.MatchName(p, job) {
			return true
		}
	}
	return false
}

func printHistory(w io.Writer, doc historyDoc) {
	if len(doc.Events) == 0 {
		fmt.Fprintf(w, "No events since %s.\n", doc.Since.Format(timeLayout))
		return
	}
	for _, ev := range doc.Events {
		var b strings.Builder
		fmt.Fprintf(&b, "%s  %-10s", ev.Time.Format(timeLayout), ev.Kind)
		if ev.Name != "" {
			b.WriteString("  " + ev.Name)
		}
		if ev.Status != "" && ev.Kind != "queued" && ev.Kind != "delivered" && ev.Kind != "printed" && ev.Kind != "rejected" {
			b.WriteString("  " + ev.Status)
		}
		if ev.Message != "" {
			b.WriteString("  " + ev.Message)
		}
		if len(ev.To) > 0 {
			b.WriteString("  → " + strings.Join(ev.To, ", "))
		}
		if ev.By != "" {
			b.WriteString("  (by " + ev.By + ")")
		}
		fmt.Fprintln(w, escapeText(b.String()))
	}
}
