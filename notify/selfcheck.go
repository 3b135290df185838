package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Defaults of the self-check.
const (
	defaultSelfCheckWait = 60 * time.Second
	defaultSelfCheckPoll = 2 * time.Second
	defaultIMAPTimeout   = 30 * time.Second
)

// IMAPConfig says how to reach the mailbox the self-check reads.
type IMAPConfig struct {
	// Host is the IMAP server's name or address; TLS certificates are
	// checked against it.
	Host string
	// Port is the TCP port. 0 means 993 for "tls" and 143 otherwise.
	Port int
	// Security is "tls" (implicit TLS, the default), "starttls" (STARTTLS
	// required) or "none" (no TLS; the password travels in clear text).
	Security string
	// User and Pass log in. An empty User means SelfCheck.From.
	User, Pass string
	// Mailbox is where the probe is looked for: "INBOX" (the default), or
	// the trash folder when the provider files sent mail there.
	Mailbox string
	// TLSConfig is the base TLS client configuration. nil means the system
	// roots with ServerName set to Host. Certificate verification is always
	// on: InsecureSkipVerify is ignored.
	TLSConfig *tls.Config
	// Timeout bounds connecting, the TLS handshake and each IMAP command.
	// 0 means 30s.
	Timeout time.Duration
}

// SelfCheck proves the alert path end to end (SPEC §6): it mails a probe
// with a fresh random token from From to From, then finds it over IMAP and
// deletes it, together with the probes of this checker that earlier failed
// checks left behind. A SelfCheck is not modified by Run and may be reused.
type SelfCheck struct {
	// SMTP sends the probe; usually an *SMTP whose From is this From.
	SMTP Sender
	// From is the user's address: the probe's recipient, and the sender
	// searched for.
	From string
	// ServerName names this checker in the probe's subject,
	// "checker self-check [ServerName] <token>", so that checkers sharing
	// a mailbox each find, and clean up, only their own probes. Empty
	// means the host name.
	ServerName string
	// IMAP is where the probe should arrive.
	IMAP IMAPConfig
	// Wait is how long to keep looking for the probe. 0 means 60s. A probe
	// of this checker older than Wait is no longer looked for by anyone
	// and is deleted by the next check that gets through.
	Wait time.Duration
	// Poll is the pause between two searches. 0 means 2s.
	Poll time.Duration
	// Now is the clock for the log's timestamps, the probe's Date, the
	// SEARCH SINCE date and the age of earlier probes. nil means time.Now.
	// Waiting itself uses real timers, so a frozen clock cannot make Run
	// hang.
	Now func() time.Time
}

// probeJob is the X-Checker-Job of a probe: the self-check job's name.
const probeJob = "email:selfcheck"

// maxStaleProbes bounds the earlier probes one check deletes; a mailbox
// that collected more (a month of failed checks) is emptied over a few
// runs.
const maxStaleProbes = 500

// Run sends the probe, polls IMAP until it is found or Wait passes, and
// deletes it. It returns the session log, timestamped lines of every step
// for the "Email Fetch Failure" mail, and an error saying which step failed
// and where. Neither the log nor the error contains IMAP.Pass, even when a
// server echoes it. Run returns soon after ctx ends.
func (c *SelfCheck) Run(ctx context.Context) (log string, err error) {
	sc := c.withDefaults()
	l := &selfCheckLog{now: sc.Now, secrets: []string{sc.IMAP.Pass}}
	start := sc.Now()
	err = sc.run(ctx, l)
	err = scrubError(err, sc.IMAP.Pass)
	if err != nil {
		l.Printf("self-check FAILED: %v", err)
	} else {
		l.Printf("self-check passed in %s", sc.Now().Sub(start).Round(time.Millisecond))
	}
	return l.String(), err
}

// withDefaults returns a copy of c with every zero setting defaulted.
func (c *SelfCheck) withDefaults() SelfCheck {
	sc := *c
	sc.ServerName = strings.Join(strings.Fields(oneLine(sc.ServerName)), " ")
	if sc.ServerName == "" {
		sc.ServerName = "checker"
		if h, err := os.Hostname(); err == nil && strings.TrimSpace(h) != "" {
			sc.ServerName = strings.Join(strings.Fields(oneLine(h)), " ")
		}
	}
	if sc.Wait <= 0 {
		sc.Wait = defaultSelfCheckWait
	}
	if sc.Poll <= 0 {
		sc.Poll = defaultSelfCheckPoll
	}
	if sc.Now == nil {
		sc.Now = time.Now
	}
	ic := &sc.IMAP
	ic.Security = strings.ToLower(strings.TrimSpace(ic.Security))
	if ic.Security == "" {
		ic.Security = "tls"
	}
	if ic.Port == 0 {
		ic.Port = 143
		if ic.Security == "tls" {
			ic.Port = 993
		}
	}
	if ic.User == "" {
		ic.User = sc.From
	}
	if ic.Mailbox == "" {
		ic.Mailbox = "INBOX"
	}
	if ic.Timeout <= 0 {
		ic.Timeout = defaultIMAPTimeout
	}
	return sc
}

