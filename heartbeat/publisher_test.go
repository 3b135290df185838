package heartbeat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestPublisherBeat(t *testing.T) {
	store := openTestLocal(t)
	clock := &fakeClock{now: time.Date(2025, 1, 16, 8, 0, 0, 0, time.UTC)}
	sink := &errorSink{}
	p := NewPublisher(store, "tracker_fetcher", WithNow(clock.Now), WithInstanceID("inst-1"), WithErrorLog(sink.log))
	mustAdd(t, p, "api_status", func(context.Context) (any, error) { return "authenticated", nil })
	mustAdd(t, p, "queue_size", func(context.Context) (any, error) { return 1380, nil })

	ctx := context.Background()
	clock.Advance(90 * time.Minute)
	first, err := p.Beat(ctx)
	if err != nil {
		t.Fatalf("Beat: %v", err)
	}
	clock.Advance(time.Minute)
	second, err := p.Beat(ctx)
	if err != nil {
		t.Fatalf("Beat: %v", err)
	}
	if first.HeartbeatCount != 1 || second.HeartbeatCount != 2 {
		t.Errorf("counts = %d, %d; want 1, 2", first.HeartbeatCount, second.HeartbeatCount)
	}
	if first.UptimeSeconds != 5400 || second.UptimeSeconds != 5460 {
		t.Errorf("uptimes = %v, %v; want 5400, 5460", first.UptimeSeconds, second.UptimeSeconds)
	}
	if second.MemoryUsageMB <= 0 {
		t.Errorf("memory = %v MB, want the process RSS", second.MemoryUsageMB)
	}
	if second.CPUUsagePercent < 0 {
		t.Errorf("cpu = %v%%", second.CPUUsagePercent)
	}

	stored, ok, err := store.Get(ctx, "tracker_fetcher")
	if err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	if stored.InstanceID != "inst-1" || stored.HeartbeatCount != 2 || !stored.Timestamp.Equal(clock.Now()) {
		t.Errorf("stored %+v", stored)
	}
	if stored.Data["api_status"] != "authenticated" || stored.Data["queue_size"] != json.Number("1380") {
		t.Errorf("stored data = %v", stored.Data)
	}
	if s := sink.String(); s != "" {
		t.Errorf("errors reported: %s", s)
	}
}

func TestPublisherSurvivesBadCollectors(t *testing.T) {
	store := openTestLocal(t)
	sink := &errorSink{}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })

	p := NewPublisher(store, "sturdy",
		WithInterval(20*time.Millisecond),
		WithCollectorTimeout(30*time.Millisecond),
		WithErrorLog(sink.log))
	p.cpuWindow, p.minInterval = 0, 0
	var stuckCalls atomic.Int32
	mustAdd(t, p, "good", func(context.Context) (any, error) { return "yes", nil })
	mustAdd(t, p, "panics", func(context.Context) (any, error) { panic("collector exploded") })
	// Ignores its context entirely; only the test's cleanup frees it.
	mustAdd(t, p, "stuck", func(context.Context) (any, error) { stuckCalls.Add(1); <-release; return 1, nil })
	mustAdd(t, p, "fails", func(context.Context) (any, error) { return nil, errors.New("boom") })
	mustAdd(t, p, "unencodable", func(context.Context) (any, error) { return make(chan int), nil })

	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start = %v, want 'already running'", err)
	}
	var last Message
	eventually(t, "three beats", func() bool {
		m, ok, err := store.Get(context.Background(), "sturdy")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		last = m
		return ok && m.HeartbeatCount >= 3
	})
	p.Stop()
	p.Stop() // a second Stop is harmless

	if last.Data["good"] != "yes" {
		t.Errorf("good collector's field missing: %v", last.Data)
	}
	for _, name := range []string{"panics", "stuck", "fails", "unencodable"} {
		if _, ok := last.Data[name]; ok {
			t.Errorf("field %q present although its collector failed", name)
		}
	}
	// The stuck collector was called once: later beats skipped it, so it
	// holds one goroutine however many beats pass.
	if n := stuckCalls.Load(); n != 1 {
		t.Errorf("stuck collector called %d times over %d beats, want once", n, last.HeartbeatCount)
	}
	for _, want := range []string{
		`collector "panics" skipped: panic: collector exploded`,
		`collector "stuck" skipped: no answer within 30ms`,
		`collector "stuck" skipped: its call of `,
		`has not returned (does it ignore its context?)`,
		`collector "fails" skipped: boom`,
		`collector "unencodable" skipped: value does not encode as JSON`,
	} {
		if !sink.contains(want) {
			t.Errorf("error log lacks %q:\n%s", want, sink.String())
		}
	}

	// After Stop returns, no more beats arrive.
	stopped, _, _ := store.Get(context.Background(), "sturdy")
	time.Sleep(60 * time.Millisecond)
	after, _, _ := store.Get(context.Background(), "sturdy")
	if after.HeartbeatCount != stopped.HeartbeatCount {
		t.Errorf("beats continued after Stop: %d then %d", stopped.HeartbeatCount, after.HeartbeatCount)
	}
	// And it can be started again.
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	p.Stop()
}

