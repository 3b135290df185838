package heartbeat

import (
	"fmt"
	"time"
)

// Liveness is the state of a service judged from the age of its latest
// heartbeat.
type Liveness string

// The liveness states, from best to worst.
const (
	Alive Liveness = "alive"
	Stale Liveness = "stale"
	Dead  Liveness = "dead"
)

// ClockSkewTolerance is how far in the future a heartbeat timestamp may be
// before FutureBy reports it: small clock differences between hosts are
// normal, larger ones mean a clock is wrong and the age cannot be trusted.
const ClockSkewTolerance = 5 * time.Second

// Thresholds are the heartbeat ages at which a service stops being alive and
// stops being stale.
type Thresholds struct {
	Alive time.Duration // younger than this: alive
	Stale time.Duration // younger than this (and not alive): stale; else dead
}

// DefaultThresholds returns the usual thresholds for a 60s heartbeat: alive
// under 90s, stale under 180s, dead after.
func DefaultThresholds() Thresholds {
	return Thresholds{Alive: 90 * time.Second, Stale: 180 * time.Second}
}

// Validate returns an error unless both thresholds are positive and Stale is
// not below Alive.
func (t Thresholds) Validate() error {
	if t.Alive <= 0 {
		return fmt.Errorf("heartbeat alive threshold must be positive, got %s", t.Alive)
	}
	if t.Stale < t.Alive {
		return fmt.Errorf("heartbeat stale threshold %s is below the alive threshold %s", t.Stale, t.Alive)
	}
	return nil
}

// Classify returns Alive when age is under t.Alive, Stale when it is under
// t.Stale, and Dead otherwise. A negative age (a timestamp in the future)
// classifies as Alive; use FutureBy to catch clock skew first.
func (t Thresholds) Classify(age time.Duration) Liveness {
	switch {
	case age < t.Alive:
		return Alive
	case age < t.Stale:
		return Stale
	default:
		return Dead
	}
}

// Age returns how long ago m was sent, as seen at now. It is negative when
// the timestamp is in the future.
func Age(m Message, now time.Time) time.Duration {
	return now.Sub(m.Timestamp)
}

// FutureBy reports whether m's timestamp lies more than ClockSkewTolerance
// after now and, if so, by how much. Such a heartbeat must not be taken as
// fresh: either its sender's clock or ours is wrong.
func FutureBy(m Message, now time.Time) (ahead time.Duration, future bool) {
	ahead = m.Timestamp.Sub(now)
	if ahead > ClockSkewTolerance {
		return ahead, true
	}
	return 0, false
}

// CheckClockSkew returns nil unless m's timestamp is beyond
// ClockSkewTolerance in the future, in which case the error reads like
// "timestamp is 42s in the future (clock skew?)".
func CheckClockSkew(m Message, now time.Time) error {
	ahead, future := FutureBy(m, now)
	if !future {
		return nil
	}
	return fmt.Errorf("timestamp is %s in the future (clock skew?)", FormatAge(ahead))
}

// longestShown is the longest age, skew or uptime shown as a duration.
// time.Duration saturates at about 292 years, so a timestamp of year 1 or
// 9999 would otherwise read as a precise 2562047h47m16s.
const longestShown = 100 * 365 * 24 * time.Hour

// FormatAge shows d rounded to the second, or "more than 100 years" when
// it is that long either way.
func FormatAge(d time.Duration) string {
	if d >= longestShown || d <= -longestShown {
		return "more than 100 years"
	}
	return d.Round(time.Second).String()
}

// FormatSeconds is FormatAge for a number of seconds (an uptime).
func FormatSeconds(sec float64) string {
	if sec >= longestShown.Seconds() || sec <= -longestShown.Seconds() {
		return "more than 100 years"
	}
	return FormatAge(time.Duration(sec * float64(time.Second)))
}

// InstanceLabel is ShortInstanceID for a sentence: "(none)" when the
// heartbeat has no instance id.
func InstanceLabel(id string) string {
	if id == "" {
		return "(none)"
	}
	return ShortInstanceID(id)
}
