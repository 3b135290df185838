// Package state keeps checker's memory between cron invocations in one
// embedded database file (go.etcd.io/bbolt): a record per job (its streak,
// claim and last result), a small health record that `checker serve` reads
// to answer peers, the outbox of undelivered notices with per-recipient
// delivery, the history of events, silences, remembered heartbeat services
// and the delivery health of each recipient.
//
// Writers go through Store.Update, which holds an exclusive lock on a
// sidecar lock file for one short transaction, so concurrent invocations
// serialise their changes and none is lost; a run writes only the records
// it changes. Readers go through Store.View and wait at most a moment. A
// file that is not a valid database is moved aside, never deleted, and
// replaced by a fresh one; a lack of permission is reported as such and
// changes nothing; a JSON state of an earlier release is migrated on first
// use. Records are encoded in a small versioned binary form (codec.go) so
// that a record of a newer release is refused, never misread.
package state
