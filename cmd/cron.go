package cmd

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"checker/jobs"
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
	all := a.allJobs(ctx) // first: the runner remembers what it discovered
	_, err = a.runner(a.newEnv()).Cron(ctx, tier, all)
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
