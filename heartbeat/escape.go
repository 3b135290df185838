package heartbeat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Escape returns s with every character a terminal could act on written as
// a visible escape: C0 and C1 controls and DEL (\x1b, \n, \u009b), Unicode
// format characters such as bidirectional overrides (\u202e), other
// non-printable characters, and bytes that are not UTF-8 (\xff). Printable
// text, spaces included, is left alone, and a string with nothing to escape
// is returned as it is.
//
// Heartbeats come from services and, through a push endpoint, possibly from
// anyone: an instance id of "\x1b]0;TITLE\a" would otherwise rewrite the
// title of the terminal that prints it. Use Escape on any heartbeat text
// printed for a person; FormatBeat and ShortInstanceID already do.
func Escape(s string) string {
	if !strings.ContainsFunc(s, needsEscape) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether r must not reach a terminal as it is.
func needsEscape(r rune) bool {
	return r != ' ' && !unicode.IsPrint(r)
}

// EscapeJSON rewrites JSON text so that no string in it holds a character
// Escape would escape: encoding/json already writes C0 controls as \u00XX
// and invalid UTF-8 as U+FFFD, but leaves DEL, C1 controls and format
// characters such as U+202E as they are. EscapeJSON writes those as \uXXXX
// too; the JSON means the same. Use it on JSON output printed to a
// terminal.
func EscapeJSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x7f && needsEscape(r) || r == utf8.RuneError && size <= 1 {
			break
		}
		i += size
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			out = append(out, `\ufffd`...)
		case r >= 0x7f && needsEscape(r) && r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		case r >= 0x7f && needsEscape(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
