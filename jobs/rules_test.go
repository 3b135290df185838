package jobs

import (
	"fmt"
	"testing"
	"time"

	"checker/state"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func policy(t *testing.T, notify string, failures int, recovery string) Policy {
	t.Helper()
	n, err := ParseNotify(notify)
	if err != nil {
		t.Fatal(err)
	}
	return Policy{Notify: n, Failures: failures, Recovery: recovery, WarnIsFailure: true}
}

// succeeding, failing build previous states.
func succeeding() state.Job { return state.Job{Since: t0.Add(-time.Hour)} }

func failing(n int, lastNotifiedAgo time.Duration) state.Job {
	j := state.Job{Failing: true, Failures: n, FirstFailure: t0.Add(-time.Duration(n) * time.Minute), Since: t0.Add(-time.Duration(n) * time.Minute)}
	if lastNotifiedAgo >= 0 {
		j.LastNotified = t0.Add(-lastNotifiedAgo)
		j.NotifiedStatus = "CRITICAL"
	}
	return j
}

const never = -1 // lastNotifiedAgo: never notified in this streak

// notifiedAt is j last notified at (which may lie in the future).
func notifiedAt(j state.Job, at time.Time) state.Job {
	j.LastNotified = at
	return j
}

func TestApplyOnFailure(t *testing.T) {
	tests := []struct {
		notify   string
		failures int
		prev     state.Job
		want     Decision
	}{
		// every: notify on each failure once the threshold is reached.
		{"every", 1, succeeding(), Alert},
		{"every", 1, failing(1, time.Second), Alert},
		{"every", 1, failing(9, 0), Alert},
		{"every", 3, succeeding(), Quiet},
		{"every", 3, failing(1, never), Quiet},
		{"every", 3, failing(2, never), Alert},
		{"every", 3, failing(3, time.Minute), Alert},

		// 5min: strictly more than 4m30s since the last notice.
		{"5min", 1, succeeding(), Alert},
		{"5min", 1, failing(1, never), Alert},
		{"5min", 1, failing(4, 4*time.Minute+29*time.Second), Quiet},
		{"5min", 1, failing(4, 4*time.Minute+30*time.Second), Quiet}, // exactly at the boundary
		{"5min", 1, failing(5, 4*time.Minute+31*time.Second), Alert},
		{"5min", 3, failing(1, never), Quiet},
		{"5min", 3, failing(2, never), Alert},
		{"5min", 3, failing(7, 4*time.Minute+30*time.Second), Quiet},
		{"5min", 3, failing(7, 4*time.Minute+30*time.Second+time.Nanosecond), Alert},

		// 10min: 9m15s.
		{"10min", 1, succeeding(), Alert},
		{"10min", 1, failing(9, 9*time.Minute+15*time.Second), Quiet},
		{"10min", 1, failing(9, 9*time.Minute+16*time.Second), Alert},
		{"10min", 2, succeeding(), Quiet},
		{"10min", 2, failing(1, never), Alert},
		{"10min", 2, failing(5, 9*time.Minute), Quiet},

		// hour: 59m.
		{"hour", 1, succeeding(), Alert},
		{"hour", 1, failing(30, 58*time.Minute+59*time.Second), Quiet},
		{"hour", 1, failing(59, 59*time.Minute), Quiet},
		{"hour", 1, failing(60, 59*time.Minute+time.Second), Alert},
		{"hour", 5, failing(3, never), Quiet},
		{"hour", 5, failing(4, never), Alert},
		{"hour", 5, failing(70, 59*time.Minute+time.Second), Alert},
		// The clock was stepped back: a last notice dated in the future
		// is stale, never fresh (more than a second ahead).
		{"hour", 1, notifiedAt(failing(30, 0), t0.Add(3*time.Hour)), Alert},
		{"day", 1, notifiedAt(failing(30, 0), t0.Add(time.Minute)), Alert},
		{"hour", 1, notifiedAt(failing(30, 0), t0.Add(time.Second)), Quiet},

		// day: 23h50m.
		{"day", 1, succeeding(), Alert},
		{"day", 1, failing(100, 23*time.Hour+50*time.Minute), Quiet},
		{"day", 1, failing(100, 23*time.Hour+50*time.Minute+time.Second), Alert},
		{"day", 3, failing(1, never), Quiet},
		{"day", 3, failing(2, never), Alert},

		// a custom duration D waits D minus 30s.
		{"30m", 1, failing(2, 29*time.Minute+30*time.Second), Quiet},
		{"30m", 1, failing(2, 29*time.Minute+31*time.Second), Alert},
		{"30m", 1, succeeding(), Alert},

		// state_change with failures = 1: only when it was succeeding.
		{"state_change", 1, succeeding(), Alert},
		{"state_change", 1, state.Job{}, Alert}, // never ran before
		{"state_change", 1, failing(1, 0), Quiet},
		{"state_change", 1, failing(1, never), Quiet},
		{"state_change", 1, failing(50, time.Hour*48), Quiet},
		// state_change with failures > 1: only when n equals failures.
		{"state_change", 3, succeeding(), Quiet},
		{"state_change", 3, failing(1, never), Quiet},
		{"state_change", 3, failing(2, never), Alert},
		{"state_change", 3, failing(3, 0), Quiet},
		{"state_change", 3, failing(10, never), Quiet},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%s/failures=%d/prev=%v,%d,notified=%v", tc.notify, tc.failures, tc.prev.Failing, tc.prev.Failures, tc.prev.LastNotified.Format(time.TimeOnly))
		t.Run(name, func(t *testing.T) {
			p := policy(t, tc.notify, tc.failures, RecoveryAuto)
			next, got := Apply(p, tc.prev, Inputs{Failed: true, Status: "CRITICAL"}, t0)
			if got != tc.want {
				t.Errorf("decision = %v, want %v", got, tc.want)
			}
			wantCount := 1
			if tc.prev.Failing {
				wantCount = tc.prev.Failures + 1
			}
			if !next.Failing || next.Failures != wantCount {
				t.Errorf("next = failing %v count %d, want failing count %d", next.Failing, next.Failures, wantCount)
			}
			if tc.prev.Failing {
				if !next.FirstFailure.Equal(tc.prev.FirstFailure) {
					t.Errorf("first failure moved from %v to %v", tc.prev.FirstFailure, next.FirstFailure)
				}
			} else if !next.FirstFailure.Equal(t0) || !next.Since.Equal(t0) {
				t.Errorf("a new streak must start now: first failure %v since %v", next.FirstFailure, next.Since)
			}
			if !next.LastNotified.Equal(tc.prev.LastNotified) && tc.prev.Failing {
				t.Errorf("Apply must not advance last-notified (the caller does, on delivery): %v → %v", tc.prev.LastNotified, next.LastNotified)
			}
		})
	}
}

func TestApplyOnSuccess(t *testing.T) {
	tests := []struct {
		notify   string
		failures int
		recovery string
		prev     state.Job
		want     Decision
	}{
		{"state_change", 1, RecoveryAuto, failing(1, 0), Recover},
		{"state_change", 3, RecoveryAuto, failing(3, 0), Recover},
		{"state_change", 3, RecoveryAuto, failing(2, never), Quiet}, // never reached the threshold
		{"state_change", 1, RecoveryNo, failing(4, 0), Quiet},
		{"every", 1, RecoveryAuto, failing(4, 0), Quiet}, // auto: only state_change
		{"hour", 1, RecoveryAuto, failing(4, 0), Quiet},
		{"every", 1, RecoveryYes, failing(1, 0), Recover},
		{"hour", 2, RecoveryYes, failing(2, 0), Recover},
		{"hour", 2, RecoveryYes, failing(1, never), Quiet},
		{"every", 1, RecoveryYes, succeeding(), Quiet}, // nothing to recover from
		{"state_change", 1, RecoveryAuto, state.Job{}, Quiet},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%s/failures=%d/recovery=%s/prev=%v,%d", tc.notify, tc.failures, tc.recovery, tc.prev.Failing, tc.prev.Failures)
		t.Run(name, func(t *testing.T) {
			next, got := Apply(policy(t, tc.notify, tc.failures, tc.recovery), tc.prev, Inputs{Status: "OK"}, t0)
			if got != tc.want {
				t.Errorf("decision = %v, want %v", got, tc.want)
			}
			if next.Failing || next.Failures != 0 || !next.FirstFailure.IsZero() || !next.LastNotified.IsZero() {
				t.Errorf("success must reset the streak: %+v", next)
			}
			if tc.prev.Failing && !next.Since.Equal(t0) {
				t.Errorf("since = %v, want now", next.Since)
			}
			if !tc.prev.Failing && !tc.prev.Since.IsZero() && !next.Since.Equal(tc.prev.Since) {
				t.Errorf("since moved while succeeding: %v → %v", tc.prev.Since, next.Since)
			}
		})
	}
}

// TestApplyStreak walks a job through a whole outage with notify = 5min
// and failures = 2 on a one-minute cron, delivering each notice.
func TestApplyStreak(t *testing.T) {
	p := policy(t, "5min", 2, RecoveryYes)
	var st state.Job
	var got []string
	outcome := []bool{true, false, false, false, false, false, false, false, false, false, false, false, true}
	for i, ok := range outcome {
		now := t0.Add(time.Duration(i) * time.Minute)
		next, d := Apply(p, st, Inputs{Failed: !ok, Status: map[bool]string{true: "OK", false: "CRITICAL"}[ok]}, now)
		if d == Alert {
			next.LastNotified = now // delivered
		}
		if d != Quiet {
			got = append(got, fmt.Sprintf("%d:%v", i, d))
		}
		st = next
	}
	// Failures start at minute 1; the second failure (minute 2) notifies,
	// then not before 4m30s have passed: minute 7 and minute 12 would, but
	// minute 12 succeeds.
	want := []string{"2:alert", "7:alert", "12:recover"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notices %v, want %v", got, want)
	}
}

func TestFailedHonoursWarnIsFailure(t *testing.T) {
	p := Policy{WarnIsFailure: true}
	if !p.Failed(Result{Status: Warning}) || p.Failed(Result{Status: OK}) || !p.Failed(Result{Status: Unknown}) {
		t.Error("with WarnIsFailure, WARNING and UNKNOWN fail and OK does not")
	}
	p.WarnIsFailure = false
	if p.Failed(Result{Status: Warning}) || !p.Failed(Result{Status: Critical}) {
		t.Error("without WarnIsFailure, WARNING passes and CRITICAL fails")
	}
}

func TestParseNotify(t *testing.T) {
	for in, want := range map[string]time.Duration{"5min": 270 * time.Second, "10MIN": 555 * time.Second, "hour": 59 * time.Minute, "day": 23*time.Hour + 50*time.Minute, "2h": 2*time.Hour - 30*time.Second,
		"1d": 24*time.Hour - 30*time.Second, "3600": time.Hour - 30*time.Second} {
		n, err := ParseNotify(in)
		if err != nil || n.Mode != NotifyInterval || n.After != want {
			t.Errorf("ParseNotify(%q) = %+v, %v; want interval %v", in, n, err, want)
		}
	}
	for _, bad := range []string{"", "sometimes", "10s", "-5m", "30", "0d"} {
		if _, err := ParseNotify(bad); err == nil {
			t.Errorf("ParseNotify(%q) accepted", bad)
		}
	}
}

// TestSlotsAcrossFallBack: when clocks fall back, the repeated hour must be
// new slots, or every minute job would be skipped for an hour.
func TestSlotsAcrossFallBack(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	first := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC).In(ny)  // 01:30 EDT
	second := time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC).In(ny) // 01:30 EST
	if first.Format("15:04") != second.Format("15:04") {
		t.Fatalf("test setup: %v and %v should show the same wall time", first, second)
	}
	for _, e := range []Tier{Minute, Hour} {
		if Slot(e, first) == Slot(e, second) {
			t.Errorf("%s slot %q is the same for both 01:30s", e, Slot(e, first))
		}
	}
	if Slot(Day, first) != Slot(Day, second) {
		t.Errorf("day slots should stay one per local date")
	}
}

