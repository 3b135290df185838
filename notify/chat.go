package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"checker/state"
)

// maxChatText bounds a channel message's text, below the smallest limit of
// the services (ntfy turns a longer body into an attachment, Telegram
// refuses more than 4096 characters); the mail keeps the whole text.
const maxChatText = 3500

// Fields of a ChatMessage, carried by the JSON webhook as keys beside
// "title" and "message".
const (
	// FieldServer is the servername of the checker.
	FieldServer = "server"
	// FieldStatus is the status the message reports; in a digest the most
	// severe, as HeaderState.
	FieldStatus = "status"
	// FieldJobs are the jobs of the notices, as HeaderJob.
	FieldJobs = "jobs"
	// FieldNotices is how many notices the message carries.
	FieldNotices = "notices"
	// FieldKind is the notices' kind (failure, recovery, system, test)
	// when they share one, else "digest".
	FieldKind = "kind"
)

// ComposeChat builds the channel message for channel to from the notices
// owed to it: the notice itself when there is one, a digest when a run owes
// it several. It says what the mail says (the same subject after
// "[servername] ", the same body and held-back note) without mail's
// threading and subject token, cut to fit a chat message: a digest keeps
// every notice's subject and cuts bodies first.
func (c Composer) ComposeChat(to string, items []state.Notice) ChatMessage {
	at := c.now()
	var title string
	if len(items) == 1 {
		title = items[0].Subject
	} else {
		title = digestTitle(items)
	}
	title = "[" + c.ServerName + "] " + truncateRunes(oneLine(title), maxSubject)

	var text string
	if len(items) == 1 {
		var b strings.Builder
		if note := heldNote(items[0], to, at); note != "" {
			b.WriteString(note + "\n\n")
		}
		b.WriteString(strings.TrimRight(items[0].Body, "\n"))
		text = b.String()
	} else {
		text = c.chatDigest(to, items, at, true)
		if len(text) > maxChatText {
			text = c.chatDigest(to, items, at, false)
		}
	}
	if len(text) > maxChatText {
		const more = "\n… (cut; the mail and `checker status` have the whole text)"
		text = truncateRunes(text, maxChatText-len(more)-len("…")) + more
	}
	kind := ""
	for _, n := range items {
		if kind == "" {
			kind = n.Kind
		} else if kind != n.Kind {
			kind = "digest"
		}
	}
	return ChatMessage{
		Title: title,
		Text:  text,
		Fields: map[string]string{
			FieldServer:  c.ServerName,
			FieldStatus:  worstState(items),
			FieldJobs:    jobList(items),
			FieldNotices: strconv.Itoa(len(items)),
			FieldKind:    kind,
		},
	}
}

// chatDigest lists the notices, with their bodies or, when those do not
// fit, only their subjects and held-back notes.
func (c Composer) chatDigest(to string, items []state.Notice, at time.Time, bodies bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d notices from checker on %s.", len(items), c.ServerName)
	if !bodies {
		b.WriteString(" (Details cut to fit; the mail and `checker status` have them.)")
	}
	b.WriteString("\n")
	for i, n := range items {
		if b.Len() > maxChatText {
			// The text is cut to maxChatText anyway: stop listing.
			fmt.Fprintf(&b, "\n… and %d more.", len(items)-i)
			break
		}
		fmt.Fprintf(&b, "\n%d. %s\n", i+1, oneLine(n.Subject))
		if note := heldNote(n, to, at); note != "" {
			b.WriteString(note + "\n")
		}
		if bodies {
			b.WriteString(strings.TrimRight(n.Body, "\n"))
			b.WriteString("\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// now is the Composer's clock.
func (c Composer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
