package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mail "github.com/wneessen/go-mail"

	"checker/internal/mailtest"
)

// fixedNow is the injected clock of these tests.
func fixedNow() time.Time { return time.Date(2024, 3, 9, 14, 30, 0, 0, time.UTC) }

// smtpFor returns an SMTP sender for srv, trusting its CA.
func smtpFor(srv *mailtest.Server, security string) *SMTP {
	return NewSMTP(SMTPConfig{
		Host:      srv.Host,
		Port:      srv.SMTPPort,
		Security:  security,
		User:      srv.User,
		Pass:      srv.Pass,
		TLSConfig: &tls.Config{RootCAs: srv.CertPool()},
		Timeout:   10 * time.Second,
		Now:       fixedNow,
	})
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
				To:      []string{srv.User, "admin@example.test"},
				Subject: "[web1] Straße ✓ is down",
				Body:    "tcp:db failed since 14:00\nthird time, on web1 — sorry\n",
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
			if h.Get("Message-Id") == "" {
				t.Error("no Message-ID header")
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
			if strings.Contains(msg, cfg.Pass) {
				t.Errorf("error %q contains the password", msg)
			}
			if n := len(srv.Received()); n != 0 {
				t.Errorf("server received %d messages", n)
			}
		})
	}
}

func TestSMTPSendErrorIsTemp(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		wantTemp bool
	}{
		{mailtest.FailRefuseRcpt, false},
		{mailtest.FailTempRcpt, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{})
			srv.SetSMTPFailure(tc.mode)
			err := smtpFor(srv, "none").Send(context.Background(), Mail{To: []string{srv.User}, Subject: "s"})
			var sendErr *mail.SendError
			if !errors.As(err, &sendErr) {
				t.Fatalf("err = %v, want a *mail.SendError inside", err)
			}
			if sendErr.IsTemp() != tc.wantTemp {
				t.Errorf("IsTemp = %v, want %v (%v)", sendErr.IsTemp(), tc.wantTemp, err)
			}
		})
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