func (c *SelfCheck) validate() error {
	switch {
	case c.SMTP == nil:
		return errors.New("self-check: no SMTP sender")
	case c.From == "":
		return errors.New("self-check: no user address (From)")
	case c.IMAP.Host == "":
		return errors.New("self-check: no IMAP server host")
	case c.IMAP.Security != "tls" && c.IMAP.Security != "starttls" && c.IMAP.Security != "none":
		return fmt.Errorf("self-check: IMAP security %q: want tls, starttls or none", c.IMAP.Security)
	case c.IMAP.Port < 1 || c.IMAP.Port > 65535:
		return fmt.Errorf("self-check: IMAP port %d out of range", c.IMAP.Port)
	}
	return nil
}

func (c *SelfCheck) run(ctx context.Context, l *selfCheckLog) error {
	if err := c.validate(); err != nil {
		return err
	}
	token := newProbeToken()
	subject := c.probePrefix() + " " + token
	now := c.Now()
	l.Printf("sending probe %q from %s to %s", subject, c.From, c.From)
	probe := Mail{
		To:      []string{c.From},
		Subject: subject,
		Body: "This is an automatic test message from the email self-check of checker\n" +
			"on " + c.ServerName + ". It proves that mail sent through the configured SMTP\n" +
			"server arrives in the mailbox. checker deletes it as soon as it has found\n" +
			"it, or with the next check that gets through.\n\n" +
			"Token: " + token + "\n" +
			"Sent:  " + now.Format(time.RFC1123Z) + "\n",
		Header: map[string]string{HeaderServer: c.ServerName, HeaderJob: probeJob},
	}
	if err := c.SMTP.Send(ctx, probe); err != nil {
		l.Printf("SMTP send failed: %v", err)
		return fmt.Errorf("smtp send: %w", err)
	}
	l.Printf("probe accepted by the SMTP server")

	p := &imapProbe{
		cfg:  c.IMAP,
		addr: net.JoinHostPort(c.IMAP.Host, strconv.Itoa(c.IMAP.Port)),
		log:  l,
	}
	return p.findAndDelete(ctx, c, token)
}

// imapProbe is one IMAP session of the self-check.
type imapProbe struct {
	cfg    IMAPConfig
	addr   string
	log    *selfCheckLog
	conn   net.Conn    // the TCP connection; closing it ends every pending call
	stop   func() bool // unregisters the close-on-cancel hook on conn
	client *imapclient.Client

	timedOut atomic.Bool // a command got no answer within cfg.Timeout
}

func (p *imapProbe) findAndDelete(ctx context.Context, c *SelfCheck, token string) error {
	if err := p.connect(ctx); err != nil {
		return err
	}
	defer p.stop()
	defer p.conn.Close()
	defer p.client.Close()

	l, mailbox := p.log, p.cfg.Mailbox
	if err := p.do(ctx, p.client.WaitGreeting); err != nil {
		return fmt.Errorf("imap greeting from %s: %w", p.addr, err)
	}

	l.Printf("logging in as %s", p.cfg.User)
	err := p.do(ctx, func() error { return p.client.Login(p.cfg.User, p.cfg.Pass).Wait() })
	if err != nil {
		l.Printf("login failed: %v", err)
		return fmt.Errorf("imap login to %s as %s: %w", p.addr, p.cfg.User, err)
	}
	l.Printf("logged in")

	var sel *imap.SelectData
	err = p.do(ctx, func() (err error) {
		sel, err = p.client.Select(mailbox, nil).Wait()
		return err
	})
	if err != nil {
		l.Printf("select %s failed: %v", mailbox, err)
		return fmt.Errorf("imap select %s on %s: %w", mailbox, p.addr, err)
	}
	l.Printf("selected %s: %d messages", mailbox, sel.NumMessages)

	uids, err := p.search(ctx, c, token)
	if err != nil {
		return err
	}
	stale, err := p.staleProbes(ctx, c, uids)
	if err != nil {
		return err
	}

	uidSet := imap.UIDSetNum(append(uids, stale...)...)
	err = p.do(ctx, func() error {
		store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		if err := p.client.Store(uidSet, store, nil).Close(); err != nil {
			return fmt.Errorf("flag \\Deleted: %w", err)
		}
		// UID EXPUNGE removes only the probe; plain EXPUNGE would also
		// remove whatever else the user had flagged \Deleted.
		if p.client.Caps().Has(imap.CapUIDPlus) {
			return p.client.UIDExpunge(uidSet).Close()
		}
		return p.client.Expunge().Close()
	})
	if err != nil {
		l.Printf("deleting UID %v failed: %v", uidSet, err)
		return fmt.Errorf("imap delete probe UID %v from %s on %s: %w", uidSet, mailbox, p.addr, err)
	}
	if len(stale) > 0 {
		l.Printf("deleted probe UID %v and %d earlier probe%s UID %v", imap.UIDSetNum(uids...), len(stale), plural(len(stale)), imap.UIDSetNum(stale...))
	} else {
		l.Printf("deleted probe UID %v", uidSet)
	}

	if err := p.do(ctx, func() error { return p.client.Logout().Wait() }); err != nil {
		l.Printf("logout: %v (ignored)", err)
	} else {
		l.Printf("logged out")
	}
	return nil
}

