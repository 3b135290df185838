package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"checker/heartbeat"
)

func TestServerServesAndShutsDown(t *testing.T) {
	s := newServer(t, Options{}, Route{Pattern: "GET /{$}", Handler: text("True")})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	<-s.Ready()
	if strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound port", s.Addr())
	}
	if _, body := fetch(t, http.DefaultClient, "GET", "http://"+s.Addr()+"/"); body != "True" {
		t.Errorf("body = %q, want True", body)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second); err == nil {
		c.Close()
		t.Error("server still accepts connections after shutdown")
	}
}

func TestServerFinishesRequestInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := newServer(t, Options{}, Route{Pattern: "/", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	<-s.Ready()

	type reply struct {
		body string
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/")
		if err != nil {
			replies <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- reply{string(b), err}
	}()
	within(t, "request reaching the handler", entered)
	cancel()
	close(release)
	select {
	case r := <-replies:
		if r.err != nil || r.body != "done" {
			t.Errorf("request in flight got %q, %v; want done", r.body, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("request in flight never finished")
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestServerTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t, time.Now().Add(time.Hour))
	s := newServer(t, Options{TLSCert: certFile, TLSKey: keyFile}, Route{Pattern: "GET /{$}", Handler: text("True")})
	base := start(t, s)
	hc := trustingClient(pool)
	resp, err := hc.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "True" || resp.TLS == nil || resp.ProtoMajor != 1 {
		t.Errorf("body %q, TLS %v, HTTP/%d; want True over TLS with HTTP/1.1", b, resp.TLS != nil, resp.ProtoMajor)
	}
	// Plain HTTP to the TLS port gets no verdict.
	if resp, err := http.Get("http://" + s.Addr() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to the TLS port answered 200")
		}
	}
	// TLS 1.1 is refused.
	old := trustingClient(pool)
	old.Transport.(*http.Transport).TLSClientConfig.MinVersion = 0x0301
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = 0x0302
	if resp, err := old.Get(base + "/"); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}
}

// TestServerReloadTLS: a renewed certificate is served to new connections
// without a restart; a broken one is refused and the old one stays.
func TestServerReloadTLS(t *testing.T) {
	soon := time.Now().Add(time.Hour).Truncate(time.Second)
	later := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	certFile, keyFile, pool := selfSignedCert(t, soon)
	s := newServer(t, Options{TLSCert: certFile, TLSKey: keyFile}, Route{Pattern: "GET /{$}", Handler: text("True")})
	base := start(t, s)
	notAfter := func() time.Time {
		t.Helper()
		hc := trustingClient(pool)
		hc.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true // another CA signs the renewal
		hc.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := hc.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].NotAfter
	}
	if got := notAfter(); !got.Equal(soon) {
		t.Fatalf("served certificate expires %v, want %v", got, soon)
	}
	newCert, newKey, _ := selfSignedCert(t, later)
	if err := s.ReloadTLS(newCert, newKey); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := notAfter(); !got.Equal(later) {
		t.Errorf("after ReloadTLS the certificate expires %v, want %v", got, later)
	}
	if err := s.ReloadTLS(newCert, newCert); err == nil || !strings.Contains(err.Error(), newCert) {
		t.Errorf("ReloadTLS with a certificate as key = %v, want an error naming the file", err)
	}
	if got := notAfter(); !got.Equal(later) {
		t.Errorf("after a failed ReloadTLS the certificate expires %v, want the previous one (%v)", got, later)
	}
	plain := newServer(t, Options{})
	if err := plain.ReloadTLS(newCert, newKey); err == nil {
		t.Error("ReloadTLS on a plain server succeeded")
	}
}

func TestServerErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certFile, keyFile, _ := selfSignedCert(t, time.Now().Add(time.Hour))

	tests := []struct {
		name              string
		addr              string
		certFile, keyFile string
		want              []string // substrings of the error
	}{
		{"port in use", busy.Addr().String(), "", "", []string{busy.Addr().String()}},
		{"missing cert file", "127.0.0.1:0", "/nonexistent/cert.pem", keyFile, []string{"127.0.0.1:0", "/nonexistent/cert.pem"}},
		{"key is not a key", "127.0.0.1:0", certFile, certFile, []string{certFile}},
		{"cert without key", "127.0.0.1:0", certFile, "", []string{"both a certificate and a key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, Options{Addr: tt.addr, TLSCert: tt.certFile, TLSKey: tt.keyFile})
			done := make(chan struct{})
			go func() {
				defer close(done)
				err = s.Serve(context.Background())
			}()
			within(t, "Serve with a bad setup", done)
			if err == nil {
				t.Fatal("Serve returned nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name    string
		routes  []Route
		wantErr string
	}{
		{"conflicting patterns", []Route{{Pattern: "GET /x", Handler: text("a")}, {Pattern: "GET /x", Handler: text("b")}}, `"GET /x"`},
		{"invalid pattern", []Route{{Pattern: "GET /{", Handler: text("a")}}, `"GET /{"`},
		{"no handler", []Route{{Pattern: "GET /x"}}, "no handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Options{Addr: "127.0.0.1:0"}, tt.routes); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want an error containing %s", err, tt.wantErr)
			}
		})
	}
}

// TestSetRoutes: new routes take over at once; bad ones leave the old.
func TestSetRoutes(t *testing.T) {
	s := newServer(t, Options{}, Route{Pattern: "GET /{$}", Handler: text("old")})
	base := start(t, s)
	if _, body := fetch(t, http.DefaultClient, "GET", base+"/"); body != "old" {
		t.Fatalf("body %q, want old", body)
	}
	if err := s.SetRoutes([]Route{{Pattern: "GET /{$}", Handler: text("new")}, {Pattern: "GET /ui/", Handler: text("page")}}); err != nil {
		t.Fatal(err)
	}
	if _, body := fetch(t, http.DefaultClient, "GET", base+"/"); body != "new" {
		t.Errorf("after SetRoutes body %q, want new", body)
	}
	if _, body := fetch(t, http.DefaultClient, "GET", base+"/ui/x"); body != "page" {
		t.Errorf("mounted route answered %q, want page", body)
	}
	if err := s.SetRoutes([]Route{{Pattern: "GET /{", Handler: text("bad")}}); err == nil {
		t.Error("SetRoutes with a bad pattern succeeded")
	}
	if _, body := fetch(t, http.DefaultClient, "GET", base+"/"); body != "new" {
		t.Errorf("after a failed SetRoutes body %q, want new", body)
	}
}

// TestHeaderLimits: oversized headers are refused, not buffered.
func TestHeaderLimits(t *testing.T) {
	s := newServer(t, Options{}, Route{Pattern: "/", Handler: text("True")})
	base := start(t, s)
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("oversized headers got status %d, want 431", resp.StatusCode)
		}
	}
}

