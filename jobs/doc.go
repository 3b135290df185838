// Package jobs holds the whole life of a job: the Job contract and Result,
// the registry of job types (one file per type, each registering itself),
// decoding and validation of job sections, the failure and notification
// rules, and the runner that claims due jobs, runs them in parallel under
// their timeouts, applies the rules and hands notices to the outbox.
package jobs
