package jobs

import (
	"fmt"
	"strings"
	"time"

	"checker/state"
)

const timeLayout = "2006-01-02 15:04:05 MST"

// subjectMessage caps the result message inside a subject.
func subjectMessage(r Result) string {
	return truncate(r.Line(), 120)
}

// failureNotice says what failed, since when, how many times, and where.
func failureNotice(j *Job, st state.Job, r Result, host string, to []string, now time.Time) state.Notice {
	subject := r.Subject
	if subject == "" {
		subject = fmt.Sprintf("%s is failing: %s", j.Name, subjectMessage(r))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is failing on %s.\n\n", j.Name, host)
	fmt.Fprintf(&b, "Result:   %s\n", r.Line())
	fmt.Fprintf(&b, "Target:   %s (%s job)\n", j.Target, j.Type)
	fmt.Fprintf(&b, "Failing since %s: %d consecutive failed run%s.\n", st.FirstFailure.Format(timeLayout), st.Failures, plural(st.Failures))
	fmt.Fprintf(&b, "Checked:  %s, every %s; %s\n", now.Format(timeLayout), j.Every, j.Policy)
	if r.Detail != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(r.Detail, "\n"))
	}
	if r.LongOutput != "" {
		fmt.Fprintf(&b, "\nOutput:\n%s\n", strings.TrimRight(r.LongOutput, "\n"))
	}
	if r.Perfdata != "" {
		fmt.Fprintf(&b, "\nPerformance data: %s\n", r.Perfdata)
	}
	return state.Notice{Job: j.Name, Kind: state.KindFailure, Subject: subject, Body: b.String(), To: deliveries(to),
		Created: now, Status: r.Status.String(), Thread: st.Thread}
}

// deliveries are fresh deliveries to each recipient.
func deliveries(to []string) []state.Delivery {
	out := make([]state.Delivery, len(to))
	for i, t := range to {
		out[i] = state.Delivery{To: t}
	}
	return out
}

// recoveryNotice says a failing job works again and how long it was down.
func recoveryNotice(j *Job, prev state.Job, r Result, host string, to []string, now time.Time) state.Notice {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is working again on %s.\n\n", j.Name, host)
	fmt.Fprintf(&b, "Result:   %s\n", r.Line())
	fmt.Fprintf(&b, "Target:   %s (%s job)\n", j.Target, j.Type)
	if !prev.FirstFailure.IsZero() {
		fmt.Fprintf(&b, "It failed %d time%s in a row, from %s for %s.\n", prev.Failures, plural(prev.Failures),
			prev.FirstFailure.Format(timeLayout), now.Sub(prev.FirstFailure).Round(time.Second))
	}
	return state.Notice{Job: j.Name, Kind: state.KindRecovery, Subject: fmt.Sprintf("%s recovered: %s", j.Name, subjectMessage(r)),
		Body: b.String(), To: deliveries(to), Created: now, Status: r.Status.String(), Thread: prev.Thread}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
