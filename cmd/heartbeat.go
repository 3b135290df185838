package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"checker/heartbeat"
	"checker/jobs"
	"checker/state"
)

func init() {
	extraCommands = append(extraCommands, newHeartbeatCommand)
	extraChecks = append(extraChecks, newCheckHeartbeatCommand)
}

func newHeartbeatCommand(g *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "heartbeat",
		Short: "Publish, watch and list service heartbeats",
		Long: `Heartbeats live in the store [heartbeat] names: Redis/Valkey/Dragonfly when
redis is set, else a local store next to the state file.`,
	}
	c.AddCommand(newHeartbeatPublishCommand(g), newHeartbeatWatchCommand(g), newHeartbeatStatusCommand(g), newHeartbeatForgetCommand(g))
	return c
}

type publishOptions struct {
	service  string
	interval time.Duration
	once     bool
	data     []string
}

func newHeartbeatPublishCommand(g *globalOptions) *cobra.Command {
	var o publishOptions
	c := &cobra.Command{
		Use:   "publish --service NAME [--interval 60s] [--once] [--data key=value]...",
		Short: "Publish heartbeats for a service (a sidecar, or --once at the end of a script)",
		Example: `  checker heartbeat publish --service nightly-backup --once --data files=1234
  checker heartbeat publish --service tracker_fetcher --interval 60s`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return publishHeartbeats(ctx, g, o)
		},
	}
	c.Flags().StringVar(&o.service, "service", "", "service name (required)")
	c.Flags().DurationVar(&o.interval, "interval", 60*time.Second, "time between beats (at least 1s)")
	c.Flags().BoolVar(&o.once, "once", false, "publish one beat and exit")
	c.Flags().StringArrayVar(&o.data, "data", nil, "service-specific field key=value (repeatable; numbers and true/false stay typed)")
	c.MarkFlagRequired("service")
	return c
}

// parseData turns key=value flags into fields; values that are JSON numbers
// or booleans keep their type.
func parseData(kvs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--data %q: want key=value", kv)
		}
		if heartbeat.IsStandardField(k) {
			return nil, fmt.Errorf("--data %q: %s is a standard heartbeat field", kv, k)
		}
		var typed any
		if err := json.Unmarshal([]byte(v), &typed); err == nil {
			switch typed.(type) {
			case float64, bool:
				out[k] = typed
				continue
			}
		}
		out[k] = v
	}
	return out, nil
}

// publishHeartbeats is `checker heartbeat publish`.
func publishHeartbeats(ctx context.Context, g *globalOptions, o publishOptions) error {
	if err := heartbeat.ValidServiceName(o.service); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	data, err := parseData(o.data)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if o.interval < heartbeat.MinInterval {
		return &exitError{code: exitUsage, err: fmt.Errorf("--interval %s: must be at least %s", o.interval, heartbeat.MinInterval)}
	}
	a, store, err := g.openHeartbeats()
	if err != nil {
		return err
	}
	defer a.close()
	defer store.Close()
	opts := []heartbeat.Option{heartbeat.WithInterval(o.interval),
		heartbeat.WithErrorLog(func(err error) { fmt.Fprintf(g.stderr, "checker: heartbeat %s: %v\n", o.service, err) })}
	if o.once {
		// One beat for the script that runs it: checker's own CPU use in
		// its few milliseconds says nothing, and is not waited for.
		opts = append(opts, heartbeat.WithoutCPU())
	}
	p := heartbeat.NewPublisher(store, o.service, opts...)
	for k, v := range data {
		if err := p.AddCollector(k, func(context.Context) (any, error) { return v, nil }); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("--data %s: %w", k, err)}
		}
	}
	if o.once {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := p.Beat(ctx)
		if err != nil {
			return err
		}
		if g.debug || g.verbose {
			fmt.Fprintln(g.stderr, heartbeat.FormatBeat(m, time.Now()))
		}
		return nil
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	p.Stop()
	return nil
}

func newHeartbeatWatchCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Print heartbeats live as they arrive",
		Long: `Print heartbeats live as they arrive: service, short instance id, time, uptime,
count, memory, CPU and the service's own fields, with control characters
escaped. When Redis restarts or the connection drops, watch says so on stderr
and reconnects with backoff; -d shows each attempt and every message that
cannot be decoded.`,
		Example: "  checker heartbeat watch\n  checker -d heartbeat watch",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return watchHeartbeats(ctx, g)
		},
	}
}

// watchHeartbeats is `checker heartbeat watch`.
func watchHeartbeats(ctx context.Context, g *globalOptions) error {
	a, store, err := g.openHeartbeats()
	if err != nil {
		return err
	}
	defer a.close()
	defer store.Close()
	return store.Watch(ctx, func(m heartbeat.Message) {
		fmt.Fprintln(g.stdout, heartbeat.FormatBeat(m, time.Now()))
	})
}

// openHeartbeats loads the settings and opens the heartbeat store they
// name, its problems logged at debug level, except that a watch losing or
// regaining its subscription is always said on stderr. The caller closes
// both.
func (g *globalOptions) openHeartbeats() (*app, heartbeat.Store, error) {
	a, err := g.loadApp()
	if err != nil {
		return nil, nil, err
	}
	store, err := a.openHeartbeatStore()
	if err != nil {
		a.close()
		return nil, nil, err
	}
	return a, store, nil
}

