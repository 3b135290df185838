package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Verdict is what a peer server says about itself. The string values are the
// exact plain-text bodies of GET /, wire-compatible with the earlier Python
// tool, and the "status" field of the JSON document.
type Verdict string

// The three verdicts a peer server can give.
const (
	// OK means mail is healthy and cron runs are completing.
	OK Verdict = "True"
	// MailProblem means the last mail self-check or notification send failed.
	MailProblem Verdict = "MailProblem"
	// JobProblem means no cron run completed recently, or the last one crashed.
	JobProblem Verdict = "JobProblem"
)

// DefaultStaleAfter is how old the last completed cron run may be before the
// server reports JobProblem, when no other value is configured.
const DefaultStaleAfter = 120 * time.Second

// MailStage names the part of the mail path that failed.
type MailStage string

// The stages of the mail path a failure is reported for.
const (
	MailSelfCheck MailStage = "self-check" // the hourly send-and-fetch probe
	MailSend      MailStage = "send"       // delivering a notification
)

// Health is what the server knows about itself. The caller fills it from the
// state; the peer package never reads that itself.
type Health struct {
	// MailChecked is true once a self-check or a notification send has
	// happened. Before that, mail counts as healthy.
	MailChecked bool
	// MailOK is true when the last self-check and the last notification send
	// both succeeded.
	MailOK bool
	// MailFailed and MailFailedAt say which stage failed, and when, when
	// MailOK is false. Everyone may see them.
	MailFailed   MailStage
	MailFailedAt time.Time
	// MailCheckedAt is when mail was last exercised, by a self-check or a
	// send. A time in the future (the clock was stepped back) vouches for
	// nothing, so mail then counts as a problem.
	MailCheckedAt time.Time
	// MailError says why mail is unhealthy. It may name the SMTP server,
	// the account and the server's reply, so it is shown only to privileged
	// requests.
	MailError string
	// LastRunEnd is the end of the last completed cron run; zero means never.
	LastRunEnd time.Time
	// LastRunError is non-empty when the last cron run crashed. It may name
	// jobs, so it is shown only to privileged requests.
	LastRunError string
	// NoMail is true in nomail mode, where mail counts as healthy.
	NoMail bool
}

// Judge returns the verdict for h at now. Mail is checked first; then the
// last cron run, which must not have crashed and must have ended no more than
// staleAfter before now. A staleAfter of zero or less means
// DefaultStaleAfter. A last run or a mail check dated in the future counts
// as stale, never as fresh: the clock was stepped back, and such a record
// proves nothing about the present.
func Judge(h Health, now time.Time, staleAfter time.Duration) Verdict {
	return assess(h, now, staleAfter).Verdict
}

// clockSlack is how far in the future a record may lie and still count as
// written now. Saves and reads on one machine use the same clock, so only a
// step of the clock moves a record ahead; one second absorbs the small steps
// time daemons make, and a real step back is far larger.
const clockSlack = time.Second

// maxDetail bounds the detail shown to privileged requests.
const maxDetail = 500

// Assessment is a verdict with its reasons.
type Assessment struct {
	Verdict Verdict
	// Reason says why the verdict is not OK as a class with a time ("the
	// last notification send failed at T"): fit for anyone to read.
	Reason string
	// Detail is the underlying error text (SMTP reply, crash message), for
	// privileged readers only; "" when there is none.
	Detail string
}

// assess is Judge with the reasons.
func assess(h Health, now time.Time, staleAfter time.Duration) Assessment {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	future := now.Add(clockSlack)
	if !h.NoMail && h.MailChecked {
		if !h.MailOK {
			reason := "the last mail self-check or notification send failed"
			switch h.MailFailed {
			case MailSelfCheck:
				reason = "the last mail self-check failed"
			case MailSend:
				reason = "the last notification send failed"
			}
			if !h.MailFailedAt.IsZero() {
				reason += " at " + stamp(h.MailFailedAt)
			}
			return Assessment{MailProblem, reason, oneLine(h.MailError, maxDetail)}
		}
		if h.MailCheckedAt.After(future) {
			return Assessment{Verdict: MailProblem, Reason: "mail was last checked at " + stamp(h.MailCheckedAt) +
				", which is in the future: the clock was stepped back, so that check proves nothing"}
		}
	}
	if h.LastRunError != "" {
		return Assessment{JobProblem, "the last cron run crashed", oneLine(h.LastRunError, maxDetail)}
	}
	if h.LastRunEnd.IsZero() {
		return Assessment{Verdict: JobProblem, Reason: "no cron run has completed yet"}
	}
	if h.LastRunEnd.After(future) {
		return Assessment{Verdict: JobProblem, Reason: "the last cron run is dated " + stamp(h.LastRunEnd) +
			", which is in the future: the clock was stepped back, so it counts as stale"}
	}
	if age := now.Sub(h.LastRunEnd); age > staleAfter {
		return Assessment{Verdict: JobProblem, Reason: fmt.Sprintf("the last cron run completed at %s, %s ago, more than %s",
			stamp(h.LastRunEnd), age.Round(time.Second), staleAfter)}
	}
	return Assessment{Verdict: OK}
}

// stamp formats a time for a reason: UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// StatusDoc is the JSON form of the verdict, served at GET /status. It
// deliberately carries no job details.
type StatusDoc struct {
	Status  Verdict    `json:"status"`
	Server  string     `json:"server"`
	LastRun *time.Time `json:"last_run"`
	Version string     `json:"version"`
	Reason  string     `json:"reason,omitempty"`
	// Detail is only sent to requests that carry the server's token.
	Detail string `json:"detail,omitempty"`
}

// snippetLen is how much of a bad reply an error quotes.
const snippetLen = 100

// ParseReply interprets a peer's answer. A JSON reply (content type
// application/json, or a body starting with '{') gives its "status" field,
// which must be one of the three verdicts. A plain body that is exactly
// MailProblem or JobProblem (surrounding space ignored) gives that verdict;
// otherwise a plain body containing "True" is OK, as the Python tool had it.
// Anything else is an error that quotes the start of the body.
func ParseReply(contentType string, body []byte) (Verdict, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "", errors.New("empty reply")
	}
	if isJSON(contentType) || trimmed[0] == '{' {
		var doc struct {
			Status *string `json:"status"`
		}
		if err := json.Unmarshal(trimmed, &doc); err != nil {
			return "", fmt.Errorf("reply is not valid JSON (%v): %s", err, snippet(body))
		}
		if doc.Status == nil {
			return "", fmt.Errorf("JSON reply has no \"status\" field: %s", snippet(body))
		}
		switch v := Verdict(*doc.Status); v {
		case OK, MailProblem, JobProblem:
			return v, nil
		default:
			return "", fmt.Errorf("JSON reply has unknown status %s", snippet([]byte(*doc.Status)))
		}
	}
	switch v := Verdict(trimmed); v {
	case MailProblem, JobProblem:
		return v, nil
	}
	if bytes.Contains(body, []byte(OK)) {
		return OK, nil
	}
	return "", fmt.Errorf("unrecognised reply: %s", snippet(body))
}

// isJSON reports whether a Content-Type header names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// snippet quotes the start of b for an error message, saying how long b was
// when it had to be cut.
func snippet(b []byte) string {
	if len(b) <= snippetLen {
		return strconv.Quote(string(b))
	}
	cut := snippetLen
	for cut > snippetLen-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(string(b[:cut])), len(b))
}

// oneLine flattens s to a single line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
