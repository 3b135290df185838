package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker caps the open connections of an http.Server. It sees every
// connection through the server's ConnState hook, which runs for StateNew
// in the accept loop before the connection is served. When a new
// connection takes the count over the cap, one that is not being served
// is closed to make room; a request that makes progress is never cut.
// Only when every other connection is busy answering is the newcomer itself
// closed. The victim is, in this order:
//
//  1. a connection whose answer is out but whose request body is still
//     being drained (see Server.serveHTTP): it has had what it came for;
//  2. of the client address holding the most waiting connections, the one
//     waiting longest; among addresses holding as many, the one waiting
//     longest overall. Waiting are: idle keep-alive connections, those
//     with no complete request header yet (slowloris), and stalled ones,
//     whose request has made no progress for stallAfter: its answer is
//     blocked in a write because the client does not read (as when it
//     pipelines requests and never reads the answers), or its handler
//     waits on a request body that does not come (a push trickling in, or
//     waiting for a turn). A stalled connection counts as waiting from
//     when the cap notices it, so a client's idle connections go before
//     its stalled ones.
//
// So one flooding host pushes out its own connections, not a peer's, and
// with many hosts of one connection each, the longest waiting goes first.
//
// Idle and new connections are listed as their state changes; stalls are
// found by a sweep over the open connections, at most every sweepEvery,
// and only when the cap is reached.
type connTracker struct {
	max  int
	now  clock
	open atomic.Int64 // len(conns), for crowded

	mu          sync.Mutex // guards the fields below
	conns       map[net.Conn]*tracked
	clients     map[netip.Addr]*client
	draining    list
	seq         uint64        // stamps connections as they start to wait
	ids         uint64        // numbers connections as they come
	lastSweep   time.Duration // when stalls were last looked for
	shed        uint64
	shedStalled uint64
	refused     uint64
	overShare   uint64
}

// How often the cap looks for stalled connections while it is reached:
// at most every sweepEvery, and again after sweepAgain when the newcomer
// itself would be refused.
const (
	sweepEvery = 20 * time.Millisecond
	sweepAgain = time.Millisecond
)

// client is the connections of one client address.
type client struct {
	addr    netip.Addr
	open    int
	waiting list // longest waiting first
	n       int  // len(waiting)
}

// tracked is one open connection.
type tracked struct {
	c          net.Conn
	sc         *stallConn // c's stall marks; nil for a connection of another listener
	stalled    bool       // listed as waiting because its request stalled
	cl         *client
	seq        uint64 // when it started waiting
	id         uint64 // when it came, among the tracker's connections
	in         *list  // the list it is in, if any
	prev, next *tracked
}

// list is an intrusive doubly linked list of tracked connections.
type list struct{ head, tail *tracked }

