package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// parse reads text with Prometheus' own parser.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the text format does not parse: %v\n%s", err, text)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (name, value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		if m.Gauge != nil {
			return m.Gauge.GetValue(), true
		}
		return m.Counter.GetValue(), true
	}
	return 0, false
}

func sample() Snapshot {
	return Snapshot{
		Server: "mon1", Version: "1.2.3",
		Jobs: []Job{
			{Name: "http:web", Type: "http", Ran: true, Up: true, Status: 0, LastRun: now.Add(-time.Minute), LastSuccess: now.Add(-time.Minute), Duration: 250 * time.Millisecond},
			{Name: "tcp:db", Type: "tcp", Ran: true, Up: false, Status: 2, Failures: 3, LastRun: now.Add(-30 * time.Second), LastSuccess: now.Add(-time.Hour), Duration: 2 * time.Second, Silenced: true},
			{Name: "tls:new", Type: "tls"},
		},
		LastRun:      Run{Tier: "minute", Started: now.Add(-2 * time.Second), Finished: now.Add(-time.Second)},
		Mail:         Mail{Healthy: false, SelfCheck: now.Add(-time.Hour), SelfCheckOK: true, Send: now.Add(-time.Minute), SendOK: false},
		Destinations: []Destination{{Name: "ops@example.com", Channel: "email", Sent: 7, Failed: 2, Failing: true}, {Name: "team", Channel: "slack", Sent: 3}},
		Outbox:       4,
		Heartbeats: []Heartbeat{
			{Service: "billing", Timestamp: now.Add(-10 * time.Second), State: "alive"},
			{Service: "backup", Timestamp: now.Add(-time.Hour), State: "dead"},
		},
		HeartbeatsRead: true,
	}
}