// openHeartbeatStore opens the heartbeat store of the app's settings, its
// log lines at debug (watch's lost and restored on stderr).
func (a *app) openHeartbeatStore() (heartbeat.Store, error) {
	storeLog := func(err error) {
		if errors.Is(err, heartbeat.ErrWatchLost) || errors.Is(err, heartbeat.ErrWatchRestored) {
			fmt.Fprintf(a.g.stderr, "checker: %v\n", err)
			return
		}
		a.log.Debug(err.Error())
	}
	store, err := jobs.OpenHeartbeatStore(a.settings, heartbeat.WithStoreLog(storeLog))
	if err != nil {
		return nil, fmt.Errorf("heartbeat store: %w", err)
	}
	return store, nil
}

// heartbeatStatusSchema is the version of the heartbeat status JSON
// document.
const heartbeatStatusSchema = 1

type heartbeatStatusDoc struct {
	Schema   int             `json:"schema"`
	Services []serviceStatus `json:"services"`
}

type serviceStatus struct {
	Name     string    `json:"name"`
	Instance string    `json:"instance_id"`
	LastSeen time.Time `json:"last_seen"`
	AgeSec   float64   `json:"age_seconds"`
	State    string    `json:"state"`
	Note     string    `json:"note,omitempty"`
}

func newHeartbeatStatusCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "status",
		Short:   "List every known service: last seen, age, instance, state",
		Example: "  checker heartbeat status\n  checker heartbeat status --json",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return heartbeatStatus(c.Context(), g, asJSON) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return c
}

// heartbeatStatus is `checker heartbeat status`.
func heartbeatStatus(ctx context.Context, g *globalOptions, asJSON bool) error {
	a, store, err := g.openHeartbeats()
	if err != nil {
		return err
	}
	defer a.close()
	defer store.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	beats, listErr := store.List(ctx)
	now := time.Now()
	thresholds := heartbeatThresholds(a.settings, a.jobs)
	rows := make([]serviceStatus, 0, len(beats))
	for _, m := range beats {
		r := serviceStatus{Name: m.ServiceName, Instance: m.InstanceID, LastSeen: m.Timestamp, AgeSec: heartbeat.Age(m, now).Seconds()}
		if err := heartbeat.CheckClockSkew(m, now); err != nil {
			r.State, r.Note = "unknown", err.Error()
		} else {
			r.State = string(thresholds(m.ServiceName).Classify(heartbeat.Age(m, now)))
		}
		rows = append(rows, r)
	}
	if asJSON {
		b, err := json.MarshalIndent(heartbeatStatusDoc{Schema: heartbeatStatusSchema, Services: rows}, "", "  ")
		if err != nil {
			return err
		}
		// Instance ids come from services; keep the terminal safe.
		if _, err := fmt.Fprintf(g.stdout, "%s\n", heartbeat.EscapeJSON(b)); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSTATE\tLAST SEEN\tAGE\tINSTANCE")
		for _, r := range rows {
			state := r.State
			if r.Note != "" {
				state += " (" + r.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, state, r.LastSeen.Local().Format(timeLayout),
				heartbeat.FormatSeconds(r.AgeSec), heartbeat.InstanceLabel(r.Instance))
		}
		tw.Flush()
		if len(rows) == 0 && listErr == nil {
			fmt.Fprintln(g.stdout, "no service has published a heartbeat yet")
		}
	}
	return listErr
}

func newCheckHeartbeatCommand(g *globalOptions, o *checkOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "heartbeat SERVICE",
		Short:   "Is the service's heartbeat fresh? (OK alive, WARNING stale, CRITICAL dead)",
		Example: "  checker check heartbeat tracker_fetcher",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			a, err := g.loadApp()
			if err != nil {
				return printCheckError(g, o, "heartbeat", args[0], err)
			}
			defer a.close()
			return runCheckEnv(c.Context(), g, o, "heartbeat", heartbeatSpec(a, args[0]), a.newEnv())
		},
		ValidArgsFunction: completeServices(g),
	}
}

// heartbeatSpec is the check of service: the configured job's, with its
// own thresholds and fail_on, if one watches it, else [heartbeat]'s.
func heartbeatSpec(a *app, service string) *jobs.Heartbeat {
	for _, j := range a.jobs {
		if h, ok := j.Spec.(*jobs.Heartbeat); ok && h.Service == service {
			own := *h
			return &own
		}
	}
	return jobs.NewHeartbeat(service, a.settings)
}

// completeServices offers the services in the heartbeat store, for shell
// completion.
func completeServices(g *globalOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		a, store, err := g.openHeartbeats()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer a.close()
		defer store.Close()
		ctx, cancel := context.WithTimeout(c.Context(), 2*time.Second)
		defer cancel()
		names := map[string]bool{}
		beats, _ := store.List(ctx)
		for _, m := range beats {
			names[m.ServiceName] = true
		}
		// And those discovery remembers, whose heartbeat may be gone.
		_ = a.store().View(func(tx *state.Tx) error {
			remembered, err := tx.Services()
			for _, s := range remembered {
				names[s.Name] = true
			}
			return err
		})
		var out []string
		for name := range names {
			if strings.HasPrefix(name, toComplete) {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
