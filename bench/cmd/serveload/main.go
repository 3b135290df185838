// Command serveload measures a running `checker serve` the way peers and
// attackers meet it: GET / throughput with an empty state and with one of
// 10,000 jobs, then floods (GET / and /status from many connections, idle
// keep-alive connections beyond the cap, slowloris, connections that
// pipeline 2,000 GET / with a 4 KiB receive buffer and never read, pushes
// whose body never comes; the last two from 127.0.0.3) while a peer-style
// prober on 127.0.0.2 asks GET / with a one-second timeout. It reports
// requests per second, the prober's failures and slowest answer, and the
// server's peak RSS (VmHWM). bench/serve.sh builds the binary and runs this.
//
// Everything runs on loopback, bounded in connections and time.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	probeAddr := flag.String("probe", "", "internal: probe this address like a peer for -probe-for, print the result")
	probeFor := flag.Duration("probe-for", 0, "internal: how long to probe")
	bin := flag.String("bin", "bin/checker", "the checker binary to measure")
	dur := flag.Duration("for", 5*time.Second, "how long each measurement lasts")
	conns := flag.Int("conns", 32, "keep-alive connections of the throughput clients")
	idle := flag.Int("idle", 10000, "idle keep-alive connections of the exhaustion flood")
	srcs := flag.Int("srcs", 200, "source addresses (127.1.x.y) of the many-address idle flood")
	slow := flag.Int("slow", 5000, "slowloris connections")
	pipelined := flag.Int("pipelined", 15000, "connections of the unread-pipelining flood, at most")
	slowPush := flag.Int("slowpush", 15000, "connections of the slow-push-body flood, at most")
	only := flag.String("only", "", "run only the rows whose load contains this text")
	rate := flag.Int("rate", 1500, "new connections per second of the pipelining and slow-push floods")
	flag.Parse()
	if *probeAddr != "" {
		probeLoop(*probeAddr, *probeFor)
		return
	}
	// The attacker is not to take the server's CPUs: it gets one, serve
	// and the prober (a process of its own) share the rest.
	runtime.GOMAXPROCS(1)
	fl := floods{only: *only, conns: *conns, idle: *idle, slow: *slow, pipelined: *pipelined, slowPush: *slowPush, rate: *rate, srcs: *srcs}
	if err := run(*bin, *dur, fl); err != nil {
		fmt.Fprintln(os.Stderr, "serveload:", err)
		os.Exit(1)
	}
}

// row is one line of the table.
type row struct {
	state, load string
	reqs        float64 // requests per second; 0 when not measured
	probes      int
	failed      int
	slowest     time.Duration
	hwm, rss    int64 // KiB
	note        string
}

// floods sizes the loads.
type floods struct {
	only                string // run only the rows whose load contains it
	conns, idle, slow   int
	pipelined, slowPush int
	rate                int // new connections per second
	srcs                int // source addresses of the many-address idle flood
}

