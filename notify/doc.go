// Package notify gets alerts out and proves that they can get out.
//
// Mail out: Sender is the one interface the rest of checker sends through;
// SMTP implements it with go-mail (STARTTLS, implicit TLS or none, AUTH
// PLAIN/LOGIN only when a password is set, EHLO with the machine's FQDN or
// an address literal, a bounded whole-send timeout, phase-named errors
// without the password). One Mail goes to one recipient, so that each
// delivery succeeds or fails on its own; IsPermanent tells a permanent
// refusal of that recipient (5xx) from a failure worth retrying. Every mail
// carries Auto-Submitted and X-Auto-Response-Suppress, so that no vacation
// reply comes back, and an RFC 5322 Message-ID in the user's domain.
//
// Composer turns the notices owed to one recipient into one mail (a digest
// when there are several) with X-Checker-Server, X-Checker-Job and
// X-Checker-State headers for filters, threads an outage's reminders and
// recovery under its first failure mail, and says in the body when a notice
// was held back. Deliver and the outbox keep what could not be sent for the
// next run; Printer is the Sender of nomail mode.
//
// Channels out: a Channel is a [channels] entry — Slack, Matrix,
// Mattermost, Telegram, ntfy, Gotify, Discord or Teams through shoutrrr's
// service packages (only those, not its router, which links every
// service), or a JSON webhook (webhook.go). A channel is a recipient like
// an address: Deliver routes each recipient through Outlets, and
// ComposeChat gives a channel the digest the mail would carry, cut to fit
// a chat message. A channel's URL holds secrets; String names it without
// them, and every error it returns has them removed. CheckChannel checks a
// URL without connecting; Printer.Channel prints in nomail mode.
//
// Mail in: SelfCheck mails a probe with a random token to the user's own
// address, finds it over IMAP (go-imap v2), deletes it together with the
// probes this checker's failed checks left behind, and returns a session
// log for the "Email Fetch Failure" alert (SPEC §6).
//
// Tests run against real servers on loopback from internal/mailtest.
package notify