// connect dials, sets up the transport security and makes p.client.
func (p *imapProbe) connect(ctx context.Context) error {
	label := map[string]string{"tls": "implicit TLS", "starttls": "STARTTLS", "none": "no TLS"}[p.cfg.Security]
	p.log.Printf("connecting to %s (%s)", p.addr, label)
	dialCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dialCtx, "tcp", p.addr)
	if err != nil {
		p.log.Printf("connect failed: %v", err)
		return fmt.Errorf("imap dial %s: %w", p.addr, err)
	}
	p.conn = conn
	// From here on, whatever the client is blocked on, closing the socket
	// ends it, so a cancelled ctx makes Run return promptly.
	p.stop = context.AfterFunc(ctx, func() { conn.Close() })
	p.log.Printf("connected")

	tlsConf := secureTLSConfig(p.cfg.TLSConfig, p.cfg.Host)
	opts := &imapclient.Options{TLSConfig: tlsConf}
	switch p.cfg.Security {
	case "tls":
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(dialCtx); err != nil {
			p.stop()
			conn.Close()
			p.log.Printf("TLS handshake failed: %v", err)
			return fmt.Errorf("imap TLS with %s: %w", p.addr, err)
		}
		p.log.Printf("TLS established (%s)", tls.VersionName(tc.ConnectionState().Version))
		p.client = imapclient.New(tc, opts)
	case "starttls":
		err := p.do(dialCtx, func() (err error) {
			p.client, err = imapclient.NewStartTLS(conn, opts)
			return err
		})
		if err != nil {
			p.stop()
			conn.Close()
			p.log.Printf("STARTTLS failed: %v", err)
			return fmt.Errorf("imap STARTTLS with %s: %w", p.addr, err)
		}
		p.log.Printf("STARTTLS established")
	default:
		p.client = imapclient.New(conn, opts)
	}
	return nil
}

// search looks for the probe until it is found or Wait passes and returns
// its UIDs.
func (p *imapProbe) search(ctx context.Context, c *SelfCheck, token string) ([]imap.UID, error) {
	l, mailbox := p.log, p.cfg.Mailbox
	// SINCE compares dates only; yesterday absorbs time zones and a probe
	// sent just before midnight.
	y := c.Now().AddDate(0, 0, -1)
	since := time.Date(y.Year(), y.Month(), y.Day(), 0, 0, 0, 0, time.UTC)
	criteria := &imap.SearchCriteria{
		Since: since,
		Header: []imap.SearchCriteriaHeaderField{
			{Key: "From", Value: c.From},
			{Key: "Subject", Value: token},
		},
	}
	query := fmt.Sprintf("FROM %s SINCE %s SUBJECT %s", c.From, since.Format("2-Jan-2006"), token)

	pollCtx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	ticker := time.NewTicker(c.Poll)
	defer ticker.Stop()
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// NOOP lets the server report mail that arrived since the
			// last look.
			if err := p.do(ctx, func() error { return p.client.Noop().Wait() }); err != nil {
				l.Printf("NOOP failed: %v", err)
				return nil, fmt.Errorf("imap search in %s on %s: %w", mailbox, p.addr, err)
			}
		}
		var uids []imap.UID
		err := p.do(ctx, func() error {
			data, err := p.client.UIDSearch(criteria, nil).Wait()
			if err == nil {
				uids = data.AllUIDs()
			}
			return err
		})
		if err != nil {
			l.Printf("search %d failed: %v", attempt, err)
			return nil, fmt.Errorf("imap search in %s on %s: %w", mailbox, p.addr, err)
		}
		if len(uids) > 0 {
			l.Printf("search %d (%s): found UID %v", attempt, query, imap.UIDSetNum(uids...))
			return uids, nil
		}
		l.Printf("search %d (%s): not yet", attempt, query)
		if pollCtx.Err() != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("imap search in %s on %s: %w", mailbox, p.addr, context.Cause(ctx))
			}
			return nil, fmt.Errorf("probe mail with token %s not found in %s after %s", token, mailbox, c.Wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("imap search in %s on %s: %w", mailbox, p.addr, context.Cause(ctx))
		case <-pollCtx.Done(): // time is up: one last look
		case <-ticker.C:
		}
	}
}

