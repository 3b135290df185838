package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"checker/heartbeat"
	"checker/peer"
	"checker/ui"
)

// The load tests run attacks from 127.0.0.1 against a server with a small
// connection cap and a state of 10,000 jobs, while a peer-style client on
// 127.0.0.2 asks GET / with a one-second timeout, as a peer check would, on
// a new connection each time. Every answer it gets must be the right verdict:
// they assert on what GET / answers, never on how fast. Each attack is
// bounded in connections, requests and time.

const (
	loadCap      = 64              // the server's connection cap
	attackFor    = 3 * time.Second // how long each attack lasts
	probeEvery   = 20 * time.Millisecond
	minProbes    = 5 // fewer would prove nothing
	attackConns  = 4 * loadCap
	floodWorkers = 16
	floodMax     = 50000       // requests, at most
	openMax      = 8 * loadCap // connections opened by an opener, at most
)

// loadServer serves checker's routes on a 10,000-job state that is fresh
// for the length of the test, with a push token the attacker does not
// have.
func loadServer(t *testing.T) *Server {
	t.Helper()
	return loadServerToken(t, "the attacker does not have it")
}

// loadServerToken is loadServer with pushToken; without one, the attacker
// (on loopback) may push.
func loadServerToken(t *testing.T, pushToken string) *Server {
	t.Helper()
	store := jobState(t, 10000, time.Now())
	sh := NewStateHealth(store, nil, nil)
	if err := sh.Load(); err != nil {
		t.Fatal(err)
	}
	hb, err := heartbeat.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hb.Close() })
	s := newServer(t, Options{MaxConns: loadCap}, Checker{
		ServerName: "loaded", Version: "test", StaleAfter: time.Hour, Health: sh.Health,
		Heartbeats: hb, PushToken: pushToken,
	}.Routes()...)
	start(t, s)
	return s
}

// probe asks GET / like a peer until ctx ends and returns how many probes
// were made and what went wrong. The peer is another host than the
// attacker: it connects from 127.0.0.2, another loopback address.
func probe(ctx context.Context, addr string) (int, []string) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c := &peer.Client{
		HTTP:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}},
		Timeout: time.Second,
	}
	n := 0
	var problems []string
	for ctx.Err() == nil {
		r := c.Check(context.Background(), "http://"+addr+"/")
		n++
		if r.Outcome != peer.Up {
			problems = append(problems, fmt.Sprintf("probe %d: %v %s", n, r.Outcome, r.Detail))
		}
		select {
		case <-ctx.Done():
		case <-time.After(probeEvery):
		}
	}
	return n, problems
}

// underAttack runs attack against s for attackFor while probing, and fails
// the test for every probe that did not get True.
func underAttack(t *testing.T, s *Server, attack func(ctx context.Context, addr string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), attackFor)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		attack(ctx, s.Addr())
	}()
	time.Sleep(100 * time.Millisecond) // let the attack build up first
	n, problems := probe(ctx, s.Addr())
	cancel()
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if n < minProbes {
		t.Errorf("only %d probes in %s", n, attackFor)
	}
	t.Logf("%d probes, %d failed; connections: %+v", n, len(problems), s.ConnStats())
}

// TestFloodOfRequests: many keep-alive clients asking GET / and /status as
// fast as they can.
func TestFloodOfRequests(t *testing.T) {
	s := loadServer(t)
	var sent atomic.Int64
	underAttack(t, s, func(ctx context.Context, addr string) {
		floodGets(ctx, addr, []string{"/", "/status"}, func() bool { return sent.Add(1) <= floodMax }, nil)
	})
	t.Logf("flood: %d requests", min(sent.Load(), floodMax))
}

// floodGets has floodWorkers keep-alive clients ask for paths (taking
// turns) as fast as they can while ctx lasts and more says yes, reading
// each answer in full and handing it to each, if set.
func floodGets(ctx context.Context, addr string, paths []string, more func() bool, each func(path string, resp *http.Response)) {
	var wg sync.WaitGroup
	for w := range floodWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			defer hc.CloseIdleConnections()
			path := paths[w%len(paths)]
			for ctx.Err() == nil && more() {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if each != nil {
					each(path, resp)
				}
			}
		}()
	}
	wg.Wait()
}

