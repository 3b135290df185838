package cmd

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/jobs"
	"checker/state"
)

func init() {
	extraCommands = append(extraCommands, newSilenceCommand, newUnsilenceCommand, newAckCommand)
}

type silenceOptions struct {
	duration time.Duration
	reason   string
}

func newSilenceCommand(g *globalOptions) *cobra.Command {
	var o silenceOptions
	var forFlag string
	c := &cobra.Command{
		Use:   "silence JOB|GLOB... --for DURATION [--reason TEXT]",
		Short: "Hold the notices of jobs for a while (they still run and record)",
		Long: `Silences the jobs matching each NAME or GLOB (a bare NAME matches every job named
NAME of any type; 'http:*' every http job) for DURATION. Silenced jobs still run
and record their results, but send no notice: a notice that falls inside the
silence is held, and when the silence ends it goes out only if the job is still
failing then — one notice, not a backlog. Silencing the same pattern again
replaces its silence. Recorded in the history; shown by checker status.`,
		Example: `  checker silence tcp:db --for 2h --reason "database upgrade"
  checker silence 'http:*' --for 30m`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := config.ParseDuration(forFlag)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("--for: %v", err)}
			}
			o.duration = d
			return silence(c.Context(), g, o, args)
		},
		ValidArgsFunction: completeJobNames(g),
	}
	c.Flags().StringVar(&forFlag, "for", "", "how long (e.g. 2h, 30m, 1d) (required)")
	c.Flags().StringVar(&o.reason, "reason", "", "why, shown in status and the history")
	_ = c.MarkFlagRequired("for")
	return c
}

// operator names who is acting: the user behind sudo, else the user.
func operator() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// matching checks that every pattern matches a job and returns, per
// pattern, the jobs it matches.
func matching(all []*jobs.Job, patterns []string) (map[string][]string, error) {
	out := map[string][]string{}
	var none []string
	for _, p := range patterns {
		for _, j := range all {
			if jobs.MatchName(p, j.Name) {
				out[p] = append(out[p], j.Name)
			}
		}
		if len(out[p]) == 0 {
			none = append(none, p)
		}
	}
	if len(none) > 0 {
		return out, &exitError{code: exitUsage, err: fmt.Errorf("no job matches %s (see checker list)", strings.Join(none, ", "))}
	}
	return out, nil
}

