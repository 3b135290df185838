package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"checker/ui"
)

// TestCheckerRoutesMountPageAndMetrics: the page's routes are served with
// its own access rule, /metrics with LoopbackOrToken on [serve] ui_token,
// and the stream route takes no slots of a bound (it bounds itself).
func TestCheckerRoutesMountPageAndMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "checker_info 1\n") })
	for _, tc := range []struct {
		name     string
		token    string
		loopback bool
		header   string
		want     map[string]int
	}{
		{"loopback, no token", "", true, "", map[string]int{"/ui/": 200, "/metrics": 200, "/ui/static/app.js": 200}},
		{"elsewhere, no token", "", false, "", map[string]int{"/ui/": 403, "/metrics": 403, "/ui/events": 403}},
		{"token, none sent", "t0k", true, "", map[string]int{"/ui/": 401, "/metrics": 401}},
		{"token sent", "t0k", false, "Bearer t0k", map[string]int{"/ui/": 200, "/metrics": 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isLoopback := func(*http.Request) bool { return tc.loopback }
			page := ui.New(ui.Options{Token: tc.token, IsLoopback: isLoopback,
				Status: func(context.Context) (ui.Status, error) { return ui.Status{}, nil }})
			defer page.Close()
			routes := Checker{UI: page, Metrics: metrics, UIToken: tc.token, IsLoopback: isLoopback}.Routes()
			for _, r := range routes {
				if r.Pattern == "GET /ui/events" && r.MaxInFlight != 0 {
					t.Error("the stream route holds slots of a bound")
				}
			}
			s, err := New(Options{Addr: "127.0.0.1:0"}, routes)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
			defer srv.Close()
			for path, want := range tc.want {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
				}
				if path == "/metrics" && want == 200 && !strings.Contains(string(body), "checker_info") {
					t.Errorf("GET /metrics: %q", body)
				}
			}
		})
	}
}
