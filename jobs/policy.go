package jobs

import (
	"fmt"
	"strings"
	"time"

	"checker/config"
)

// NotifyMode is how often a failing job notifies.
type NotifyMode int

// The notify modes.
const (
	NotifyEvery       NotifyMode = iota // every failed run
	NotifyInterval                      // when more than After has passed since the last notice
	NotifyStateChange                   // when the job starts failing (and on recovery)
)

// Notify is a parsed `notify` value.
type Notify struct {
	Mode NotifyMode
	// After is the quiet time for NotifyInterval: the nominal interval less
	// a slack that absorbs cron jitter.
	After time.Duration
	// Label is the value as configured, for listings.
	Label string
}

// Recovery values.
const (
	RecoveryAuto = "auto"
	RecoveryYes  = "yes"
	RecoveryNo   = "no"
)

// Policy is what the rules need to know about a job.
type Policy struct {
	Notify   Notify
	Failures int    // consecutive failures before the first notice, ≥ 1
	Recovery string // auto, yes or no
	NotifyTo []string
	// WarnIsFailure makes a WARNING result count as a failure. It is true
	// for every type except heartbeat, where stale only warns unless
	// fail_on = stale.
	WarnIsFailure bool
}

func (p Policy) String() string {
	return fmt.Sprintf("notify=%s failures=%d recovery=%s", p.Notify.Label, p.Failures, p.Recovery)
}

// named notify intervals and their quiet times (SPEC §5).
var namedIntervals = map[string]time.Duration{
	"5min":  4*time.Minute + 30*time.Second,
	"10min": 9*time.Minute + 15*time.Second,
	"hour":  59 * time.Minute,
	"day":   23*time.Hour + 50*time.Minute,
}

// ParseNotify parses a `notify` value: every, 5min, 10min, hour, day,
// state_change, or a Go duration D (quiet time D minus 30s).
func ParseNotify(s string) (Notify, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case "every":
		return Notify{Mode: NotifyEvery, Label: v}, nil
	case "state_change":
		return Notify{Mode: NotifyStateChange, Label: v}, nil
	}
	if after, ok := namedIntervals[v]; ok {
		return Notify{Mode: NotifyInterval, After: after, Label: v}, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil || d < time.Minute {
		return Notify{}, fmt.Errorf("%q is not every, 5min, 10min, hour, day, state_change or a duration of at least 1m", s)
	}
	return Notify{Mode: NotifyInterval, After: d - 30*time.Second, Label: v}, nil
}

// Defaults of the common job keys.
const (
	DefaultEvery    = Minute
	DefaultNotify   = "state_change"
	DefaultFailures = 1
)

// common holds the decoded common keys of a section.
type common struct {
	Every   Tier
	Policy  Policy
	Timeout time.Duration
}

// decodeCommon reads the keys every job section shares. Problems are added
// to errs with their key.
func decodeCommon(sec config.Section, defTimeout time.Duration, defEvery Tier, defNotify string, errs *keyErrors) common {
	c := common{Every: defEvery, Timeout: defTimeout, Policy: Policy{Failures: DefaultFailures, Recovery: RecoveryAuto, WarnIsFailure: true}}
	c.Policy.Notify, _ = ParseNotify(defNotify)
	if v, ok := sec.Lookup("every"); ok {
		t, err := ParseTier(strings.ToLower(v))
		if err != nil {
			errs.add("every", err)
		} else {
			c.Every = t
		}
	}
	if v, ok := sec.Lookup("notify"); ok {
		n, err := ParseNotify(v)
		if err != nil {
			errs.add("notify", err)
		} else {
			c.Policy.Notify = n
		}
	}
	if v, ok := sec.Lookup("failures"); ok {
		n, err := config.ParsePositiveInt(v, 1)
		if err != nil {
			errs.add("failures", err)
		} else {
			c.Policy.Failures = n
		}
	}
	if v, ok := sec.Lookup("recovery"); ok {
		switch r := strings.ToLower(strings.TrimSpace(v)); r {
		case RecoveryAuto, RecoveryYes, RecoveryNo:
			c.Policy.Recovery = r
		default:
			errs.add("recovery", fmt.Errorf("%q is not auto, yes or no", v))
		}
	}
	if v, ok := sec.Lookup("timeout"); ok {
		d, err := config.ParseDuration(v)
		if err != nil {
			errs.add("timeout", err)
		} else {
			c.Timeout = d
		}
	}
	if v, ok := sec.Lookup("notify_to"); ok {
		// Addresses and channel names. Whether a name is a configured
		// channel is checked against [channels] by checkDestinations.
		c.Policy.NotifyTo = config.SplitList(v)
		for _, a := range c.Policy.NotifyTo {
			if err := destinationSyntax(a); err != nil {
				errs.add("notify_to", err)
			}
		}
	}
	return c
}

// IsAddress reports whether a destination (an entry of notify_to or
// alertcontact) is a mail address rather than a channel name.
func IsAddress(to string) bool { return strings.Contains(to, "@") }

// destinationSyntax checks the form of one destination: a mail address
// (local@domain, no spaces) or a channel name (no spaces).
func destinationSyntax(to string) error {
	if strings.ContainsAny(to, " \t") {
		return fmt.Errorf("%q is neither a mail address nor a channel name (entries are separated by commas)", to)
	}
	if IsAddress(to) {
		local, domain, _ := strings.Cut(to, "@")
		if local == "" || domain == "" || strings.Contains(domain, "@") {
			return fmt.Errorf("%q is not a mail address", to)
		}
	}
	return nil
}
