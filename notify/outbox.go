package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"checker/state"
)

// Enqueue adds n to the outbox. A pending notice of the same job and kind is
// replaced: the newer one says the same with fresher numbers, and a mail
// server that was down for three runs must not cause three alerts.
func Enqueue(outbox []state.Notice, n state.Notice) []state.Notice {
	for i := range outbox {
		if outbox[i].Job == n.Job && outbox[i].Kind == n.Kind {
			n.Attempts = outbox[i].Attempts
			n.LastError = outbox[i].LastError
			outbox[i] = n
			return outbox
		}
	}
	return append(outbox, n)
}

// maxParallelSends bounds the SMTP connections one delivery opens at once.
const maxParallelSends = 4

// Report says what a delivery did.
type Report struct {
	// Delivered are the notices that reached all their recipients.
	Delivered []state.Notice
	// Mails is how many mails were sent successfully.
	Mails int
	// Err joins the errors of failed sends; nil when all went out.
	Err error
	// Attempted is true when there was anything to send.
	Attempted bool
}

// Deliver sends what the outbox owes: one mail per recipient, holding every
// notice owed to that recipient (a digest). It returns the notices still
// owed to someone, with Attempts and LastError updated, and a report.
func Deliver(ctx context.Context, s Sender, c Composer, outbox []state.Notice) ([]state.Notice, Report) {
	var rep Report
	byRcpt := map[string][]int{}
	var rcpts []string
	for i, n := range outbox {
		for _, to := range n.To {
			key := strings.ToLower(to)
			if _, ok := byRcpt[key]; !ok {
				rcpts = append(rcpts, key)
			}
			byRcpt[key] = append(byRcpt[key], i)
		}
	}
	sort.Strings(rcpts)
	if len(rcpts) == 0 {
		return nil, rep
	}
	rep.Attempted = true

	// One mail per recipient, sent in parallel so that a hung server costs
	// one send timeout, not one per recipient.
	type sent struct {
		idx []int
		err error
	}
	results := make([]sent, len(rcpts))
	sem := make(chan struct{}, maxParallelSends)
	var wg sync.WaitGroup
	for k, rcpt := range rcpts {
		idx := byRcpt[rcpt]
		items := make([]state.Notice, len(idx))
		for j, i := range idx {
			items[j] = outbox[i]
		}
		m := c.Compose(rcpt, items)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[k] = sent{idx: idx, err: s.Send(ctx, m)}
		}()
	}
	wg.Wait()

	delivered := make([]map[string]bool, len(outbox))
	failed := make([]error, len(outbox))
	var errs []error
	for k, res := range results {
		rcpt := rcpts[k]
		if res.err != nil {
			errs = append(errs, fmt.Errorf("mail to %s: %w", rcpt, res.err))
			for _, i := range res.idx {
				failed[i] = res.err
			}
			continue
		}
		rep.Mails++
		for _, i := range res.idx {
			if delivered[i] == nil {
				delivered[i] = map[string]bool{}
			}
			delivered[i][rcpt] = true
		}
	}
	var remaining []state.Notice
	for i, n := range outbox {
		var owed []string
		for _, to := range n.To {
			if !delivered[i][strings.ToLower(to)] {
				owed = append(owed, to)
			}
		}
		if len(owed) == 0 {
			rep.Delivered = append(rep.Delivered, n)
			continue
		}
		n.To = owed
		n.Attempts++
		if failed[i] != nil {
			n.LastError = failed[i].Error()
		}
		remaining = append(remaining, n)
	}
	rep.Err = errors.Join(errs...)
	return remaining, rep
}

// Printer is the Sender of nomail mode: it prints each mail instead of
// sending it, and printing counts as delivery.
type Printer struct {
	mu sync.Mutex // guards W
	W  io.Writer
}

// Send prints m.
func (p *Printer) Send(_ context.Context, m Mail) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprintf(p.W, "--- mail not sent (nomail) ---\nTo: %s\nSubject: %s\n\n%s\n", strings.Join(m.To, ", "), m.Subject, strings.TrimRight(m.Body, "\n"))
	return err
}