func (l *list) pushBack(t *tracked) {
	t.prev, t.next, t.in = l.tail, nil, l
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (l *list) remove(t *tracked) {
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
	t.prev, t.next, t.in = nil, nil, nil
}

func newConnTracker(max int, now clock) *connTracker {
	return &connTracker{max: max, now: now, conns: make(map[net.Conn]*tracked), clients: make(map[netip.Addr]*client)}
}

// ConnStats counts what the connection cap did.
type ConnStats struct {
	// Open is the number of connections open now; Waiting how many of them
	// have no request being answered, or one that stalled (Stalled of
	// them; stalls are looked for only at the cap).
	Open, Waiting, Stalled int
	// Clients is the number of client addresses with open connections.
	Clients int
	// Shed counts connections closed to make room for a newer one;
	// Refused counts new connections closed because every other one was
	// busy answering a request. ShedStalled counts the shed connections
	// whose request had stalled. OverShare counts new connections reset at
	// accept because their client already held its share of the cap.
	Shed, ShedStalled, Refused, OverShare uint64
}

func (ct *connTracker) stats() ConnStats {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	st := ConnStats{Open: len(ct.conns), Clients: len(ct.clients), Shed: ct.shed, ShedStalled: ct.shedStalled, Refused: ct.refused,
		OverShare: ct.overShare}
	for _, cl := range ct.clients {
		st.Waiting += cl.n
	}
	for _, t := range ct.conns {
		if t.stalled {
			st.Stalled++
		}
	}
	for t := ct.draining.head; t != nil; t = t.next {
		st.Waiting++
	}
	return st
}

// hook is the http.Server ConnState hook.
func (ct *connTracker) hook(c net.Conn, st http.ConnState) {
	var victim net.Conn
	ct.mu.Lock()
	switch st {
	case http.StateNew:
		ct.ids++
		t := &tracked{c: c, sc: marksOf(c), cl: ct.clientOf(c), id: ct.ids}
		t.cl.open++
		ct.conns[c] = t
		ct.wait(t)
		if len(ct.conns) > ct.max {
			v := ct.victim(t)
			switch {
			case v == t:
				ct.refused++
			case v.stalled:
				ct.shed++
				ct.shedStalled++
			default:
				ct.shed++
			}
			ct.drop(v)
			victim = v.c
		}
	case http.StateIdle:
		if t := ct.conns[c]; t != nil {
			ct.unlist(t)
			ct.wait(t)
		}
	case http.StateActive:
		if t := ct.conns[c]; t != nil {
			ct.unlist(t)
		}
	case http.StateClosed, http.StateHijacked:
		if t := ct.conns[c]; t != nil {
			ct.drop(t)
		}
		if m := marksOf(c); st == http.StateClosed && m != nil && m.cancel != nil {
			m.cancel()
		}
	}
	ct.open.Store(int64(len(ct.conns)))
	ct.mu.Unlock()
	if victim != nil {
		closeRaw(victim)
	}
}

// minShare is the fewest connections a client may hold at the cap
// before its new ones are refused at accept.
const minShare = 8

// admit is asked by the listener about each accepted connection, before
// net/http serves it. At the cap, a client already holding its share of
// the connections (the cap divided among the clients holding any, at
// least minShare) is refused at once: a reset costs far less than
// shedding another connection to serve its request, so a flood of
// connections that reconnect as soon as they are closed drains from the
// kernel's queue quickly, and a peer's connection, from a client that
// holds few, is not left waiting behind it. Below the cap everyone is
// admitted.
func (ct *connTracker) admit(c net.Conn) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.conns) < ct.max || len(ct.clients) == 0 {
		return true
	}
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		addr = ap.Addr().Unmap()
	}
	cl := ct.clients[addr]
	if cl == nil || cl.open < max(ct.max/len(ct.clients), minShare) {
		return true
	}
	ct.overShare++
	return false
}

// crowded reports whether an eighth of the cap or more is in use: far
// more connections than peers, scripts and monitoring open.
func (ct *connTracker) crowded() bool { return ct.open.Load() >= int64(ct.max/8) }

// answered tells the tracker that the answer on c is out while the rest of
// an unread request body is being drained: c may go first to make room.
func (ct *connTracker) answered(c net.Conn) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t := ct.conns[c]; t != nil {
		ct.unlist(t)
		ct.draining.pushBack(t)
	}
}

// clientOf returns the client of c's remote address, creating it.
func (ct *connTracker) clientOf(c net.Conn) *client {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		addr = ap.Addr().Unmap()
	}
	cl := ct.clients[addr]
	if cl == nil {
		cl = &client{addr: addr}
		ct.clients[addr] = cl
	}
	return cl
}

// wait puts t at the end of its client's waiting list.
func (ct *connTracker) wait(t *tracked) {
	ct.seq++
	t.seq = ct.seq
	t.cl.waiting.pushBack(t)
	t.cl.n++
}

// unlist takes t out of whatever list it is in.
func (ct *connTracker) unlist(t *tracked) {
	switch t.in {
	case nil:
		return
	case &t.cl.waiting:
		t.cl.n--
	}
	t.in.remove(t)
	t.stalled = false
}