func TestFamiliesParseWithKnownValues(t *testing.T) {
	text, err := Text(sample(), now)
	if err != nil {
		t.Fatal(err)
	}
	fams := parse(t, text)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"checker_info", []string{"server", "mon1", "version", "1.2.3"}, 1},
		{"checker_state_ok", nil, 1},
		{"checker_scrape_timestamp_seconds", nil, float64(now.Unix())},
		{"checker_job_up", []string{"name", "http:web", "type", "http"}, 1},
		{"checker_job_up", []string{"name", "tcp:db"}, 0},
		{"checker_job_status", []string{"name", "tcp:db"}, 2},
		{"checker_job_consecutive_failures", []string{"name", "tcp:db"}, 3},
		{"checker_job_last_run_duration_seconds", []string{"name", "http:web"}, 0.25},
		{"checker_job_last_run_timestamp_seconds", []string{"name", "tcp:db"}, float64(now.Unix() - 30)},
		{"checker_job_last_success_timestamp_seconds", []string{"name", "tcp:db"}, float64(now.Unix() - 3600)},
		{"checker_job_notices_held", []string{"name", "tcp:db"}, 1},
		{"checker_job_notices_held", []string{"name", "http:web"}, 0},
		{"checker_job_info", []string{"name", "tls:new", "type", "tls"}, 1},
		{"checker_last_run_timestamp_seconds", []string{"tier", "minute"}, float64(now.Unix() - 1)},
		{"checker_last_run_duration_seconds", []string{"tier", "minute"}, 1},
		{"checker_last_run_ok", nil, 1},
		{"checker_mail_ok", nil, 0},
		{"checker_mail_send_ok", nil, 0},
		{"checker_mail_selfcheck_ok", nil, 1},
		{"checker_outbox_notices", nil, 4},
		{"checker_notices_sent_total", []string{"channel", "email", "destination", "ops@example.com"}, 7},
		{"checker_notices_failed_total", []string{"destination", "ops@example.com"}, 2},
		{"checker_notices_sent_total", []string{"channel", "slack", "destination", "team"}, 3},
		{"checker_destination_failing", []string{"destination", "ops@example.com"}, 1},
		{"checker_destination_failing", []string{"destination", "team"}, 0},
		{"checker_heartbeat_store_ok", nil, 1},
		{"checker_heartbeat_age_seconds", []string{"service", "billing"}, 10},
		{"checker_heartbeat_timestamp_seconds", []string{"service", "backup"}, float64(now.Unix() - 3600)},
		{"checker_heartbeat_state", []string{"service", "backup", "state", "dead"}, 1},
		{"checker_heartbeat_state", []string{"service", "backup", "state", "alive"}, 0},
		{"checker_heartbeat_state", []string{"service", "billing", "state", "alive"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name+strings.Join(tc.labels, ","), func(t *testing.T) {
			got, ok := value(fams, tc.name, tc.labels...)
			if !ok {
				t.Fatalf("no series %s%v in\n%s", tc.name, tc.labels, text)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}
	if _, ok := value(fams, "checker_job_up", "name", "tls:new"); ok {
		t.Error("a job that never ran has an up series")
	}
	if fams["checker_notices_sent_total"].GetType() != dto.MetricType_COUNTER {
		t.Error("notices sent is not a counter")
	}
}

func TestStateErrorLeavesStateMetricsOut(t *testing.T) {
	s := sample()
	s.StateError = errors.New("state: not a database")
	s.HeartbeatError, s.Heartbeats = errors.New("heartbeat store unreachable"), nil
	fams := parse(t, must(Text(s, now)))
	if v, _ := value(fams, "checker_state_ok"); v != 0 {
		t.Errorf("checker_state_ok = %v, want 0", v)
	}
	if v, _ := value(fams, "checker_heartbeat_store_ok"); v != 0 {
		t.Errorf("checker_heartbeat_store_ok = %v, want 0", v)
	}
	for _, name := range []string{"checker_job_up", "checker_outbox_notices", "checker_mail_ok"} {
		if fams[name] != nil {
			t.Errorf("%s present although the state could not be read", name)
		}
	}
}

func TestAwkwardLabelValuesStillParse(t *testing.T) {
	odd := []string{`quote " and backslash \`, "new\nline", "bad utf-8 \xff\xfe", "bidi \u202e", "<script>"}
	var s Snapshot
	for i, n := range odd {
		s.Jobs = append(s.Jobs, Job{Name: n, Type: "command", Ran: true, Up: i%2 == 0})
	}
	s.Jobs = append(s.Jobs, s.Jobs[0]) // a repeated series is dropped, not written twice
	fams := parse(t, must(Text(s, now)))
	if got := len(fams["checker_job_up"].Metric); got != len(odd) {
		t.Fatalf("%d series of checker_job_up, want %d", got, len(odd))
	}
	if v, ok := value(fams, "checker_job_up", "name", "new\nline"); !ok || v != 0 {
		t.Errorf("new\\nline: %v %v", v, ok)
	}
}

func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checker.prom")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := must(Text(sample(), now))
	if err := WriteTextfile(path, text); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parse(t, got)
	if !bytes.Equal(got, text) {
		t.Error("the file does not hold the text")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (node_exporter reads it as another user)", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	err = WriteTextfile(filepath.Join(dir, "missing", "checker.prom"), text)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing", "checker.prom")) {
		t.Errorf("a missing directory gives %v, want an error naming the file", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestHandlerJoinsParts: the state part (cacheable) and the live part
// together are one valid exposition holding every family.
func TestHandlerJoinsParts(t *testing.T) {
	s := sample()
	state := must(TextOf(StateFamilies(s)))
	h := Handler(
		func(context.Context) []byte { return state },
		func(context.Context) []byte { return must(TextOf(LiveFamilies(s, now))) },
	)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != ContentType || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	got := parse(t, body)
	want := parse(t, must(Text(s, now)))
	if len(got) != len(want) {
		t.Errorf("%d families served, %d in Families", len(got), len(want))
	}
	for name := range want {
		if got[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// TestNoRunYetIsNotOK: before any cron run completed, checker_last_run_ok
// is 0 (peers are told JobProblem then) and there is no last-run time, so
// the documented alerts fire.
func TestNoRunYetIsNotOK(t *testing.T) {
	s := sample()
	s.LastRun = Run{}
	fams := parse(t, must(Text(s, now)))
	if v, ok := value(fams, "checker_last_run_ok"); !ok || v != 0 {
		t.Errorf("checker_last_run_ok = %v (present %v), want 0", v, ok)
	}
	if _, ok := value(fams, "checker_last_run_timestamp_seconds"); ok {
		t.Error("checker_last_run_timestamp_seconds present without a run")
	}
	s.LastRun = sample().LastRun
	if v, _ := value(parse(t, must(Text(s, now))), "checker_last_run_ok"); v != 1 {
		t.Errorf("after a completed run checker_last_run_ok = %v, want 1", v)
	}
}
