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

// Health is what the server knows about itself. The caller fills it from the
// state file; the peer package never reads that file itself.
type Health struct {
	// MailChecked is true once a self-check or a notification send has
	// happened. Before that, mail counts as healthy.
	MailChecked bool
	// MailOK is true when the last self-check and the last notification send
	// both succeeded.
	MailOK bool
	// MailError says why mail is unhealthy; it is shown to peers.
	MailError string
	// LastRunEnd is the end of the last completed cron run; zero means never.
	LastRunEnd time.Time
	// LastRunError is non-empty when the last cron run crashed. Its text is
	// not shown to peers: it may name jobs.
	LastRunError string
	// NoMail is true in nomail mode, where mail counts as healthy.
	NoMail bool
}

// Judge returns the verdict for h at now. Mail is checked first; then the
// last cron run, which must not have crashed and must have ended no more than
// staleAfter before now. A staleAfter of zero or less means
// DefaultStaleAfter.
func Judge(h Health, now time.Time, staleAfter time.Duration) Verdict {
	v, _ := assess(h, now, staleAfter)
	return v
}

// maxReason bounds the reason shown to peers.
const maxReason = 200

// assess is Judge with the reason a verdict is not OK, fit for peers to read.
func assess(h Health, now time.Time, staleAfter time.Duration) (Verdict, string) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	if !h.NoMail && h.MailChecked && !h.MailOK {
		reason := "the last mail self-check or notification send failed"
		if msg := oneLine(h.MailError, maxReason); msg != "" {
			reason += ": " + msg
		}
		return MailProblem, reason
	}
	if h.LastRunError != "" {
		return JobProblem, "the last cron run crashed"
	}
	if h.LastRunEnd.IsZero() {
		return JobProblem, "no cron run has completed yet"
	}
	if age := now.Sub(h.LastRunEnd); age > staleAfter {
		return JobProblem, fmt.Sprintf("the last cron run completed %s ago, more than %s",
			age.Round(time.Second), staleAfter)
	}
	return OK, ""
}

// StatusDoc is the JSON form of the verdict, served at GET /status. It
// deliberately carries no job details.
type StatusDoc struct {
	Status  Verdict    `json:"status"`
	Server  string     `json:"server"`
	LastRun *time.Time `json:"last_run"`
	Version string     `json:"version"`
	Reason  string     `json:"reason,omitempty"`
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
