//go:build faults

package e2e_test

// Slow fault tests, run by `make faults` (go test -tags faults): each waits
// out the SMTP sender's 30 s timeout several times.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"checker/internal/mailtest"
)

// TestSMTPHang: the mail server accepts connections and never greets for
// two runs; each run gives up at the sender's timeout, keeps the alert,
// and after the server recovers exactly one mail arrives.
func TestSMTPHang(t *testing.T) {
	t.Parallel()
	smtpFailureThenRecovery(t, mailtest.FailHang, []string{"ops@example.test"})
}

// TestSMTPHangDoesNotStallNextMinute: while the mail server hangs, the
// alerts of a run go to two recipients, one SMTP session each. The next
// minute's invocation must still run its jobs: the state lock may not be
// held for the whole time delivery takes.
func TestSMTPHangDoesNotStallNextMinute(t *testing.T) {
	t.Parallel()
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf(`[general]
alertcontact = ops@example.test
%s
[tcp:a]
target = %s
notify = every
[tcp:b]
target = %s
notify = every
notify_to = dba@example.test
`, mailSettings(mail), db.addr, db.addr))
	mail.SetSMTPFailure(mailtest.FailHang)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := exec.CommandContext(ctx, checkerBin, "-f", in.cfg, "cron", "minute")
	first.Env, first.Dir = in.env, in.dir
	start := time.Now()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()

	// The next cron minute, a little later.
	time.Sleep(2 * time.Second)
	next := exec.CommandContext(ctx, checkerBin, "-f", in.cfg, "cron", "minute")
	next.Env, next.Dir = in.env, in.dir
	var stderr bytes.Buffer
	next.Stderr = &stderr
	nextStart := time.Now()
	err := next.Run()
	nextTook := time.Since(nextStart)
	firstErr := <-done
	t.Logf("first run (two recipients, server hanging) took %s (%v); the next invocation took %s (%v) %s",
		time.Since(start).Round(time.Second), firstErr, nextTook.Round(time.Second), err, stderr.String())
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 75 {
		t.Fatalf("the next minute's invocation gave up on the state lock (exit 75) while the first run waited for the hung mail server: its jobs did not run")
	}
	if err != nil {
		t.Fatalf("next invocation: %v\n%s", err, stderr.String())
	}
}
