package server

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"
)

// stallAfter is how long a request may make no progress, its answer
// blocked in a write or its body not arriving, before its connection
// counts as stalled: as good as idle for the connection cap. A peer's
// answer is a few bytes, written at once; a push body comes with its
// headers. A write that blocks this long means the client is not reading
// (or pipelines requests whose answers it never reads); a body that does
// not come is a client holding a connection for nothing.
const stallAfter = 250 * time.Millisecond

// clock is monotonic time since the tracker started; zero means "never".
type clock func() time.Duration

// monotonic returns a clock counting from now, on the monotonic clock (a
// stepped wall clock does not make connections stall or recover).
func monotonic() clock {
	start := time.Now()
	return func() time.Duration { return time.Since(start) + 1 }
}

// stallConn is a connection as the listener hands it out, with marks of
// what its request is waiting on, read by the connection cap without a
// lock: since when a write is in progress, since when the handler waits
// on a body that does not come.
type stallConn struct {
	net.Conn
	now     clock
	writing atomic.Int64 // time.Duration a Write started; 0 when none
	body    atomic.Int64 // last progress of a request body being waited on; 0 when none

	reads atomic.Uint64 // socket reads for more than one byte

	// cancel ends the context of the connection's requests; set by the
	// server's ConnContext before the connection is served.
	cancel context.CancelFunc

	// Counted by the goroutine serving the connection's requests only:
	requests   int    // requests made on it so far
	pipelined  int    // requests in a row read without a socket read since the last answer
	readsAfter uint64 // reads when the last request's handler returned
}

func (c *stallConn) Read(p []byte) (int, error) {
	// net/http reads one byte at a time only to notice a client that
	// leaves while a handler runs: that is no new request.
	if len(p) > 1 {
		c.reads.Add(1)
	}
	return c.Conn.Read(p)
}

// nextRequest counts a new request on the connection and reports whether
// it is to be its last: it reaches maxConnRequests, or is the one beyond
// maxPipelined requests in a row that came without the connection being
// read from since the previous answer (they were sent before it).
func (c *stallConn) nextRequest() (last bool) {
	c.requests++
	if c.requests > 1 && c.reads.Load() == c.readsAfter {
		c.pipelined++
	} else {
		c.pipelined = 0
	}
	return c.requests >= maxConnRequests || c.pipelined > maxPipelined
}

// requestDone notes the end of a request's handler.
func (c *stallConn) requestDone() { c.readsAfter = c.reads.Load() }

func (c *stallConn) Write(p []byte) (int, error) {
	c.writing.Store(int64(c.now()))
	n, err := c.Conn.Write(p)
	c.writing.Store(0)
	return n, err
}

// CloseWrite half-closes the connection as net/http does before closing
// after an error answer, when the underlying connection can.
func (c *stallConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// waitBody marks the handler as waiting on the request body from now on.
func (c *stallConn) waitBody() { c.body.Store(int64(c.now())) }

// bodyDone clears the mark of waitBody.
func (c *stallConn) bodyDone() { c.body.Store(0) }

// stalledSince returns since when the connection has made no progress on
// a write or a body it waits on, or 0.
func (c *stallConn) stalledSince() time.Duration {
	w, b := time.Duration(c.writing.Load()), time.Duration(c.body.Load())
	switch {
	case w == 0:
		return b
	case b == 0:
		return w
	}
	return min(w, b)
}

// stalled reports whether the connection has made no progress for
// stallAfter at now.
func (c *stallConn) stalled(now time.Duration) bool {
	s := c.stalledSince()
	return s != 0 && now-s >= stallAfter
}

// marksOf returns the stallConn under c, or nil.
func marksOf(c net.Conn) *stallConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, _ := c.(*stallConn)
	return sc
}

// stallListener hands out its connections as stallConns.
type stallListener struct {
	net.Listener
	now clock
	// admit, if set, is asked about each accepted connection; one it
	// refuses is reset at once, before net/http sees it.
	admit func(net.Conn) bool
}

func (l stallListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit != nil && !l.admit(c) {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset: no TIME_WAIT, nothing to flush
			}
			_ = c.Close()
			continue
		}
		return &stallConn{Conn: c, now: l.now}, nil
	}
}
