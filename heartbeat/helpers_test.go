package heartbeat

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisServer is a redis-server process on a loopback port, owned by a test.
type redisServer struct {
	Addr string

	out  *syncBuffer
	cmd  *exec.Cmd
	once sync.Once
	done chan struct{} // closed when the process has exited
}

// startRedis runs a throwaway redis-server (no persistence) on a free
// loopback port with extra arguments appended, waits until it answers PING,
// and kills it when the test ends.
func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH; run `make test`, which installs it")
	}
	port := freePort(t)
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", t.TempDir(),
	}, extra...)
	srv := &redisServer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		out:  &syncBuffer{},
		cmd:  exec.Command(bin, args...),
		done: make(chan struct{}),
	}
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	if err := srv.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	go func() {
		_ = srv.cmd.Wait()
		close(srv.done)
	}()
	t.Cleanup(srv.Kill)

	deadline := time.Now().Add(10 * time.Second)
	for {
		if redisPing(srv.Addr) {
			return srv
		}
		select {
		case <-srv.done:
			t.Fatalf("redis-server exited at start:\n%s", srv.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within 10s:\n%s", srv.Addr, srv.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once and waits for it to exit. It may be called
// more than once.
func (s *redisServer) Kill() {
	s.once.Do(func() { _ = s.cmd.Process.Kill() })
	<-s.done
}

// redisPing speaks just enough RESP to see whether a server is up.
func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test
// reading it at once.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errorSink collects errors reported through an error log callback.
type errorSink struct {
	mu   sync.Mutex // guards errs
	errs []error
}

func (s *errorSink) log(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// contains reports whether any collected error mentions substr.
func (s *errorSink) contains(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		if strings.Contains(err.Error(), substr) {
			return true
		}
	}
	return false
}

func (s *errorSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, err := range s.errs {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "\n")
}

// eventually polls cond every 10ms until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchFor runs store.Watch until it delivers a message for which match
// holds, calling feed every 20ms meanwhile so that something is published
// once the watch is listening. It checks that Watch then returns nil on
// cancellation.
func watchFor(t *testing.T, store Store, match func(Message) bool, feed func()) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := make(chan Message, 1)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- store.Watch(ctx, func(m Message) {
			if match(m) {
				select {
				case got <- m:
				default:
				}
			}
		})
	}()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case m := <-got:
			cancel()
			select {
			case err := <-watchErr:
				if err != nil {
					t.Fatalf("Watch returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Watch did not return within 5s of cancel")
			}
			return m
		case err := <-watchErr:
			t.Fatalf("Watch returned early: %v", err)
		case <-ctx.Done():
			t.Fatal("no matching heartbeat seen by Watch within 15s")
		case <-ticker.C:
			if feed != nil {
				feed()
			}
		}
	}
}
