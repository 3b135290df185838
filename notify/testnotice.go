package notify

import (
	"fmt"
	"time"

	"checker/state"
)

// Test notices.
const (
	// KindTest is the kind of the notice `checker notify test` sends. It
	// never enters the outbox.
	KindTest = "test"
	// TestJob is the job name a test notice carries (X-Checker-Job).
	TestJob = "checker:notify-test"
	// EventTest is the history's event kind for a test notice sent.
	EventTest = state.EventTest
)

// TestNotice is the clearly marked notice `checker notify test` sends to
// each of to: not an alert, and saying so in its subject and body.
func TestNotice(server, by string, to []string, now time.Time) state.Notice {
	n := state.Notice{
		Job:     TestJob,
		Kind:    KindTest,
		Status:  "OK",
		Subject: "TEST notice, not an alert: checker on " + server + " can reach you",
		Body: fmt.Sprintf("This is a test notice from checker on %s, sent by `checker notify test` at %s%s.\n\n"+
			"It is not an alert: no job failed. Receiving it shows that notices reach you this way.\n",
			server, now.Format(timeLayout), byWhom(by)),
		Created: now,
		Queued:  now,
	}
	for _, t := range to {
		n.To = append(n.To, state.Delivery{To: t})
	}
	return n
}

func byWhom(by string) string {
	if by == "" {
		return ""
	}
	return " by " + by
}
