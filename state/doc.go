// Package state keeps checker's memory between cron invocations: one JSON
// file holding every job's streak, the outbox of undelivered notices, the
// last completed run and the health of the mail path.
//
// Writers go through Store.Update, which holds an exclusive lock on a
// sidecar lock file, so concurrent invocations serialise their changes and
// none is lost. Saves are atomic (temporary file, fsync, rename), so readers
// such as `checker serve` never see a half-written file and a crash during a
// save leaves the previous version in place. A file that cannot be decoded
// is moved aside, never deleted, and replaced by a fresh state.
package state
