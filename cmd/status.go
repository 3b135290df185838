package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"checker/state"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every job, the last cron run and mail health",
		Long: `Shows, for every configured job: succeeding or failing, since when, the
failure count, when a failure was last notified, the last run and its message.
Then the last completed cron run, the health of the mail path and the notices
waiting in the outbox. Reads the state file; changes nothing.`,
		Example: "  checker status\n  checker status --json | jq '.jobs[] | select(.failing)'",
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return showStatus(g, asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return c
}

type jobStatus struct {
	Name         string     `json:"name"`
	State        string     `json:"state"` // succeeding, failing, never run
	Failing      bool       `json:"failing"`
	Since        *time.Time `json:"since,omitempty"`
	Failures     int        `json:"failures"`
	LastNotified *time.Time `json:"last_notified,omitempty"`
	LastRun      *time.Time `json:"last_run,omitempty"`
	LastStatus   string     `json:"last_status,omitempty"`
	LastMessage  string     `json:"last_message,omitempty"`
	Running      bool       `json:"running"`
}

type statusDoc struct {
	Jobs    []jobStatus    `json:"jobs"`
	LastRun state.Run      `json:"last_run"`
	Mail    mailStatus     `json:"mail"`
	Outbox  []state.Notice `json:"outbox"`
}

type mailStatus struct {
	Healthy bool   `json:"healthy"`
	NoMail  bool   `json:"nomail"`
	Problem string `json:"problem,omitempty"`
	state.Mail
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// showStatus is `checker status`.
func showStatus(g *globalOptions, asJSON bool) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	all := a.allJobs(context.Background())
	f, err := a.store().Read()
	if err != nil {
		return err
	}
	doc := statusDoc{LastRun: f.LastRun, Outbox: f.Outbox,
		Mail: mailStatus{Healthy: f.Mail.Healthy(), NoMail: a.settings.Email.NoMail, Problem: f.Mail.Problem(), Mail: f.Mail}}
	if doc.Outbox == nil {
		doc.Outbox = []state.Notice{}
	}
	for _, j := range all {
		js := jobStatus{Name: j.Name, State: "never run"}
		if st := f.Jobs[j.Name]; st != nil {
			js.Failing, js.Failures = st.Failing, st.Failures
			js.Since, js.LastNotified, js.LastRun = timePtr(st.Since), timePtr(st.LastNotified), timePtr(st.LastRun)
			js.LastStatus, js.LastMessage = st.LastStatus, st.LastMessage
			js.Running = st.Running != nil
			switch {
			case st.LastRun.IsZero():
			case st.Failing:
				js.State = "failing"
			default:
				js.State = "succeeding"
			}
		}
		doc.Jobs = append(doc.Jobs, js)
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}

	w := g.stdout
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tSINCE\tFAILURES\tLAST NOTIFIED\tLAST RUN\tLAST RESULT")
	for _, j := range doc.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.Name, j.State, fmtTime(j.Since), j.Failures, fmtTime(j.LastNotified), fmtTime(j.LastRun), lastResult(j))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if f.LastRun.Finished.IsZero() {
		fmt.Fprintln(w, "Last cron run: never")
	} else {
		fmt.Fprintf(w, "Last cron run: %s at %s (took %s)", f.LastRun.Tier, f.LastRun.Finished.Format(time.DateTime), f.LastRun.Finished.Sub(f.LastRun.Started).Round(time.Millisecond))
		if f.LastRun.Error != "" {
			fmt.Fprintf(w, " — error: %s", f.LastRun.Error)
		}
		fmt.Fprintln(w)
	}
	switch {
	case doc.Mail.NoMail:
		fmt.Fprintln(w, "Mail: nomail (notices are printed, not sent)")
	case !f.Mail.Checked():
		fmt.Fprintln(w, "Mail: not exercised yet")
	case doc.Mail.Healthy:
		fmt.Fprintln(w, "Mail: healthy")
	default:
		fmt.Fprintf(w, "Mail: PROBLEM — %s\n", doc.Mail.Problem)
	}
	if n := len(f.Outbox); n > 0 {
		fmt.Fprintf(w, "Outbox: %d notice%s waiting (last error: %s)\n", n, plural(n), f.Outbox[0].LastError)
	}
	return nil
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02 15:04:05")
}

func lastResult(j jobStatus) string {
	if j.LastStatus == "" {
		return "-"
	}
	s := j.LastStatus + " - " + j.LastMessage
	if j.Running {
		s += " (running now)"
	}
	return s
}
