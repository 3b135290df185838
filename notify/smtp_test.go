package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/state"
)

// fixedNow is the injected clock of these tests.
func fixedNow() time.Time { return time.Date(2024, 3, 9, 14, 30, 0, 0, time.UTC) }

// testHostname is the machine name the senders of these tests see, so that
// no test depends on the name of the machine it runs on.
const testHostname = "checker-host.example.test"

// smtpFor returns an SMTP sender for srv, trusting its CA.
func smtpFor(srv *mailtest.Server, security string) *SMTP {
	s := NewSMTP(SMTPConfig{
		Host:      srv.Host,
		Port:      srv.SMTPPort,
		Security:  security,
		User:      srv.User,
		Pass:      srv.Pass,
		TLSConfig: &tls.Config{RootCAs: srv.CertPool()},
		Timeout:   10 * time.Second,
		Now:       fixedNow,
	})
	s.hostname = func() (string, error) { return testHostname, nil }
	return s
}

// msgIDGrammar is RFC 5322's msg-id (section 3.6.4) without obsolete forms
// and without folding white space: "<" dot-atom-text "@" (dot-atom-text /
// no-fold-literal) ">".
var msgIDGrammar = func() *regexp.Regexp {
	const atext = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]"
	const dotAtomText = atext + "+(?:\\." + atext + "+)*"
	const noFoldLiteral = "\\[[\\x21-\\x5a\\x5e-\\x7e]*\\]"
	return regexp.MustCompile("^<" + dotAtomText + "@(?:" + dotAtomText + "|" + noFoldLiteral + ")>$")
}()

// msgIDs splits a References or In-Reply-To value into its msg-ids,
// checking each against the grammar.
func msgIDs(t *testing.T, field, value string) []string {
	t.Helper()
	ids := strings.Fields(value)
	for _, id := range ids {
		if !msgIDGrammar.MatchString(id) {
			t.Errorf("%s holds %q, not a valid msg-id", field, id)
		}
	}
	return ids
}

func TestSMTPSendSecurityModes(t *testing.T) {
	for _, tc := range []struct {
		security string
		mechs    []string
	}{
		{"none", nil},
		{"starttls", nil},
		{"tls", nil},
		{"starttls", []string{"LOGIN"}},
	} {
		t.Run(tc.security+strings.Join(tc.mechs, ""), func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{Security: tc.security, AuthMechanisms: tc.mechs})
			m := Mail{
				To:      []string{"admin@example.test"},
				Subject: "[web1] Straße ✓ is down",
				Body:    "tcp:db failed since 14:00\nthird time, on web1 — sorry\n",
				Header:  map[string]string{"X-Checker-Job": "tcp:db"},
			}
			if err := smtpFor(srv, tc.security).Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.WaitReceived(t, 1, 5*time.Second)[0]
			if got.From != srv.User {
				t.Errorf("envelope From = %q, want %q", got.From, srv.User)
			}
			if strings.Join(got.To, ",") != strings.Join(m.To, ",") {
				t.Errorf("envelope To = %q, want %q", got.To, m.To)
			}
			if got.Subject != m.Subject {
				t.Errorf("Subject = %q, want %q", got.Subject, m.Subject)
			}
			if body := strings.ReplaceAll(got.Body, "\r\n", "\n"); body != m.Body {
				t.Errorf("Body = %q, want %q", body, m.Body)
			}
			h := got.Header
			if d, err := h.Date(); err != nil || !d.Equal(fixedNow()) {
				t.Errorf("Date = %q (%v), want %v", h.Get("Date"), err, fixedNow())
			}
			if id := h.Get("Message-Id"); !msgIDGrammar.MatchString(id) || !strings.HasSuffix(id, "@example.test>") {
				t.Errorf("Message-ID = %q, want a valid msg-id in the user's domain example.test", id)
			}
			for field, want := range map[string]string{
				"Auto-Submitted":           "auto-generated",
				"X-Auto-Response-Suppress": "All",
				"X-Checker-Job":            "tcp:db",
				"User-Agent":               "checker",
			} {
				if got := h.Get(field); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			if got.Helo != testHostname {
				t.Errorf("EHLO %q, want %q", got.Helo, testHostname)
			}
			if got.AuthUser != srv.User {
				t.Errorf("authenticated as %q, want %q", got.AuthUser, srv.User)
			}
			if ct := strings.ToLower(h.Get("Content-Type")); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "utf-8") {
				t.Errorf("Content-Type = %q, want text/plain UTF-8", ct)
			}
			if !strings.Contains(h.Get("From"), srv.User) {
				t.Errorf("From header = %q", h.Get("From"))
			}
		})
	}
}

