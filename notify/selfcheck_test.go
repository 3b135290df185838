package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"mime"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"checker/internal/mailtest"
)

// selfCheckFor builds a SelfCheck against srv: SMTP with smtpSec, IMAP with
// imapSec on mailbox.
func selfCheckFor(srv *mailtest.Server, smtpSec, imapSec, mailbox string) *SelfCheck {
	return &SelfCheck{
		SMTP:       smtpFor(srv, smtpSec),
		From:       srv.User,
		ServerName: "web1",
		IMAP: IMAPConfig{
			Host:      srv.Host,
			Port:      srv.IMAPPort,
			Security:  imapSec,
			User:      srv.User,
			Pass:      srv.Pass,
			Mailbox:   mailbox,
			TLSConfig: &tls.Config{RootCAs: srv.CertPool()},
			Timeout:   10 * time.Second,
		},
		Wait: 10 * time.Second,
		Poll: 50 * time.Millisecond,
		Now:  fixedNow,
	}
}

// runWithGuard runs c and fails the test if Run does not return within a
// generous bound.
func runWithGuard(t *testing.T, ctx context.Context, c *SelfCheck) (string, error) {
	t.Helper()
	type result struct {
		log string
		err error
	}
	done := make(chan result, 1)
	go func() {
		log, err := c.Run(ctx)
		done <- result{log, err}
	}()
	select {
	case r := <-done:
		t.Logf("session log:\n%s", r.log)
		if r.err != nil {
			t.Logf("error: %v", r.err)
		}
		return r.log, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("Run hung")
		return "", nil
	}
}

func assertNoSecret(t *testing.T, secret, log string, err error) {
	t.Helper()
	if strings.Contains(log, secret) {
		t.Errorf("session log contains the password %q", secret)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error contains the password %q", secret)
	}
}

func TestSelfCheckEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name             string
		smtpSec, imapSec string
		deliverTo        string // also the mailbox the check reads
	}{
		{"plain SMTP and IMAP", "none", "none", ""},
		{"STARTTLS SMTP, implicit TLS IMAP", "starttls", "tls", ""},
		{"implicit TLS SMTP, STARTTLS IMAP", "tls", "starttls", ""},
		{"sent mail lands in the trash", "starttls", "tls", "[Gmail]/Trash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{
				Security:     tc.smtpSec,
				IMAPSecurity: tc.imapSec,
				DeliverTo:    tc.deliverTo,
			})
			mailbox := tc.deliverTo
			if mailbox == "" {
				mailbox = "INBOX"
			}
			// Unrelated mail, including a probe of an older version, must
			// survive.
			srv.AppendMessage(t, mailbox, []byte("From: "+srv.User+"\r\nSubject: checker self-check 0000\r\n\r\nold\r\n"))

			log, err := runWithGuard(t, context.Background(), selfCheckFor(srv, tc.smtpSec, tc.imapSec, tc.deliverTo))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := srv.WaitReceived(t, 1, 5*time.Second)
			if len(got) != 1 || !regexp.MustCompile(`^checker self-check \[web1\] [0-9a-f]{24}$`).MatchString(got[0].Subject) {
				t.Fatalf("received %d mails, first subject %q", len(got), got[0].Subject)
			}
			for field, want := range map[string]string{
				"Auto-Submitted":   "auto-generated",
				"X-Checker-Server": "web1",
				"X-Checker-Job":    "email:selfcheck",
			} {
				if v := got[0].Header.Get(field); v != want {
					t.Errorf("probe %s = %q, want %q", field, v, want)
				}
			}
			if got[0].From != srv.User || strings.Join(got[0].To, ",") != srv.User {
				t.Errorf("probe went %q -> %q, want from and to %q", got[0].From, got[0].To, srv.User)
			}
			token := strings.TrimPrefix(got[0].Subject, "checker self-check [web1] ")
			if n := srv.MailboxMessages(mailbox); n != 1 {
				t.Errorf("%s holds %d messages after the check, want 1 (only the unrelated one)", mailbox, n)
			}
			for _, want := range []string{
				"2024-03-09T14:30:00.000Z sending probe",
				"connecting to " + srv.IMAPAddr,
				"logging in as " + srv.User,
				"selected " + mailbox + ": 2 messages",
				"SINCE 8-Mar-2024 SUBJECT " + token,
				"found UID",
				"no earlier probes of this checker",
				"deleted probe UID",
				"self-check passed",
			} {
				if !strings.Contains(log, want) {
					t.Errorf("session log lacks %q", want)
				}
			}
			assertNoSecret(t, srv.Pass, log, err)
		})
	}
}