// hold runs n connections, each made by open and kept by keep until it
// returns; a connection the server closes is opened again, until ctx ends.
func hold(ctx context.Context, addr string, n int, keep func(ctx context.Context, c net.Conn)) {
	holdFrom(ctx, addr, n, 0, keep)
}

// holdFrom is hold with the connections spread over srcs loopback source
// addresses (127.1.0.1, 127.1.0.2, …); with srcs 0, from the default one.
func holdFrom(ctx context.Context, addr string, n, srcs int, keep func(ctx context.Context, c net.Conn)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: time.Second}
			if srcs > 0 {
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 1, 0, byte(1+i%srcs))}
			}
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				keep(ctx, c)
				stop()
				c.Close()
			}
		}()
	}
	wg.Wait()
}

// TestSlowloris: four times the cap of connections sending their headers a
// byte at a time, reconnecting whenever the server drops them.
func TestSlowloris(t *testing.T) {
	s := loadServer(t)
	underAttack(t, s, func(ctx context.Context, addr string) {
		hold(ctx, addr, attackConns, func(ctx context.Context, c net.Conn) {
			header := "GET / HTTP/1.1\r\nHost: victim\r\nX-Padding: " + strings.Repeat("a", 200)
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := c.Write([]byte{header[i%len(header)]}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	})
	if st := s.ConnStats(); st.Shed == 0 {
		t.Errorf("the cap never shed a slowloris connection: %+v", st)
	}
}

// TestIdleExhaustion: four times the cap of keep-alive connections that
// make one request and then sit idle, reconnecting when dropped.
func TestIdleExhaustion(t *testing.T) {
	s := loadServer(t)
	underAttack(t, s, func(ctx context.Context, addr string) {
		hold(ctx, addr, attackConns, func(ctx context.Context, c net.Conn) {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: victim\r\n\r\n"); err != nil {
				return
			}
			io.Copy(io.Discard, c) // until the server closes it, or ctx ends
		})
	})
	if st := s.ConnStats(); st.Shed == 0 {
		t.Errorf("the cap never shed an idle connection: %+v", st)
	}
}

// TestIdleExhaustionManySources: the idle flood of TestIdleExhaustion
// spread over 8 source addresses, each connection reconnecting as soon
// as it is closed. At the cap, a source holding its share is refused at
// accept (a reset), so the flood's reconnections drain from the kernel's
// queue quickly and the peer's connection is served.
func TestIdleExhaustionManySources(t *testing.T) {
	s := loadServer(t)
	underAttack(t, s, func(ctx context.Context, addr string) {
		holdFrom(ctx, addr, attackConns, 8, func(ctx context.Context, c net.Conn) {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: victim\r\n\r\n"); err != nil {
				return
			}
			io.Copy(io.Discard, c)
		})
	})
	if st := s.ConnStats(); st.OverShare == 0 {
		t.Errorf("no connection was reset at accept: %+v", st)
	}
}

// TestSlowBodies: four times the cap of requests whose bodies trickle in,
// to the verdict and to the push route (without the token).
func TestSlowBodies(t *testing.T) {
	s := loadServer(t)
	var n atomic.Int64
	underAttack(t, s, func(ctx context.Context, addr string) {
		hold(ctx, addr, attackConns, func(ctx context.Context, c net.Conn) {
			path := []string{"/", "/heartbeat/backup"}[n.Add(1)%2]
			if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: victim\r\nContent-Length: 1000000\r\n\r\n"); err != nil {
				return
			}
			for ctx.Err() == nil {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	})
}

// opener opens openMax connections over attackFor, writes payload on each
// and then neither reads nor writes, keeping them open until ctx ends.
// rcvbuf, when not zero, is the receive buffer of each.
func opener(ctx context.Context, addr string, rcvbuf int, payload []byte) {
	every := attackFor / openMax
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var writes sync.WaitGroup
	defer writes.Wait()
	for range openMax {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if rcvbuf > 0 {
				c.(*net.TCPConn).SetReadBuffer(rcvbuf)
			}
			held = append(held, c)
			// The write blocks once the server stops reading; it ends
			// with the attack.
			writes.Add(1)
			stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now()) })
			go func() {
				defer writes.Done()
				defer stop()
				c.Write(payload)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
	<-ctx.Done()
}

// TestPipelinedUnread: connections that send two thousand GET / in one
// write, with a small receive window, and never read an answer.
func TestPipelinedUnread(t *testing.T) {
	s := loadServer(t)
	payload := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2000))
	underAttack(t, s, func(ctx context.Context, addr string) {
		opener(ctx, addr, 4096, payload)
	})
}

