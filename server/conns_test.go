package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeConn records whether it was closed. Its name is "conn" or
// "conn@host", where host is the last byte of its client's address.
type fakeConn struct {
	net.Conn
	name   string
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

func (c *fakeConn) RemoteAddr() net.Addr {
	host := 1
	if _, h, ok := strings.Cut(c.name, "@"); ok {
		host, _ = strconv.Atoi(h)
	}
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(host)), Port: 40000}
}

// TestConnTrackerSheds drives the ConnState hook by hand: at the cap, the
// connection waiting longest without a request in progress goes first; a
// connection answering a request is never cut.
func TestConnTrackerSheds(t *testing.T) {
	type event struct {
		conn  string
		state http.ConnState // or one of the pseudo-states below
	}
	const (
		answered  = http.ConnState(-1) // the unread-body guard's call
		writes    = http.ConnState(-2) // a write starts and blocks
		waitsBody = http.ConnState(-3) // the handler waits on the body
		moves     = http.ConnState(-4) // the write or body makes progress
		later     = http.ConnState(-5) // a second passes (conn is ignored)
		soon      = http.ConnState(-6) // a millisecond passes
	)
	tests := []struct {
		name        string
		max         int
		events      []event
		wantClosed  []string
		wantShed    uint64
		wantRefused uint64
		// wantShedStalled is how many of wantShed had stalled.
		wantShedStalled uint64
	}{
		{
			name:   "under the cap nothing is closed",
			max:    3,
			events: []event{{"a", http.StateNew}, {"b", http.StateNew}, {"c", http.StateNew}},
		},
		{
			name:       "the oldest never-used connection goes first",
			max:        2,
			events:     []event{{"a", http.StateNew}, {"b", http.StateNew}, {"c", http.StateNew}},
			wantClosed: []string{"a"}, wantShed: 1,
		},
		{
			name: "idle longest goes before a newer connection",
			max:  3,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew}, {"c", http.StateNew},
				{"a", http.StateActive}, {"b", http.StateActive}, {"b", http.StateIdle}, {"a", http.StateIdle},
				{"d", http.StateNew},
			},
			// c has waited since it connected, longer than b and a since they went idle.
			wantClosed: []string{"c"}, wantShed: 1,
		},
		{
			name: "idle order is the order of going idle",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew},
				{"a", http.StateActive}, {"b", http.StateActive}, {"b", http.StateIdle}, {"a", http.StateIdle},
				{"c", http.StateNew}, {"d", http.StateNew},
			},
			wantClosed: []string{"b", "a"}, wantShed: 2,
		},
		{
			name: "a request in progress is never cut",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"b", http.StateNew}, {"c", http.StateNew},
			},
			wantClosed: []string{"b"}, wantShed: 1,
		},
		{
			name: "all busy: the newcomer is refused",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"b", http.StateNew}, {"b", http.StateActive}, {"c", http.StateNew},
			},
			wantClosed: []string{"c"}, wantRefused: 1,
		},
		{
			name: "closed connections free their place",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew}, {"a", http.StateClosed}, {"c", http.StateNew},
				{"b", http.StateHijacked}, {"d", http.StateNew},
			},
		},
		{
			name: "the host holding the most waiting connections loses one, not the peer",
			max:  4,
			events: []event{
				{"peer@9", http.StateNew}, {"a", http.StateNew}, {"b", http.StateNew}, {"c", http.StateNew},
				{"d", http.StateNew}, {"e", http.StateNew}, {"peer2@8", http.StateNew},
			},
			wantClosed: []string{"a", "b", "c"}, wantShed: 3,
		},
		{
			name: "its own newest connection goes when a host is alone",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew}, {"c", http.StateNew},
			},
			wantClosed: []string{"a"}, wantShed: 1,
		},
		{
			name: "among hosts of one connection each, the longest waiting goes",
			max:  2,
			events: []event{
				{"a@1", http.StateNew}, {"b@2", http.StateNew}, {"c@3", http.StateNew},
			},
			wantClosed: []string{"a@1"}, wantShed: 1,
		},
		{
			name: "a connection draining an unread body goes first",
			max:  3,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew}, {"peer@9", http.StateNew},
				{"peer@9", http.StateActive}, {"peer@9", answered}, {"c", http.StateNew},
			},
			wantClosed: []string{"peer@9"}, wantShed: 1,
		},
		{
			name: "a shed connection's own close is no second removal",
			max:  1,
			events: []event{
				{"a", http.StateNew}, {"b", http.StateNew}, {"a", http.StateClosed}, {"c", http.StateNew},
			},
			wantClosed: []string{"a", "b"}, wantShed: 2,
		},
		{
			name: "an answer blocked in a write goes before a newcomer is refused",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"b", http.StateNew}, {"b", http.StateActive},
				{"a", writes}, {"", later}, {"c", http.StateNew},
			},
			wantClosed: []string{"a"}, wantShed: 1, wantShedStalled: 1,
		},
		{
			name: "a write that has not stalled yet is busy",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"b", http.StateNew}, {"b", http.StateActive},
				{"a", writes}, {"", soon}, {"c", http.StateNew},
			},
			wantClosed: []string{"c"}, wantRefused: 1,
		},
		{
			name: "a handler waiting on a body that does not come goes",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"a", waitsBody}, {"b", http.StateNew}, {"b", http.StateActive},
				{"", later}, {"c", http.StateNew},
			},
			wantClosed: []string{"a"}, wantShed: 1, wantShedStalled: 1,
		},
		{
			name: "a client's idle connections go before its stalled ones",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"a", writes},
				{"b", http.StateNew}, {"b", http.StateActive}, {"b", http.StateIdle},
				{"", later}, {"c", http.StateNew},
			},
			wantClosed: []string{"b"}, wantShed: 1,
		},
		{
			name: "the host holding the most stalled connections loses one, not the peer",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"a", writes},
				{"b", http.StateNew}, {"b", http.StateActive}, {"b", waitsBody},
				{"", later}, {"peer@9", http.StateNew}, {"peer2@8", http.StateNew},
			},
			wantClosed: []string{"a", "b"}, wantShed: 2, wantShedStalled: 2,
		},
		{
			name: "a stalled request that moved on is busy again",
			max:  2,
			events: []event{
				{"a", http.StateNew}, {"a", http.StateActive}, {"a", writes}, {"b", http.StateNew},
				{"", later}, {"c", http.StateNew}, // a is found stalled; b waited longest
				{"a", moves}, {"", soon}, {"d", http.StateNew}, // a is busy: c waited longest
			},
			wantClosed: []string{"b", "c"}, wantShed: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Second // the tracker's clock; zero means never
			clock := func() time.Duration { return now }
			ct := newConnTracker(tt.max, clock)
			conns := map[string]*stallConn{}
			var order []string
			for _, e := range tt.events {
				switch e.state {
				case later:
					now += time.Second
					continue
				case soon:
					now += time.Millisecond
					continue
				}
				c := conns[e.conn]
				if c == nil {
					c = &stallConn{Conn: &fakeConn{name: e.conn}, now: clock}
					conns[e.conn] = c
				}
				fc := c.Conn.(*fakeConn)
				before := fc.closed
				switch e.state {
				case answered:
					ct.answered(c)
				case writes:
					c.writing.Store(int64(now))
				case waitsBody:
					c.waitBody()
				case moves:
					c.writing.Store(0)
					c.bodyDone()
				default:
					ct.hook(c, e.state)
				}
				for name, sc := range conns {
					if closed := sc.Conn.(*fakeConn).closed; closed && !(sc == c && before) && !contains(order, name) {
						order = append(order, name)
					}
				}
			}
			if fmt.Sprint(order) != fmt.Sprint(tt.wantClosed) && !(len(order) == 0 && len(tt.wantClosed) == 0) {
				t.Errorf("closed %v, want %v", order, tt.wantClosed)
			}
			st := ct.stats()
			if st.Shed != tt.wantShed || st.Refused != tt.wantRefused || st.ShedStalled != tt.wantShedStalled {
				t.Errorf("stats %+v, want shed %d (stalled %d) refused %d", st, tt.wantShed, tt.wantShedStalled, tt.wantRefused)
			}
			if st.Open > tt.max {
				t.Errorf("%d connections open, over the cap of %d", st.Open, tt.max)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestConnCapOnRealServer: with the cap full of idle keep-alive
// connections, a new client is answered and the idle connection that
// waited longest is the one closed.
func TestConnCapOnRealServer(t *testing.T) {
	const max = 4
	// A long idle timeout: only the cap may close the idle connections,
	// however slowly a loaded machine runs this test.
	s := newServer(t, Options{MaxConns: max, IdleTimeout: time.Minute}, Route{Pattern: "GET /{$}", Handler: text("True")})
	start(t, s)
	type held struct {
		c net.Conn
		r *bufio.Reader
	}
	var idle []held
	for i := range max {
		c, r := rawConn(t, s.Addr())
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		idle = append(idle, held{c, r})
		// The server goes idle on it a moment after the answer is out:
		// wait for that, so that the order of going idle is this one.
		waitStats(t, s, func(st ConnStats) bool { return st.Open == i+1 && st.Waiting == i+1 })
	}

	// A peer's request on a new connection gets its answer.
	code, body := fetch(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}, "GET", "http://"+s.Addr()+"/")
	if code != 200 || body != "True" {
		t.Errorf("new client at the cap got %d %q, want 200 True", code, body)
	}
	if !closedWithin(idle[0].c, idle[0].r, 5*time.Second) {
		t.Error("the oldest idle connection was not closed")
	}
	for i, h := range idle[1:] {
		if closedWithin(h.c, h.r, 50*time.Millisecond) {
			t.Errorf("idle connection %d was closed too; only the oldest had to go", i+1)
		}
	}
	if st := s.ConnStats(); st.Shed == 0 {
		t.Errorf("stats %+v, want a shed connection counted", st)
	}
}

// TestIdleTimeout: an idle keep-alive connection is closed after the idle
// timeout, a silent one after the header timeout.
func TestIdleTimeout(t *testing.T) {
	s := newServer(t, Options{IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 200 * time.Millisecond},
		Route{Pattern: "GET /{$}", Handler: text("True")})
	start(t, s)
	idle, r := rawConn(t, s.Addr())
	fmt.Fprint(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	silent, sr := rawConn(t, s.Addr())
	fmt.Fprint(silent, "GET / HTTP/1.1\r\nHo")
	if !closedWithin(idle, r, 10*time.Second) {
		t.Error("idle keep-alive connection still open 10s on")
	}
	if !closedWithin(silent, sr, 10*time.Second) {
		t.Error("connection with unfinished headers still open 10s on")
	}
	if resp.Header.Get("Connection") == "close" {
		t.Error("keep-alive was refused")
	}
}

// waitStats polls the server's connection stats until ok, failing after
// a generous limit.
func waitStats(t *testing.T, s *Server, ok func(ConnStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.ConnStats()
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection stats still %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPipeliningBounded: a connection may pipeline a few requests after
// the first; the one beyond is answered with "Connection: close" and the
// rest are not served.
// A client that waits for each answer is not pipelining, and may make up
// to maxConnRequests requests on one connection.
func TestPipeliningBounded(t *testing.T) {
	s := newServer(t, Options{}, Route{Pattern: "GET /{$}", Handler: text("True")})
	start(t, s)

	t.Run("pipelined", func(t *testing.T) {
		c, r := rawConn(t, s.Addr())
		// One write: the server reads them all before answering the first.
		if _, err := io.WriteString(c, strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 50)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		answers := 0
		for {
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers++
			if resp.Close {
				if answers != maxPipelined+2 {
					t.Errorf("Connection: close on answer %d, want on %d", answers, maxPipelined+2)
				}
				break
			}
		}
		// The first request is read from the socket, the next
		// maxPipelined from what came with it; the one after them is the
		// last answered.
		if answers != maxPipelined+2 {
			t.Errorf("%d answers to 50 pipelined requests, want %d", answers, maxPipelined+2)
		}
		if !closedWithin(c, r, 5*time.Second) {
			t.Error("connection still open after the last answer")
		}
	})

	t.Run("one at a time", func(t *testing.T) {
		c, r := rawConn(t, s.Addr())
		for i := 1; i <= maxConnRequests; i++ {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if last := i == maxConnRequests; resp.Close != last {
				t.Fatalf("request %d: Connection: close is %v, want %v", i, resp.Close, last)
			}
		}
	})
}

// TestStalledRequestsShed: with the cap full of requests that make no
// progress (a body that does not come, an answer the client does not
// read), a peer's new connection is answered and a stalled one is closed.
func TestStalledRequestsShed(t *testing.T) {
	const max = 2
	entered := make(chan struct{}, max)
	s := newServer(t, Options{MaxConns: max},
		Route{Pattern: "GET /{$}", Handler: text("True")},
		Route{Pattern: "POST /body", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			io.Copy(io.Discard, r.Body)
		})},
		Route{Pattern: "GET /big", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			chunk := make([]byte, 64<<10)
			for range 1024 { // 64 MiB: more than any socket buffers
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})},
	)
	start(t, s)
	peer := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

	tests := []struct{ name, request string }{
		{"body that does not come", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx"},
		{"answer not read", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The connections of the case before are gone first.
			waitStats(t, s, func(st ConnStats) bool { return st.Open == 0 })
			before := s.ConnStats()
			for i := range max {
				c, _ := rawConn(t, s.Addr())
				if _, err := io.WriteString(c, tt.request); err != nil {
					t.Fatal(err)
				}
				select {
				case <-entered:
				case <-time.After(20 * time.Second):
					t.Fatalf("request %d never reached its handler", i)
				}
			}
			// Both handlers run: wait until the cap would see them stalled.
			waitFor(t, "requests to stall", func() bool {
				s.conns.mu.Lock()
				defer s.conns.mu.Unlock()
				n := 0
				for _, tr := range s.conns.conns {
					if tr.sc != nil && tr.sc.stalled(s.conns.now()) {
						n++
					}
				}
				return n == max
			})
			code, body := fetch(t, peer, "GET", "http://"+s.Addr()+"/")
			if code != 200 || body != "True" {
				t.Errorf("peer at the cap got %d %q, want 200 True", code, body)
			}
			if st := s.ConnStats(); st.ShedStalled == before.ShedStalled || st.Refused != before.Refused {
				t.Errorf("stats %+v (before %+v): want a stalled connection shed, none refused", st, before)
			}
		})
	}
}

// waitFor polls ok until it holds, failing the test after a generous
// limit.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdmitAtTheCap: below the cap every connection is admitted; at it, a
// client holding its share of the cap (the cap divided among the clients,
// at least minShare) is refused at accept, and one holding less, as a
// peer's, is admitted.
func TestAdmitAtTheCap(t *testing.T) {
	now := time.Second
	ct := newConnTracker(32, func() time.Duration { return now })
	conn := func(name string) *fakeConn { return &fakeConn{name: name} }
	open := func(c *fakeConn) {
		if !ct.admit(c) {
			t.Fatalf("%s refused below the cap", c.name)
		}
		ct.hook(c, http.StateNew)
	}
	// Two clients fill the cap: 24 from host 1, 8 from host 2.
	for i := range 24 {
		open(conn(fmt.Sprintf("flood%d@1", i)))
	}
	for i := range 8 {
		open(conn(fmt.Sprintf("other%d@2", i)))
	}
	if ct.admit(conn("more@1")) {
		t.Error("host 1, holding 24 of 32 (its share is 16), was admitted at the cap")
	}
	if !ct.admit(conn("more@2")) {
		t.Error("host 2, holding 8, under its share of 16, was refused")
	}
	if !ct.admit(conn("peer@9")) {
		t.Error("a peer holding nothing was refused at the cap")
	}
	if st := ct.stats(); st.OverShare != 1 {
		t.Errorf("stats %+v, want 1 reset over its share", st)
	}
	// Four hosts of 8 each: the share is 32/4 = 8, and each holds it.
	ct = newConnTracker(32, func() time.Duration { return now })
	for i := range 32 {
		open(conn(fmt.Sprintf("c%d@%d", i, 1+i/8)))
	}
	if ct.admit(conn("more@1")) {
		t.Error("a host holding its share (8 of 32 among 4 hosts) was admitted at the cap")
	}
	if !ct.admit(conn("peer@9")) {
		t.Error("a peer holding nothing was refused at the cap")
	}
}