// silence is `checker silence`.
func silence(ctx context.Context, g *globalOptions, o silenceOptions, patterns []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	matched, err := matching(a.allJobs(ctx), patterns)
	if err != nil {
		return err
	}
	now := time.Now()
	until := now.Add(o.duration)
	by := operator()
	err = a.store().Update(ctx, func(tx *state.Tx) error {
		for _, p := range patterns {
			s := state.Silence{Pattern: p, Until: until, Reason: o.reason, By: by, Created: now}
			if err := tx.PutSilence(&s); err != nil {
				return err
			}
			msg := "silenced " + p + " until " + until.Format(timeLayout)
			if o.reason != "" {
				msg += ": " + o.reason
			}
			for _, job := range matched[p] {
				if err := tx.AddEvent(state.Event{Time: now, Job: job, Kind: state.EventSilenced, Message: msg, By: by}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return stateError(err)
	}
	for _, p := range patterns {
		fmt.Fprintf(g.stdout, "silenced %s (%d job%s) until %s\n", p, len(matched[p]), plural(len(matched[p])), until.Format(timeLayout))
	}
	return nil
}

func newUnsilenceCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "unsilence JOB|GLOB...",
		Short: "Lift silences before they end",
		Long: `Lifts the silence set for each pattern, or, for a job name, every silence that
covers that job. A notice held by the silence goes out with the next run if the
job is still failing.`,
		Example:           "  checker unsilence tcp:db\n  checker unsilence 'http:*'",
		Args:              cobra.MinimumNArgs(1),
		RunE:              func(c *cobra.Command, args []string) error { return unsilence(c.Context(), g, args) },
		ValidArgsFunction: completeJobNames(g),
	}
}

// unsilence is `checker unsilence`.
func unsilence(ctx context.Context, g *globalOptions, args []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	all := a.allJobs(ctx)
	now := time.Now()
	by := operator()
	var lifted, ended []string
	err = a.store().Update(ctx, func(tx *state.Tx) error {
		lifted = nil
		silences, err := tx.Silences()
		if err != nil {
			return err
		}
		drop := map[string]bool{}
		ended = nil
		for _, arg := range args {
			for _, s := range silences {
				if !strings.EqualFold(s.Pattern, arg) {
					continue
				}
				if !now.Before(s.Until) {
					// Over already: cleared away, but nothing is lifted.
					ended = append(ended, fmt.Sprintf("the silence of %s ended at %s", s.Pattern, s.Until.Format(timeLayout)))
					if err := tx.DeleteSilence(s.Pattern); err != nil {
						return err
					}
					continue
				}
				drop[s.Pattern] = true
			}
		}
		// A name that is no silence's pattern lifts every silence covering
		// a job it names.
		for _, arg := range args {
			exact := false
			for _, s := range silences {
				exact = exact || strings.EqualFold(s.Pattern, arg)
			}
			if exact {
				continue
			}
			for _, j := range all {
				if !jobs.MatchName(arg, j.Name) {
					continue
				}
				for _, s := range silences {
					if now.Before(s.Until) && jobs.MatchName(s.Pattern, j.Name) {
						drop[s.Pattern] = true
					}
				}
			}
		}
		for _, s := range silences {
			if !drop[s.Pattern] {
				continue
			}
			if err := tx.DeleteSilence(s.Pattern); err != nil {
				return err
			}
			lifted = append(lifted, s.Pattern)
			for _, j := range all {
				if jobs.MatchName(s.Pattern, j.Name) {
					if err := tx.AddEvent(state.Event{Time: now, Job: j.Name, Kind: state.EventUnsilenced, Message: "silence of " + s.Pattern + " lifted", By: by}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return stateError(err)
	}
	if len(lifted) == 0 {
		if len(ended) > 0 {
			return &exitError{code: 1, err: fmt.Errorf("nothing to lift: %s", strings.Join(ended, "; "))}
		}
		return &exitError{code: 1, err: fmt.Errorf("no silence covers %s (see checker status)", strings.Join(args, ", "))}
	}
	for _, p := range lifted {
		fmt.Fprintf(g.stdout, "lifted the silence of %s\n", p)
	}
	return nil
}

func newAckCommand(g *globalOptions) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "ack JOB|GLOB... [--reason TEXT]",
		Short: "Acknowledge failing jobs: no more reminders for this outage",
		Long: `Acknowledges the current outage of each failing job matched: its reminders stop
(an escalation, WARNING → CRITICAL, still notifies and lifts the
acknowledgement); the recovery notice still goes out, and the next outage
notifies again. Recorded in the history; shown by checker status.`,
		Example:           `  checker ack tcp:db --reason "disk replaced tomorrow"`,
		Args:              cobra.MinimumNArgs(1),
		RunE:              func(c *cobra.Command, args []string) error { return ack(c.Context(), g, reason, args) },
		ValidArgsFunction: completeJobNames(g),
	}
	c.Flags().StringVar(&reason, "reason", "", "why, shown in status and the history")
	return c
}

// ack is `checker ack`.
func ack(ctx context.Context, g *globalOptions, reason string, patterns []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	matched, err := matching(a.allJobs(ctx), patterns)
	if err != nil {
		return err
	}
	now := time.Now()
	by := operator()
	var acked, notFailing, already []string
	err = a.store().Update(ctx, func(tx *state.Tx) error {
		acked, notFailing, already = nil, nil, nil
		seen := map[string]bool{}
		for _, p := range patterns {
			for _, name := range matched[p] {
				if seen[name] {
					continue
				}
				seen[name] = true
				j, found, err := tx.Job(name)
				if err != nil {
					return err
				}
				if !found || !j.Failing {
					notFailing = append(notFailing, name)
					continue
				}
				if j.Ack != nil && j.Ack.Reason == reason {
					already = append(already, fmt.Sprintf("%s (by %s at %s)", name, j.Ack.By, j.Ack.At.Format(timeLayout)))
					continue
				}
				j.Ack = &state.Ack{By: by, At: now, Reason: reason}
				if err := tx.PutJob(name, &j); err != nil {
					return err
				}
				msg := "outage acknowledged"
				if reason != "" {
					msg += ": " + reason
				}
				if err := tx.AddEvent(state.Event{Time: now, Job: name, Kind: state.EventAcked, Status: j.LastStatus, Message: msg, By: by}); err != nil {
					return err
				}
				acked = append(acked, name)
			}
		}
		return nil
	})
	if err != nil {
		return stateError(err)
	}
	for _, name := range acked {
		fmt.Fprintf(g.stdout, "acknowledged %s\n", name)
	}
	for _, what := range already {
		fmt.Fprintf(g.stdout, "already acknowledged: %s\n", what)
	}
	if len(acked) == 0 && len(already) == 0 {
		return &exitError{code: 1, err: fmt.Errorf("nothing to acknowledge: %s %s not failing", strings.Join(notFailing, ", "), isAre(len(notFailing)))}
	}
	return nil
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
