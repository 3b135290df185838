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

// maxParallelSends bounds the SMTP connections one delivery opens at once.
const maxParallelSends = 4

// Report says what a delivery did, per recipient (lower-cased).
type Report struct {
	// Delivered are the recipients whose mail went out.
	Delivered map[string]bool
	// Failed are the recipients whose mail did not, with the reason.
	Failed map[string]error
	// Mails is how many mails were sent successfully.
	Mails int
	// Attempted is true when there was anything to send.
	Attempted bool
}

// Err joins the failures, one line per recipient; nil when all went out.
func (r Report) Err() error {
	if len(r.Failed) == 0 {
		return nil
	}
	keys := make([]string, 0, len(r.Failed))
	for k := range r.Failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = fmt.Errorf("mail to %s: %w", k, r.Failed[k])
	}
	return errors.Join(errs...)
}

// Deliver sends what the notices owe: one mail per recipient, holding every
// notice owed to that recipient (a digest). Each notice's To lists the
// recipients to try now. Sends run in parallel, so a hung server costs one
// send timeout, not one per recipient.
func Deliver(ctx context.Context, s Sender, c Composer, batch []state.Notice) Report {
	rep := Report{Delivered: map[string]bool{}, Failed: map[string]error{}}
	byRcpt := map[string][]state.Notice{}
	var rcpts []string
	for _, n := range batch {
		for _, d := range n.To {
			if d.Done {
				continue
			}
			key := strings.ToLower(d.To)
			if _, ok := byRcpt[key]; !ok {
				rcpts = append(rcpts, key)
			}
			byRcpt[key] = append(byRcpt[key], n)
		}
	}
	if len(rcpts) == 0 {
		return rep
	}
	sort.Strings(rcpts)
	rep.Attempted = true

	errs := make([]error, len(rcpts))
	sem := make(chan struct{}, maxParallelSends)
	var wg sync.WaitGroup
	for k, rcpt := range rcpts {
		m := c.Compose(rcpt, byRcpt[rcpt])
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[k] = s.Send(ctx, m)
		}()
	}
	wg.Wait()
	for k, rcpt := range rcpts {
		if errs[k] != nil {
			rep.Failed[rcpt] = errs[k]
			continue
		}
		rep.Delivered[rcpt] = true
		rep.Mails++
	}
	return rep
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