func run(bin string, dur time.Duration, fl floods) error {
	conns, idle, slow := fl.conns, fl.idle, fl.slow
	skip := func(load string) bool { return !strings.Contains(load, fl.only) }
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "serveload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	var rows []row
	for _, jobs := range []int{0, 10000} {
		dir := filepath.Join(root, strconv.Itoa(jobs))
		srv, err := startServe(abs, dir, jobs)
		if err != nil {
			return err
		}
		srv.skip = skip
		name := fmt.Sprintf("%d jobs", jobs)
		rows = append(rows, srv.measure(name, fmt.Sprintf("GET / from %d keep-alive conns", conns), dur, func(ctx context.Context) (int64, string) {
			return hammer(ctx, srv.addr, conns, []string{"/"})
		}))
		if jobs == 0 {
			srv.stop()
			continue
		}
		rows = append(rows,
			srv.measure(name, "GET / and /status from 256 conns", dur, func(ctx context.Context) (int64, string) {
				return hammer(ctx, srv.addr, 256, []string{"/", "/status"})
			}),
			srv.measure(name, fmt.Sprintf("%d idle keep-alive conns (cap %d)", idle, srv.maxConns), dur, func(ctx context.Context) (int64, string) {
				return 0, holdIdle(ctx, srv.addr, idle)
			}),
			srv.measure(name, fmt.Sprintf("%d idle keep-alive conns from %d addresses, reconnecting at once (cap %d)", idle, fl.srcs, srv.maxConns), dur, func(ctx context.Context) (int64, string) {
				return 0, holdIdleFrom(ctx, srv.addr, idle, fl.srcs)
			}),
			srv.measure(name, fmt.Sprintf("%d slowloris conns (cap %d)", slow, srv.maxConns), dur, func(ctx context.Context) (int64, string) {
				return 0, slowloris(ctx, srv.addr, slow)
			}),
			srv.measure(name, fmt.Sprintf("%d conns/s (≤%d) × 2000 pipelined GET /, unread (cap %d)", fl.rate, fl.pipelined, srv.maxConns), dur, func(ctx context.Context) (int64, string) {
				return 0, opener(ctx, srv.addr, fl.rate, fl.pipelined, 4096, pipelinedGets)
			}),
			srv.measure(name, fmt.Sprintf("%d conns/s (≤%d) push 1 of 60000 body bytes (cap %d)", fl.rate, fl.slowPush, srv.maxConns), dur, func(ctx context.Context) (int64, string) {
				return 0, opener(ctx, srv.addr, fl.rate, fl.slowPush, 0, slowPushBody)
			}),
			srv.measure(name, "8 conns GET /ui/ + 8 conns GET /metrics, read", dur, func(ctx context.Context) (int64, string) {
				return heavy(ctx, srv.addr, 8)
			}),
			srv.measure(name, "300 conns GET /ui/ + 300 GET /metrics, never read", dur, func(ctx context.Context) (int64, string) {
				return 0, unreadHeavy(ctx, srv.addr, 300)
			}),
		)
		srv.stop()
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	rows = slices.DeleteFunc(rows, func(r row) bool { return skip(r.load) })
	fmt.Fprintf(tw, "state\tload\trequests/s\tpeer probes\tfailed\tslowest probe\tserve RSS now / peak\tnote\n")
	for _, r := range rows {
		reqs := "—"
		if r.reqs > 0 {
			reqs = fmt.Sprintf("%.0f", r.reqs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%.1f / %.1f MB\t%s\n", r.state, r.load, reqs, r.probes, r.failed,
			r.slowest.Round(100*time.Microsecond), float64(r.rss)/1024, float64(r.hwm)/1024, r.note)
	}
	return tw.Flush()
}

// serveProc is a `checker serve` being measured.
type serveProc struct {
	cmd      *exec.Cmd
	addr     string
	maxConns int
	stderr   *lockedWriter
	skip     func(load string) bool // rows not to measure
}

// startServe writes settings of n tcp jobs (one [tcp:many] section with n
// closed loopback ports as targets) into dir, runs `cron minute` once so
// that the state holds them all, failing, as it would on a server, and
// starts serve there.
func startServe(bin, dir string, n int) (*serveProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "settings.cfg")
	// The state stays fresh for the whole measurement.
	settings := "[general]\nservername = bench\nconcurrency = 256\ntimeout = 1s\n[email]\nnomail = yes\n[serve]\njobs_stale_after = 1h\n"
	if n > 0 {
		targets := make([]string, n)
		for i := range n {
			// 127.0.0.4 with ports nobody listens on: refused at once.
			targets[i] = fmt.Sprintf("127.0.0.4:%d", 20000+i)
		}
		settings += "[tcp:many]\ntargets = " + strings.Join(targets, ",\n  ") + "\n"
	}
	if err := os.WriteFile(cfg, []byte(settings), 0o600); err != nil {
		return nil, err
	}
	cron := exec.Command(bin, "-f", cfg, "cron", "minute")
	cron.Dir = dir
	if out, err := cron.CombinedOutput(); err != nil && n == 0 {
		return nil, fmt.Errorf("cron minute: %v: %s", err, out)
	}
	p := &serveProc{addr: addr, stderr: &lockedWriter{}}
	p.cmd = exec.Command(bin, "-f", cfg, "serve", "--listen", addr)
	p.cmd.Dir = dir
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if body, err := get(addr, "/"); err == nil && body == "True" {
			break
		} else if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("serve on %s: no True within 10s (%v, %q): %s", addr, err, body, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if i := strings.Index(p.stderr.String(), "max_conns="); i >= 0 {
		fmt.Sscanf(p.stderr.String()[i:], "max_conns=%d", &p.maxConns)
	}
	return p, nil
}

// lockedWriter collects serve's stderr while it runs.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (p *serveProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// memory returns serve's VmRSS and VmHWM in KiB.
func (p *serveProc) memory() (rss, hwm int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// measure runs load for dur while probing like a peer.
func (p *serveProc) measure(stateName, loadName string, dur time.Duration, load func(ctx context.Context) (int64, string)) row {
	if p.skip != nil && p.skip(loadName) {
		return row{load: loadName}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var n int64
	var note string
	done := make(chan struct{})
	start := time.Now()
	go func() { n, note = load(ctx); close(done) }()
	r := row{state: stateName, load: loadName}
	time.Sleep(dur / 10) // let the load build up
	out, err := exec.Command(os.Args[0], "-probe", p.addr, "-probe-for", (dur - dur/10).String()).Output()
	var slowest int64
	if _, serr := fmt.Sscan(string(out), &r.probes, &r.failed, &slowest); err != nil || serr != nil {
		r.note = fmt.Sprintf("prober failed: %v %v; ", err, serr)
	}
	r.slowest = time.Duration(slowest)
	<-done
	r.reqs = float64(n) / time.Since(start).Seconds()
	r.rss, r.hwm = p.memory()
	r.note += note
	// What the load leaves behind once it is gone.
	time.Sleep(3 * time.Second)
	after, _ := p.memory()
	r.note += fmt.Sprintf("; RSS 3 s later %.1f MB", float64(after)/1024)
	return r
}

// heavy fetches /ui/ from n keep-alive connections and /metrics from n
// others, reading every answer, as fast as they come; it counts the
// pages and scrapes answered in full, and the 503s.
func heavy(ctx context.Context, addr string, n int) (int64, string) {
	var ok, busy, bad atomic.Int64
	var wg sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * n}}
	for i := range 2 * n {
		path := "/ui/"
		if i%2 == 1 {
			path = "/metrics"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
				case resp.StatusCode == http.StatusOK:
					ok.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					busy.Add(1)
					time.Sleep(100 * time.Millisecond)
				default:
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load(), fmt.Sprintf("%d answered in full, %d busy (503), %d other", ok.Load(), busy.Load(), bad.Load())
}

// unreadHeavy opens n connections asking GET /ui/ and n asking GET
// /metrics, with a 4 KiB receive buffer, and never reads the answers.
func unreadHeavy(ctx context.Context, addr string, n int) string {
	d := &net.Dialer{Timeout: time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	var held []net.Conn
	for i := range 2 * n {
		path := "/ui/"
		if i%2 == 1 {
			path = "/metrics"
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			continue
		}
		held = append(held, c)
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: bench\r\n\r\n")
	}
	<-ctx.Done()
	for _, c := range held {
		c.Close()
	}
	return fmt.Sprintf("%d connections held", len(held))
}

// probeLoop asks GET / every 50ms for d and prints the number of probes,
// of failed ones and the slowest answer in nanoseconds.
func probeLoop(addr string, d time.Duration) {
	var probes, failed int
	var slowest time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		t0 := time.Now()
		body, err := probeGet(addr)
		took := time.Since(t0)
		probes++
		if err != nil || body != "True" {
			failed++
			fmt.Fprintf(os.Stderr, "probe %d: %q %v\n", probes, body, err)
		}
		slowest = max(slowest, took)
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println(probes, failed, int64(slowest))
}

// probeGet is a peer's check: a new connection from 127.0.0.2, one second.
func probeGet(addr string) (string, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func get(addr, path string) (string, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// hammer sends requests for paths round-robin from conns keep-alive
// connections as fast as they are answered, with a minimal HTTP/1.1 client
// (net/http's would cost more CPU than the server it measures), and
// returns the number of correct answers.
func hammer(ctx context.Context, addr string, conns int, paths []string) (int64, string) {
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				r := bufio.NewReader(c)
				for k := i; ctx.Err() == nil; k++ {
					path := paths[k%len(paths)]
					if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
						break
					}
					body, err := readResponse(r)
					if err != nil {
						break
					}
					if (path == "/" && body == "True") || (path == "/status" && strings.Contains(body, `"status":"True"`)) {
						ok.Add(1)
					} else {
						bad.Add(1)
					}
				}
				stop()
				c.Close()
			}
		}()
	}
	wg.Wait()
	note := ""
	if b := bad.Load(); b > 0 {
		note = fmt.Sprintf("%d wrong answers", b)
	}
	return ok.Load(), note
}

// readResponse reads one response with a Content-Length and returns its
// body.
func readResponse(r *bufio.Reader) (string, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return "", errors.New("status " + strings.TrimSpace(status))
	}
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return "", errors.New("no Content-Length")
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// holdIdle keeps n keep-alive connections that made one request each,
// reconnecting those the server closes.
func holdIdle(ctx context.Context, addr string, n int) string {
	var reconnects atomic.Int64
	hold(ctx, n, func() {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			return
		}
		io.Copy(io.Discard, c)
		reconnects.Add(1)
	})
	return fmt.Sprintf("%d connections made", reconnects.Load())
}

// holdIdleFrom keeps n idle keep-alive connections spread over srcs
// loopback source addresses, each reconnecting as soon as the server
// closes or resets it (no pause, unlike holdIdle): a flood of connections
// from many clients.
func holdIdleFrom(ctx context.Context, addr string, n, srcs int) string {
	var made atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := net.IPv4(127, 1, byte(i%srcs/250), byte(1+i%srcs%250))
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: time.Second}
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				made.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err == nil {
					io.Copy(io.Discard, c)
				}
				stop()
				c.Close()
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d connections made", made.Load())
}

// slowloris keeps n connections sending a header a byte every 100ms,
// reconnecting those the server closes.
func slowloris(ctx context.Context, addr string, n int) string {
	var reconnects atomic.Int64
	header := "GET / HTTP/1.1\r\nHost: bench\r\nX-Padding: " + strings.Repeat("a", 4000)
	hold(ctx, n, func() {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		reconnects.Add(1)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := c.Write([]byte{header[i%len(header)]}); err != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	return fmt.Sprintf("%d connections made", reconnects.Load())
}

// hold runs n goroutines each calling conn until ctx ends; conn is paced a
// little when it returns at once, so a refused dial does not spin.
func hold(ctx context.Context, n int, conn func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				conn()
				if time.Since(t0) < 10*time.Millisecond {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// pipelinedGets is 2000 GET / requests in one write; the flood never
// reads their answers.
var pipelinedGets = []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2000))

// slowPushBody is a heartbeat push announcing 60,000 bytes of body and
// sending one: no token is needed from this machine.
var slowPushBody = []byte("POST /heartbeat/x HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nx")

// opener opens connections from 127.0.0.3 at rate per second (two
// goroutines), writes payload on each and then neither reads nor writes,
// keeping up to max of them open until ctx ends. rcvbuf, when set, is the
// socket's receive buffer (set before connecting, so the window stays
// small).
func opener(ctx context.Context, addr string, rate, max, rcvbuf int, payload []byte) string {
	d := &net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	var mu sync.Mutex
	var held []net.Conn
	var made, failed atomic.Int64
	var wg sync.WaitGroup
	const openers = 2
	every := time.Duration(openers) * time.Second / time.Duration(rate)
	for range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				mu.Lock()
				full := len(held) >= max
				mu.Unlock()
				if full {
					continue
				}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				made.Add(1)
				// The write may block once the server stops reading; it
				// is not waited for.
				go func() { _ = c.SetWriteDeadline(time.Now().Add(dur(ctx))); _, _ = c.Write(payload) }()
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	return fmt.Sprintf("%d connections made, %d dials failed", made.Load(), failed.Load())
}

// dur is the time left before ctx's deadline.
func dur(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return time.Minute
}
