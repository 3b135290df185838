package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"checker/heartbeat"
	"checker/state"
)

func newHeartbeatForgetCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "forget SERVICE...",
		Short: "Stop watching discovered services that are gone for good",
		Long: `With [heartbeat] discover = yes, every service that ever published is remembered:
when its heartbeat vanishes from the store (Redis restarted without persistence,
FLUSHDB, eviction, the key TTL) it is dead and alerts. forget removes a service
that was decommissioned: from the state (its job and its memory) and from the
store (its last heartbeat). A service that publishes again is discovered again.
A service that was never remembered (discover = no) but has a heartbeat in the
store: that heartbeat is removed. Exit 1 when a name is in neither.`,
		Example:           "  checker heartbeat forget old-importer legacy-cron",
		Args:              cobra.MinimumNArgs(1),
		RunE:              func(c *cobra.Command, args []string) error { return forgetServices(c.Context(), g, args) },
		ValidArgsFunction: completeServices(g),
	}
}

// forgetServices is `checker heartbeat forget`.
func forgetServices(ctx context.Context, g *globalOptions, services []string) error {
	for _, svc := range services {
		if err := heartbeat.ValidServiceName(svc); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	// Refused by the state (root in another user's directory): refused
	// before the heartbeat store is opened, which may create its directory.
	if err := a.store().CheckOwner(); err != nil {
		return err
	}
	store, err := a.openHeartbeatStore()
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	by := operator()
	var unknown []string
	err = a.store().Update(ctx, func(tx *state.Tx) error {
		unknown = nil
		remembered, err := tx.Services()
		if err != nil {
			return err
		}
		known := map[string]bool{}
		for _, s := range remembered {
			known[s.Name] = true
		}
		for _, svc := range services {
			found := known[svc]
			if found {
				if err := tx.DeleteService(svc); err != nil {
					return err
				}
			}
			// Its discovered job: heartbeat:SVC, or heartbeat:SVC#N when a
			// configured job had the name.
			var drop []string
			if err := tx.ForEachJob(func(name string, _ state.Job, _ error) error {
				if base, _, _ := strings.Cut(name, "#"); strings.EqualFold(base, "heartbeat:"+svc) {
					drop = append(drop, name)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, name := range drop {
				if a.isConfigured(name) {
					continue // a configured job's record stays
				}
				if err := tx.DeleteJob(name); err != nil {
					return err
				}
				found = true
			}
			if !found {
				unknown = append(unknown, svc)
				continue
			}
			if err := tx.AddEvent(state.Event{Time: now, Job: "heartbeat:" + svc, Kind: state.EventForgotten,
				Message: "service " + svc + " forgotten", By: by}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return stateError(err)
	}
	// A service that was not remembered (discover = no) may still have a
	// heartbeat in the store: that is removed, and said.
	var failed, notRemembered, none []string
	for _, svc := range unknown {
		if _, ok, err := store.Get(ctx, svc); ok || (err != nil && !heartbeat.IsUnavailable(err)) {
			notRemembered = append(notRemembered, svc)
		} else {
			none = append(none, svc)
		}
	}
	for _, svc := range services {
		if contains(none, svc) {
			continue
		}
		if err := store.Delete(ctx, svc); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", svc, err))
		}
	}
	for _, svc := range services {
		switch {
		case contains(notRemembered, svc):
			fmt.Fprintf(g.stdout, "removed the heartbeat of %s from the store (it was not remembered)\n", svc)
		case !contains(none, svc):
			fmt.Fprintf(g.stdout, "forgot %s\n", svc)
		}
	}
	unknown = none
	if len(failed) > 0 {
		return fmt.Errorf("forgotten in the state, but the store kept their heartbeats (they may be discovered again): %s", strings.Join(failed, "; "))
	}
	if len(unknown) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("not remembered: %s (see checker heartbeat status)", strings.Join(unknown, ", "))}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isConfigured reports whether a job of the settings has the name.
func (a *app) isConfigured(name string) bool {
	for _, j := range a.jobs {
		if strings.EqualFold(j.Name, name) {
			return true
		}
	}
	return false
}
