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
		state http.ConnState // or answered, for the unread-body guard's call
	}
	const answered = http.ConnState(-1)
	tests := []struct {
		name        string
		max         int
		events      []event
		wantClosed  []string
		wantShed    uint64
		wantRefused uint64
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := newConnTracker(tt.max)
			conns := map[string]*fakeConn{}
			var order []string
			for _, e := range tt.events {
				c := conns[e.conn]
				if c == nil {
					c = &fakeConn{name: e.conn}
					conns[e.conn] = c
				}
				before := c.closed
				if e.state == answered {
					ct.answered(c)
				} else {
					ct.hook(c, e.state)
				}
				for name, fc := range conns {
					if fc.closed && !(fc == c && before) && !contains(order, name) {
						order = append(order, name)
					}
				}
			}
			if fmt.Sprint(order) != fmt.Sprint(tt.wantClosed) && !(len(order) == 0 && len(tt.wantClosed) == 0) {
				t.Errorf("closed %v, want %v", order, tt.wantClosed)
			}
			st := ct.stats()
			if st.Shed != tt.wantShed || st.Refused != tt.wantRefused {
				t.Errorf("stats %+v, want shed %d refused %d", st, tt.wantShed, tt.wantRefused)
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
	}
	waitStats(t, s, func(st ConnStats) bool { return st.Open == max && st.Waiting == max })

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