// step is one cron minute of a workflow scenario: the run's status ("OK",
// "WARNING", "CRITICAL"), whether a silence or window covers the job, and
// whether an operator acknowledged the outage just before the run.
type step struct {
	status     string
	suppressed bool
	ack        bool
}

// play runs the steps a minute apart through Apply, delivering every
// notice at once, and returns the decisions other than Quiet as
// "minute:decision".
func play(p Policy, steps []step) []string {
	var st state.Job
	var got []string
	for i, s := range steps {
		now := t0.Add(time.Duration(i) * time.Minute)
		if s.ack && st.Failing {
			st.Ack = &state.Ack{By: "alice", At: now}
		}
		next, d := Apply(p, st, Inputs{Failed: s.status != "OK", Status: s.status, Suppressed: s.suppressed}, now)
		if d == Alert || d == Escalate {
			next.LastNotified = now
		}
		next.LastStatus = s.status // as the runner records it
		if d != Quiet {
			got = append(got, fmt.Sprintf("%d:%v", i, d))
		}
		st = next
	}
	return got
}

func repeat(s step, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	crit       = step{status: "CRITICAL"}
	critHeld   = step{status: "CRITICAL", suppressed: true}
	warn       = step{status: "WARNING"}
	ok         = step{status: "OK"}
	okHeld     = step{status: "OK", suppressed: true}
	critAcked  = step{status: "CRITICAL", ack: true}
	warnAcked  = step{status: "WARNING", ack: true}
	everyMode  = []string{"every", "5min", "hour", "state_change"}
	scenarioOf = map[string][]step{
		// A window covers the start of an outage and ends while the job
		// still fails: one notice when it ends, then the usual rhythm.
		"window ends while failing": concat(repeat(critHeld, 5), repeat(crit, 6)),
		// The job recovers inside the window: nobody was told of the
		// outage, so nothing at all is sent.
		"window ends after recovery": concat(repeat(critHeld, 4), []step{okHeld}, repeat(ok, 3)),
		// Acknowledged after the first notice: no reminders; the recovery
		// still goes out; the next outage notifies again.
		"ack then a new outage": concat([]step{crit, critAcked}, repeat(crit, 6), []step{ok, crit, crit}),
		// A WARNING acknowledged, then CRITICAL: the change is told in
		// every mode and lifts the acknowledgement; then it recovers.
		"ack then escalation": concat([]step{warn, warnAcked}, repeat(warn, 2), repeat(crit, 3), []step{ok}),
		// The status changed between two reminders (not told under an
		// interval), then the operator acknowledged what status showed:
		// no change since the acknowledgement, nothing to lift.
		"ack after an untold change": concat([]step{warn, crit, critAcked}, repeat(crit, 3), []step{ok}),
		// Acknowledged, then a silence; the status changes inside it: the
		// change lifts the acknowledgement and is held, then told when
		// the silence ends.
		"escalation held by a silence": concat([]step{warn, {status: "CRITICAL", suppressed: true, ack: true}}, repeat(crit, 2)),
		// WARNING, then CRITICAL, then WARNING again.
		"escalation": concat(repeat(warn, 2), repeat(crit, 2), repeat(warn, 2)),
		// A silence begins after the outage was told and ends while the
		// job still fails; then it recovers.
		"silence in the middle": concat(repeat(crit, 2), repeat(critHeld, 3), repeat(crit, 2), []step{ok}),
		// The outage was told, then a silence began, and the job recovered
		// inside it: those told of the failure hear of the recovery.
		"recovery inside a silence": concat(repeat(crit, 2), repeat(critHeld, 2), []step{okHeld}),
	}
)

