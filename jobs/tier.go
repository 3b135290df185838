package jobs

import (
	"fmt"
	"time"
)

// Tier is a cron invocation's tier and a job's `every`.
type Tier string

// The tiers, as crontab invokes them.
const (
	Minute  Tier = "minute"
	Hour    Tier = "hour"
	Day     Tier = "day"
	DayNoon Tier = "day_noon"
)

// Tiers lists the tiers in crontab order.
var Tiers = []Tier{Minute, Hour, Day, DayNoon}

// ParseTier checks a tier name.
func ParseTier(s string) (Tier, error) {
	for _, t := range Tiers {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("%q is not a tier (minute, hour, day, day_noon)", s)
}

// Runs reports whether an invocation of tier t runs jobs whose every is e:
// minute runs minute jobs; hour adds hour jobs; day adds day jobs; day_noon
// adds day_noon jobs to minute and hour.
func (t Tier) Runs(e Tier) bool {
	switch t {
	case Minute:
		return e == Minute
	case Hour:
		return e == Minute || e == Hour
	case Day:
		return e == Minute || e == Hour || e == Day
	case DayNoon:
		return e == Minute || e == Hour || e == DayNoon
	}
	return false
}

// Slot names the schedule slot a job with every e occupies at now: the
// calendar minute, hour or date. A job runs at most once per slot.
func Slot(e Tier, now time.Time) string {
	// Minute and hour slots carry the UTC offset: when clocks fall back, the
	// repeated hour is a new slot, not one that has already run.
	switch e {
	case Minute:
		return now.Format("2006-01-02T15:04Z0700")
	case Hour:
		return now.Format("2006-01-02T15Z0700")
	case DayNoon:
		return now.Format("2006-01-02") + "/noon"
	}
	return now.Format("2006-01-02")
}
