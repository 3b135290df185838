package notify

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// offers no PLAIN. An empty User sends without authenticating.
	User, Pass string
	// From is the envelope sender and the From header. Empty means User.
	From string
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
	// To are the recipients' addresses; at least one is required.
	To []string
	// Subject is the subject line, any UTF-8 text.
	Subject string
	// Body is the text/plain UTF-8 body.
	Body string
}

// Sender delivers mail. Implementations must honour ctx's deadline and
// cancellation.
type Sender interface {
	Send(ctx context.Context, m Mail) error
}

// SMTP is a Sender that submits each Mail over its own SMTP connection,
// using go-mail. It is safe for concurrent use.
type SMTP struct {
	cfg    SMTPConfig // defaults applied
	helo   string     // the name given in EHLO
	cfgErr error      // configuration problem reported by every Send
}

// NewSMTP returns an SMTP sender for cfg with the defaults filled in. A bad
// configuration is not reported here but by every Send.
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
	s := &SMTP{cfg: cfg, helo: "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		s.helo = h
	}
	switch {
	case cfg.Host == "":
		s.cfgErr = errors.New("smtp: no server host configured")
	case cfg.Security != "starttls" && cfg.Security != "tls" && cfg.Security != "none":
		s.cfgErr = fmt.Errorf("smtp %s: security %q: want starttls, tls or none", s.addr(), cfg.Security)
	case cfg.Port < 1 || cfg.Port > 65535:
		s.cfgErr = fmt.Errorf("smtp %s: port %d out of range", cfg.Host, cfg.Port)
	case cfg.From == "":
		s.cfgErr = fmt.Errorf("smtp %s: no sender: set From or User", s.addr())
	}
	return s
}

func (s *SMTP) addr() string {
	return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// Send submits m. Errors name the server and the phase that failed (dial,
// TLS, auth, send) and never contain the password; an SMTP rejection can be
// inspected with errors.As and *mail.SendError (IsTemp tells 4xx from 5xx).
// Send gives up when ctx ends or SMTPConfig.Timeout passes, whichever is
// first.
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
	if err := c.Hello(s.helo); err != nil {
		return s.fail(ctx, "dial "+addr, "EHLO", err)
	}
	if s.cfg.Security == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp TLS with %s: server does not offer STARTTLS, which security starttls requires", addr)
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return s.fail(ctx, "TLS with "+addr, "STARTTLS", err)
		}
	}
	if s.cfg.User != "" {
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

// message builds the go-mail message for m.
func (s *SMTP) message(m Mail) (*mail.Msg, error) {
	if len(m.To) == 0 {
		return nil, errors.New("no recipients")
	}
	msg := mail.NewMsg(mail.WithCharset(mail.CharsetUTF8))
	if err := msg.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("sender %q: %w", s.cfg.From, err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("recipients %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(s.cfg.Now())
	msg.SetMessageID()
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
