// Package server is `checker serve`: one HTTP server composing the handlers
// of peer (the verdict for peers) and heartbeat (pushes), and later the
// status page and metrics, each mounted as a Route with its own access rule
// and, for costly ones, its own bound on requests in flight.
//
// It is what peers trust, so it is built not to starve: the verdict is
// answered from a Snapshot of the state that is read again only when the
// file changes (StateHealth), open connections are capped and the ones
// waiting longest without a request (idle keep-alive, slowloris) are closed
// first to make room, timeouts are short, and a request body nobody reads
// is not waited for. Routes and the TLS certificate can be replaced while
// serving (SIGHUP in cmd), and LogFile reopens its file for logrotate.
package server
