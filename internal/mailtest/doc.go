// Package mailtest runs a complete mail system on loopback for tests: an SMTP
// server (go-smtp) that delivers every accepted message into the mailbox of an
// in-memory IMAP server (go-imap v2 imapmemserver).
//
// Start it in a test, point an SMTP sender and an IMAP reader at SMTPAddr and
// IMAPAddr, and assert on Received (headers, the EHLO name, who
// authenticated), MailboxMessages or MailboxSubjects:
//
//	srv := mailtest.Start(t, mailtest.Options{Security: "starttls"})
//	// … send to srv.SMTPAddr as srv.User / srv.Pass, trusting srv.CertPool() …
//	got := srv.WaitReceived(t, 1, 5*time.Second)
//
// Both servers listen on 127.0.0.1 only, use a throw-away certificate
// authority made for each Server, and are shut down by t.Cleanup. Failure
// modes (refused recipients, dropped connections, a server that never
// answers, mail that never arrives) are switched with SetSMTPFailure and
// Options.DropMail, and Options.RequireFQDNHelo refuses a non-FQDN EHLO name
// the way Postfix does, so that callers can test their error paths against
// real protocol conversations instead of mocks.
package mailtest
