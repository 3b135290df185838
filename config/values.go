package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseBool accepts what Python's configparser accepts: 1/0, yes/no,
// true/false and on/off, in any case. Anything else is an error, never a
// silent false.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use yes/no, true/false, on/off or 1/0)", s)
}

// ParseDuration accepts a Go duration ("90s", "1m30s", "2h") or a bare
// number of seconds ("10"). Zero and negative durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		// !(n > 0) also catches NaN; the range check catches +Inf and
		// values that would overflow; d <= 0 catches what rounds to zero.
		if !(n > 0) {
			return 0, fmt.Errorf("%q must be more than zero", s)
		}
		if n*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("%q is too long", s)
		}
		d := time.Duration(n * float64(time.Second))
		if d <= 0 {
			return 0, fmt.Errorf("%q must be more than zero", s)
		}
		return d, nil
	}
	d, err := parseDays(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (examples: 10s, 1m30s, 2h, 7d)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	return d, nil
}

// ParsePositiveInt parses a whole number that is at least min.
func ParsePositiveInt(s string, min int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if n < min {
		return 0, fmt.Errorf("%d is less than %d", n, min)
	}
	return n, nil
}

// SplitList splits a comma-separated list, trimming blanks and dropping
// empty entries (a trailing comma is harmless). Newlines count as commas, so
// Python-style continuation lines work too.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseDays is time.ParseDuration that also takes whole days as a leading
// "Nd" ("7d", "1d12h").
func parseDays(s string) (time.Duration, error) {
	i := strings.IndexByte(s, 'd')
	if i <= 0 {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > 100000 {
		return 0, fmt.Errorf("bad day count in %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest := s[i+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, err
		}
		d += r
	}
	return d, nil
}
