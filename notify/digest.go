package notify

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"checker/state"
)

// Header fields that mail filters can sort alerts by.
const (
	// HeaderServer carries the servername of the checker that sent the
	// mail.
	HeaderServer = "X-Checker-Server"
	// HeaderJob carries the job's name; in a digest, the names of all its
	// notices' jobs in the digest's order, each once, joined by ", ".
	HeaderJob = "X-Checker-Job"
	// HeaderState carries the status the notice reports: OK, WARNING,
	// CRITICAL or UNKNOWN; in a digest, the most severe of its notices
	// (CRITICAL, then UNKNOWN, WARNING, OK).
	HeaderState = "X-Checker-State"
)

// Composer turns the notices owed to one recipient into one mail.
type Composer struct {
	// ServerName prefixes every subject as "[servername] ", fills the
	// X-Checker-Server header and keeps two checkers' thread IDs apart.
	ServerName string
	// BustThreading appends a random token to the subject so that Gmail
	// does not fold separate alerts into one thread.
	BustThreading bool
	// Now is the clock that tells a notice held back by an outage from a
	// fresh one. nil means time.Now.
	Now func() time.Time
}

// maxSubject keeps digest subjects readable.
const maxSubject = 160

// maxJobHeader bounds the X-Checker-Job field of a huge digest, far below
// the header limits of mail servers (Postfix: 100 KiB for all fields).
const maxJobHeader = 4000

// A digest of a flood stays a mail that servers accept and people read:
// the first maxDetailed notices with their bodies, the next ones up to
// maxListed by subject only, and a count of the rest (checker status and
// history have them all). Postfix refuses mail over 10 MB by default.
const (
	maxDetailed = 100
	maxListed   = 1000
)

// maxThreads bounds the message IDs a digest's References and In-Reply-To
// name (mail servers limit header sizes; clients thread by the first few).
const maxThreads = 50

// heldAfter is how late a notice must go out, without a failed attempt, to
// be called held back: longer than the next minute run, which carries the
// notices a run queues while delivering (a destination that fails).
const heldAfter = 2 * time.Minute

// timeLayout is how times appear in mail bodies.
const timeLayout = "2006-01-02 15:04:05 MST"

// Compose builds the mail for recipient to: the notice itself when there is
// one, a digest when a run owes it several.
//
// What Compose expects of each notice: Job, Kind, Subject and Body; Status
// (OK, WARNING, CRITICAL, UNKNOWN; when empty, a recovery counts as OK, a
// failure as CRITICAL and anything else as UNKNOWN); Thread, the same
// string for an outage's failure, reminders and recovery and never reused
// for another outage of that job; First, set on the outage's first failure
// notice only; Queued (else Created), and the Attempts and LastError of
// the recipient's Delivery, which make a notice that goes out late say so
// in its body.
//
// Threading: the mail carrying a First notice has the Message-ID
// ThreadRoot(Thread, to). Any other notice of the thread (reminder,
// recovery) answers it: In-Reply-To and References name that root. A digest
// takes the root of its first First notice as its Message-ID, answers the
// threads it continues, and lists the roots of all threads it carries other
// than its own in References, so each of them threads with it. Notices
// without a Thread get a random Message-ID and no references.
func (c Composer) Compose(to string, items []state.Notice) Mail {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	at := now()
	m := Mail{To: []string{to}}
	var subject string
	var body strings.Builder
	if len(items) == 1 {
		subject = items[0].Subject
		if note := heldNote(items[0], to, at); note != "" {
			body.WriteString(note + "\n\n")
		}
		body.WriteString(items[0].Body)
	} else {
		subject = digestTitle(items)
		fmt.Fprintf(&body, "%d notices from checker on %s.\n", len(items), c.ServerName)
		if len(items) > maxDetailed {
			fmt.Fprintf(&body, "The first %d are in full; `checker status --failing` and `checker history` on %s have them all.\n",
				maxDetailed, c.ServerName)
		}
		for i, n := range items {
			if i == maxDetailed {
				fmt.Fprintf(&body, "\nAnd %d more:\n", len(items)-maxDetailed)
			}
			if i >= maxDetailed+maxListed {
				fmt.Fprintf(&body, "… and %d more not listed.\n", len(items)-i)
				break
			}
			if i >= maxDetailed {
				fmt.Fprintf(&body, "%d. %s\n", i+1, oneLine(n.Subject))
				continue
			}
			fmt.Fprintf(&body, "\n%d. %s\n%s\n", i+1, n.Subject, strings.Repeat("-", min(len(n.Subject)+3, 72)))
			if note := heldNote(n, to, at); note != "" {
				body.WriteString(note + "\n\n")
			}
			body.WriteString(strings.TrimRight(n.Body, "\n"))
			body.WriteString("\n")
		}
	}
	if len(subject) > maxSubject {
		cut := maxSubject - 1
		for cut > 0 && !utf8.RuneStart(subject[cut]) {
			cut--
		}
		subject = subject[:cut] + "…"
	}
	subject = "[" + c.ServerName + "] " + subject
	if c.BustThreading {
		subject += " [" + randomToken(4) + "]"
	}
	m.Subject = subject
	m.Body = body.String()
	c.thread(&m, to, items)
	m.Header = map[string]string{
		HeaderServer: c.ServerName,
		HeaderJob:    jobList(items),
		HeaderState:  worstState(items),
	}
	return m
}