// TestWorkflowRules: silences, maintenance windows and acknowledgements
// against every notify mode (failures = 1, recovery = yes).
func TestWorkflowRules(t *testing.T) {
	want := map[string]map[string][]string{
		"window ends while failing": {
			"every":        {"0:hold", "1:hold", "2:hold", "3:hold", "4:hold", "5:alert", "6:alert", "7:alert", "8:alert", "9:alert", "10:alert"},
			"5min":         {"0:hold", "1:hold", "2:hold", "3:hold", "4:hold", "5:alert", "10:alert"},
			"hour":         {"0:hold", "1:hold", "2:hold", "3:hold", "4:hold", "5:alert"},
			"state_change": {"0:hold", "1:hold", "2:hold", "3:hold", "4:hold", "5:alert"},
		},
		"window ends after recovery": {
			"every":        {"0:hold", "1:hold", "2:hold", "3:hold"},
			"5min":         {"0:hold", "1:hold", "2:hold", "3:hold"},
			"hour":         {"0:hold", "1:hold", "2:hold", "3:hold"},
			"state_change": {"0:hold", "1:hold", "2:hold", "3:hold"},
		},
		"ack then a new outage": {
			"every":        {"0:alert", "8:recover", "9:alert", "10:alert"},
			"5min":         {"0:alert", "8:recover", "9:alert"},
			"hour":         {"0:alert", "8:recover", "9:alert"},
			"state_change": {"0:alert", "8:recover", "9:alert"},
		},
		"ack then escalation": {
			"every":        {"0:alert", "4:escalate", "5:alert", "6:alert", "7:recover"},
			"5min":         {"0:alert", "4:escalate", "7:recover"},
			"hour":         {"0:alert", "4:escalate", "7:recover"},
			"state_change": {"0:alert", "4:escalate", "7:recover"},
		},
		"ack after an untold change": {
			"every":        {"0:alert", "1:alert", "6:recover"},
			"5min":         {"0:alert", "6:recover"},
			"hour":         {"0:alert", "6:recover"},
			"state_change": {"0:alert", "1:escalate", "6:recover"},
		},
		"escalation held by a silence": {
			"every":        {"0:alert", "1:hold", "2:escalate", "3:alert"},
			"5min":         {"0:alert", "1:hold", "2:escalate"},
			"hour":         {"0:alert", "1:hold", "2:escalate"},
			"state_change": {"0:alert", "1:hold", "2:escalate"},
		},
		"escalation": {
			"every":        {"0:alert", "1:alert", "2:alert", "3:alert", "4:alert", "5:alert"},
			"5min":         {"0:alert", "5:alert"},
			"hour":         {"0:alert"},
			"state_change": {"0:alert", "2:escalate", "4:escalate"},
		},
		"silence in the middle": {
			"every":        {"0:alert", "1:alert", "2:hold", "3:hold", "4:hold", "5:alert", "6:alert", "7:recover"},
			"5min":         {"0:alert", "5:alert", "7:recover"},
			"hour":         {"0:alert", "7:recover"},
			"state_change": {"0:alert", "7:recover"},
		},
		"recovery inside a silence": {
			"every":        {"0:alert", "1:alert", "2:hold", "3:hold", "4:recover"},
			"5min":         {"0:alert", "4:recover"},
			"hour":         {"0:alert", "4:recover"},
			"state_change": {"0:alert", "4:recover"},
		},
	}
	for name, steps := range scenarioOf {
		for _, mode := range everyMode {
			t.Run(name+"/"+mode, func(t *testing.T) {
				got := play(policy(t, mode, 1, RecoveryYes), steps)
				if fmt.Sprint(got) != fmt.Sprint(want[name][mode]) {
					t.Errorf("notices %v, want %v", got, want[name][mode])
				}
			})
		}
	}
}

