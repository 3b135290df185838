package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"checker/jobs"
	"checker/notify"
	"checker/state"
)

func init() { extraCommands = append(extraCommands, newNotifyCommand) }

// notifyTestTimeout bounds `notify test` as cron's delivery is bounded.
const notifyTestTimeout = 45 * time.Second

func newNotifyCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "notify",
		Short: "Check that notices reach their destinations",
	}
	c.AddCommand(newNotifyTestCommand(g))
	return c
}

type notifyTestOptions struct {
	to []string
}

func newNotifyTestCommand(g *globalOptions) *cobra.Command {
	var o notifyTestOptions
	c := &cobra.Command{
		Use:   "test [--to ADDRESS_OR_CHANNEL]...",
		Short: "Send a test notice to every destination and report each result",
		Long: `Sends one clearly marked test notice to every destination the settings
name — the alert contacts, the notify_to addresses of every job and every
channel of [channels] — or only to those given with --to, and prints one line
per destination. A channel is shown by its name and service, never its URL.

The test is no alert: it never enters the outbox, is not retried, and changes
no job or delivery state; the history records it as a "test" event. With
--nomail (or [email] nomail) the notice is printed instead of sent.

Exit status: 0 when every destination got the notice, 1 when any did not,
2 when --to names neither an address nor a configured channel, 78 on a
settings error.`,
		Example: "  checker notify test\n  checker notify test --to ops-chat --to oncall@example.com",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return notifyTest(c.Context(), g, o)
		},
	}
	c.Flags().StringArrayVar(&o.to, "to", nil, "only this mail address or channel name (repeatable, or comma-separated)")
	c.RegisterFlagCompletionFunc("to", completeDestinations(g))
	return c
}

// completeDestinations offers the destinations the settings name: the
// channels, the alert contacts and the notify_to addresses.
func completeDestinations(g *globalOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		a, err := g.loadApp()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer a.close()
		chans := map[string]*notify.Channel{}
		for _, c := range a.channelList() {
			chans[c.Name] = c
		}
		to, _ := testDestinations(a, chans, nil)
		return to, cobra.ShellCompDirectiveNoFileComp
	}
}

// notifyTest is `checker notify test`.
func notifyTest(ctx context.Context, g *globalOptions, o notifyTestOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	chans := map[string]*notify.Channel{}
	for _, c := range a.channelList() {
		chans[c.Name] = c
	}
	to, err := testDestinations(a, chans, o.to)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	now := g.clock()
	by := userName()
	n := notify.TestNotice(a.settings.General.ServerName, by, to, now)
	sendCtx, cancel := context.WithTimeout(ctx, notifyTestTimeout)
	rep := notify.Deliver(sendCtx, notify.Outlets{Mail: a.sender(), Channels: a.channels()},
		notify.Composer{ServerName: a.settings.General.ServerName, BustThreading: a.settings.Email.BustThreading, Now: g.now}, []state.Notice{n})
	cancel()
	printTestResults(g.stdout, to, chans, rep, a.settings.Email.NoMail)

	// The exit code says whether the notices went out; a history that
	// cannot be written (another user's state, say) is only a warning.
	if err := recordTest(ctx, a.store(), to, rep, by, now); err != nil {
		fmt.Fprintf(g.stderr, "warning: the test is not in the history: %v\n", err)
	}
	if len(rep.Failed) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// testDestinations are the destinations given with --to (each an address
// or a configured channel), or every destination the settings name.
func testDestinations(a *app, chans map[string]*notify.Channel, given []string) ([]string, error) {
	var to []string
	seen := map[string]bool{}
	add := func(d string) {
		if k := strings.ToLower(d); !seen[k] {
			seen[k] = true
			to = append(to, d)
		}
	}
	if len(given) > 0 {
		var bad []string
		for _, arg := range given {
			for _, d := range strings.Split(arg, ",") {
				d = strings.TrimSpace(d)
				switch {
				case d == "":
				case jobs.IsAddress(d):
					add(d)
				case chans[strings.ToLower(d)] != nil:
					add(strings.ToLower(d))
				default:
					bad = append(bad, d)
				}
			}
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("--to %s: neither a mail address nor a channel of [channels] (%s)", strings.Join(bad, ", "), channelNames(chans))
		}
		if len(to) == 0 {
			return nil, errors.New("--to names no destination")
		}
		return to, nil
	}
	// Addresses first, as the settings name them; then the channels.
	for _, d := range a.settings.General.AlertContact {
		if jobs.IsAddress(d) {
			add(d)
		}
	}
	for _, j := range a.jobs {
		for _, d := range j.Policy.NotifyTo {
			if jobs.IsAddress(d) {
				add(d)
			}
		}
	}
	names := make([]string, 0, len(chans))
	for name := range chans {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		add(name)
	}
	if len(to) == 0 {
		return nil, errors.New("no destinations: set [general] alertcontact or add [channels]")
	}
	return to, nil
}

func channelNames(chans map[string]*notify.Channel) string {
	if len(chans) == 0 {
		return "no channels are configured"
	}
	names := make([]string, 0, len(chans))
	for name := range chans {
		names = append(names, name)
	}
	sort.Strings(names)
	return "channels: " + strings.Join(names, ", ")
}

// printTestResults prints one line per destination: the result, then the
// destination (a channel by name and service), then the reason of a
// failure, which holds no secret.
func printTestResults(w io.Writer, to []string, chans map[string]*notify.Channel, rep notify.Report, nomail bool) {
	ok := "sent"
	if nomail {
		ok = "printed"
	}
	for _, d := range to {
		key := strings.ToLower(d)
		what := "mail to " + d
		if c := chans[key]; c != nil {
			what = "channel " + c.String()
		}
		if err, failed := rep.Failed[key]; failed {
			fmt.Fprintf(w, "FAILED  %s: %s\n", what, strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		if rep.Delivered[key] {
			fmt.Fprintf(w, "%-7s %s\n", ok, what)
		}
	}
}

// recordTest adds the test to the history: one event naming who ran it,
// every destination, and each failure.
func recordTest(ctx context.Context, store *state.Store, to []string, rep notify.Report, by string, now time.Time) error {
	ev := state.Event{Time: now, Job: notify.TestJob, Kind: notify.EventTest, Status: "OK", To: to, By: by}
	var failed []string
	for _, d := range to {
		if err, ok := rep.Failed[strings.ToLower(d)]; ok {
			failed = append(failed, fmt.Sprintf("%s (%s)", d, strings.ReplaceAll(err.Error(), "\n", "; ")))
		}
	}
	ev.Message = fmt.Sprintf("test notice reached %d of %d destinations", len(to)-len(failed), len(to))
	if len(failed) > 0 {
		ev.Status = "CRITICAL"
		ev.Message += "; failed: " + strings.Join(failed, "; ")
	}
	return store.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error { return tx.AddEvent(ev) })
}