func TestSelfCheckMailNeverArrives(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{DropMail: true})
	c := selfCheckFor(srv, "none", "none", "")
	c.Wait = time.Second
	c.Poll = 200 * time.Millisecond
	log, err := runWithGuard(t, context.Background(), c)
	if err == nil {
		t.Fatal("Run succeeded though the mail was dropped")
	}
	if !regexp.MustCompile(`^probe mail with token [0-9a-f]{24} not found in INBOX after 1s$`).MatchString(err.Error()) {
		t.Errorf("error = %q", err)
	}
	if n := strings.Count(log, "not yet"); n < 2 {
		t.Errorf("session log shows %d searches, want several", n)
	}
	assertNoSecret(t, srv.Pass, log, err)
}

func TestSelfCheckWrongIMAPPassword(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := selfCheckFor(srv, "none", "none", "")
	c.IMAP.Pass = `wr0ng;#"pass\`
	log, err := runWithGuard(t, context.Background(), c)
	if err == nil {
		t.Fatal("Run succeeded with a wrong password")
	}
	want := "imap login to " + srv.IMAPAddr + " as " + srv.User + ": "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	if !strings.Contains(log, "login failed") {
		t.Errorf("session log does not show the failed login")
	}
	assertNoSecret(t, c.IMAP.Pass, log, err)
}

func TestSelfCheckSMTPFailure(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.StopSMTP()
	log, err := runWithGuard(t, context.Background(), selfCheckFor(srv, "none", "none", ""))
	if err == nil || !strings.HasPrefix(err.Error(), "smtp send: smtp dial "+srv.SMTPAddr) {
		t.Fatalf("error = %v, want an smtp send error", err)
	}
	if strings.Contains(log, "connecting to") {
		t.Error("IMAP was tried after the send failed")
	}
}

func TestSelfCheckMissingMailbox(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	_, err := runWithGuard(t, context.Background(), selfCheckFor(srv, "none", "none", "[Gmail]/Trash"))
	if err == nil || !strings.HasPrefix(err.Error(), "imap select [Gmail]/Trash on "+srv.IMAPAddr) {
		t.Fatalf("error = %v, want a select error", err)
	}
}

func TestSelfCheckIMAPSecurityMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, server, client, want string
	}{
		{"STARTTLS not offered", "none", "starttls", "imap STARTTLS with"},
		{"TLS client, plain server", "none", "tls", "imap TLS with"},
		{"plain client, STARTTLS-only login", "starttls", "none", "imap login to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{IMAPSecurity: tc.server})
			c := selfCheckFor(srv, "none", tc.client, "")
			c.IMAP.Timeout = 2 * time.Second
			_, err := runWithGuard(t, context.Background(), c)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// TestSelfCheckCancel checks that Run returns soon after ctx is cancelled,
// wherever it is waiting.
func TestSelfCheckCancel(t *testing.T) {
	t.Run("while polling", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{DropMail: true})
		c := selfCheckFor(srv, "none", "none", "")
		c.Wait = time.Minute
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(300*time.Millisecond, cancel)
		_, err := runWithGuard(t, ctx, c)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("while the SMTP server hangs", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		srv.SetSMTPFailure(mailtest.FailHang)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := runWithGuard(t, ctx, selfCheckFor(srv, "none", "none", ""))
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "smtp send: ") {
			t.Fatalf("error = %v, want a cancelled smtp send", err)
		}
	})
	t.Run("while the IMAP server hangs", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		c := selfCheckFor(srv, "none", "none", "")
		c.IMAP.Host, c.IMAP.Port = splitAddr(t, scriptedServer(t, func(conn net.Conn) {
			_, _ = bufio.NewReader(conn).ReadString(0) // say nothing until closed
		}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := runWithGuard(t, ctx, c)
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "imap greeting from ") {
			t.Fatalf("error = %v, want a cancelled IMAP greeting", err)
		}
	})
}

func TestSelfCheckIMAPCommandTimeout(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := selfCheckFor(srv, "none", "none", "")
	// Greets, then never answers a command.
	c.IMAP.Host, c.IMAP.Port = splitAddr(t, scriptedServer(t, func(conn net.Conn) {
		_, _ = conn.Write([]byte("* OK IMAP4rev1 ready\r\n"))
		_, _ = bufio.NewReader(conn).ReadString(0)
	}))
	c.IMAP.Timeout = 300 * time.Millisecond
	_, err := runWithGuard(t, context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "imap login to") || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("error = %v, want a login timeout", err)
	}
}

// TestSelfCheckServerEchoesPassword uses a scripted IMAP server whose LOGIN
// rejection repeats the command it got.
func TestSelfCheckServerEchoesPassword(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	c := selfCheckFor(srv, "none", "none", "")
	c.IMAP.Pass = `pa"ss w\rd`
	c.IMAP.Host, c.IMAP.Port = splitAddr(t, scriptedServer(t, func(conn net.Conn) {
		_, _ = conn.Write([]byte("* OK IMAP4rev1 ready\r\n"))
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			_, _ = conn.Write([]byte(tag + " NO [AUTHENTICATIONFAILED] refused: " + rest + "\r\n"))
		}
	}))
	log, err := runWithGuard(t, context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "refused: LOGIN") {
		t.Fatalf("error = %v, want the server's echoing refusal", err)
	}
	assertNoSecret(t, c.IMAP.Pass, log, err)
	assertNoSecret(t, `pa\"ss w\\rd`, log, err) // the IMAP-quoted form
}

