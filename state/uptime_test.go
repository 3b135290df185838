package state_test

import (
	"fmt"
	"testing"
	"time"

	"checker/state"
)

func TestUptimeFromHistory(t *testing.T) {
	now := t0.Add(40 * 24 * time.Hour)
	type change struct {
		ago     time.Duration
		failing bool
	}
	tests := []struct {
		name     string
		firstRun time.Duration // ago
		failing  bool          // now
		changes  []change
		want     string // 24h / 7d / 30d
	}{
		{"never failed", 60 * 24 * time.Hour, false, nil, "100.00/100.00/100.00"},
		{"failing all along", 60 * 24 * time.Hour, true, nil, "0.00/0.00/0.00"},
		{"down 6h of the last day", 60 * 24 * time.Hour, false, []change{{12 * time.Hour, true}, {6 * time.Hour, false}}, "75.00/96.43/99.17"},
		{"failing for the last 12h", 60 * 24 * time.Hour, true, []change{{12 * time.Hour, true}}, "50.00/92.86/98.33"},
		{"new job, one hour old, down half of it", time.Hour, false, []change{{time.Hour, true}, {30 * time.Minute, false}}, "50.00/50.00/50.00"},
		{"recovered inside the window from an older outage", 60 * 24 * time.Hour, false, []change{{48 * time.Hour, false}}, "100.00/28.57/6.67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			j := state.Job{FirstRun: now.Add(-tt.firstRun), Failing: tt.failing}
			err := s.Update(t.Context(), func(tx *state.Tx) error {
				for _, c := range tt.changes {
					kind := state.EventRecovered
					if c.failing {
						kind = state.EventFailing
					}
					if err := tx.AddEvent(state.Event{Time: now.Add(-c.ago), Job: "j", Kind: kind}); err != nil {
						return err
					}
					// Another job's history must not count.
					if err := tx.AddEvent(state.Event{Time: now.Add(-c.ago), Job: "other", Kind: state.EventFailing}); err != nil {
						return err
					}
				}
				return tx.PutJob("j", &j)
			})
			if err != nil {
				t.Fatal(err)
			}
			var u state.Uptime
			err = s.View(func(tx *state.Tx) error {
				u, err = tx.Uptime("j", j, now)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%.2f/%.2f/%.2f", *u.Day, *u.Week, *u.Month)
			if got != tt.want {
				t.Errorf("uptime %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPruneEvents(t *testing.T) {
	s := newStore(t)
	err := s.Update(t.Context(), func(tx *state.Tx) error {
		for i := range 10 {
			if err := tx.AddEvent(state.Event{Time: t0.Add(time.Duration(i) * time.Hour), Job: "j", Kind: state.EventFailing}); err != nil {
				return err
			}
		}
		n, err := tx.PruneEvents(t0.Add(5 * time.Hour))
		if n != 5 {
			t.Errorf("pruned %d, want 5", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var all, byJob int
	err = s.View(func(tx *state.Tx) error {
		if err := tx.Events(time.Time{}, nil, func(state.Event) error { all++; return nil }); err != nil {
			return err
		}
		return tx.Events(time.Time{}, []string{"j"}, func(state.Event) error { byJob++; return nil })
	})
	if err != nil || all != 5 || byJob != 5 {
		t.Errorf("after pruning: %d events, %d by job (%v); want 5 and 5", all, byJob, err)
	}
}
