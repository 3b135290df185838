package ui

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"checker/heartbeat"
)

// now is the tests' clock: heartbeats are dated from it.
var now = time.Now().Truncate(time.Second)

// localStore is a real local heartbeat store in a temporary directory,
// polled often so that a watch sees a new beat at once.
func localStore(t *testing.T) *heartbeat.LocalStore {
	t.Helper()
	s, err := heartbeat.OpenLocal(t.TempDir(), heartbeat.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s heartbeat.Store, m heartbeat.Message) {
	t.Helper()
	if err := s.Put(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func beatOf(service string, at time.Time) heartbeat.Message {
	return heartbeat.Message{ServiceName: service, InstanceID: "0123456789abcdef", Timestamp: at,
		UptimeSeconds: 3600, HeartbeatCount: 60, MemoryUsageMB: 12.5, CPUUsagePercent: 1.5}
}

// serve mounts the page's routes on a test server on 127.0.0.1.
func serve(t *testing.T, u *UI) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		u.Close()
		srv.Close()
	})
	return srv
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// parsePage parses HTML as a browser would.
func parsePage(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	return doc
}

// find returns the nodes under n for which match is true, in document
// order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if match(c) {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return n.Type == html.ElementNode && strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

// textOf is the text content of n, spaces collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// cell returns the text of the cell of class in row.
func cell(row *html.Node, class string) string {
	for _, c := range find(row, func(n *html.Node) bool { return hasClass(n, class) }) {
		return textOf(c)
	}
	return ""
}

// rows returns the body rows of the table with id, as the page has them.
func rows(t *testing.T, doc *html.Node, id string) []*html.Node {
	t.Helper()
	tables := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, "id") == id })
	if len(tables) != 1 {
		t.Fatalf("%d tables with id %s", len(tables), id)
	}
	return find(tables[0], func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "tr" && n.Parent.Data == "tbody"
	})
}

// stream is a live stream being read.
type stream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

// sse is one server-sent event, or a comment (name ":").
type sse struct{ name, data string }

func openStream(t *testing.T, url string, header ...string) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &stream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event or comment; it fails the test after 10 s
// (a hang guard, not a measurement).
func (s *stream) next() sse {
	s.t.Helper()
	type res struct {
		ev  sse
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var ev sse
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				ch <- res{ev, err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- res{ev, nil}
					return
				}
			case strings.HasPrefix(line, ":"):
				ch <- res{sse{name: ":", data: strings.TrimSpace(line[1:])}, nil}
				return
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			case strings.HasPrefix(line, "retry: "):
				ev.name = "retry"
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return sse{name: "EOF", data: r.err.Error()}
		}
		return r.ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
		return sse{}
	}
}

// until reads events until one named name comes, skipping others.
func (s *stream) until(name string) sse {
	s.t.Helper()
	for {
		ev := s.next()
		if ev.name == name || ev.name == "EOF" {
			return ev
		}
	}
}
