package mailtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// Defaults used for the zero values of Options.
const (
	DefaultUser = "checker@example.test"
	DefaultPass = "s3cret;#pw"
)

// SMTP failure modes for Server.SetSMTPFailure.
const (
	// FailNone serves normally.
	FailNone = ""
	// FailRefuseRcpt answers every RCPT TO with 550 5.1.1 (permanent).
	FailRefuseRcpt = "refuse-rcpt"
	// FailTempRcpt answers every RCPT TO with 451 4.3.0 (temporary).
	FailTempRcpt = "tempfail-rcpt"
	// FailDropData closes the connection as soon as DATA has been accepted,
	// before the message is read.
	FailDropData = "drop-data"
	// FailHang accepts new TCP connections and never says anything on them,
	// not even the greeting, until StopSMTP or the test's cleanup.
	FailHang = "hang"
)

// Options configure a Server. The zero value is a plain-text SMTP and IMAP
// server for DefaultUser / DefaultPass that requires SMTP AUTH and delivers
// to INBOX.
type Options struct {
	// User and Pass are the only accepted credentials, for SMTP AUTH and
	// IMAP LOGIN alike. Empty means DefaultUser / DefaultPass.
	User, Pass string
	// NoAuth lets SMTP clients send without AUTH (and advertises no AUTH
	// mechanism). IMAP still requires User / Pass.
	NoAuth bool
	// AuthMechanisms are the SASL mechanisms SMTP offers, from "PLAIN" and
	// "LOGIN". Empty means both.
	AuthMechanisms []string
	// Security is the SMTP side's transport: "none" (the default; no
	// STARTTLS offered), "starttls" (STARTTLS offered, not required) or
	// "tls" (implicit TLS from the first byte).
	Security string
	// IMAPSecurity is the IMAP side's transport: "none" (the default; LOGIN
	// allowed in clear text), "starttls" (LOGIN only after STARTTLS) or
	// "tls" (implicit TLS).
	IMAPSecurity string
	// Folders are extra mailboxes to create besides INBOX and DeliverTo,
	// e.g. "[Gmail]/Trash".
	Folders []string
	// DeliverTo is the mailbox that receives accepted mail. Empty means
	// INBOX. It is created if needed.
	DeliverTo string
	// DropMail makes SMTP accept mail (and record it in Received) without
	// ever delivering it to IMAP: the "mail never arrives" case.
	DropMail bool
	// RequireFQDNHelo makes SMTP behave like Postfix with
	// reject_non_fqdn_helo_hostname and reject_invalid_helo_hostname (and
	// its default smtpd_delay_reject): every RCPT TO after an EHLO name
	// that is neither a fully qualified domain name nor a valid address
	// literal is refused with Postfix's "504 5.5.2 <name>: Helo command
	// rejected: need fully-qualified hostname" (501 for a bad literal).
	RequireFQDNHelo bool
}

// Server is a running SMTP + IMAP pair on 127.0.0.1. The exported fields are
// set by Start and must not be changed. All methods are safe for concurrent
// use; the ones that take a testing.TB, and StartSMTP, must be called from
// the test's goroutine because they may call Fatalf.
type Server struct {
	// Host is the address both servers listen on: "127.0.0.1". The server
	// certificate is valid for it and for "localhost".
	Host string
	// SMTPAddr and SMTPPort locate the SMTP server.
	SMTPAddr string
	SMTPPort int
	// IMAPAddr and IMAPPort locate the IMAP server.
	IMAPAddr string
	IMAPPort int
	// User and Pass are the accepted credentials.
	User, Pass string

	tb       testing.TB
	opts     Options
	ca       *authority
	log      *tbLogger
	imapUser *imapmemserver.User
	imapSrv  *imapserver.Server
	imapDone chan struct{} // closed when the IMAP Serve loop returned

	smtpMu sync.Mutex // serialises StartSMTP / StopSMTP; guards smtp
	smtp   *smtpRun   // nil while stopped

	mu       sync.Mutex // guards the fields below
	received []Received
	arrived  chan struct{} // closed and replaced whenever received grows
	failure  string
	unknown  map[string]bool // recipients refused with 550 User unknown
	rcptTry  map[string]int  // RCPT TO attempts per recipient
}

