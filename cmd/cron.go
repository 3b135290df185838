package cmd

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/heartbeat"
	"checker/jobs"
	"checker/metrics"
	"checker/state"
)

func newCronCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:       "cron minute|hour|day|day_noon",
		Short:     "Run the due jobs of a tier (the crontab entry point)",
		Long:      "Runs the jobs of the tier that have not run in their slot yet, applies the rules, mails\nthe admins and saves the state. Prints nothing on success.\n\n  minute    jobs with every = minute\n  hour      minute and hour jobs\n  day       minute, hour and day jobs\n  day_noon  minute, hour and day_noon jobs",
		Example:   "  checker -f /etc/checker/settings.cfg cron minute",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"minute", "hour", "day", "day_noon"},
		RunE: func(c *cobra.Command, args []string) error {
			tier, err := jobs.ParseTier(args[0])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runCron(ctx, g, tier)
		},
	}
}

// runCron is `checker cron TIER`.
func runCron(ctx context.Context, g *globalOptions, tier jobs.Tier) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	a.cron = true
	all := a.allJobs(ctx)
	outcomes, err := a.runner(a.newEnv()).Cron(ctx, tier, all)
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		// Stopped by a signal: quiet on stderr (cron would mail it, and a
		// shutdown is nobody's alert), one line in the log.
		cut := 0
		for _, o := range outcomes {
			if o.Cancelled {
				cut++
			}
		}
		a.log.Warn("cron run stopped before its jobs finished; those cut short were not recorded and run again in their next slot",
			"tier", tier, "cause", cause, "cut_short", cut, "finished", len(outcomes)-cut)
	}
	if path := a.settings.General.MetricsTextfile; path != "" {
		// Whatever the run did, the file tells what the state says now; a
		// failure to write it is the log's business, never the run's.
		if werr := a.writeMetricsTextfile(ctx, path, all); werr != nil {
			a.log.Error("cannot write the metrics textfile", "error", werr)
		}
	}
	if errors.Is(err, state.ErrLocked) {
		return &exitError{code: exitTempFail, err: err}
	}
	var pe *state.PermissionError
	if errors.As(err, &pe) {
		return &exitError{code: exitNoPerm, err: err}
	}
	if err != nil {
		a.log.Error("cron run failed", "tier", tier, "error", err)
		return fmt.Errorf("cron %s: %w", tier, err)
	}
	return nil
}

// textfileStoreTimeout bounds the read of the heartbeat store for the
// metrics textfile.
const textfileStoreTimeout = 2 * time.Second

// writeMetricsTextfile writes the metrics of the state, and of the
// heartbeat store when heartbeats are watched, to path for
// node_exporter's textfile collector.
func (a *app) writeMetricsTextfile(ctx context.Context, path string, all []*jobs.Job) error {
	now := time.Now()
	var doc statusDoc
	readErr := a.store().View(func(tx *state.Tx) error {
		var err error
		doc, err = collectStatus(tx, statusQuery{server: a.settings.General.ServerName, jobs: all, windows: a.windows(),
			noMail: a.settings.Email.NoMail, noUptime: true}, now)
		return err
	})
	m := metricsSnapshot(doc, readErr, a.settings)
	if watchesHeartbeats(a.settings, all) {
		var msgs []heartbeat.Message
		store, err := a.newEnv().HeartbeatStore()
		if err == nil {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), textfileStoreTimeout)
			msgs, err = store.List(lctx)
			cancel()
		}
		addHeartbeats(&m, msgs, err, heartbeatThresholds(a.settings, all), now)
	}
	text, err := metrics.Text(m, now)
	if err != nil {
		return err
	}
	return metrics.WriteTextfile(path, text)
}
