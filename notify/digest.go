package notify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"checker/state"
)

// Composer turns the notices owed to one recipient into one mail.
type Composer struct {
	// ServerName prefixes every subject as "[servername] ".
	ServerName string
	// BustThreading appends a random token to the subject so that Gmail
	// does not fold separate alerts into one thread.
	BustThreading bool
}

// maxSubject keeps digest subjects readable.
const maxSubject = 160

// Compose builds the mail for recipient to: the notice itself when there is
// one, a digest when a run owes it several.
func (c Composer) Compose(to string, items []state.Notice) Mail {
	m := Mail{To: []string{to}}
	var subject string
	var body strings.Builder
	if len(items) == 1 {
		subject = items[0].Subject
		body.WriteString(items[0].Body)
	} else {
		subjects := make([]string, len(items))
		for i, n := range items {
			subjects[i] = n.Subject
		}
		subject = fmt.Sprintf("%d notices: %s", len(items), strings.Join(subjects, "; "))
		fmt.Fprintf(&body, "%d notices from checker on %s.\n", len(items), c.ServerName)
		for i, n := range items {
			fmt.Fprintf(&body, "\n%d. %s\n%s\n", i+1, n.Subject, strings.Repeat("-", min(len(n.Subject)+3, 72)))
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
	return m
}

// randomToken returns n random bytes in hex.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