// drop forgets t.
func (ct *connTracker) drop(t *tracked) {
	ct.unlist(t)
	delete(ct.conns, t.c)
	t.cl.open--
	if t.cl.open == 0 {
		delete(ct.clients, t.cl.addr)
	}
}

// victim picks the connection to close, as the type's comment says. The
// newcomer is always waiting, so there is one.
func (ct *connTracker) victim(newcomer *tracked) *tracked {
	if t := ct.draining.head; t != nil {
		return t
	}
	now := ct.now()
	if now-ct.lastSweep >= sweepEvery {
		ct.sweep(now, newcomer)
	}
	for {
		v := ct.longestWaiting()
		switch {
		case v == newcomer && now-ct.lastSweep >= sweepAgain:
			// Before refusing a newcomer, which may be a peer's, look
			// again for requests that stalled since the last sweep.
			ct.sweep(now, newcomer)
		case v.stalled && !v.sc.stalled(now):
			// Its request moved on (a write went out, the body came):
			// it is busy again.
			ct.unlist(v)
		default:
			return v
		}
	}
}

// sweep lists as waiting the connections whose request has stalled, and
// puts the newcomer back at the end of its client's list: it has waited
// less than any of them.
func (ct *connTracker) sweep(now time.Duration, newcomer *tracked) {
	ct.lastSweep = now
	var found []*tracked
	for _, t := range ct.conns {
		if t.in == nil && t.sc != nil && t.sc.stalled(now) {
			found = append(found, t)
		}
	}
	// They wait in the order they stalled (then came), not the map's.
	slices.SortFunc(found, func(a, b *tracked) int {
		if c := cmp.Compare(a.sc.stalledSince(), b.sc.stalledSince()); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, t := range found {
		ct.wait(t)
		t.stalled = true
	}
	ct.unlist(newcomer)
	ct.wait(newcomer)
}

// longestWaiting returns, of the client holding the most waiting
// connections, the one waiting longest (ties between clients: the one
// waiting longest overall), or nil when none waits.
func (ct *connTracker) longestWaiting() *tracked {
	var best *tracked
	bestN := 0
	for _, cl := range ct.clients {
		h := cl.waiting.head
		if h == nil {
			continue
		}
		if cl.n > bestN || (cl.n == bestN && h.seq < best.seq) {
			best, bestN = h, cl.n
		}
	}
	return best
}

// closeRaw closes the socket under c at once, and cancels the context of
// the request being served on it, if any: a handler waiting on something
// (a turn, a store) is not told by net/http while the request's body is
// unread. A TLS connection's own Close would first try to send a
// close_notify alert, which can block the accept loop on a client that
// reads nothing.
func closeRaw(c net.Conn) {
	if m := marksOf(c); m != nil && m.cancel != nil {
		m.cancel()
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.Close() // the goroutine serving c sees the error and ends
}

// connKey is the context key under which each request finds its connection.
type connKey struct{}

// withConn is the http.Server's ConnContext: it lets a handler tell the
// tracker about its connection, and the tracker cancel the requests of a
// connection it closes.
func withConn(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, connKey{}, c)
	if m := marksOf(c); m != nil {
		ctx, m.cancel = context.WithCancel(ctx)
	}
	return ctx
}

// connOf returns the connection r came on, or nil.
func connOf(r *http.Request) net.Conn {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	return c
}

// queued lists c as waiting while its request waits for a turn of a
// bounded route: the cap may close it to make room.
func (ct *connTracker) queued(c net.Conn) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t := ct.conns[c]; t != nil {
		ct.unlist(t)
		ct.wait(t)
	}
}

// dequeued takes c off the waiting list once its request has its turn
// (or gave up).
func (ct *connTracker) dequeued(c net.Conn) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if t := ct.conns[c]; t != nil && t.in == &t.cl.waiting {
		ct.unlist(t)
	}
}