func TestSelfCheckBadConfig(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	for _, tc := range []struct {
		name   string
		mutate func(c *SelfCheck)
		want   string
	}{
		{"no sender", func(c *SelfCheck) { c.SMTP = nil }, "no SMTP sender"},
		{"no address", func(c *SelfCheck) { c.From = "" }, "no user address"},
		{"no IMAP host", func(c *SelfCheck) { c.IMAP.Host = "" }, "no IMAP server host"},
		{"bad IMAP security", func(c *SelfCheck) { c.IMAP.Security = "ssl" }, `IMAP security "ssl"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := selfCheckFor(srv, "none", "none", "")
			tc.mutate(c)
			_, err := c.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if n := len(srv.Received()); n != 0 {
		t.Errorf("a misconfigured check sent %d mails", n)
	}
}

func TestSelfCheckDefaults(t *testing.T) {
	c := (&SelfCheck{From: "me@example.test", IMAP: IMAPConfig{Host: "imap.example.test"}}).withDefaults()
	if c.Wait != 60*time.Second || c.Poll != 2*time.Second || c.Now == nil {
		t.Errorf("Wait %s Poll %s Now %v", c.Wait, c.Poll, c.Now != nil)
	}
	ic := c.IMAP
	if ic.Security != "tls" || ic.Port != 993 || ic.User != "me@example.test" || ic.Mailbox != "INBOX" || ic.Timeout != 30*time.Second {
		t.Errorf("IMAP defaults = %+v", ic)
	}
	if p := (&SelfCheck{IMAP: IMAPConfig{Security: "starttls"}}).withDefaults().IMAP.Port; p != 143 {
		t.Errorf("starttls port = %d, want 143", p)
	}
}

// TestSelfCheckDeletesStaleProbes leaves the probes of failed checks in the
// mailbox, of this checker and of another one sharing it, runs a check that
// succeeds, and looks at what is left.
func TestSelfCheckDeletesStaleProbes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverName string
		deliverTo  string
	}{
		{"INBOX", "web1", ""},
		{"trash folder", "web1", "[Gmail]/Trash"},
		{"server name with spaces, brackets and UTF-8", "Prod [eu] ✓", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{DeliverTo: tc.deliverTo})
			c := selfCheckFor(srv, "none", "none", tc.deliverTo)
			c.ServerName = tc.serverName
			c.Wait = 10 * time.Second
			mailbox := tc.deliverTo
			if mailbox == "" {
				mailbox = "INBOX"
			}
			ours := "checker self-check [" + tc.serverName + "] "
			put := func(from, subject string, age time.Duration) {
				t.Helper()
				raw := "From: " + from + "\r\nTo: " + srv.User + "\r\n" +
					"Subject: " + mime.QEncoding.Encode("utf-8", subject) + "\r\n" +
					"Date: " + fixedNow().Add(-age).Format(time.RFC1123Z) + "\r\n\r\nprobe\r\n"
				srv.AppendMessage(t, mailbox, []byte(raw))
			}
			// Left behind by failed checks of this checker: to be deleted.
			put(srv.User, ours+"0123456789abcdef01234567", 50*time.Minute)
			put(srv.User, ours+"89abcdef0123456789abcdef", 26*time.Hour)
			put(srv.User, ours+"fedcba9876543210fedcba98", 30*24*time.Hour)
			// Everything else stays.
			keep := []string{
				"checker self-check [web2] 00112233445566778899aabb",                   // another checker's
				"checker self-check [" + tc.serverName + "0] 00112233445566778899aabb", // a name that extends ours
				ours + "aabbccddeeff001122334455",                                      // ours, but a check may still look for it
				"Re: " + ours + "0123456789abcdef01234567",                             // a reply to one of ours
				ours + "not-a-token",                                                   // not a probe subject
				"checker self-check 00112233445566778899aabb",                          // an older version's probe
			}
			put(srv.User, keep[0], 3*time.Hour)
			put(srv.User, keep[1], 3*time.Hour)
			put(srv.User, keep[2], 2*time.Second)
			put(srv.User, keep[3], 3*time.Hour)
			put(srv.User, keep[4], 3*time.Hour)
			put(srv.User, keep[5], 3*time.Hour)
			put("someone@example.test", ours+"112233445566778899aabbcc", 3*time.Hour) // another sender
			keep = append(keep, ours+"112233445566778899aabbcc")

			log, err := runWithGuard(t, context.Background(), c)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			left := srv.MailboxSubjects(t, mailbox)
			if strings.Join(left, "\n") != strings.Join(keep, "\n") {
				t.Errorf("%s holds\n  %s\nwant\n  %s", mailbox, strings.Join(left, "\n  "), strings.Join(keep, "\n  "))
			}
			if !strings.Contains(log, "earlier probes of this checker: 3 older than 10s, 1 younger (left alone)") ||
				!strings.Contains(log, "and 3 earlier probes UID") {
				t.Errorf("session log does not report the clean-up")
			}
		})
	}
}

// TestSelfCheckTwoCheckersShareAMailbox runs the checks of two checkers on
// one mailbox: each deletes its own probe and leaves the other's.
func TestSelfCheckTwoCheckersShareAMailbox(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	a := selfCheckFor(srv, "none", "none", "")
	b := selfCheckFor(srv, "none", "none", "")
	b.ServerName = "web2"
	// web2's probe from an hour ago is stale for web2, not web1's to take.
	srv.AppendMessage(t, "INBOX", []byte("From: "+srv.User+"\r\nSubject: checker self-check [web2] 00112233445566778899aabb\r\n"+
		"Date: "+fixedNow().Add(-time.Hour).Format(time.RFC1123Z)+"\r\n\r\nprobe\r\n"))
	if _, err := runWithGuard(t, context.Background(), a); err != nil {
		t.Fatalf("web1: %v", err)
	}
	if n := srv.MailboxMessages("INBOX"); n != 1 {
		t.Fatalf("after web1's check INBOX holds %d messages, want web2's probe", n)
	}
	if _, err := runWithGuard(t, context.Background(), b); err != nil {
		t.Fatalf("web2: %v", err)
	}
	if left := srv.MailboxSubjects(t, "INBOX"); len(left) != 0 {
		t.Errorf("after web2's check INBOX holds %q", left)
	}
}