// TestSlowPushBodies: pushes from a client allowed to push (no token is
// set, the attacker is on this machine) that announce a body of 60,000
// bytes and send one.
func TestSlowPushBodies(t *testing.T) {
	s := loadServerToken(t, "")
	payload := []byte("POST /heartbeat/x HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nx")
	underAttack(t, s, func(ctx context.Context, addr string) {
		opener(ctx, addr, 0, payload)
	})
}

// heavyServer is loadServer with a status page of 10,000 jobs and a
// /metrics answer of 5 MB, as a large state gives them, behind the
// bounds of Checker.Routes.
func heavyServer(t *testing.T) *Server {
	t.Helper()
	store := jobState(t, 10000, time.Now())
	sh := NewStateHealth(store, nil, nil)
	if err := sh.Load(); err != nil {
		t.Fatal(err)
	}
	st := ui.Status{Jobs: make([]ui.Job, 10000)}
	for i := range st.Jobs {
		st.Jobs[i] = ui.Job{Name: fmt.Sprintf("tcp:many[127.0.0.4:%d]", 20000+i), Type: "tcp", State: "failing", Status: "CRITICAL",
			Message: "connect: connection refused", Since: time.Now(), LastRun: time.Now(), Failures: 3}
	}
	page := ui.New(ui.Options{Server: "loaded", IsLoopback: IsLoopback,
		Status: func(context.Context) (ui.Status, error) { return st, nil }})
	t.Cleanup(page.Close)
	scrape := []byte(strings.Repeat("checker_job_up{name=\"tcp:many[127.0.0.4:20000]\",type=\"tcp\"} 0\n", 5<<20/60))
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(scrape) })
	s := newServer(t, Options{MaxConns: loadCap}, Checker{
		ServerName: "loaded", Version: "test", StaleAfter: time.Hour, Health: sh.Health,
		UI: page, Metrics: metrics,
	}.Routes()...)
	start(t, s)
	return s
}

// TestHeavyRouteFlood: the status page and /metrics of a 10,000-job state
// asked for from many connections at once, read in full or never read:
// GET / goes on answering, and the heavy routes beyond their bounds say
// 503 with Retry-After rather than queue without end.
func TestHeavyRouteFlood(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		s := heavyServer(t)
		var ok, busy atomic.Int64
		underAttack(t, s, func(ctx context.Context, addr string) {
			floodGets(ctx, addr, []string{"/ui/", "/metrics"}, func() bool { return true }, func(path string, resp *http.Response) {
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusServiceUnavailable:
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("GET %s: 503 without Retry-After", path)
					}
					busy.Add(1)
				default:
					t.Errorf("GET %s: %s", path, resp.Status)
				}
			})
		})
		if ok.Load() == 0 {
			t.Error("no page or scrape was answered in full")
		}
		t.Logf("heavy answers: %d in full, %d busy", ok.Load(), busy.Load())
	})
	t.Run("unread", func(t *testing.T) {
		s := heavyServer(t)
		var n atomic.Int64
		underAttack(t, s, func(ctx context.Context, addr string) {
			hold(ctx, addr, attackConns, func(ctx context.Context, c net.Conn) {
				c.(*net.TCPConn).SetReadBuffer(4096)
				path := []string{"/ui/", "/metrics"}[n.Add(1)%2]
				if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: victim\r\n\r\n"); err != nil {
					return
				}
				<-ctx.Done() // never reads
			})
		})
	})
}
