package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// defaultSMTPTimeout bounds one whole Send when SMTPConfig.Timeout is zero.
const defaultSMTPTimeout = 30 * time.Second

// SMTPConfig says how to reach the outgoing mail server.
type SMTPConfig struct {
	// Host is the SMTP server's name or address; TLS certificates are
	// checked against it.
	Host string
	// Port is the TCP port. 0 means 587 for "starttls", 465 for "tls" and
	// 25 for "none".
	Port int
	// Security is "starttls" (plain connection upgraded with STARTTLS,
	// which the server must offer), "tls" (implicit TLS from the first
	// byte) or "none" (no TLS at all; credentials, if any, travel in clear
	// text, so use it only with a trusted relay). Empty means "tls" when
	// Port is 465 and "starttls" otherwise.
	Security string
	// User and Pass authenticate with AUTH PLAIN, or LOGIN when the server
	// offers no PLAIN. Without a Pass no AUTH is attempted at all: a relay
	// that trusts the network. User is still the default sender and gives
	// Message-IDs their domain.
	User, Pass string
	// From is the envelope sender and the From header. Empty means User.
	From string
	// Helo is the name given in EHLO. Empty means the machine's fully
	// qualified name, found without any DNS query: os.Hostname when it is
	// fully qualified, else the canonical name /etc/hosts gives that host,
	// else an address literal of the connection's local address
	// ("[192.0.2.7]", "[IPv6:2001:db8::7]"). RFC 5321 asks for the FQDN,
	// or an address literal from a client without a meaningful name, and
	// Postfix's reject_non_fqdn_helo_hostname accepts exactly these two.
	Helo string
	// Timeout bounds one whole Send: connecting, TLS, AUTH and the message
	// transfer. 0 means 30s.
	Timeout time.Duration
	// TLSConfig is the base TLS client configuration. nil means the system
	// roots with ServerName set to Host. Certificate verification is always
	// on: InsecureSkipVerify is ignored.
	TLSConfig *tls.Config
	// Now is the clock for the Date header. nil means time.Now.
	Now func() time.Time
}

// Mail is one plain-text message.
type Mail struct {
	// To holds the recipient's address. SMTP sends to exactly one, so that
	// each recipient's delivery succeeds or fails on its own: a server
	// that refuses one of several recipients makes go-mail abandon the
	// whole transaction, and the others would be held back by it. Printer
	// prints any number.
	To []string
	// Subject is the subject line, any UTF-8 text.
	Subject string
	// Body is the text/plain UTF-8 body.
	Body string
	// ID is the left part of the Message-ID: RFC 5322 dot-atom-text
	// (atext runs joined by single dots). The sender completes it as <ID@domain> with the domain
	// of its user's address. Empty means a fresh random one.
	ID string
	// InReplyTo and References are left parts of the Message-IDs of the
	// earlier mails this one answers, completed the same way, so that mail
	// readers thread a recovery with its failure.
	InReplyTo, References []string
	// Header holds extra header fields by name, all "X-" fields (such as
	// X-Checker-Job). Each value is one line; control characters become
	// spaces.
	Header map[string]string
}

// Sender delivers mail. Implementations must honour ctx's deadline and
// cancellation.
type Sender interface {
	Send(ctx context.Context, m Mail) error
}

// SMTP is a Sender that submits each Mail over its own SMTP connection,
// using go-mail. Every mail carries Auto-Submitted: auto-generated and
// X-Auto-Response-Suppress: All, so that vacation and out-of-office
// responders stay silent, and a Message-ID valid under RFC 5322 in the
// domain of the user. It is safe for concurrent use.
type SMTP struct {
	cfg    SMTPConfig // defaults applied
	cfgErr error      // configuration problem reported by every Send

	// hostname and hostsFile are where the machine's name comes from;
	// fields, so that tests can give other answers.
	hostname  func() (string, error)
	hostsFile string

	nameOnce sync.Once
	name     string // the machine's FQDN, "" when none was found; see machineName
}

