package jobs

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/adhocore/gronx"

	"checker/config"
)

// Window is a maintenance window, a [maintenance:NAME] section: while it is
// open, the notices of its jobs are held as with a silence (SPEC §11).
type Window struct {
	Name string
	// Jobs are the names or globs of the jobs it covers (see MatchName).
	Jobs []string
	// Start opens a one-off window; Schedule (a 5-field cron expression)
	// opens a recurring one. Either way it stays open for Duration,
	// counted on the wall clock of Location: a window from 01:30 for an
	// hour ends at 02:30 even on the night the clocks fall back.
	Start    time.Time
	Schedule string
	Duration time.Duration
	Location *time.Location
}

// maxWindow bounds a window's duration: a longer one is a silence by
// another name, and a recurring one would cover everything.
const maxWindow = 31 * 24 * time.Hour

// windowKeys are the keys of a [maintenance:NAME] section.
var windowKeys = []string{"jobs", "start", "duration", "schedule", "timezone"}

// startLayouts are the forms `start` takes, in the window's time zone.
var startLayouts = []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"}

// LoadWindows builds the maintenance windows of the settings. It returns
// every problem (file, line, section, key) and, as warnings, the globs of a
// window that match none of the jobs given.
func LoadWindows(s *config.Settings, all []*Job) ([]*Window, config.Problems, []string) {
	var (
		out      []*Window
		problems config.Problems
		warnings []string
	)
	for _, sec := range s.Maintenance {
		prob := func(key string, err error) {
			line := sec.Line
			if l := sec.KeyLine(key); l > 0 {
				line = l
			}
			problems = append(problems, config.Problem{File: s.File, Line: line, Section: sec.Name, Key: key, Msg: err.Error()})
		}
		_, name, _ := strings.Cut(sec.Name, ":")
		w := &Window{Name: strings.TrimSpace(name), Location: time.Local}
		before := len(problems)
		for _, k := range sec.Keys() {
			if !containsString(windowKeys, k) {
				prob(k, fmt.Errorf("unknown key (known keys: %s)", strings.Join(windowKeys, ", ")))
			}
		}
		if w.Name == "" {
			prob("", errors.New("maintenance section needs a name: [maintenance:NAME]"))
		}
		if tz, ok := sec.Lookup("timezone"); ok {
			loc, err := time.LoadLocation(strings.TrimSpace(tz))
			if err != nil || strings.TrimSpace(tz) == "" {
				prob("timezone", fmt.Errorf("%q is not a time zone (e.g. Europe/Berlin, America/New_York, UTC)", tz))
			} else {
				w.Location = loc
			}
		}
		w.Jobs = config.SplitList(sec.Get("jobs"))
		if len(w.Jobs) == 0 {
			prob("jobs", errors.New("missing: the jobs (names or globs) the window covers"))
		}
		if v, ok := sec.Lookup("duration"); !ok {
			prob("duration", errors.New("missing: how long the window stays open (e.g. 2h)"))
		} else if d, err := config.ParseDuration(v); err != nil {
			prob("duration", err)
		} else if d > maxWindow {
			prob("duration", fmt.Errorf("%s is longer than %s; use `checker silence` for longer", d, maxWindow))
		} else {
			w.Duration = d
		}
		start, hasStart := sec.Lookup("start")
		sched, hasSched := sec.Lookup("schedule")
		switch {
		case hasStart && hasSched:
			prob("schedule", errors.New("set start (a one-off window) or schedule (a recurring one), not both"))
		case hasStart:
			t, err := parseStart(strings.TrimSpace(start), w.Location)
			if err != nil {
				prob("start", err)
			}
			w.Start = t
		case hasSched:
			w.Schedule = strings.Join(strings.Fields(sched), " ")
			if err := validSchedule(w.Schedule); err != nil {
				prob("schedule", err)
			}
		default:
			prob("", errors.New("a window needs start (one-off) or schedule (recurring)"))
		}
		if len(problems) > before {
			continue
		}
		for _, pattern := range w.Jobs {
			matched := false
			for _, j := range all {
				if MatchName(pattern, j.Name) {
					matched = true
					break
				}
			}
			if !matched {
				line := sec.KeyLine("jobs")
				warnings = append(warnings, fmt.Sprintf("%s:%d: [%s] jobs: %q matches no configured job", s.File, line, sec.Name, pattern))
			}
		}
		out = append(out, w)
	}
	return out, problems, warnings
}

func parseStart(v string, loc *time.Location) (time.Time, error) {
	for _, layout := range startLayouts {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a start time (use YYYY-MM-DD HH:MM in the window's timezone, or RFC 3339)", v)
}

// validSchedule accepts a 5-field cron expression (minute hour
// day-of-month month day-of-week) or one of the @daily-style shorthands.
func validSchedule(expr string) error {
	fields := strings.Fields(expr)
	if len(fields) != 1 && len(fields) != 5 {
		return fmt.Errorf("%q is not a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. \"0 2 * * 0\")", expr)
	}
	if len(fields) == 1 && !strings.HasPrefix(expr, "@") {
		return fmt.Errorf("%q is not a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. \"0 2 * * 0\")", expr)
	}
	if !gronx.IsValid(expr) {
		return fmt.Errorf("%q is not a valid cron expression", expr)
	}
	return nil
}

// Open reports whether the window is open at now.
func (w *Window) Open(now time.Time) bool {
	var start time.Time
	if w.Schedule == "" {
		start = w.Start
	} else {
		local := now.In(w.Location)
		prev, err := gronx.PrevTickBefore(w.Schedule, local, true)
		if err != nil {
			return false
		}
		start = prev
	}
	if start.IsZero() || now.Before(start) {
		return false
	}
	return now.Before(w.end(start))
}

// end is when a window opened at start closes: when the wall clock of the
// window's zone first reads start's wall time plus the duration. The night
// the clocks fall back that is later than start plus the duration; the
// night they spring forward it may come sooner.
func (w *Window) end(start time.Time) time.Time {
	s := start.In(w.Location)
	want := wall(s).Add(w.Duration)
	t := time.Date(want.Year(), want.Month(), want.Day(), want.Hour(), want.Minute(), want.Second(), want.Nanosecond(), w.Location)
	if wall(t).Equal(want) {
		return t
	}
	// That wall time does not exist (the hour skipped in spring): the
	// window closes at the jump, the first instant the wall reads later.
	lo, hi := t.Add(-3*time.Hour), t.Add(3*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if wall(mid).Before(want) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi.Truncate(time.Second)
}

// wall is what the clock on the wall shows at t, in t's zone, as a time
// that can be compared and added to without zone rules.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// Covers reports whether the window covers the job.
func (w *Window) Covers(job string) bool {
	for _, p := range w.Jobs {
		if MatchName(p, job) {
			return true
		}
	}
	return false
}

// WindowsAt returns, for the runner, which open window covers a job; the
// windows' state is worked out once per second asked, not once per job.
func WindowsAt(windows []*Window) func(job string, now time.Time) (string, bool) {
	if len(windows) == 0 {
		return nil
	}
	var (
		mu   sync.Mutex // guards at and open
		at   time.Time
		open []*Window
	)
	return func(job string, now time.Time) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if sec := now.Truncate(time.Second); !sec.Equal(at) {
			at, open = sec, open[:0]
			for _, w := range windows {
				if w.Open(now) {
					open = append(open, w)
				}
			}
			sort.Slice(open, func(i, j int) bool { return open[i].Name < open[j].Name })
		}
		for _, w := range open {
			if w.Covers(job) {
				return w.Name, true
			}
		}
		return "", false
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