// Start runs a Server for the test and stops it in t.Cleanup. It fails the
// test on bad Options or when a listener cannot be opened.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	ca, err := newAuthority(time.Now())
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	s := &Server{
		Host:    "127.0.0.1",
		User:    opts.User,
		Pass:    opts.Pass,
		tb:      t,
		opts:    opts,
		ca:      ca,
		log:     &tbLogger{tb: t},
		arrived: make(chan struct{}),
	}
	t.Cleanup(s.close)

	if err := s.startIMAP(); err != nil {
		t.Fatalf("mailtest: start IMAP: %v", err)
	}
	ln, err := net.Listen("tcp", s.Host+":0")
	if err != nil {
		t.Fatalf("mailtest: listen for SMTP: %v", err)
	}
	s.SMTPAddr = ln.Addr().String()
	s.SMTPPort = ln.Addr().(*net.TCPAddr).Port
	s.smtpMu.Lock()
	s.smtp = s.serveSMTP(ln)
	s.smtpMu.Unlock()
	return s
}

func (o Options) withDefaults() (Options, error) {
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Pass == "" {
		o.Pass = DefaultPass
	}
	if len(o.AuthMechanisms) == 0 {
		o.AuthMechanisms = []string{sasl.Plain, sasl.Login}
	}
	for _, m := range o.AuthMechanisms {
		if m != sasl.Plain && m != sasl.Login {
			return o, fmt.Errorf("options: AuthMechanisms: %q is not PLAIN or LOGIN", m)
		}
	}
	if o.Security == "" {
		o.Security = "none"
	}
	if o.IMAPSecurity == "" {
		o.IMAPSecurity = "none"
	}
	for name, v := range map[string]string{"Security": o.Security, "IMAPSecurity": o.IMAPSecurity} {
		if v != "none" && v != "starttls" && v != "tls" {
			return o, fmt.Errorf("options: %s: %q is not none, starttls or tls", name, v)
		}
	}
	if o.DeliverTo == "" {
		o.DeliverTo = "INBOX"
	}
	return o, nil
}

func (s *Server) startIMAP() error {
	s.imapUser = imapmemserver.NewUser(s.User, s.Pass)
	for _, name := range append([]string{"INBOX", s.opts.DeliverTo}, s.opts.Folders...) {
		err := s.imapUser.Create(name, nil)
		var imapErr *imap.Error
		if errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeAlreadyExists {
			continue
		}
		if err != nil {
			return fmt.Errorf("create mailbox %q: %w", name, err)
		}
	}
	mem := imapmemserver.New()
	mem.AddUser(s.imapUser)

	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:   imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger: s.log,
	}
	ln, err := net.Listen("tcp", s.Host+":0")
	if err != nil {
		return err
	}
	s.IMAPAddr = ln.Addr().String()
	s.IMAPPort = ln.Addr().(*net.TCPAddr).Port
	switch s.opts.IMAPSecurity {
	case "none":
		opts.InsecureAuth = true
	case "starttls":
		opts.TLSConfig = s.ca.serverConfig()
	case "tls":
		opts.TLSConfig = s.ca.serverConfig()
		ln = tls.NewListener(ln, opts.TLSConfig)
	}
	s.imapSrv = imapserver.New(opts)
	s.imapDone = make(chan struct{})
	go func() {
		defer close(s.imapDone)
		if err := s.imapSrv.Serve(ln); err != nil {
			s.log.Printf("IMAP serve: %v", err)
		}
	}()
	return nil
}

// close is the t.Cleanup hook: stop both servers and silence the logger.
func (s *Server) close() {
	s.StopSMTP()
	if s.imapSrv != nil {
		_ = s.imapSrv.Close()
		<-s.imapDone
	}
	s.log.stop()
}

// CertPool returns a new pool holding the CA that signed both servers'
// certificate, for a TLS client's RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.caCert)
	return pool
}

// CertPEM returns the same CA as PEM, e.g. to write to a file named by
// SSL_CERT_FILE for a subprocess.
func (s *Server) CertPEM() []byte {
	return bytes.Clone(s.ca.caPEM)
}

// ClientTLSConfig returns a client TLS configuration that trusts the CA and
// expects the server name Host.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), ServerName: s.Host, MinVersion: tls.VersionTLS12}
}

// Received returns every message the SMTP server accepted so far, in order.
// Mail accepted with DropMail is included; refused or dropped mail is not.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// WaitReceived waits until at least n messages have been accepted and
// returns them all; it fails the test if that takes longer than timeout.
func (s *Server) WaitReceived(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.received), s.arrived
		if got >= n {
			all := slices.Clone(s.received)
			s.mu.Unlock()
			return all
		}
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: %d message(s) received within %s, want %d", got, timeout, n)
			return nil
		}
	}
}

// MailboxMessages returns the number of messages in an IMAP mailbox of the
// user, counting those flagged \Deleted but not yet expunged; -1 if the
// mailbox does not exist.
func (s *Server) MailboxMessages(mailbox string) int {
	data, err := s.imapUser.Status(mailbox, &imap.StatusOptions{NumMessages: true})
	if err != nil || data.NumMessages == nil {
		return -1
	}
	return int(*data.NumMessages)
}