// defaultIDDomain is the Message-ID domain when neither the user's address
// nor the machine has a fully qualified name.
const defaultIDDomain = "localhost.localdomain"

// NewSMTP returns an SMTP sender for cfg with the defaults filled in. A bad
// configuration is not reported here but by every Send. Nothing is looked
// up here: the machine's name is found on the first Send that needs it.
func NewSMTP(cfg SMTPConfig) *SMTP {
	cfg.Security = strings.ToLower(strings.TrimSpace(cfg.Security))
	if cfg.Security == "" {
		cfg.Security = "starttls"
		if cfg.Port == 465 {
			cfg.Security = "tls"
		}
	}
	if cfg.Port == 0 {
		switch cfg.Security {
		case "tls":
			cfg.Port = 465
		case "none":
			cfg.Port = 25
		default:
			cfg.Port = 587
		}
	}
	if cfg.From == "" {
		cfg.From = cfg.User
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultSMTPTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Helo = strings.TrimSpace(cfg.Helo)
	s := &SMTP{cfg: cfg, hostname: os.Hostname, hostsFile: "/etc/hosts"}
	switch {
	case cfg.Host == "":
		s.cfgErr = errors.New("smtp: no server host configured")
	case cfg.Security != "starttls" && cfg.Security != "tls" && cfg.Security != "none":
		s.cfgErr = fmt.Errorf("smtp %s: security %q: want starttls, tls or none", s.addr(), cfg.Security)
	case cfg.Port < 1 || cfg.Port > 65535:
		s.cfgErr = fmt.Errorf("smtp %s: port %d out of range", cfg.Host, cfg.Port)
	case cfg.From == "":
		s.cfgErr = fmt.Errorf("smtp %s: no sender: set From or User", s.addr())
	case cfg.Helo != "" && !ValidHelo(cfg.Helo):
		s.cfgErr = fmt.Errorf("smtp %s: helo %q: want a fully qualified domain name (mail.example.org) or an address literal ([192.0.2.7], [IPv6:2001:db8::7])", s.addr(), cfg.Helo)
	}
	return s
}

func (s *SMTP) addr() string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// Send submits m, which must have exactly one recipient. Errors name the
// server and the phase that failed (dial, TLS, auth, send) and never contain
// the password; IsPermanent tells the server's permanent refusal of the
// recipient from a failure worth retrying on the next run. Send gives up
// when ctx ends or SMTPConfig.Timeout passes, whichever is first.
func (s *SMTP) Send(ctx context.Context, m Mail) error {
	if s.cfgErr != nil {
		return s.cfgErr
	}
	addr := s.addr()
	msg, err := s.message(m)
	if err != nil {
		return fmt.Errorf("smtp send to %s: %w", addr, err)
	}

	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout,
		fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, context.DeadlineExceeded))
	defer cancel()

	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return s.fail(ctx, "dial "+addr, "", err)
	}
	defer conn.Close()
	// Whatever go-mail is blocked on, closing the socket ends it, so a
	// cancelled ctx returns promptly.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The socket deadline is only a backstop behind the AfterFunc above, a
	// little later so that errors name the context's cause.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline.Add(time.Second))
	helo := s.heloName(conn.LocalAddr())

	tlsConf := secureTLSConfig(s.cfg.TLSConfig, s.cfg.Host)
	if s.cfg.Security == "tls" {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return s.fail(ctx, "TLS with "+addr, "", err)
		}
		conn = tc
	}
	c, err := gosmtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return s.fail(ctx, "dial "+addr, "greeting", err)
	}
	if err := c.Hello(helo); err != nil {
		return s.fail(ctx, "dial "+addr, "EHLO "+helo, err)
	}
	if s.cfg.Security == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp TLS with %s: server does not offer STARTTLS, which security starttls requires", addr)
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return s.fail(ctx, "TLS with "+addr, "STARTTLS", err)
		}
	}
	// No password, no AUTH: the relay trusts this host's address. Trying
	// AUTH anyway would fail on a relay that offers none.
	if s.cfg.User != "" && s.cfg.Pass != "" {
		if err := s.auth(c); err != nil {
			return s.fail(ctx, fmt.Sprintf("auth to %s as %s", addr, s.cfg.User), "", err)
		}
	}

	// go-mail's Client is only the message pump here: connection, TLS and
	// AUTH were done above so that each phase gets its own error. Its
	// per-command socket deadline is again a backstop behind ctx.
	left := max(time.Until(deadline), 0) + time.Second
	mc, err := mail.NewClient(s.cfg.Host, mail.WithTimeout(left), mail.WithoutNoop())
	if err != nil {
		return fmt.Errorf("smtp send to %s: %w", addr, err)
	}
	if err := mc.SendWithSMTPClient(c, msg); err != nil {
		return s.fail(ctx, "send to "+addr, "", err)
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	return nil
}

