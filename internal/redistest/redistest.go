package redistest

import (
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

	bin  string
	args []string
	// ping tells whether the server answers; TLS servers need a TLS client.
	ping func(addr string) bool

	mu   sync.Mutex // guards out, cmd, once and done, which Restart replaces
	out  *syncBuffer
	cmd  *exec.Cmd
	once *sync.Once
	done chan struct{} // closed when the process has exited
}

// Start runs redis-server (no persistence) on a free 127.0.0.1 port with
// extra arguments appended, waits until it answers PING, and kills it when
// the test ends. The test fails if redis-server is not on PATH.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	port := FreePort(t)
	args := append([]string{"--port", strconv.Itoa(port)}, extra...)
	return start(t, port, args, Ping)
}

// start runs redis-server on port with the base arguments and args, and
// waits until ping says it answers.
func start(t testing.TB, port int, args []string, ping func(string) bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH; run `make test`, which installs it")
	}
	base := []string{
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", t.TempDir(),
	}
	srv := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		bin:  bin,
		args: append(base, args...),
		ping: ping,
	}
	t.Cleanup(srv.Kill)
	srv.launch(t)
	return srv
}

// launch starts the process and waits until it answers.
func (s *Server) launch(t testing.TB) {
	t.Helper()
	out, done := &syncBuffer{}, make(chan struct{})
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = out, out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.out, s.cmd, s.once, s.done = out, cmd, &sync.Once{}, done
	s.mu.Unlock()

	deadline := time.Now().Add(startGuard)
	for {
		if s.ping(s.Addr) {
			return
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited at start:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within %s:\n%s", s.Addr, startGuard, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL returns the server's redis:// URL for database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Kill stops the server at once and waits for it to exit. It may be called
// more than once, and from any goroutine.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, once, done := s.cmd, s.once, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	once.Do(func() { _ = cmd.Process.Kill() })
	<-done
}

// Restart kills the server and starts a new one, empty, on the same port
// with the same arguments, as a restart without persistence does. It
// returns once the new server answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.launch(t)
}

// Cmd returns the running process, for tests that signal it (SIGSTOP makes
// a server that keeps connections open and never answers). Callers must
// not Wait on it; Start already does.
func (s *Server) Cmd() *exec.Cmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd
}

// Output returns what the server has logged so far (since its last
// Restart).
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Ping speaks just enough RESP to see whether a server answers at addr.
func Ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	return answers(roundTrip(c, "PING"))
}

// answers reports whether a PING got a server's answer: PONG, or NOAUTH
// from a server that wants a password first.
func answers(reply string, err error) bool {
	return err == nil && reply == "PONG" || err != nil && strings.HasPrefix(err.Error(), "NOAUTH")
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
