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

// maxParallelSends bounds the SMTP connections and channel requests one
// delivery opens at once.
const maxParallelSends = 4

// Outlets are the ways out: mail, and the channels by lower-cased name. A
// recipient that names a channel gets a channel message, any other a mail.
type Outlets struct {
	// Mail sends to addresses; nil when mail is not configured (a mail
	// recipient then fails with a clear error).
	Mail Sender
	// Channels post to the channels by name.
	Channels map[string]Poster
}

// IsChannel reports whether a recipient names a channel.
func (o Outlets) IsChannel(rcpt string) bool {
	_, ok := o.Channels[strings.ToLower(rcpt)]
	return ok
}

// Report says what a delivery did, per recipient (lower-cased).
type Report struct {
	// Delivered are the recipients whose mail or message went out.
	Delivered map[string]bool
	// Failed are the recipients whose mail or message did not, with the
	// reason (without secrets).
	Failed map[string]error
	// Channels are the recipients tried that are channels.
	Channels map[string]bool
	// Mails is how many mails and channel messages were sent successfully.
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
		if r.Channels[k] {
			errs[i] = fmt.Errorf("channel %s: %w", k, r.Failed[k])
		} else {
			errs[i] = fmt.Errorf("mail to %s: %w", k, r.Failed[k])
		}
	}
	return errors.Join(errs...)
}

// errNoMail fails a mail recipient when mail is not configured.
var errNoMail = errors.New("mail is not configured")

// Deliver sends what the notices owe: one mail or channel message per
// recipient, holding every notice owed to that recipient (a digest). Each
// notice's To lists the recipients to try now. Sends run in parallel, so a
// hung server costs one send timeout, not one per recipient.
func Deliver(ctx context.Context, out Outlets, c Composer, batch []state.Notice) Report {
	rep := Report{Delivered: map[string]bool{}, Failed: map[string]error{}, Channels: map[string]bool{}}
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
		var send func() error
		if p, ok := out.Channels[rcpt]; ok {
			rep.Channels[rcpt] = true
			m := c.ComposeChat(rcpt, byRcpt[rcpt])
			send = func() error { return p.Post(ctx, m) }
		} else if out.Mail == nil {
			errs[k] = errNoMail
			continue
		} else {
			m := c.Compose(rcpt, byRcpt[rcpt])
			send = func() error { return out.Mail.Send(ctx, m) }
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[k] = send()
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
// sending it, and printing counts as delivery. Channel gives the Poster
// that prints a channel's messages the same way.
type Printer struct {
	mu sync.Mutex // guards W
	W  io.Writer
}

// Channel returns a Poster that prints the messages for a channel, named
// as c.String() names it (no secret), instead of sending them.
func (p *Printer) Channel(c *Channel) Poster { return printedChannel{p: p, name: c.String()} }

type printedChannel struct {
	p    *Printer
	name string
}

// Post prints m.
func (pc printedChannel) Post(_ context.Context, m ChatMessage) error {
	pc.p.mu.Lock()
	defer pc.p.mu.Unlock()
	_, err := fmt.Fprintf(pc.p.W, "--- channel message not sent (nomail) ---\nTo: %s\nTitle: %s\n\n%s\n", pc.name, m.Title, strings.TrimRight(m.Text, "\n"))
	return err
}

// Send prints m.
func (p *Printer) Send(_ context.Context, m Mail) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := fmt.Fprintf(p.W, "--- mail not sent (nomail) ---\nTo: %s\nSubject: %s\n\n%s\n", strings.Join(m.To, ", "), m.Subject, strings.TrimRight(m.Body, "\n"))
	return err
}