// rawConn dials addr and returns the connection with a reader.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// closedWithin reports whether the server closes c (a read sees EOF or a
// reset) within d, reading and discarding whatever comes before.
func closedWithin(c net.Conn, r *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestUnreadBodyIsNotWaitedFor: a request whose body no handler reads (POST
// to the verdict, a refused push) cannot keep its connection busy by
// trickling the body: the answer comes, then the server hangs up.
func TestUnreadBodyIsNotWaitedFor(t *testing.T) {
	s := newServer(t, Options{}, Route{Pattern: "GET /{$}", Handler: text("True")},
		Route{Pattern: "POST /refuse", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusForbidden)
		})})
	start(t, s)
	for _, path := range []string{"/", "/refuse"} {
		t.Run(path, func(t *testing.T) {
			c, r := rawConn(t, s.Addr())
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nsome", path)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || !resp.Close {
				t.Errorf("status %d, Connection close %v; want a refusal that closes", resp.StatusCode, resp.Close)
			}
			// The readTimeout (10s) would hold it much longer.
			if !closedWithin(c, r, 5*time.Second) {
				t.Error("the server still waits for the body 5s later")
			}
		})
	}
}

// TestMaxInFlight: a costly route is bounded; the verdict never waits
// behind it.
func TestMaxInFlight(t *testing.T) {
	entered, release := make(chan struct{}, 10), make(chan struct{})
	s := newServer(t, Options{},
		Route{Pattern: "GET /{$}", Handler: text("True")},
		Route{Pattern: "GET /slow", MaxInFlight: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
			io.WriteString(w, "slow")
		})})
	base := start(t, s)
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(base + "/slow")
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	<-entered
	<-entered
	if _, body := fetch(t, http.DefaultClient, "GET", base+"/"); body != "True" {
		t.Errorf("verdict while the slow route is full: %q", body)
	}
	code, body := fetch(t, http.DefaultClient, "GET", base+"/slow")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
		t.Errorf("third slow request: %d %q, want 503 busy", code, body)
	}
	close(release)
	for range 2 {
		if c := <-done; c != 200 {
			t.Errorf("slow request holding a slot: %d, want 200", c)
		}
	}
}

