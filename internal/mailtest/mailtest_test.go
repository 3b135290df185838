package mailtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const testMsg = "From: checker@example.test\r\n" +
	"To: checker@example.test\r\n" +
	"Subject: =?UTF-8?q?caf=C3=A9_alert?=\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=C3=A9 is down\r\n"

// dialSMTP connects to s with the transport its Options asked for.
func dialSMTP(t *testing.T, s *Server, security string) *smtp.Client {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	switch security {
	case "tls":
		c, err = smtp.DialTLS(s.SMTPAddr, s.ClientTLSConfig())
	case "starttls":
		c, err = smtp.DialStartTLS(s.SMTPAddr, s.ClientTLSConfig())
	default:
		c, err = smtp.Dial(s.SMTPAddr)
	}
	if err != nil {
		t.Fatalf("dial SMTP %s (%s): %v", s.SMTPAddr, security, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendOne(c *smtp.Client, user, pass string) error {
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	return c.SendMail(DefaultUser, []string{DefaultUser, "admin@example.test"}, strings.NewReader(testMsg))
}

func TestDeliveryOverEachTransport(t *testing.T) {
	for _, tc := range []struct {
		name, smtpSec, imapSec, deliverTo string
	}{
		{"plain", "none", "none", ""},
		{"starttls", "starttls", "starttls", ""},
		{"implicit tls", "tls", "tls", ""},
		{"gmail trash", "none", "tls", "[Gmail]/Trash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{Security: tc.smtpSec, IMAPSecurity: tc.imapSec, DeliverTo: tc.deliverTo})
			if err := sendOne(dialSMTP(t, s, tc.smtpSec), s.User, s.Pass); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := s.WaitReceived(t, 1, 5*time.Second)
			r := got[0]
			if r.From != DefaultUser || strings.Join(r.To, ",") != DefaultUser+",admin@example.test" {
				t.Errorf("envelope = %q -> %q", r.From, r.To)
			}
			if r.Subject != "café alert" {
				t.Errorf("Subject = %q, want decoded %q", r.Subject, "café alert")
			}
			if strings.TrimSpace(r.Body) != "café is down" {
				t.Errorf("Body = %q", r.Body)
			}
			if r.Header.Get("To") != DefaultUser {
				t.Errorf("Header To = %q", r.Header.Get("To"))
			}
			mailbox := tc.deliverTo
			if mailbox == "" {
				mailbox = "INBOX"
			}
			if n := s.MailboxMessages(mailbox); n != 1 {
				t.Errorf("MailboxMessages(%q) = %d, want 1", mailbox, n)
			}

			// The IMAP side speaks the asked-for transport and accepts the
			// same credentials.
			var ic *imapclient.Client
			var err error
			opts := &imapclient.Options{TLSConfig: s.ClientTLSConfig()}
			switch tc.imapSec {
			case "tls":
				ic, err = imapclient.DialTLS(s.IMAPAddr, opts)
			case "starttls":
				ic, err = imapclient.DialStartTLS(s.IMAPAddr, opts)
			default:
				ic, err = imapclient.DialInsecure(s.IMAPAddr, opts)
			}
			if err != nil {
				t.Fatalf("dial IMAP: %v", err)
			}
			defer ic.Close()
			if err := ic.Login(s.User, s.Pass).Wait(); err != nil {
				t.Fatalf("IMAP login: %v", err)
			}
			sel, err := ic.Select(mailbox, nil).Wait()
			if err != nil {
				t.Fatalf("select %q: %v", mailbox, err)
			}
			if sel.NumMessages != 1 {
				t.Errorf("selected %d messages, want 1", sel.NumMessages)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		user     string
		pass     string
		wantCode int // 0: success
	}{
		{"right password", Options{}, DefaultUser, DefaultPass, 0},
		{"wrong password", Options{}, DefaultUser, "nope", 535},
		{"wrong user", Options{}, "other@example.test", DefaultPass, 535},
		{"no auth when required", Options{}, "", "", 502},
		{"no auth allowed", Options{NoAuth: true}, "", "", 0},
		{"custom credentials", Options{User: "u", Pass: "p w"}, "u", "p w", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			err := sendOne(dialSMTP(t, s, "none"), tc.user, tc.pass)
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				return
			}
			var smtpErr *smtp.SMTPError
			if !errors.As(err, &smtpErr) || smtpErr.Code != tc.wantCode {
				t.Fatalf("err = %v, want SMTP code %d", err, tc.wantCode)
			}
			if n := len(s.Received()); n != 0 {
				t.Errorf("Received %d messages after failed auth", n)
			}
		})
	}
}

func TestLoginMechanism(t *testing.T) {
	s := Start(t, Options{AuthMechanisms: []string{"LOGIN"}})
	c := dialSMTP(t, s, "none")
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "LOGIN" {
		t.Fatalf("AUTH extension = %v %q, want LOGIN only", ok, mechs)
	}
	// go-sasl has a LOGIN client: it sends the user name as initial response.
	if err := c.Auth(sasl.NewLoginClient(s.User, s.Pass)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
}

func TestFailureModes(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		wantCode int // SMTP code expected, or 0 for a broken connection
	}{
		{FailRefuseRcpt, 550},
		{FailTempRcpt, 451},
		{FailDropData, 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := Start(t, Options{})
			s.SetSMTPFailure(tc.mode)
			err := sendOne(dialSMTP(t, s, "none"), s.User, s.Pass)
			if err == nil {
				t.Fatal("send succeeded")
			}
			var smtpErr *smtp.SMTPError
			if tc.wantCode != 0 && (!errors.As(err, &smtpErr) || smtpErr.Code != tc.wantCode) {
				t.Fatalf("err = %v, want SMTP code %d", err, tc.wantCode)
			}
			if n := len(s.Received()); n != 0 {
				t.Errorf("Received %d messages", n)
			}
			if n := s.MailboxMessages("INBOX"); n != 0 {
				t.Errorf("INBOX has %d messages", n)
			}

			s.SetSMTPFailure(FailNone)
			if err := sendOne(dialSMTP(t, s, "none"), s.User, s.Pass); err != nil {
				t.Fatalf("send after recovery: %v", err)
			}
		})
	}
}

func TestHangUntilStop(t *testing.T) {
	s := Start(t, Options{})
	s.SetSMTPFailure(FailHang)
	conn, err := net.Dial("tcp", s.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		t.Fatalf("hung server greeted: %q", line)
	}

	stopped := make(chan struct{})
	go func() {
		s.StopSMTP()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("StopSMTP did not return with a hung connection open")
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("hung connection still open after StopSMTP: read error %v", err)
	}
}

func TestStopStartSameAddress(t *testing.T) {
	s := Start(t, Options{})
	addr := s.SMTPAddr
	s.StopSMTP()
	s.StopSMTP() // idempotent
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Fatal("connection accepted while stopped")
	}
	s.StartSMTP()
	s.StartSMTP() // idempotent
	if s.SMTPAddr != addr {
		t.Fatalf("SMTPAddr changed from %s to %s", addr, s.SMTPAddr)
	}
	if err := sendOne(dialSMTP(t, s, "none"), s.User, s.Pass); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	s.WaitReceived(t, 1, 5*time.Second)
}

func TestDropMailAndFolders(t *testing.T) {
	s := Start(t, Options{DropMail: true, Folders: []string{"Archive", "INBOX"}})
	if err := sendOne(dialSMTP(t, s, "none"), s.User, s.Pass); err != nil {
		t.Fatalf("send: %v", err)
	}
	s.WaitReceived(t, 1, 5*time.Second)
	for mailbox, want := range map[string]int{"INBOX": 0, "Archive": 0, "Nope": -1} {
		if n := s.MailboxMessages(mailbox); n != want {
			t.Errorf("MailboxMessages(%q) = %d, want %d", mailbox, n, want)
		}
	}
	s.AppendMessage(t, "Archive", []byte(testMsg))
	if n := s.MailboxMessages("Archive"); n != 1 {
		t.Errorf("Archive has %d messages after AppendMessage, want 1", n)
	}
}

func TestCertificates(t *testing.T) {
	s := Start(t, Options{Security: "tls"})
	if !strings.Contains(string(s.CertPEM()), "BEGIN CERTIFICATE") {
		t.Errorf("CertPEM is not PEM: %q", s.CertPEM())
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := s.ClientTLSConfig()
		cfg.ServerName = name
		c, err := smtp.DialTLS(s.SMTPAddr, cfg)
		if err != nil {
			t.Errorf("TLS as %s: %v", name, err)
			continue
		}
		c.Close()
	}
	// Without the CA, verification fails.
	cfg := s.ClientTLSConfig()
	cfg.RootCAs = nil
	if c, err := smtp.DialTLS(s.SMTPAddr, cfg); err == nil {
		c.Close()
		t.Error("TLS verified without the test CA")
	}
}

func TestParseReceived(t *testing.T) {
	for _, tc := range []struct {
		name, raw, subject, body string
	}{
		{
			name:    "base64",
			raw:     "Subject: plain\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\naMOpbGxv\r\nIHdvcmxk\r\n",
			subject: "plain",
			body:    "héllo world",
		},
		{
			name:    "no content type",
			raw:     "Subject: =?utf-8?b?w6l0w6k=?=\r\n\r\nsummer\r\n",
			subject: "été",
			body:    "summer\r\n",
		},
		{
			name: "multipart",
			raw: "Subject: mp\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
				"--XX\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n" +
				"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak\r\n" +
				"--XX--\r\n",
			subject: "mp",
			body:    "softbreak",
		},
		{
			name: "garbage",
			raw:  "no header at all",
			body: "no header at all",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseReceived("a@b", []string{"c@d"}, []byte(tc.raw))
			if r.Subject != tc.subject || r.Body != tc.body {
				t.Errorf("got subject %q body %q, want %q %q", r.Subject, r.Body, tc.subject, tc.body)
			}
		})
	}
}