// TestAckBeforeTheThreshold: acknowledged at the first failure, below
// failures = 3, then CRITICAL: the change lifts the acknowledgement, and
// the outage is told when it reaches the threshold, in every mode.
func TestAckBeforeTheThreshold(t *testing.T) {
	steps := concat([]step{warn, critAcked}, repeat(crit, 2), []step{ok})
	want := map[string][]string{
		"every":        {"2:alert", "3:alert", "4:recover"},
		"5min":         {"2:alert", "4:recover"},
		"hour":         {"2:alert", "4:recover"},
		"state_change": {"2:alert", "4:recover"},
	}
	for _, mode := range everyMode {
		if got := play(policy(t, mode, 3, RecoveryYes), steps); fmt.Sprint(got) != fmt.Sprint(want[mode]) {
			t.Errorf("%s: notices %v, want %v", mode, got, want[mode])
		}
	}
}

// TestAckClearsOnEscalationAndRecovery: an escalation notifies and lifts the
// acknowledgement; a recovery clears it.
func TestAckClearsOnEscalationAndRecovery(t *testing.T) {
	p := policy(t, "state_change", 1, RecoveryAuto)
	prev := failing(3, time.Minute)
	prev.NotifiedStatus = "WARNING"
	prev.Ack = &state.Ack{By: "bob", At: t0}
	next, d := Apply(p, prev, Inputs{Failed: true, Status: "CRITICAL"}, t0)
	if d != Escalate || next.Ack != nil || next.NotifiedStatus != "CRITICAL" {
		t.Errorf("escalation of an acked outage: decision %v ack %+v notified %q", d, next.Ack, next.NotifiedStatus)
	}
	next, d = Apply(p, prev, Inputs{Status: "OK"}, t0)
	if d != Recover || next.Ack != nil {
		t.Errorf("recovery of an acked outage: decision %v ack %+v", d, next.Ack)
	}
}