func TestErrorLogLevels(t *testing.T) {
	var buf logBuffer
	w := errorLogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	io.WriteString(w, "http: Accept error: accept tcp [::]:5000: accept4: too many open files; retrying in 5ms\n")
	io.WriteString(w, "http: TLS handshake error from 192.0.2.1:5555: EOF\n")
	got := buf.String()
	if !strings.Contains(got, `level=WARN msg="http: Accept error`) || !strings.Contains(got, `level=DEBUG msg="http: TLS handshake error`) {
		t.Errorf("log:\n%s\nwant the accept error as a warning, the handshake at debug", got)
	}
}

func TestDefaultMaxConns(t *testing.T) {
	lim, ok := openFileLimit()
	n := defaultMaxConns()
	if n < 16 || n > DefaultMaxConns || (ok && uint64(2*n+fdReserve) > lim && n > 16) {
		t.Errorf("defaultMaxConns() = %d with an open-file limit of %d", n, lim)
	}
}

func TestBeyondLoopback(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, false},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5000}, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, false},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 5000}, true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 5000}, true},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, true},
		{nil, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.addr), func(t *testing.T) {
			if got := beyondLoopback(tt.addr); got != tt.want {
				t.Errorf("beyondLoopback(%v) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	s := newServer(t, Options{})
	if !s.BeyondLoopback() {
		t.Error("a server not listening yet counts as loopback-only")
	}
	start(t, s)
	if s.BeyondLoopback() {
		t.Errorf("a server on %s counts as beyond loopback", s.Addr())
	}
}

// TestPushNamesAreThePackagesToJudge: the push route hands the service
// name, percent-decoded once as every path segment is, to the heartbeat
// package's validation, and records it under exactly that name; it adds
// no decoding of its own. (Which names are valid is the package's rule.)
func TestPushNamesAreThePackagesToJudge(t *testing.T) {
	hb, err := heartbeat.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	s := newServer(t, Options{}, Checker{ServerName: "s", Heartbeats: hb}.Routes()...)
	base := start(t, s) // http://host:port
	for _, raw := range []string{"nightly-backup", "%2e%2e", ".hidden", "-rf", "CON", "a%2Fb", "a%252Fb", "%2e", "sp%20ace"} {
		name, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatal(err)
		}
		wantOK := heartbeat.ValidServiceName(name) == nil
		code, body := fetch(t, http.DefaultClient, http.MethodPost, base+"/heartbeat/"+raw)
		if got := code/100 == 2; got != wantOK {
			t.Errorf("push to /heartbeat/%s: %d %q; the package says valid=%v for %q", raw, code, body, wantOK, name)
		}
		if _, found, _ := hb.Get(context.Background(), name); found != wantOK {
			t.Errorf("push to /heartbeat/%s: recorded as %q: %v, want %v", raw, name, found, wantOK)
		}
	}
}