func TestNewSMTPDefaults(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          SMTPConfig
		wantSecurity string
		wantPort     int
		wantFrom     string
	}{
		{"all defaults", SMTPConfig{Host: "h", User: "u@x"}, "starttls", 587, "u@x"},
		{"port 465 means tls", SMTPConfig{Host: "h", Port: 465, User: "u@x"}, "tls", 465, "u@x"},
		{"port 25 keeps starttls", SMTPConfig{Host: "h", Port: 25, User: "u@x"}, "starttls", 25, "u@x"},
		{"tls default port", SMTPConfig{Host: "h", Security: "TLS", User: "u@x"}, "tls", 465, "u@x"},
		{"none default port", SMTPConfig{Host: "h", Security: "none", From: "f@x"}, "none", 25, "f@x"},
		{"explicit From wins", SMTPConfig{Host: "h", User: "u@x", From: "f@x"}, "starttls", 587, "f@x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSMTP(tc.cfg)
			if s.cfg.Security != tc.wantSecurity || s.cfg.Port != tc.wantPort || s.cfg.From != tc.wantFrom {
				t.Errorf("got %s:%d from %q, want %s:%d from %q", s.cfg.Security, s.cfg.Port, s.cfg.From,
					tc.wantSecurity, tc.wantPort, tc.wantFrom)
			}
			if s.cfg.Timeout != defaultSMTPTimeout {
				t.Errorf("Timeout = %s, want %s", s.cfg.Timeout, defaultSMTPTimeout)
			}
		})
	}
}

func TestSMTPSendErrors(t *testing.T) {
	const pass = `pa"ss;#w\rd`
	for _, tc := range []struct {
		name     string
		opts     mailtest.Options
		security string // the client's; empty means the server's
		prepare  func(srv *mailtest.Server, cfg *SMTPConfig)
		mail     Mail
		want     []string // substrings of the error; the address is always checked
	}{
		{
			name:     "starttls required but not offered",
			opts:     mailtest.Options{Security: "none"},
			security: "starttls",
			want:     []string{"smtp TLS with", "does not offer STARTTLS"},
		},
		{
			name:    "wrong password",
			opts:    mailtest.Options{Security: "starttls", Pass: "the-right-one"},
			prepare: func(_ *mailtest.Server, cfg *SMTPConfig) { cfg.Pass = pass },
			want:    []string{"smtp auth to", "as " + mailtest.DefaultUser, "535"},
		},
		{
			name:    "untrusted certificate",
			opts:    mailtest.Options{Security: "tls"},
			prepare: func(_ *mailtest.Server, cfg *SMTPConfig) { cfg.TLSConfig = nil },
			want:    []string{"smtp TLS with", "certificate"},
		},
		{
			name: "InsecureSkipVerify is ignored",
			opts: mailtest.Options{Security: "starttls"},
			prepare: func(_ *mailtest.Server, cfg *SMTPConfig) {
				cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true}
			},
			want: []string{"smtp TLS with", "certificate"},
		},
		{
			name:    "server down",
			prepare: func(srv *mailtest.Server, _ *SMTPConfig) { srv.StopSMTP() },
			want:    []string{"smtp dial", "refused"},
		},
		{
			name:    "recipient refused",
			prepare: func(srv *mailtest.Server, _ *SMTPConfig) { srv.SetSMTPFailure(mailtest.FailRefuseRcpt) },
			want:    []string{"smtp send to", "550"},
		},
		{
			name:    "connection dropped in DATA",
			prepare: func(srv *mailtest.Server, _ *SMTPConfig) { srv.SetSMTPFailure(mailtest.FailDropData) },
			want:    []string{"smtp send to"},
		},
		{
			name: "no recipients",
			mail: Mail{Subject: "x"},
			want: []string{"smtp send to", "no recipients"},
		},
		{
			name: "several recipients",
			mail: Mail{To: []string{mailtest.DefaultUser, "admin@example.test"}, Subject: "x"},
			want: []string{"smtp send to", "2 recipients", "exactly one recipient"},
		},
		{
			name: "header that is not an X- field",
			mail: Mail{To: []string{mailtest.DefaultUser}, Subject: "x", Header: map[string]string{"Bcc": "a@example.test"}},
			want: []string{"smtp send to", `header "Bcc"`},
		},
		{
			name: "message ID that is not dot-atom-text",
			mail: Mail{To: []string{mailtest.DefaultUser}, Subject: "x", ID: "a..b"},
			want: []string{"smtp send to", `message ID "a..b"`},
		},
		{
			name: "password configured, but the server offers no AUTH",
			opts: mailtest.Options{NoAuth: true},
			want: []string{"smtp auth to", "server offers no AUTH"},
		},
		{
			name:    "no password, but the server requires AUTH",
			prepare: func(_ *mailtest.Server, cfg *SMTPConfig) { cfg.Pass = "" },
			want:    []string{"smtp send to", "MAIL FROM", "authenticate"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.opts)
			security := tc.security
			if security == "" {
				security = tc.opts.Security
			}
			if security == "" {
				security = "none"
			}
			s := smtpFor(srv, security)
			cfg := s.cfg
			if tc.prepare != nil {
				tc.prepare(srv, &cfg)
			}
			m := tc.mail
			if m.To == nil && m.Subject == "" {
				m = Mail{To: []string{srv.User}, Subject: "hello", Body: "body"}
			}
			err := NewSMTP(cfg).Send(context.Background(), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			t.Logf("error: %v", err)
			msg := err.Error()
			for _, w := range append(tc.want, srv.SMTPAddr) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if cfg.Pass != "" && strings.Contains(msg, cfg.Pass) {
				t.Errorf("error %q contains the password", msg)
			}
			if n := len(srv.Received()); n != 0 {
				t.Errorf("server received %d messages", n)
			}
		})
	}
}

