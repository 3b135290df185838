// Package ui is checker serve's status page at /ui/: every job and every
// heartbeat service with its state, since when, its last result and uptime,
// rendered on the server as a plain HTML table (readable without
// JavaScript, on a phone as on a desk), and heartbeats updated live by
// server-sent events fed from the heartbeat store's Watch (PSUBSCRIBE with
// Redis, polling with the local store) through one Feed shared by every
// viewer. Templates, stylesheet and script are embedded in the binary;
// nothing is loaded from elsewhere.
package ui
