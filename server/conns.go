package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// connTracker caps the open connections of an http.Server. It sees every
// connection through the server's ConnState hook, which runs for StateNew
// in the accept loop before the connection is served. When a new
// connection takes the count over the cap, the connection that has waited
// longest without a request in progress — idle keep-alive, or never sent a
// complete request header (slowloris) — is closed to make room; a request
// being answered is never cut. Only when every other connection is busy
// answering is the newcomer itself closed.
//
// The connections without a request in progress are kept in one list in
// the order they became so, so the victim is found in O(1).
type connTracker struct {
	max int

	mu      sync.Mutex // guards the fields below
	conns   map[net.Conn]*tracked
	waiting list // connections in StateNew or StateIdle, longest waiting first
	shed    uint64
	refused uint64
}

// tracked is one open connection.
type tracked struct {
	c          net.Conn
	prev, next *tracked
	listed     bool
}

// list is an intrusive doubly linked list of tracked connections.
type list struct{ head, tail *tracked }

func (l *list) pushBack(t *tracked) {
	t.prev, t.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
	t.listed = true
}

func (l *list) remove(t *tracked) {
	if !t.listed {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.prev, t.next, t.listed = nil, nil, false
}

func newConnTracker(max int) *connTracker {
	return &connTracker{max: max, conns: make(map[net.Conn]*tracked)}
}

// ConnStats counts what the connection cap did.
type ConnStats struct {
	// Open is the number of connections open now.
	Open int
	// Waiting is how many of them have no request in progress.
	Waiting int
	// Shed counts connections closed to make room for a newer one;
	// Refused counts new connections closed because every other one was
	// busy answering a request.
	Shed, Refused uint64
}

func (ct *connTracker) stats() ConnStats {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	n := 0
	for t := ct.waiting.head; t != nil; t = t.next {
		n++
	}
	return ConnStats{Open: len(ct.conns), Waiting: n, Shed: ct.shed, Refused: ct.refused}
}

// hook is the http.Server ConnState hook.
func (ct *connTracker) hook(c net.Conn, st http.ConnState) {
	var victim net.Conn
	ct.mu.Lock()
	switch st {
	case http.StateNew:
		t := &tracked{c: c}
		ct.conns[c] = t
		ct.waiting.pushBack(t)
		if len(ct.conns) > ct.max {
			v := ct.waiting.head
			if v == t {
				ct.refused++
			} else {
				ct.shed++
			}
			ct.waiting.remove(v)
			delete(ct.conns, v.c)
			victim = v.c
		}
	case http.StateIdle:
		if t := ct.conns[c]; t != nil {
			ct.waiting.remove(t)
			ct.waiting.pushBack(t)
		}
	case http.StateActive:
		if t := ct.conns[c]; t != nil {
			ct.waiting.remove(t)
		}
	case http.StateClosed, http.StateHijacked:
		if t := ct.conns[c]; t != nil {
			ct.waiting.remove(t)
			delete(ct.conns, c)
		}
	}
	ct.mu.Unlock()
	if victim != nil {
		closeRaw(victim)
	}
}

// closeRaw closes the socket under c at once. A TLS connection's own Close
// would first try to send a close_notify alert, which can block the accept
// loop on a client that reads nothing.
func closeRaw(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.Close() // the goroutine serving c sees the error and ends
}