// TestIsPermanent sends into each kind of failure and checks which ones
// IsPermanent calls a permanent refusal of the recipient.
func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    mailtest.Options
		prepare func(srv *mailtest.Server, s *SMTP)
		want    bool
	}{
		{"recipient refused with 550", mailtest.Options{}, func(srv *mailtest.Server, _ *SMTP) { srv.SetSMTPFailure(mailtest.FailRefuseRcpt) }, true},
		{"EHLO name refused with 504 at RCPT TO", mailtest.Options{RequireFQDNHelo: true}, func(_ *mailtest.Server, s *SMTP) { s.cfg.Helo = "vm" }, true},
		{"recipient deferred with 451", mailtest.Options{}, func(srv *mailtest.Server, _ *SMTP) { srv.SetSMTPFailure(mailtest.FailTempRcpt) }, false},
		{"connection dropped in DATA", mailtest.Options{}, func(srv *mailtest.Server, _ *SMTP) { srv.SetSMTPFailure(mailtest.FailDropData) }, false},
		{"server down", mailtest.Options{}, func(srv *mailtest.Server, _ *SMTP) { srv.StopSMTP() }, false},
		{"server hangs", mailtest.Options{}, func(srv *mailtest.Server, s *SMTP) {
			srv.SetSMTPFailure(mailtest.FailHang)
			s.cfg.Timeout = 200 * time.Millisecond
		}, false},
		{"wrong password (535)", mailtest.Options{}, func(_ *mailtest.Server, s *SMTP) { s.cfg.Pass = "wrong" }, false},
		{"AUTH required, none sent (502 at MAIL FROM)", mailtest.Options{}, func(_ *mailtest.Server, s *SMTP) { s.cfg.Pass = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.opts)
			s := smtpFor(srv, "none")
			tc.prepare(srv, s)
			err := s.Send(context.Background(), Mail{To: []string{"admin@example.test"}, Subject: "s"})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			t.Logf("error: %v", err)
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent = %v, want %v", got, tc.want)
			}
		})
	}
	for _, err := range []error{nil, errors.New("550 looks like a reply but is not one"), context.DeadlineExceeded} {
		if IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = true", err)
		}
	}
}

