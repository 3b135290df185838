package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Outcome classifies the result of a peer check. The zero value is not a
// valid outcome, so a Result nobody filled in never reads as Up.
type Outcome int

// The outcomes of a peer check; each but Up has its own mail subject.
const (
	Up             Outcome = iota + 1 // the peer answered True
	NotResponding                     // no complete answer: refused, timed out, TLS failure
	BadStatus                         // an HTTP status other than 200
	CannotMail                        // the peer answered MailProblem
	JobsNotRunning                    // the peer answered JobProblem
	Unexpected                        // a 200 answer that is not a verdict, or too large
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Up:
		return "Up"
	case NotResponding:
		return "NotResponding"
	case BadStatus:
		return "BadStatus"
	case CannotMail:
		return "CannotMail"
	case JobsNotRunning:
		return "JobsNotRunning"
	case Unexpected:
		return "Unexpected"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is what a peer check found.
type Result struct {
	Outcome Outcome
	// Verdict is the peer's answer, when it gave one.
	Verdict Verdict
	// Detail says why the outcome is not Up: the underlying error, the HTTP
	// status, or the quoted start of a garbage body.
	Detail string
}

// Subject returns the mail subject for r about the peer at url, or "" when
// the peer is up.
func (r Result) Subject(url string) string {
	switch r.Outcome {
	case Up:
		return ""
	case NotResponding:
		return url + " is not responding."
	case BadStatus:
		return url + " returned a non-standard status code."
	case CannotMail:
		return url + " reports it cannot send email."
	case JobsNotRunning:
		return url + " reports its jobs are not running."
	}
	return url + " had an unexpected response."
}

// Defaults of Client.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultMaxBody   = 64 << 10
	DefaultUserAgent = "checker"
)

// Client checks peers. The zero value is ready to use.
type Client struct {
	// HTTP sends the requests; nil means a client on http.DefaultTransport.
	// Tests pass one that trusts their certificate. Redirects are never
	// followed whatever its CheckRedirect says: a peer URL must answer
	// itself.
	HTTP *http.Client
	// Timeout bounds the whole check, reading the body included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxBody is the largest body read; a larger one is Unexpected. Zero
	// means DefaultMaxBody.
	MaxBody int64
	// UserAgent is sent with each request, e.g. "checker/1.2.0"; empty
	// means DefaultUserAgent.
	UserAgent string
}

// Check asks the peer at url for its verdict with GET. It never follows
// redirects and never blocks longer than the timeout.
func (c *Client) Check(ctx context.Context, url string) Result {
	var cfg Client
	if c != nil {
		cfg = *c
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	maxBody := cfg.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	hc := http.Client{}
	if cfg.HTTP != nil {
		hc = *cfg.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{Outcome: NotResponding, Detail: fmt.Sprintf("cannot request %q: %v", url, err)}
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept", "text/plain, application/json;q=0.9")

	resp, err := hc.Do(req)
	if err != nil {
		return Result{Outcome: NotResponding, Detail: describe(ctx, timeout, err)}
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		detail := "HTTP " + resp.Status
		if loc := resp.Header.Get("Location"); loc != "" {
			detail += fmt.Sprintf(" (redirect to %s, not followed)", snippet([]byte(loc)))
		}
		return Result{Outcome: BadStatus, Detail: detail}
	}
	if resp.ContentLength > maxBody {
		return Result{Outcome: Unexpected, Detail: fmt.Sprintf(
			"response body too large: %d bytes announced, at most %d read", resp.ContentLength, maxBody)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return Result{Outcome: NotResponding, Detail: "reading the answer: " + describe(ctx, timeout, err)}
	}
	if int64(len(body)) > maxBody {
		return Result{Outcome: Unexpected, Detail: fmt.Sprintf(
			"response body too large: more than %d bytes", maxBody)}
	}
	v, err := ParseReply(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return Result{Outcome: Unexpected, Detail: err.Error()}
	}
	switch v {
	case OK:
		return Result{Outcome: Up, Verdict: v}
	case MailProblem:
		return Result{Outcome: CannotMail, Verdict: v, Detail: "peer answered " + string(v)}
	case JobProblem:
		return Result{Outcome: JobsNotRunning, Verdict: v, Detail: "peer answered " + string(v)}
	}
	return Result{Outcome: Unexpected, Verdict: v, Detail: fmt.Sprintf("unknown verdict %q", v)}
}

// describe explains a transport error, naming the timeout when it struck.
func describe(ctx context.Context, timeout time.Duration, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no complete answer within %s: %v", timeout, err)
	}
	return err.Error()
}