func TestPublisherStopsWithContextAndReportsStoreErrors(t *testing.T) {
	store := openTestRedis(t, closedAddr(t), Patterns{})
	errs := make(chan error, 100)
	p := NewPublisher(store, "lonely", WithInterval(time.Hour), WithErrorLog(func(err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// go-redis's own line about the failed dial and the beat's error both
	// reach the publisher's log, nothing reaches stderr.
	var gotRedisLine, gotBeatErr bool
	timeout := time.After(10 * time.Second)
	for !gotRedisLine || !gotBeatErr {
		select {
		case err := <-errs:
			switch {
			case IsUnavailable(err) && strings.Contains(err.Error(), "heartbeat lonely: publish: heartbeat store unreachable"):
				gotBeatErr = true
			case strings.HasPrefix(err.Error(), "go-redis: connection pool: failed to dial"):
				gotRedisLine = true
			default:
				t.Errorf("reported %v, want an unavailable store error or go-redis's dial failure", err)
			}
		case <-timeout:
			t.Fatalf("within 10s: go-redis line reported %v, failed beat reported %v", gotRedisLine, gotBeatErr)
		}
	}
	cancel()
	p.Stop() // must return although the loop already ended on its own
}

func TestPublisherRefusesBadSetup(t *testing.T) {
	store := openTestLocal(t)
	for _, p := range []*Publisher{NewPublisher(store, "bad name"), NewPublisher(nil, "ok")} {
		if err := p.Start(context.Background()); err == nil {
			t.Errorf("Start succeeded for service %q", p.service)
		}
		if _, err := p.Beat(context.Background()); err == nil {
			t.Errorf("Beat succeeded for service %q", p.service)
		}
		p.Stop()
	}
}

func TestInstanceIDs(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	a, b := NewPublisher(nil, "x").InstanceID(), NewPublisher(nil, "x").InstanceID()
	if !shape.MatchString(a) || a == b {
		t.Errorf("instance ids %q and %q: want distinct UUID-shaped ids", a, b)
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		hasErr bool
	}{
		{"Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t  160052 kB\nThreads:\t4\n", 160052, false},
		{"Name:\tx\n", 0, true},
		{"VmRSS:\t12 MB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseVmRSS(strings.NewReader(tt.in))
		if (err != nil) != tt.hasErr || got != tt.want {
			t.Errorf("parseVmRSS(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.hasErr)
		}
	}
}

// mustAdd adds a collector the test knows to be valid.
func mustAdd(t *testing.T, p *Publisher, name string, fn Collector) {
	t.Helper()
	if err := p.AddCollector(name, fn); err != nil {
		t.Fatalf("AddCollector(%q): %v", name, err)
	}
}

func TestAddCollectorRefusesBadCollectors(t *testing.T) {
	p := NewPublisher(openTestLocal(t), "svc")
	ok := func(context.Context) (any, error) { return 1, nil }
	tests := []struct {
		name string
		fn   Collector
		want string
	}{
		{"", ok, "collector name is empty"},
		{"timestamp", ok, `"timestamp" is a standard heartbeat field`},
		{"cpu_usage_percent", ok, "standard heartbeat field"},
		{"bad\x1bname", ok, "non-printable"},
		{"nil_fn", nil, `collector "nil_fn" is nil`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.AddCollector(tt.name, tt.fn)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddCollector(%q) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
	if len(p.collectors) != 0 {
		t.Errorf("refused collectors were added: %v", p.collectors)
	}
	sink := &errorSink{}
	p2 := NewPublisher(openTestLocal(t), "svc", WithErrorLog(sink.log))
	p2.cpuWindow = 0
	mustAdd(t, p2, "queue", ok)
	for range 3 {
		if _, err := p2.Beat(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if s := sink.String(); s != "" {
		t.Errorf("beats with valid collectors logged: %s", s)
	}
}

// TestStuckCollectorHoldsOneGoroutine: a collector that ignores its context
// is called once however many beats pass, so goroutines do not pile up.
func TestStuckCollectorHoldsOneGoroutine(t *testing.T) {
	sink := &errorSink{}
	p := NewPublisher(openTestLocal(t), "svc", WithCollectorTimeout(time.Millisecond), WithErrorLog(sink.log))
	p.cpuWindow, p.minInterval = 0, 0
	release := make(chan struct{})
	var calls atomic.Int32
	mustAdd(t, p, "stuck", func(context.Context) (any, error) { calls.Add(1); <-release; return 1, nil })
	ctx := context.Background()
	if _, err := p.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 100 {
		if _, err := p.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines grew from %d to %d over 100 beats", before, after)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("stuck collector called %d times, want once", n)
	}
	if n := strings.Count(sink.String(), "has not returned"); n != 100 {
		t.Errorf("%d beats reported the stuck collector, want 100", n)
	}
	// Once it returns, it is called again.
	close(release)
	eventually(t, "the collector to be called again", func() bool {
		_, _ = p.Beat(ctx)
		return calls.Load() == 2
	})
}

// TestPublisherRestartsAfterItsContextEnds: a publisher whose context was
// cancelled can be started again without Stop.
func TestPublisherRestartsAfterItsContextEnds(t *testing.T) {
	store := openTestLocal(t)
	p := NewPublisher(store, "svc", WithInterval(10*time.Millisecond), WithErrorLog(func(err error) { t.Error(err) }))
	p.cpuWindow, p.minInterval = 0, 0
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	eventually(t, "the loop to end with its context", func() bool {
		p.runMu.Lock()
		defer p.runMu.Unlock()
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	})
	if err := p.Start(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Start with a cancelled context = %v, want it refused", err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start after the context ended: %v", err)
	}
	m0, _, _ := store.Get(context.Background(), "svc")
	eventually(t, "beats after the restart", func() bool {
		m, _, _ := store.Get(context.Background(), "svc")
		return m.HeartbeatCount > m0.HeartbeatCount
	})
	p.Stop()
}

// TestFirstCPUSample: the first beat measures CPU over at least
// MinCPUWindow, however soon after NewPublisher it comes, and a figure
// never exceeds what the CPUs can give.
func TestFirstCPUSample(t *testing.T) {
	p := NewPublisher(openTestLocal(t), "svc", WithErrorLog(func(err error) { t.Error(err) }))
	// Burn some CPU right away, as a starting service does.
	for i := 0; i < 1e6; i++ {
		_ = fmt.Sprint(i)
	}
	m, err := p.Beat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if window := p.lastWall.Sub(p.created); window < MinCPUWindow {
		t.Errorf("first CPU figure measured over %s, want at least %s", window, MinCPUWindow)
	}
	if limit := float64(runtime.NumCPU()) * 100; m.CPUUsagePercent < 0 || m.CPUUsagePercent > limit {
		t.Errorf("cpu_usage_percent = %v, want 0..%v", m.CPUUsagePercent, limit)
	}
	// A beat right after repeats the figure rather than measure over
	// microseconds.
	m2, err := p.Beat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m2.CPUUsagePercent != m.CPUUsagePercent {
		t.Errorf("second beat at once: cpu %v, want the first figure %v repeated", m2.CPUUsagePercent, m.CPUUsagePercent)
	}
}

// TestPublisherOnCallersClient: a service passes its own go-redis client;
// the store uses it and leaves it open.
func TestPublisherOnCallersClient(t *testing.T) {
	srv := startRedis(t)
	client := rawClient(t, srv.Addr)
	store, err := NewRedisStore(client, Patterns{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(store, "svc", WithErrorLog(func(err error) { t.Error(err) }))
	p.cpuWindow, p.minInterval = 0, 0
	if _, err := p.Beat(context.Background()); err != nil {
		t.Fatalf("Beat: %v", err)
	}
	if _, ok, err := store.Get(context.Background(), "svc"); err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the caller's client no longer works after Close: %v", err)
	}
	if _, err := NewRedisStore(nil, Patterns{}); err == nil {
		t.Error("NewRedisStore accepted a nil client")
	}
}

// TestRedisLinesReachTheStoreLog: go-redis's own log lines about a store's
// connections go to that store's log, not to stderr.
func TestRedisLinesReachTheStoreLog(t *testing.T) {
	sink := &errorSink{}
	s := openTestRedis(t, closedAddr(t), Patterns{}, WithStoreLog(sink.log))
	if _, _, err := s.Get(context.Background(), "a"); !IsUnavailable(err) {
		t.Fatalf("Get = %v, want unavailable", err)
	}
	if !sink.contains("go-redis: connection pool: failed to dial") {
		t.Errorf("store log %q lacks go-redis's dial failure", sink.String())
	}
}

func TestWithoutCPUDoesNotWait(t *testing.T) {
	store, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(store, "once", WithoutCPU())
	p.cpuWindow = time.Hour // a first beat that measured would wait this long
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := p.Beat(ctx)
	if err != nil || ctx.Err() != nil || m.CPUUsagePercent != 0 {
		t.Fatalf("Beat = %+v, %v (ctx %v); want at once, with cpu 0", m, err, ctx.Err())
	}
}

// TestPublisherDropsOversizedCollectors: a collector value that would make
// the message too big loses its field, not the beat.
func TestPublisherDropsOversizedCollectors(t *testing.T) {
	srv := startRedis(t)
	store := openTestRedis(t, srv.URL(), Patterns{})
	sink := &errorSink{}
	p := NewPublisher(store, "bulky", WithErrorLog(sink.log), WithoutCPU())
	mustAdd(t, p, "blob", func(context.Context) (any, error) { return strings.Repeat("x", 70000), nil })
	mustAdd(t, p, "half", func(context.Context) (any, error) { return strings.Repeat("y", 40000), nil })
	mustAdd(t, p, "small", func(context.Context) (any, error) { return 1, nil })
	ctx := context.Background()
	if _, err := p.Beat(ctx); err != nil {
		t.Fatalf("Beat with an oversized collector value: %v", err)
	}
	got, ok, err := store.Get(ctx, "bulky")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v; want the beat stored", ok, err)
	}
	if _, ok := got.Data["blob"]; ok {
		t.Error("the oversized field was stored")
	}
	if got.Data["half"] != strings.Repeat("y", 40000) || fmt.Sprint(got.Data["small"]) != "1" {
		t.Errorf("fields that fit were dropped: %d fields", len(got.Data))
	}
	if !sink.contains(`collector "blob" left out`) || sink.contains(`collector "half" left out`) {
		t.Errorf("error log %q; want blob, and only blob, reported", sink.String())
	}
}

// TestPublisherRestartsAtOnce: Start right after the previous context was
// cancelled waits for the old loop to end instead of failing.
func TestPublisherRestartsAtOnce(t *testing.T) {
	store := openTestLocal(t)
	p := NewPublisher(store, "again", WithInterval(time.Hour), WithErrorLog(func(error) {}))
	p.cpuWindow = 0
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		if err := p.Start(ctx); err != nil {
			t.Fatalf("Start #%d: %v", i, err)
		}
		cancel()
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("final Start: %v", err)
	}
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Start of a running publisher = %v, want already running", err)
	}
	p.Stop()
}

// TestPublisherRefusesShortIntervals: zero, negative and sub-second
// intervals are refused by Start.
func TestPublisherRefusesShortIntervals(t *testing.T) {
	store := openTestLocal(t)
	for _, d := range []time.Duration{0, -time.Second, time.Millisecond, 999 * time.Millisecond} {
		p := NewPublisher(store, "fast", WithInterval(d))
		if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "under the minimum of 1s") {
			p.Stop()
			t.Errorf("Start with interval %s = %v, want refused", d, err)
		}
	}
}

// timedStore records when each Put arrives.
type timedStore struct {
	Store
	mu    sync.Mutex // guards times
	times []time.Time
}

func (s *timedStore) Put(ctx context.Context, m Message) error {
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	return s.Store.Put(ctx, m)
}

func (s *timedStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// TestPublisherFirstBeatsAnIntervalApart: the first beat's wait for its CPU
// figure does not bring the second one forward.
func TestPublisherFirstBeatsAnIntervalApart(t *testing.T) {
	store := &timedStore{Store: openTestLocal(t)}
	p := NewPublisher(store, "paced", WithInterval(time.Second), WithErrorLog(func(err error) { t.Error(err) }))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two beats", func() bool { return store.count() >= 2 })
	p.Stop()
	store.mu.Lock()
	defer store.mu.Unlock()
	if gap := store.times[1].Sub(store.times[0]); gap < 900*time.Millisecond {
		t.Errorf("second beat %s after the first, want about the 1s interval", gap)
	}
}
