package mailtest

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpRun is one life of the SMTP server, from StartSMTP to StopSMTP. A
// go-smtp Server cannot be restarted after Close, so each run has its own.
type smtpRun struct {
	srv    *smtp.Server
	ln     *trackingListener
	served chan struct{} // closed when Serve returned
}

// serveSMTP starts a go-smtp server on ln (a plain TCP listener).
func (s *Server) serveSMTP(ln net.Listener) *smtpRun {
	tl := &trackingListener{
		Listener: ln,
		hang:     func() bool { return s.failureMode() == FailHang },
		conns:    make(map[*trackedConn]struct{}),
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	srv.Domain = "mailtest.localhost"
	srv.AllowInsecureAuth = true // loopback only; lets tests use Security "none"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = s.log

	var l net.Listener = tl
	switch s.opts.Security {
	case "starttls":
		srv.TLSConfig = s.ca.serverConfig()
	case "tls":
		// With TLSConfig set and the connection already TLS, go-smtp does
		// not offer STARTTLS again.
		srv.TLSConfig = s.ca.serverConfig()
		l = tls.NewListener(tl, srv.TLSConfig)
	}
	run := &smtpRun{srv: srv, ln: tl, served: make(chan struct{})}
	go func() {
		defer close(run.served)
		// Serve returns an error once the listener is closed; that is the
		// normal way out here.
		_ = srv.Serve(l)
	}()
	return run
}

// StopSMTP closes the SMTP listener and every SMTP connection, so that new
// connections are refused, and waits until all connection goroutines have
// returned (hung ones included). It is a no-op when already stopped.
func (s *Server) StopSMTP() {
	s.smtpMu.Lock()
	defer s.smtpMu.Unlock()
	run := s.smtp
	s.smtp = nil
	if run == nil {
		return
	}
	_ = run.ln.Close()
	<-run.served
	run.ln.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shutdown waits for go-smtp's connection goroutines; their connections
	// are closed already, so this is quick.
	if err := run.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		s.log.Printf("SMTP connections still open 10s after StopSMTP")
	}
}

// StartSMTP listens again on the same SMTPAddr after StopSMTP. It is a
// no-op when already running, and fails the test if the address cannot be
// bound again within a few seconds.
func (s *Server) StartSMTP() {
	s.tb.Helper()
	s.smtpMu.Lock()
	defer s.smtpMu.Unlock()
	if s.smtp != nil {
		return
	}
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", s.SMTPAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("mailtest: listen again on %s: %v", s.SMTPAddr, err)
	}
	s.smtp = s.serveSMTP(ln)
}

// session is one SMTP conversation. go-smtp calls its methods from the
// connection's goroutine only, so its fields need no lock.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	authUser string // "" until AUTH succeeded
	from     string
	to       []string
}

// envelope is what a session knows about a message besides its bytes.
type envelope struct {
	from, helo, authUser string
	to                   []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.NoAuth {
		return nil
	}
	return ss.srv.opts.AuthMechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(ss.AuthMechanisms(), strings.ToUpper(mech)) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return ss.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: ss.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) login(username, password string) error {
	userOK := subtle.ConstantTimeCompare([]byte(username), []byte(ss.srv.User)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(password), []byte(ss.srv.Pass)) == 1
	if !userOK || !passOK {
		return smtp.ErrAuthFailed
	}
	ss.authUser = username
	return nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.srv.opts.NoAuth && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.srv.opts.RequireFQDNHelo {
		// Postfix applies HELO restrictions at RCPT TO by default
		// (smtpd_delay_reject = yes), so that is where the client sees them.
		if err := postfixHeloCheck(ss.conn.Hostname()); err != nil {
			return err
		}
	}
	if ss.srv.rcpt(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected: User unknown in local recipient table"}
	}
	switch ss.srv.failureMode() {
	case FailRefuseRcpt:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable (mailtest refuse-rcpt)"}
	case FailTempRcpt:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later (mailtest tempfail-rcpt)"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.srv.failureMode() == FailDropData {
		// Close the socket itself: go-smtp's Conn.Close would also end the
		// session under our feet.
		_ = ss.conn.Conn().Close()
		return errors.New("mailtest drop-data: connection closed during DATA")
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	env := envelope{from: ss.from, to: ss.to, helo: ss.conn.Hostname(), authUser: ss.authUser}
	if err := ss.srv.deliver(env, raw); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: err.Error()}
	}
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// postfixHeloCheck answers as Postfix's reject_invalid_helo_hostname and
// reject_non_fqdn_helo_hostname do: an address literal must hold a valid
// address; a name (one trailing dot dropped) must be a valid host name with
// a dot in it. nil means accepted.
func postfixHeloCheck(helo string) error {
	if inner, ok := strings.CutPrefix(helo, "["); ok {
		inner, closed := strings.CutSuffix(inner, "]")
		v6, isV6 := strings.CutPrefix(inner, "IPv6:")
		var valid bool
		if isV6 {
			addr, err := netip.ParseAddr(v6)
			valid = err == nil && addr.Is6()
		} else {
			addr, err := netip.ParseAddr(inner)
			valid = err == nil && addr.Is4()
		}
		if !closed || !valid {
			return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
				Message: "<" + helo + ">: Helo command rejected: invalid ip address"}
		}
		return nil
	}
	name := helo
	if strings.HasSuffix(name, ".") && !strings.HasSuffix(name, "..") {
		name = strings.TrimSuffix(name, ".")
	}
	if !postfixValidHostname(name) || !strings.Contains(name, ".") {
		return &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
			Message: "<" + helo + ">: Helo command rejected: need fully-qualified hostname"}
	}
	return nil
}

// postfixValidHostname follows Postfix's valid_hostname: labels of
// letters, digits, '-' and '_', not starting or ending with '-', at most 63
// bytes each and 255 in all, and not all-numeric.
func postfixValidHostname(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	nonNumeric := false
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			switch {
			case c >= '0' && c <= '9', c == '-':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
				nonNumeric = true
			default:
				return false
			}
		}
	}
	return nonNumeric
}

// loginServer is the server side of the LOGIN SASL mechanism, which go-sasl
// only implements for clients: ask "Username:", then "Password:".
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if len(response) > 0 { // initial response carries the user name
			l.username = string(response)
			l.step = 2
			return []byte("Password:"), false, nil
		}
		l.step = 1
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, fmt.Errorf("LOGIN: unexpected response after step %d", l.step)
}

// trackingListener remembers every accepted connection so StopSMTP can
// close them all, and in FailHang mode keeps new connections to itself,
// reading and discarding until they are closed.
type trackingListener struct {
	net.Listener
	hang func() bool

	mu     sync.Mutex // guards conns and closed; Add on held happens under it
	conns  map[*trackedConn]struct{}
	closed bool
	held   sync.WaitGroup // goroutines sitting on hung connections
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, l: l}
		hang := l.hang()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return nil, net.ErrClosed
		}
		l.conns[tc] = struct{}{}
		if hang {
			l.held.Add(1)
		}
		l.mu.Unlock()
		if !hang {
			return tc, nil
		}
		go func() {
			defer l.held.Done()
			_, _ = io.Copy(io.Discard, tc)
			_ = tc.Close()
		}()
	}
}

// closeAll closes every connection still open and waits for the goroutines
// holding hung ones. Connections accepted later are closed at once.
func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	l.held.Wait()
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}
