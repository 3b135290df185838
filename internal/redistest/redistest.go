package redistest

import (
	"bufio"
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startGuard bounds how long Start waits for the server to answer. It is a
// does-not-hang guard, far above the few milliseconds a start takes.
const startGuard = 10 * time.Second

// Server is a redis-server process on a loopback port, owned by one test.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string

	out  *syncBuffer
	cmd  *exec.Cmd
	once sync.Once
	done chan struct{} // closed when the process has exited
}

// Start runs redis-server (no persistence) on a free 127.0.0.1 port with
// extra arguments appended, waits until it answers PING, and kills it when
// the test ends. The test fails if redis-server is not on PATH.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH; run `make test`, which installs it")
	}
	port := FreePort(t)
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", t.TempDir(),
	}, extra...)
	srv := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		out:  &syncBuffer{},
		cmd:  exec.Command(bin, args...),
		done: make(chan struct{}),
	}
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	dieWithParent(srv.cmd)
	if err := srv.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	go func() {
		_ = srv.cmd.Wait()
		close(srv.done)
	}()
	t.Cleanup(srv.Kill)

	deadline := time.Now().Add(startGuard)
	for {
		if Ping(srv.Addr) {
			return srv
		}
		select {
		case <-srv.done:
			t.Fatalf("redis-server exited at start:\n%s", srv.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within %s:\n%s", srv.Addr, startGuard, srv.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL returns the server's redis:// URL for database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Kill stops the server at once and waits for it to exit. It may be called
// more than once, and from any goroutine.
func (s *Server) Kill() {
	s.once.Do(func() { _ = s.cmd.Process.Kill() })
	<-s.done
}

// Cmd returns the running process, for tests that signal it (SIGSTOP makes
// a server that keeps connections open and never answers). Callers must
// not Wait on it; Start already does.
func (s *Server) Cmd() *exec.Cmd { return s.cmd }

// Output returns what the server has logged so far.
func (s *Server) Output() string { return s.out.String() }

// Ping speaks just enough RESP to see whether a server answers at addr.
func Ping(addr string) bool {
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

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedAddr returns a loopback host:port nothing listens on, so that
// connecting to it is refused at once.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
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