// probePrefix is the subject of this checker's probes without the token.
func (c *SelfCheck) probePrefix() string {
	return "checker self-check [" + c.ServerName + "]"
}

// isOwnProbe reports whether a message with this envelope is a probe of
// this checker: sent by From, with the probe subject and a token. The
// server's SEARCH matches substrings and may be lax; this is exact.
func (c *SelfCheck) isOwnProbe(env *imap.Envelope) bool {
	if env == nil || len(env.From) != 1 || !strings.EqualFold(env.From[0].Addr(), c.From) {
		return false
	}
	subject := strings.Join(strings.Fields(env.Subject), " ")
	token, ok := strings.CutPrefix(subject, c.probePrefix()+" ")
	if !ok || len(token) != 24 {
		return false
	}
	_, err := hex.DecodeString(token)
	return err == nil
}

// staleProbes returns the UIDs of the probes of this checker, other than
// found, that are older than Wait: left behind by checks that sent a probe
// and then failed, and looked for by no check any more. A probe younger
// than Wait may belong to a check running right now and is left alone.
func (p *imapProbe) staleProbes(ctx context.Context, c *SelfCheck, found []imap.UID) ([]imap.UID, error) {
	l, mailbox := p.log, p.cfg.Mailbox
	criteria := &imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{
			{Key: "From", Value: c.From},
			{Key: "Subject", Value: c.probePrefix()},
		},
	}
	var candidates []imap.UID
	err := p.do(ctx, func() error {
		data, err := p.client.UIDSearch(criteria, nil).Wait()
		if err == nil {
			candidates = slices.DeleteFunc(data.AllUIDs(), func(u imap.UID) bool { return slices.Contains(found, u) })
		}
		return err
	})
	if err != nil {
		l.Printf("search for earlier probes failed: %v", err)
		return nil, fmt.Errorf("imap search for earlier probes in %s on %s: %w", mailbox, p.addr, err)
	}
	if len(candidates) == 0 {
		l.Printf("no earlier probes of this checker")
		return nil, nil
	}
	slices.Sort(candidates)
	candidates = candidates[:min(len(candidates), maxStaleProbes)]

	var msgs []*imapclient.FetchMessageBuffer
	err = p.do(ctx, func() (err error) {
		opts := &imap.FetchOptions{UID: true, Envelope: true, InternalDate: true}
		msgs, err = p.client.Fetch(imap.UIDSetNum(candidates...), opts).Collect()
		return err
	})
	if err != nil {
		l.Printf("fetching earlier probes failed: %v", err)
		return nil, fmt.Errorf("imap fetch earlier probes from %s on %s: %w", mailbox, p.addr, err)
	}
	cutoff := c.Now().Add(-c.Wait)
	var stale []imap.UID
	young := 0
	for _, m := range msgs {
		if !c.isOwnProbe(m.Envelope) {
			continue
		}
		// The Date we wrote says when the probe was sent; the server's
		// arrival time stands in when it is missing.
		sent := m.Envelope.Date
		if sent.IsZero() {
			sent = m.InternalDate
		}
		if sent.IsZero() || !sent.Before(cutoff) {
			young++
			continue
		}
		stale = append(stale, m.UID)
	}
	l.Printf("earlier probes of this checker: %d older than %s, %d younger (left alone)", len(stale), c.Wait, young)
	return stale, nil
}

// do runs one blocking IMAP exchange. If it takes longer than the command
// timeout, or ctx ends, the connection is closed, which makes f return; the
// error then says why.
func (p *imapProbe) do(ctx context.Context, f func() error) error {
	t := time.AfterFunc(p.cfg.Timeout, func() {
		p.timedOut.Store(true)
		p.conn.Close()
	})
	err := f()
	t.Stop()
	// When we closed the socket, err is only its echo ("use of closed
	// network connection"); say why instead.
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case p.timedOut.Load():
		return fmt.Errorf("no answer within %s", p.cfg.Timeout)
	}
	return err
}

// newProbeToken returns 12 random bytes in hex: unique enough that a search
// for it finds only this run's probe.
func newProbeToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

// selfCheckLog collects the timestamped session log, with secrets scrubbed
// from every line.
type selfCheckLog struct {
	now     func() time.Time
	secrets []string
	b       strings.Builder
}

// Printf adds one line.
func (l *selfCheckLog) Printf(format string, args ...any) {
	line := scrubText(fmt.Sprintf(format, args...), l.secrets...)
	fmt.Fprintf(&l.b, "%s %s\n", l.now().Format("2006-01-02T15:04:05.000Z07:00"), line)
}

func (l *selfCheckLog) String() string { return l.b.String() }
