package state

import "time"

// Uptime is the share of time a job was not failing over the last day,
// week and month, in percent, measured from the job's first run; nil while
// the job has less than a minute of history.
type Uptime struct {
	Day   *float64
	Week  *float64
	Month *float64
}

// The uptime windows.
const (
	Day   = 24 * time.Hour
	Week  = 7 * Day
	Month = 30 * Day
)

// Uptime computes a job's uptime at now from its history of state changes
// (failing and recovered events) and its current record. History pruned
// away counts as the state the earliest kept event left.
func (tx *Tx) Uptime(name string, j Job, now time.Time) (Uptime, error) {
	var u Uptime
	if j.FirstRun.IsZero() || !now.After(j.FirstRun) {
		return u, nil
	}
	type change struct {
		at      time.Time
		failing bool
	}
	var changes []change
	err := tx.Events(now.Add(-Month), []string{name}, func(ev Event) error {
		switch ev.Kind {
		case EventFailing:
			changes = append(changes, change{ev.Time, true})
		case EventRecovered:
			changes = append(changes, change{ev.Time, false})
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	window := func(d time.Duration) *float64 {
		start := now.Add(-d)
		if start.Before(j.FirstRun) {
			start = j.FirstRun
		}
		total := now.Sub(start)
		if total < time.Minute {
			return nil // too little history to say anything
		}
		// The state at start: the opposite of the first change after it,
		// or, with no change since, the current state.
		failing, seen := j.Failing, false
		for _, c := range changes {
			if !c.at.After(start) {
				failing, seen = c.failing, true
				continue
			}
			if !seen {
				failing = !c.failing
			}
			break
		}
		var down time.Duration
		at := start
		for _, c := range changes {
			if !c.at.After(start) {
				continue
			}
			if c.at.After(now) {
				break
			}
			if failing {
				down += c.at.Sub(at)
			}
			at, failing = c.at, c.failing
		}
		if failing {
			down += now.Sub(at)
		}
		pct := 100 * (1 - float64(down)/float64(total))
		return &pct
	}
	u.Day, u.Week, u.Month = window(Day), window(Week), window(Month)
	return u, nil
}
