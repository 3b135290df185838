// Package notify gets alerts out and proves that they can get out.
//
// Mail out: Sender is the one interface the rest of checker sends through;
// SMTP implements it with go-mail (STARTTLS, implicit TLS or none, AUTH
// PLAIN/LOGIN, a bounded whole-send timeout, phase-named errors without the
// password). Composer, Deliver and the outbox turn pending notices into one
// digest mail per recipient and keep what could not be sent for the next run;
// Printer is the Sender of nomail mode.
//
// Mail in: SelfCheck mails a probe with a random token to the user's own
// address, finds it over IMAP (go-imap v2), deletes it, and returns a session
// log for the "Email Fetch Failure" alert (SPEC §6).
//
// Tests run against real servers on loopback from internal/mailtest.
package notify
