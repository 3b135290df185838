package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads the text exposition format with Prometheus' parser.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, text)
	}
	return fams
}

// metricValue is the value of family name's series whose labels hold the
// pairs of want.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			ok := false
			for _, l := range m.Label {
				ok = ok || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !ok {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

// checkMetrics checks the metrics of uiInstance's state: one job failing,
// one succeeding, one heartbeat alive and one dead.
func checkMetrics(t *testing.T, where string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"checker_state_ok", nil, 1},
		{"checker_info", []string{"server", "status-demo"}, 1},
		{"checker_job_up", []string{"name", "tcp:cache", "type", "tcp"}, 0},
		{"checker_job_status", []string{"name", "tcp:cache"}, 2},
		{"checker_job_consecutive_failures", []string{"name", "tcp:cache"}, 1},
		{"checker_job_up", []string{"name", "tcp:database"}, 1},
		{"checker_job_up", []string{"name", "heartbeat:billing", "type", "heartbeat"}, 1},
		{"checker_job_up", []string{"name", "heartbeat:nightly-backup"}, 0},
		{"checker_heartbeat_state", []string{"service", "billing", "state", "alive"}, 1},
		{"checker_heartbeat_state", []string{"service", "nightly-backup", "state", "dead"}, 1},
		{"checker_heartbeat_store_ok", nil, 1},
		{"checker_mail_ok", nil, 1},
		{"checker_last_run_ok", nil, 1},
		{"checker_outbox_notices", nil, 0},
	}
	for _, tc := range tests {
		if got := metricValue(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s: %s%v = %v, want %v", where, tc.name, tc.labels, got, tc.want)
		}
	}
	if age := metricValue(t, fams, "checker_heartbeat_age_seconds", "service", "nightly-backup"); age < 26*3600 || age > 27*3600 {
		t.Errorf("%s: nightly-backup's age %vs, want about 26h", where, age)
	}
	ts := metricValue(t, fams, "checker_job_last_run_timestamp_seconds", "name", "tcp:database")
	if d := time.Since(time.Unix(int64(ts), 0)); d < 0 || d > time.Hour {
		t.Errorf("%s: tcp:database last ran at %v", where, ts)
	}
}

// TestMetricsTextfileAndEndpoint: cron leaves the metrics for
// node_exporter in [general] metrics_textfile, serve answers them at
// /metrics, and both say what the state says.
func TestMetricsTextfileAndEndpoint(t *testing.T) {
	textfileDir := t.TempDir()
	path := filepath.Join(textfileDir, "checker.prom")
	in, p := uiInstance(t, "") // writes no textfile: not configured
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a textfile without metrics_textfile")
	}
	cfg, err := os.ReadFile(in.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "[general]\n", "[general]\nmetrics_textfile = "+path+"\n", 1))
	if err := os.WriteFile(in.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	in.cron("minute")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cron wrote no textfile: %v", err)
	}
	checkMetrics(t, "textfile", parseMetrics(t, string(text)))
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(textfileDir); len(entries) != 1 {
		t.Errorf("the textfile directory holds %d entries; temporary files left behind?", len(entries))
	}

	code, ctype, body := p.get("/metrics")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q", code, ctype)
	}
	checkMetrics(t, "/metrics", parseMetrics(t, body))
}

// TestMetricsTextfileFailureSparesTheRun: a textfile that cannot be
// written is logged; the run completes and cron mails nothing.
func TestMetricsTextfileFailureSparesTheRun(t *testing.T) {
	in := newInstance(t, "[general]\nmetrics_textfile = /nonexistent-dir/checker.prom\n[email]\nnomail = yes\n[tcp:x]\ntarget = 127.0.0.1:1\nnotify = every\nfailures = 5\n")
	in.cron("minute")
	r := in.run("-d", "cron", "hour")
	if r.code != 0 || !strings.Contains(r.stderr, "cannot write the metrics textfile") || !strings.Contains(r.stderr, "/nonexistent-dir/checker.prom") {
		t.Errorf("with -d: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestStatusPageAccessThroughServe: without ui_token the page and the
// metrics are for this machine; with it, they need the token.
func TestStatusPageAccessThroughServe(t *testing.T) {
	const token = "ui-s3cret"
	for _, tc := range []struct {
		name, extra string
		header      []string
		want        int
	}{
		{"loopback, no token set", "", nil, 200},
		{"token set, none sent", "[serve]\nui_token = " + token + "\n", nil, 401},
		{"token set, wrong one", "[serve]\nui_token = " + token + "\n", []string{"Authorization", "Bearer nope"}, 401},
		{"token set and sent", "[serve]\nui_token = " + token + "\n", []string{"Authorization", "Bearer " + token}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstance(t, "[email]\nnomail = yes\n"+tc.extra)
			p := in.startServe(fmt.Sprintf("http://127.0.0.1:%d/", freePort(t)), nil)
			for _, path := range []string{"ui/", "metrics"} {
				req, _ := http.NewRequest(http.MethodGet, p.url+path, nil)
				for i := 0; i+1 < len(tc.header); i += 2 {
					req.Header.Set(tc.header[i], tc.header[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET /%s: %s, want %d", path, resp.Status, tc.want)
				}
			}
			if v := p.verdict(); v == "" {
				t.Error("GET / did not answer")
			}
		})
	}
}

// TestStreamFloodKeepsPeersAnswered: more page viewers than the cap of
// live streams get a clear refusal, GET / keeps answering peers, and
// SIGTERM still stops serve cleanly.
func TestStreamFloodKeepsPeersAnswered(t *testing.T) {
	_, p := uiInstance(t, "")
	const viewers = 40 // the cap is 32
	var (
		mu      sync.Mutex
		ok      int
		refused []string
		bodies  []io.ReadCloser
	)
	var wg sync.WaitGroup
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.url + "ui/events")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode == http.StatusOK {
				// Hold the stream open: read its first line only.
				if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
					t.Error(err)
				}
				ok++
				bodies = append(bodies, resp.Body)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			refused = append(refused, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
		}()
	}
	wg.Wait()
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	if ok != 32 || len(refused) != viewers-32 {
		t.Fatalf("%d streams served, %d refused; want 32 and %d", ok, len(refused), viewers-32)
	}
	for _, r := range refused {
		if !strings.HasPrefix(r, "503 too many live viewers (at most 32 at once)") {
			t.Errorf("refusal: %q", r)
		}
	}
	peer := &http.Client{Timeout: time.Second}
	for range 20 {
		resp, err := peer.Get(p.url)
		if err != nil {
			t.Fatalf("GET / with the streams at their cap: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if v := string(b); v != "True" && v != "MailProblem" && v != "JobProblem" {
			t.Fatalf("GET / = %q", v)
		}
	}
	if code, _, _ := p.get("/ui/"); code != http.StatusOK {
		t.Errorf("the page with the streams at their cap: %d", code)
	}
	// Open streams do not hold up a clean stop.
	if code := p.terminate(); code != 0 {
		t.Errorf("checker serve exited %d on SIGTERM with streams open, want 0", code)
	}
}
