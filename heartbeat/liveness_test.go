package heartbeat

import (
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	th := DefaultThresholds()
	tests := []struct {
		age  time.Duration
		want Liveness
	}{
		{-10 * time.Second, Alive},
		{0, Alive},
		{60 * time.Second, Alive},
		{90*time.Second - time.Nanosecond, Alive},
		{90 * time.Second, Stale},
		{179 * time.Second, Stale},
		{180*time.Second - time.Nanosecond, Stale},
		{180 * time.Second, Dead},
		{24 * time.Hour, Dead},
	}
	for _, tt := range tests {
		if got := th.Classify(tt.age); got != tt.want {
			t.Errorf("Classify(%s) = %s, want %s", tt.age, got, tt.want)
		}
	}

	custom := Thresholds{Alive: 10 * time.Second, Stale: 10 * time.Second}
	if got := custom.Classify(10 * time.Second); got != Dead {
		t.Errorf("equal thresholds: Classify(10s) = %s, want dead", got)
	}
}

func TestThresholdsValidate(t *testing.T) {
	tests := []struct {
		th   Thresholds
		want string // "" for valid
	}{
		{DefaultThresholds(), ""},
		{Thresholds{Alive: time.Second, Stale: time.Second}, ""},
		{Thresholds{Alive: 0, Stale: time.Second}, "must be positive"},
		{Thresholds{Alive: 2 * time.Minute, Stale: time.Minute}, "below the alive threshold"},
	}
	for _, tt := range tests {
		err := tt.th.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.th, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want one containing %q", tt.th, err, tt.want)
		}
	}
}

func TestAgeAndClockSkew(t *testing.T) {
	now := time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)
	tests := []struct {
		name    string
		offset  time.Duration // timestamp minus now
		future  bool
		message string
	}{
		{"past", -45 * time.Second, false, ""},
		{"now", 0, false, ""},
		{"within tolerance", ClockSkewTolerance, false, ""},
		{"just beyond tolerance", ClockSkewTolerance + time.Second, true, "timestamp is 6s in the future (clock skew?)"},
		{"far future", 2*time.Minute + 400*time.Millisecond, true, "timestamp is 2m0s in the future (clock skew?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{ServiceName: "a", Timestamp: now.Add(tt.offset)}
			if got := Age(m, now); got != -tt.offset {
				t.Errorf("Age = %s, want %s", got, -tt.offset)
			}
			ahead, future := FutureBy(m, now)
			if future != tt.future {
				t.Fatalf("FutureBy future = %v, want %v", future, tt.future)
			}
			if future && ahead != tt.offset {
				t.Errorf("FutureBy ahead = %s, want %s", ahead, tt.offset)
			}
			err := CheckClockSkew(m, now)
			switch {
			case tt.message == "" && err != nil:
				t.Errorf("CheckClockSkew = %v, want nil", err)
			case tt.message != "" && (err == nil || err.Error() != tt.message):
				t.Errorf("CheckClockSkew = %v, want %q", err, tt.message)
			}
		})
	}
}