// IsPermanent reports whether err, from SMTP.Send, is the server's
// permanent refusal of the mail for its recipient: a 5xx reply to RCPT TO
// (unknown mailbox, relay denied, and also Postfix's delayed HELO and sender
// restrictions, which it reports there) or to the message itself. Sending
// the same mail again will fail the same way until the settings change.
//
// Everything else is worth retrying on the next run: 4xx replies, network
// failures, timeouts, and failures that are no verdict on the recipient
// (connecting, TLS, AUTH, a refused sender). go-mail's own
// SendError.IsTemp is no substitute: it calls a dropped connection
// permanent.
func IsPermanent(err error) bool {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrSMTPRcptTo, mail.ErrSMTPData, mail.ErrSMTPDataClose:
		code := se.ErrorCode()
		return code >= 500 && code <= 599
	}
	return false
}

// message builds the go-mail message for m.
func (s *SMTP) message(m Mail) (*mail.Msg, error) {
	switch len(m.To) {
	case 0:
		return nil, errors.New("no recipients")
	case 1:
	default:
		return nil, fmt.Errorf("%d recipients %q: a mail goes to exactly one recipient, so that each delivery succeeds or fails on its own", len(m.To), m.To)
	}
	domain := s.idDomain()
	id := m.ID
	if id == "" {
		id = randomIDLeft()
	}
	if !validIDLeft(id) {
		return nil, fmt.Errorf("message ID %q: not dot-atom-text", id)
	}
	msg := mail.NewMsg(mail.WithCharset(mail.CharsetUTF8))
	if err := msg.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("sender %q: %w", s.cfg.From, err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("recipient %q: %w", m.To[0], err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(s.cfg.Now())
	msg.SetMessageIDWithValue(id + "@" + domain)
	for name, ids := range map[mail.Header][]string{mail.HeaderInReplyTo: m.InReplyTo, mail.HeaderReferences: m.References} {
		if len(ids) == 0 {
			continue
		}
		full := make([]string, len(ids))
		for i, left := range ids {
			if !validIDLeft(left) {
				return nil, fmt.Errorf("%s %q: not dot-atom-text", name, left)
			}
			full[i] = "<" + left + "@" + domain + ">"
		}
		// One value: go-mail joins several with commas, and msg-ids are
		// separated by white space only.
		msg.SetGenHeader(name, strings.Join(full, " "))
	}
	for name, value := range m.Header {
		if !validXHeaderName(name) {
			return nil, fmt.Errorf("header %q: only X- fields of letters, digits and dashes", name)
		}
		msg.SetGenHeader(mail.Header(name), oneLine(value))
	}
	// After the extra fields, so that none can undo these: RFC 3834's
	// field for vacation responders, and Exchange's own.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	msg.SetUserAgent("checker")
	msg.SetBodyString(mail.TypeTextPlain, m.Body)
	return msg, nil
}

// auth logs in with PLAIN, or LOGIN when the server offers no PLAIN. Both
// need TLS unless the operator chose security "none".
func (s *SMTP) auth(c *gosmtp.Client) error {
	ok, offered := c.Extension("AUTH")
	if !ok {
		return errors.New("server offers no AUTH")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	clearText := s.cfg.Security == "none"
	var a gosmtp.Auth
	switch {
	case slices.Contains(mechs, "PLAIN"):
		a = gosmtp.PlainAuth("", s.cfg.User, s.cfg.Pass, s.cfg.Host, clearText)
	case slices.Contains(mechs, "LOGIN"):
		a = gosmtp.LoginAuth(s.cfg.User, s.cfg.Pass, s.cfg.Host, clearText)
	default:
		return fmt.Errorf("server offers AUTH %s, and only PLAIN and LOGIN are supported", offered)
	}
	return c.Auth(a)
}

// fail words a failed phase as "smtp <what>: [<step>: ]<err>" and scrubs
// the password. When the deadline or a cancellation ended the send, that
// cause replaces err, which is then only the echo of the closed socket.
func (s *SMTP) fail(ctx context.Context, what, step string, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		err = cause
	}
	if step != "" {
		err = fmt.Errorf("%s: %w", step, err)
	}
	return scrubError(fmt.Errorf("smtp %s: %w", what, err), s.secrets()...)
}

// secrets are the forms of the password a server could echo: as is, and
// inside the base64 AUTH PLAIN payload.
func (s *SMTP) secrets() []string {
	if s.cfg.Pass == "" {
		return nil
	}
	plain := "\x00" + s.cfg.User + "\x00" + s.cfg.Pass
	return []string{s.cfg.Pass, base64.StdEncoding.EncodeToString([]byte(plain))}
}

// heloName is the name for EHLO on a connection from local: the configured
// one, else the machine's FQDN, else an address literal of local.
func (s *SMTP) heloName(local net.Addr) string {
	if s.cfg.Helo != "" {
		return s.cfg.Helo
	}
	if name := s.machineName(); name != "" {
		return name
	}
	return addressLiteral(local)
}

// idDomain is the right part of Message-IDs: the domain of the user's
// address (or the sender's), else the machine's FQDN, else
// defaultIDDomain. A domain literal (user@[192.0.2.7]) counts as none.
func (s *SMTP) idDomain() string {
	for _, addr := range []string{s.cfg.User, s.cfg.From} {
		if d := addressDomain(addr); d != "" {
			return d
		}
	}
	if s.cfg.Helo != "" && !strings.HasPrefix(s.cfg.Helo, "[") {
		return s.cfg.Helo
	}
	if name := s.machineName(); name != "" {
		return name
	}
	return defaultIDDomain
}

// machineName finds the machine's fully qualified name once, without DNS:
// os.Hostname if it is one, else the name /etc/hosts gives that host. ""
// means neither knows one.
func (s *SMTP) machineName() string {
	s.nameOnce.Do(func() {
		host, err := s.hostname()
		if err != nil {
			return
		}
		host = strings.TrimSuffix(strings.TrimSpace(host), ".")
		if validFQDN(host) {
			s.name = host
			return
		}
		if host != "" && !strings.ContainsAny(host, ".#[] \t") {
			s.name = hostsCanonical(s.hostsFile, host)
		}
	})
	return s.name
}

// maxHostsLines bounds the reading of a hosts file: blocklists of a million
// lines exist, and the name is found near the top if at all.
const maxHostsLines = 100_000

// hostsCanonical returns the fully qualified name that the hosts file at
// path gives host, the way the resolver's canonical name would: the first
// name of a line that lists host, if fully qualified, else a name of that
// line that extends host ("vm.example.org" for "vm"). It returns "" when
// none does or the file cannot be read; localhost names do not count.
func hostsCanonical(path, host string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	prefix := strings.ToLower(host) + "."
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < maxHostsLines; n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || net.ParseIP(fields[0]) == nil {
			continue
		}
		names := fields[1:]
		mentions := false
		for _, name := range names {
			lower := strings.ToLower(name)
			if lower == strings.ToLower(host) || strings.HasPrefix(lower, prefix) {
				mentions = true
				break
			}
		}
		if !mentions {
			continue
		}
		if canon := strings.TrimSuffix(names[0], "."); validFQDN(canon) && !isLocalhost(canon) {
			return canon
		}
		for _, name := range names[1:] {
			name = strings.TrimSuffix(name, ".")
			if strings.HasPrefix(strings.ToLower(name), prefix) && validFQDN(name) && !isLocalhost(name) {
				return name
			}
		}
	}
	return ""
}

func isLocalhost(name string) bool {
	lower := strings.ToLower(name)
	return lower == "localhost" || strings.HasPrefix(lower, "localhost.") || strings.HasPrefix(lower, "ip6-")
}

// addressLiteral is the RFC 5321 address literal of addr's IP:
// "[192.0.2.7]" or "[IPv6:2001:db8::7]".
func addressLiteral(addr net.Addr) string {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		if addr != nil {
			host, _, _ := net.SplitHostPort(addr.String())
			ip = net.ParseIP(host)
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	if ip != nil {
		return "[IPv6:" + ip.String() + "]"
	}
	return "[127.0.0.1]"
}

// validFQDN reports whether name is a fully qualified domain name as
// RFC 5321's Domain has it: two or more labels of letters, digits and
// inner hyphens, at most 63 bytes each and 253 in all, and a top label
// that is not all digits (that would be an IPv4 address written bare).
func validFQDN(name string) bool {
	if len(name) > 253 {
		return false
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	top := labels[len(labels)-1]
	return strings.Trim(top, "0123456789") != ""
}

// ValidHelo reports whether name can be given in EHLO: a fully qualified
// domain name, or an address literal ([192.0.2.7], [IPv6:2001:db8::7]).
func ValidHelo(name string) bool {
	if inner, ok := strings.CutPrefix(name, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok {
			return false
		}
		if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
			ip := net.ParseIP(v6)
			return ip != nil && strings.Contains(v6, ":")
		}
		ip := net.ParseIP(inner)
		return ip != nil && ip.To4() != nil && !strings.Contains(inner, ":")
	}
	return validFQDN(name)
}

// addressDomain returns the domain of an e-mail address if it can be the
// right part of a Message-ID (dot-atom-text), else "".
func addressDomain(addr string) string {
	if addr == "" {
		return ""
	}
	if a, err := netmail.ParseAddress(addr); err == nil {
		addr = a.Address
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	domain := addr[at+1:]
	if !validIDLeft(domain) { // id-right's dot-atom-text is the same grammar
		return ""
	}
	return domain
}

// validIDLeft reports whether s is RFC 5322 dot-atom-text: runs of atext
// joined by single dots, with no dot at either end.
func validIDLeft(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports whether c is RFC 5322 atext.
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// randomIDLeft returns a fresh Message-ID left part: "checker.m." and 128
// random bits in hex, which no grammar can object to (go-mail's own IDs
// draw from an alphabet with '.', and one in thirty came out invalid).
func randomIDLeft() string {
	return "checker.m." + randomToken(16)
}

// validXHeaderName reports whether name is an X- header field name made of
// letters, digits and dashes.
func validXHeaderName(name string) bool {
	if len(name) < 3 || !strings.EqualFold(name[:2], "X-") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// oneLine turns every control character of s into a space, so that a
// header value cannot end its field early.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// secureTLSConfig returns a copy of base (or a new config) for a client
// talking to host, with verification forced on.
func secureTLSConfig(base *tls.Config, host string) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	c.InsecureSkipVerify = false
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// scrubText replaces every form of each secret a server might echo back
// (plain, IMAP-quoted, base64) with "***".
func scrubText(text string, secrets ...string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(secret)
		for _, form := range []string{secret, quoted, base64.StdEncoding.EncodeToString([]byte(secret))} {
			text = strings.ReplaceAll(text, form, "***")
		}
	}
	return text
}

// scrubError returns err, or when its message holds a secret, an error with
// the scrubbed message that still unwraps to err for errors.Is and As.
func scrubError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := scrubText(msg, secrets...)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