// TestSMTPNoAuthWithoutPassword sends through a relay that offers no AUTH,
// as one that trusts the network does: with a user but no password,
// nothing is attempted and the mail goes out.
func TestSMTPNoAuthWithoutPassword(t *testing.T) {
	for _, security := range []string{"none", "starttls"} {
		t.Run(security, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{NoAuth: true, Security: security})
			s := smtpFor(srv, security)
			s.cfg.Pass = ""
			if err := s.Send(context.Background(), Mail{To: []string{"admin@example.test"}, Subject: "s", Body: "b"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.WaitReceived(t, 1, 5*time.Second)[0]
			if got.AuthUser != "" || got.From != srv.User {
				t.Errorf("authenticated as %q, sent from %q; want no AUTH, from %q", got.AuthUser, got.From, srv.User)
			}
		})
	}
}

// TestSMTPEHLOName checks the name the server saw in EHLO, with a server
// that refuses a name that is not fully qualified as Postfix does.
func TestSMTPEHLOName(t *testing.T) {
	hosts := func(t *testing.T, content string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const debianHosts = "127.0.0.1\tlocalhost\n127.0.1.1\tvm.example.test vm\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\n"
	for _, tc := range []struct {
		name     string
		helo     string // configured
		hostname string // "" makes os.Hostname fail
		hosts    string // content of the hosts file; "-" for none at all
		want     string
	}{
		{"configured", "mx.example.test", "vm", "-", "mx.example.test"},
		{"configured address literal", "[192.0.2.7]", "vm", "-", "[192.0.2.7]"},
		{"host name is fully qualified", "", "vm.example.test", "-", "vm.example.test"},
		{"host name with a trailing dot", "", "vm.example.test.", "-", "vm.example.test"},
		{"canonical name from /etc/hosts", "", "vm", debianHosts, "vm.example.test"},
		{"alias extends the host name", "", "vm", "192.0.2.7 vm vm.corp.example.test\n", "vm.corp.example.test"},
		{"name of another host", "", "vm", "192.0.2.8 db.example.test db\n", "[127.0.0.1]"},
		{"localhost names do not count", "", "vm", "127.0.0.1 localhost.localdomain localhost vm\n", "[127.0.0.1]"},
		{"commented out", "", "vm", "# 127.0.1.1 vm.example.test vm\n", "[127.0.0.1]"},
		{"no hosts file", "", "vm", "-", "[127.0.0.1]"},
		{"garbage hosts file", "", "vm", "\x00\xff vm\nvm.example.test vm\n", "[127.0.0.1]"},
		{"host name unknown", "", "", debianHosts, "[127.0.0.1]"},
		{"host name not a name", "", "vm_1", "127.0.1.1 vm_1.example.test vm_1\n", "[127.0.0.1]"},
		{"numeric host name", "", "10.1.2.3", "-", "[127.0.0.1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{RequireFQDNHelo: true})
			cfg := smtpFor(srv, "none").cfg
			cfg.Helo = tc.helo
			s := NewSMTP(cfg)
			s.hostname = func() (string, error) {
				if tc.hostname == "" {
					return "", errors.New("no name")
				}
				return tc.hostname, nil
			}
			s.hostsFile = filepath.Join(t.TempDir(), "absent")
			if tc.hosts != "-" {
				s.hostsFile = hosts(t, tc.hosts)
			}
			if err := s.Send(context.Background(), Mail{To: []string{"admin@example.test"}, Subject: "s"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := srv.WaitReceived(t, 1, 5*time.Second)[0].Helo; got != tc.want {
				t.Errorf("server saw EHLO %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddressLiteral(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}, "[192.0.2.7]"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}, "[IPv6:2001:db8::7]"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, "[IPv6:::1]"},
		{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 8), Port: 1}, "[192.0.2.8]"},
		{nil, "[127.0.0.1]"},
	} {
		if got := addressLiteral(tc.addr); got != tc.want {
			t.Errorf("addressLiteral(%v) = %q, want %q", tc.addr, got, tc.want)
		}
		if !ValidHelo(tc.want) {
			t.Errorf("ValidHelo(%q) = false", tc.want)
		}
	}
	for _, bad := range []string{"vm", "[vm]", "[::1]", "[IPv6:192.0.2.7]", "[192.0.2.7", "192.0.2.7", "vm.example.test\r\nRSET", "-vm.example.test"} {
		if ValidHelo(bad) {
			t.Errorf("ValidHelo(%q) = true", bad)
		}
	}
}

// TestMessageIDDomain checks the right part of Message-IDs on the mails a
// server received.
func TestMessageIDDomain(t *testing.T) {
	for _, tc := range []struct {
		name, user, helo, hostname, want string
	}{
		{"domain of the user", "checker@ops.example.test", "", "vm.example.test", "@ops.example.test>"},
		{"display name and angle brackets", "Checker <checker@ops.example.test>", "", "vm.example.test", "@ops.example.test>"},
		{"domain literal: the machine's name", "checker@[192.0.2.7]", "", "vm.example.test", "@vm.example.test>"},
		{"domain literal: the configured EHLO name", "checker@[192.0.2.7]", "mx.example.test", "vm", "@mx.example.test>"},
		{"domain literal, EHLO literal: the machine's name", "checker@[192.0.2.7]", "[192.0.2.7]", "vm.example.test", "@vm.example.test>"},
		{"no name anywhere: the safe default", "checker@[192.0.2.7]", "", "vm", "@" + defaultIDDomain + ">"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{NoAuth: true})
			cfg := smtpFor(srv, "none").cfg
			cfg.User, cfg.From, cfg.Pass, cfg.Helo = tc.user, "", "", tc.helo
			s := NewSMTP(cfg)
			s.hostname = func() (string, error) { return tc.hostname, nil }
			s.hostsFile = filepath.Join(t.TempDir(), "absent")
			if err := s.Send(context.Background(), Mail{To: []string{"admin@example.test"}, Subject: "s"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			id := srv.WaitReceived(t, 1, 5*time.Second)[0].Header.Get("Message-Id")
			if !msgIDGrammar.MatchString(id) || !strings.HasSuffix(id, tc.want) {
				t.Errorf("Message-ID %q, want a valid msg-id ending in %q", id, tc.want)
			}
		})
	}
}

// TestMessageIDGrammar checks 100,000 generated Message-IDs, random ones and
// thread roots, against RFC 5322's grammar, and a sample of them as written
// into real messages.
func TestMessageIDGrammar(t *testing.T) {
	const n = 100_000
	c := Composer{ServerName: "web1 (eu) ✓"}
	seen := make(map[string]bool, n)
	for i := range n {
		var left string
		if i%2 == 0 {
			left = randomIDLeft()
		} else {
			left = c.ThreadRoot(randomToken(i%7)+". ..@<>", fmt.Sprintf("Admin%d@Example.test", i))
		}
		id := "<" + left + "@example.test>"
		if !msgIDGrammar.MatchString(id) || !validIDLeft(left) {
			t.Fatalf("generated Message-ID %q is not valid under RFC 5322", id)
		}
		if seen[id] {
			t.Fatalf("generated Message-ID %q twice", id)
		}
		seen[id] = true
	}

	s := NewSMTP(SMTPConfig{Host: "127.0.0.1", User: "checker@example.test", Pass: "p", Now: fixedNow})
	for i := range 1000 {
		m := Mail{To: []string{"admin@example.test"}, Subject: "s", Body: "b"}
		if i%2 == 1 {
			m.ID = c.ThreadRoot(strconv.Itoa(i), "admin@example.test")
			m.References = []string{randomIDLeft(), m.ID}
			m.InReplyTo = []string{m.ID}
		}
		msg, err := s.message(m)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		parsed, err := netmail.ReadMessage(&buf)
		if err != nil {
			t.Fatalf("written message does not parse: %v", err)
		}
		if id := parsed.Header.Get("Message-Id"); !msgIDGrammar.MatchString(id) {
			t.Fatalf("written Message-ID %q is not valid", id)
		}
		msgIDs(t, "References", parsed.Header.Get("References"))
		msgIDs(t, "In-Reply-To", parsed.Header.Get("In-Reply-To"))
	}
}

// TestSMTPHeaderValuesStayOneLine checks that a header value cannot add
// fields of its own.
func TestSMTPHeaderValuesStayOneLine(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	m := Mail{To: []string{"admin@example.test"}, Subject: "s", Header: map[string]string{
		"X-Checker-Job":            "tcp:db\r\nBcc: victim@example.test",
		"X-Auto-Response-Suppress": "None",
	}}
	if err := smtpFor(srv, "none").Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitReceived(t, 1, 5*time.Second)[0]
	if got.Header.Get("Bcc") != "" || strings.Join(got.To, ",") != "admin@example.test" {
		t.Errorf("a header value added fields: Bcc %q, recipients %q", got.Header.Get("Bcc"), got.To)
	}
	if job := got.Header.Get("X-Checker-Job"); job != "tcp:db  Bcc: victim@example.test" {
		t.Errorf("X-Checker-Job = %q", job)
	}
	if v := got.Header.Get("X-Auto-Response-Suppress"); v != "All" {
		t.Errorf("X-Auto-Response-Suppress = %q, want All whatever the caller says", v)
	}
}

func TestSMTPSendBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SMTPConfig
		want string
	}{
		{"no host", SMTPConfig{User: "u@x"}, "no server host"},
		{"bad security", SMTPConfig{Host: "h", Security: "ssl", User: "u@x"}, `security "ssl"`},
		{"bad port", SMTPConfig{Host: "h", Port: 70000, User: "u@x"}, "port 70000"},
		{"no sender", SMTPConfig{Host: "h"}, "no sender"},
		{"short EHLO name", SMTPConfig{Host: "h", User: "u@x", Helo: "vm"}, `helo "vm": want a fully qualified domain name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewSMTP(tc.cfg).Send(context.Background(), Mail{To: []string{"a@b"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestSMTPSendHungServer checks that neither a cancelled context nor the
// whole-send timeout lets Send hang on a server that never answers.
func TestSMTPSendHungServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
		want    error
	}{
		{"context cancelled", time.Minute, true, context.Canceled},
		{"send timeout", 300 * time.Millisecond, false, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{})
			srv.SetSMTPFailure(mailtest.FailHang)
			s := smtpFor(srv, "none")
			s.cfg.Timeout = tc.timeout
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			done := make(chan error, 1)
			go func() { done <- s.Send(ctx, Mail{To: []string{srv.User}, Subject: "s"}) }()
			select {
			case err := <-done:
				t.Logf("error: %v", err)
				if !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), srv.SMTPAddr) {
					t.Errorf("error %q does not name the server", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Send hung")
			}
		})
	}
}

// TestSMTPPasswordScrubbed talks to a scripted server that echoes the AUTH
// payload and the decoded password in its rejection.
func TestSMTPPasswordScrubbed(t *testing.T) {
	const pass = "s3cret;#pw"
	addr := scriptedServer(t, func(conn net.Conn) {
		r := bufio.NewReader(conn)
		say := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		say("220 echo ESMTP")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO":
				say("250-echo")
				say("250 AUTH PLAIN")
			case "AUTH":
				payload := strings.Fields(line)[2]
				raw, _ := base64.StdEncoding.DecodeString(payload)
				say("535 5.7.8 rejected " + payload + " = " + strings.ReplaceAll(string(raw), "\x00", " "))
			case "QUIT":
				say("221 bye")
				return
			default:
				say("502 no")
			}
		}
	})
	host, port := splitAddr(t, addr)
	err := NewSMTP(SMTPConfig{Host: host, Port: port, Security: "none", User: "u@example.test", Pass: pass}).
		Send(context.Background(), Mail{To: []string{"u@example.test"}, Subject: "s"})
	if err == nil {
		t.Fatal("Send succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "rejected") {
		t.Errorf("error %q lost the server's reply", err)
	}
	for _, form := range []string{pass, base64.StdEncoding.EncodeToString([]byte("\x00u@example.test\x00" + pass))} {
		if strings.Contains(err.Error(), form) {
			t.Errorf("error %q contains the password as %q", err, form)
		}
	}
}

// scriptedServer serves each connection with handle on a loopback port until
// the test ends, and returns the address.
func scriptedServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcp.IP.String(), tcp.Port
}

// BenchmarkSMTPMessage builds and writes one threaded alert mail, all
// headers included, as Send does before it dials.
func BenchmarkSMTPMessage(b *testing.B) {
	s := NewSMTP(SMTPConfig{Host: "127.0.0.1", User: "checker@example.test", Pass: "p", Now: fixedNow})
	c := Composer{ServerName: "web1", Now: fixedNow}
	m := c.Compose("ops@example.test", []state.Notice{{Job: "tcp:db", Kind: state.KindRecovery, Status: "OK", Thread: "T",
		Subject: "tcp:db recovered", Body: "tcp:db is working again on web1.\n", Created: fixedNow()}})
	var buf bytes.Buffer
	for b.Loop() {
		msg, err := s.message(m)
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		if _, err := msg.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
}
