package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// Received is one message the SMTP server accepted.
type Received struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO), in the order given.
	To []string
	// Helo is the name the client gave in its (last) EHLO or HELO.
	Helo string
	// AuthUser is the user the client authenticated as; "" when it sent
	// without AUTH.
	AuthUser string
	// Subject is the decoded Subject header (RFC 2047 words decoded).
	Subject string
	// Body is the decoded text: the transfer encoding undone, and for a
	// multipart message the first text/plain part.
	Body string
	// Header holds the parsed message header; nil if the message did not
	// parse.
	Header mail.Header
	// Raw is the message exactly as received in DATA (CRLF line ends).
	Raw []byte
}

// parseReceived fills the decoded fields of a Received from raw. A message
// that does not parse keeps its Raw bytes and gets the raw text as Body, so
// a test still sees what arrived.
func parseReceived(from string, to []string, raw []byte) Received {
	r := Received{From: from, To: append([]string(nil), to...), Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		r.Body = string(raw)
		return r
	}
	r.Header = msg.Header
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		r.Subject = s
	} else {
		r.Subject = msg.Header.Get("Subject")
	}
	body, err := decodeText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	if err != nil {
		r.Body = string(raw)
		return r
	}
	r.Body = body
	return r
}

// decodeText returns the text of an entity with the given Content-Type and
// Content-Transfer-Encoding; for multipart entities, the first text/plain
// part found depth-first.
func decodeText(contentType, transferEncoding string, body io.Reader) (string, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		// No or unparsable Content-Type: RFC 2045 says text/plain.
		mediaType, params = "text/plain", nil
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if err != nil {
				return "", err
			}
			text, err := decodeText(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part)
			if err == nil {
				return text, nil
			}
		}
	}
	if mediaType != "text/plain" {
		return "", fmt.Errorf("%s is not text/plain", mediaType)
	}
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(transferEncoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
	default:
		r = body
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