// MailboxSubjects returns the decoded subjects of the messages in an IMAP
// mailbox of the user, in UID order, read over a fresh IMAP session as any
// client would see them (messages flagged \Deleted but not expunged are
// included). It fails the test if the mailbox cannot be read.
func (s *Server) MailboxSubjects(t testing.TB, mailbox string) []string {
	t.Helper()
	opts := &imapclient.Options{TLSConfig: s.ClientTLSConfig()}
	var (
		c   *imapclient.Client
		err error
	)
	switch s.opts.IMAPSecurity {
	case "tls":
		c, err = imapclient.DialTLS(s.IMAPAddr, opts)
	case "starttls":
		c, err = imapclient.DialStartTLS(s.IMAPAddr, opts)
	default:
		c, err = imapclient.DialInsecure(s.IMAPAddr, opts)
	}
	if err != nil {
		t.Fatalf("mailtest: dial IMAP %s: %v", s.IMAPAddr, err)
	}
	defer c.Close()
	if err := c.Login(s.User, s.Pass).Wait(); err != nil {
		t.Fatalf("mailtest: IMAP login: %v", err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("mailtest: select %q: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return []string{}
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("mailtest: fetch from %q: %v", mailbox, err)
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
	subjects := make([]string, len(msgs))
	for i, m := range msgs {
		if m.Envelope != nil {
			subjects[i] = m.Envelope.Subject
		}
	}
	_ = c.Logout().Wait()
	return subjects
}

// AppendMessage stores raw (an RFC 5322 message) directly in an IMAP
// mailbox, bypassing SMTP, e.g. to put unrelated mail next to a probe.
func (s *Server) AppendMessage(t testing.TB, mailbox string, raw []byte) {
	t.Helper()
	if _, err := s.imapUser.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{Time: time.Now()}); err != nil {
		t.Fatalf("mailtest: append to %q: %v", mailbox, err)
	}
}

// SetSMTPFailure switches the SMTP server's failure mode: FailNone ("")
// serves normally; FailRefuseRcpt, FailTempRcpt, FailDropData and FailHang
// are described with their constants. The mode applies to commands and
// connections that come after the call. An unknown mode panics.
func (s *Server) SetSMTPFailure(mode string) {
	switch mode {
	case FailNone, FailRefuseRcpt, FailTempRcpt, FailDropData, FailHang:
	default:
		panic(fmt.Sprintf("mailtest: unknown SMTP failure mode %q", mode))
	}
	s.mu.Lock()
	s.failure = mode
	s.mu.Unlock()
}

// SetUnknownUsers makes RCPT TO for each address fail with "550 5.1.1
// User unknown", as a mail server answers for a mistyped address; the
// others are served as usual. It replaces the earlier list.
func (s *Server) SetUnknownUsers(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknown = map[string]bool{}
	for _, a := range addrs {
		s.unknown[strings.ToLower(a)] = true
	}
}

// RcptAttempts reports how many times RCPT TO named addr.
func (s *Server) RcptAttempts(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptTry[strings.ToLower(addr)]
}

// rcpt records a RCPT TO and tells whether the address is unknown.
func (s *Server) rcpt(addr string) (unknown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rcptTry == nil {
		s.rcptTry = map[string]int{}
	}
	addr = strings.ToLower(strings.Trim(addr, "<>"))
	s.rcptTry[addr]++
	return s.unknown[addr]
}

func (s *Server) failureMode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// deliver stores an accepted message in DeliverTo (unless DropMail) and
// then records it, so that a caller who saw it in Received also finds it
// over IMAP.
func (s *Server) deliver(env envelope, raw []byte) error {
	if !s.opts.DropMail {
		if _, err := s.imapUser.Append(s.opts.DeliverTo, bytes.NewReader(raw), &imap.AppendOptions{Time: time.Now()}); err != nil {
			return fmt.Errorf("deliver to %q: %w", s.opts.DeliverTo, err)
		}
	}
	r := parseReceived(env.from, env.to, raw)
	r.Helo, r.AuthUser = env.helo, env.authUser
	s.mu.Lock()
	s.received = append(s.received, r)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// tbLogger sends server log lines to the test log until stop is called;
// after that (connection goroutines may outlive the test) they are dropped,
// because logging after a test ends panics.
type tbLogger struct {
	mu      sync.Mutex // guards stopped, and keeps Logf from racing stop
	tb      testing.TB
	stopped bool
}

func (l *tbLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.tb.Logf("mailtest: "+format, v...)
	}
}

func (l *tbLogger) Println(v ...any) {
	l.Printf("%s", fmt.Sprintln(v...))
}

func (l *tbLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