func TestRequireFQDNHelo(t *testing.T) {
	for _, tc := range []struct {
		helo     string
		require  bool
		wantCode int // 0: accepted
	}{
		{"vm", true, 504},
		{"localhost", true, 504},
		{"vm.example.test", true, 0},
		{"vm.example.test.", true, 0},
		{"under_score.example.test", true, 0},
		{"[127.0.0.1]", true, 0},
		{"[IPv6:::1]", true, 0},
		{"[IPv6:2001:db8::7]", true, 0},
		{"[vm]", true, 501},
		{"[::1]", true, 501},
		{"192.0.2.7", true, 504},
		{"-vm.example.test", true, 504},
		{"vm", false, 0},
	} {
		t.Run(fmt.Sprintf("%s/require=%v", tc.helo, tc.require), func(t *testing.T) {
			s := Start(t, Options{RequireFQDNHelo: tc.require})
			c := dialSMTP(t, s, "none")
			if err := c.Hello(tc.helo); err != nil {
				t.Fatalf("EHLO %s: %v", tc.helo, err)
			}
			err := sendOne(c, s.User, s.Pass)
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				got := s.WaitReceived(t, 1, 5*time.Second)[0]
				if got.Helo != tc.helo || got.AuthUser != s.User {
					t.Errorf("Received Helo %q AuthUser %q, want %q %q", got.Helo, got.AuthUser, tc.helo, s.User)
				}
				return
			}
			var smtpErr *smtp.SMTPError
			if !errors.As(err, &smtpErr) || smtpErr.Code != tc.wantCode {
				t.Fatalf("err = %v, want SMTP code %d", err, tc.wantCode)
			}
			if tc.wantCode == 504 && !strings.Contains(smtpErr.Message, "<"+tc.helo+">: Helo command rejected: need fully-qualified hostname") {
				t.Errorf("reply %q is not Postfix's", smtpErr.Message)
			}
			if n := len(s.Received()); n != 0 {
				t.Errorf("Received %d messages", n)
			}
		})
	}
}

func TestReceivedWithoutAuth(t *testing.T) {
	s := Start(t, Options{NoAuth: true})
	c := dialSMTP(t, s, "none")
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("NoAuth server offers AUTH")
	}
	if err := sendOne(c, "", ""); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := s.WaitReceived(t, 1, 5*time.Second)[0]; got.AuthUser != "" || got.Helo != "localhost" {
		t.Errorf("AuthUser %q Helo %q, want none and go-smtp's default localhost", got.AuthUser, got.Helo)
	}
}

func TestMailboxSubjects(t *testing.T) {
	for _, sec := range []string{"none", "starttls", "tls"} {
		t.Run(sec, func(t *testing.T) {
			s := Start(t, Options{IMAPSecurity: sec, Folders: []string{"Trash"}})
			if got := s.MailboxSubjects(t, "Trash"); len(got) != 0 {
				t.Fatalf("empty Trash lists %q", got)
			}
			s.AppendMessage(t, "Trash", []byte("Subject: first\r\n\r\nx\r\n"))
			s.AppendMessage(t, "Trash", []byte(testMsg))
			got := s.MailboxSubjects(t, "Trash")
			if strings.Join(got, "|") != "first|café alert" {
				t.Errorf("subjects = %q", got)
			}
		})
	}
}