// ThreadRoot returns the Message-ID left part of the mail that starts
// thread for recipient to: the same for every run and every process, so
// that later mails can answer it without remembering it. The servername
// takes part so that two checkers writing to one admin never share IDs.
func (c Composer) ThreadRoot(thread, to string) string {
	h := sha256.Sum256([]byte(c.ServerName + "\x00" + thread + "\x00" + strings.ToLower(strings.TrimSpace(to))))
	return "checker.t." + hex.EncodeToString(h[:16])
}

// thread sets m's Message-ID and references for the notices it carries.
func (c Composer) thread(m *Mail, to string, items []state.Notice) {
	var carried, answers []string
	seen, answered := map[string]bool{}, map[string]bool{}
	for _, n := range items {
		if n.Thread == "" {
			continue
		}
		if m.ID != "" && len(carried) > maxThreads && len(answers) >= maxThreads {
			break
		}
		root := c.ThreadRoot(n.Thread, to)
		if n.First && m.ID == "" {
			m.ID = root
		}
		if !seen[root] && len(carried) <= maxThreads {
			seen[root] = true
			carried = append(carried, root)
		}
		if !n.First && !answered[root] && len(answers) < maxThreads {
			answered[root] = true
			answers = append(answers, root)
		}
	}
	isOwn := func(id string) bool { return id == m.ID }
	m.References = slices.DeleteFunc(carried, isOwn)
	if len(m.References) > maxThreads {
		m.References = m.References[:maxThreads]
	}
	m.InReplyTo = slices.DeleteFunc(answers, isOwn)
}

// digestTitle is a digest's subject before the server prefix: the count
// and as many subjects as a subject line can show.
func digestTitle(items []state.Notice) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d notices: ", len(items))
	for i, n := range items {
		if b.Len() > maxSubject {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(n.Subject)
	}
	return b.String()
}

// heldNote is the line that says a notice went out late, or "" if it did
// not: it failed to go out before, or was queued a while ago.
func heldNote(n state.Notice, to string, now time.Time) string {
	var d state.Delivery
	for _, x := range n.To {
		if strings.EqualFold(x.To, to) {
			d = x
			break
		}
	}
	queued := n.Queued
	if queued.IsZero() {
		queued = n.Created
	}
	if queued.IsZero() {
		return ""
	}
	late := max(now.Sub(queued), 0)
	// Without a failed attempt to this recipient, only a notice that
	// itself waited was held back. A reminder that replaced an older
	// notice (which this recipient got, while another refused it) is
	// fresh for this one, though it keeps the older one's queue time
	// for the others.
	if d.Attempts == 0 && (late < heldAfter || !n.Created.IsZero() && now.Sub(n.Created) < heldAfter) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Held back: this notice was first queued at %s, %s ago, and could not be sent until now",
		queued.Format(timeLayout), late.Round(time.Second))
	if d.Attempts > 0 {
		fmt.Fprintf(&b, " (%d failed attempt%s", d.Attempts, plural(d.Attempts))
		if d.LastError != "" {
			b.WriteString("; last error: " + truncateRunes(oneLine(d.LastError), 300))
		}
		b.WriteString(")")
	}
	b.WriteString(".")
	return b.String()
}

// jobList is the X-Checker-Job value: each job once, in order, cut short
// with a count when a huge digest would make it too long.
func jobList(items []state.Notice) string {
	var jobs []string
	seen := map[string]bool{}
	size, rest := 0, 0
	for _, n := range items {
		if seen[n.Job] {
			continue
		}
		seen[n.Job] = true
		if rest > 0 || size+len(n.Job) > maxJobHeader {
			rest++
			continue
		}
		jobs = append(jobs, n.Job)
		size += len(n.Job) + 2
	}
	if rest > 0 {
		return strings.Join(jobs, ", ") + fmt.Sprintf(", and %d more", rest)
	}
	return strings.Join(jobs, ", ")
}

// Severity orders the status words as Icinga sorts them (for a digest's
// X-Checker-State, an escalation's wording): CRITICAL over UNKNOWN over
// WARNING over OK; -1 for anything else.
func Severity(status string) int {
	switch status {
	case "OK":
		return 0
	case "WARNING":
		return 1
	case "UNKNOWN":
		return 2
	case "CRITICAL":
		return 3
	}
	return -1
}

// worstState is the X-Checker-State value of the notices.
func worstState(items []state.Notice) string {
	worst := ""
	for _, n := range items {
		if st := statusOf(n); worst == "" || Severity(st) > Severity(worst) {
			worst = st
		}
	}
	return worst
}

// statusOf is the status word a notice reports.
func statusOf(n state.Notice) string {
	st := strings.ToUpper(strings.TrimSpace(n.Status))
	if Severity(st) >= 0 {
		return st
	}
	switch n.Kind {
	case state.KindRecovery:
		return "OK"
	case state.KindFailure:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// truncateRunes cuts s to at most n bytes on a rune boundary, marking the
// cut with "…".
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// randomToken returns n random bytes in hex.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
