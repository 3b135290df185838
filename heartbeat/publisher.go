package heartbeat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Publisher defaults.
const (
	DefaultInterval         = 60 * time.Second
	DefaultCollectorTimeout = time.Second
	// MinInterval is the shortest interval Start accepts: a heartbeat is a
	// liveness signal, and beats far apart from the thresholds (90s) that
	// judge them only load the store.
	MinInterval = time.Second
	// restartWait bounds how long Start waits for the loop of a context
	// that is done to end.
	restartWait = 5 * time.Second
	// MinCPUWindow is the shortest time cpu_usage_percent is measured over.
	// The first beat waits until this long has passed since NewPublisher
	// (at most this long); a beat that follows the previous one sooner
	// repeats the last figure instead of measuring over a shorter time.
	MinCPUWindow = time.Second
)

// Publisher sends a heartbeat for one service instance to a Store every
// interval, with the process figures filled in and one Data field per
// collector. Create it with NewPublisher, add collectors, then Start it when
// the service starts and Stop it when the service stops (or cancel the
// context given to Start); or call Beat for a single heartbeat.
type Publisher struct {
	store            Store
	service          string
	interval         time.Duration
	instanceID       string
	now              func() time.Time
	errorLog         func(error)
	collectorTimeout time.Duration
	created          time.Time
	cpuWindow        time.Duration // MinCPUWindow; tests shorten it
	minInterval      time.Duration // MinInterval; tests shorten it
	noCPU            bool          // WithoutCPU

	mu         sync.Mutex // guards collectors
	collectors map[string]*collector

	beatMu   sync.Mutex // serializes beats; guards count, lastCPU, lastWall, cpu, measured
	count    int64
	lastCPU  time.Duration
	lastWall time.Time
	cpu      float64 // the last CPU figure
	measured bool    // cpu holds a measurement

	runMu  sync.Mutex // guards runCtx, cancel and done
	runCtx context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Collector returns one service-specific value for a heartbeat. It should
// return promptly and give up when ctx is done (after the collector
// timeout). A collector that fails, panics or takes longer than the
// collector timeout is left out of that heartbeat and reported to the error
// log. The beat does not wait for a collector that ignores its context, and
// such a collector is not called again until its call has returned: each
// collector has at most one call outstanding, so a stuck one costs one
// goroutine, not one per beat. The value must encode as JSON.
type Collector func(ctx context.Context) (any, error)

// collector is one named Collector and whether a call to it is outstanding.
type collector struct {
	name string
	fn   Collector

	mu        sync.Mutex // guards busySince
	busySince time.Time  // when the outstanding call started; zero when none
}

// begin marks a call as started at now, unless one is outstanding, in
// which case it returns when that one started.
func (c *collector) begin(now time.Time) (busySince time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busySince.IsZero() {
		return c.busySince, false
	}
	c.busySince = now
	return time.Time{}, true
}

// call runs the collector, turning a panic into an error, and marks it
// idle when it returns.
func (c *collector) call(ctx context.Context) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("panic: %v", r)
		}
		c.mu.Lock()
		c.busySince = time.Time{}
		c.mu.Unlock()
	}()
	return c.fn(ctx)
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithInterval sets the time between heartbeats (default 60s). Start
// refuses an interval under MinInterval (1s), zero and negative ones
// included.
func WithInterval(d time.Duration) Option {
	return func(p *Publisher) { p.interval = d }
}

// WithInstanceID sets the instance id sent with each heartbeat (default: a
// random UUID-shaped id chosen by NewPublisher).
func WithInstanceID(id string) Option {
	return func(p *Publisher) {
		if id != "" {
			p.instanceID = id
		}
	}
}

// WithNow sets the clock used for timestamps, uptime and CPU usage (default
// time.Now).
func WithNow(now func() time.Time) Option {
	return func(p *Publisher) {
		if now != nil {
			p.now = now
		}
	}
}

// WithErrorLog sets where the publisher reports failed beats, skipped
// collectors and — while it runs on a RedisStore without a log of its own
// (WithStoreLog) — go-redis's own log lines (see WithKeepRedisLogger). The default is the standard library's log
// package. fn is called from the publishing goroutine, or from go-redis's
// goroutines for its lines; it must not block.
func WithErrorLog(fn func(error)) Option {
	return func(p *Publisher) {
		if fn != nil {
			p.errorLog = fn
		}
	}
}

// WithoutCPU leaves cpu_usage_percent at 0 and never waits to measure it:
// for a one-shot beat sent on behalf of something else (the end of a
// script), where the publishing process's own CPU use means nothing.
func WithoutCPU() Option {
	return func(p *Publisher) { p.noCPU = true }
}

// WithCollectorTimeout sets how long each collector may take (default 1s).
func WithCollectorTimeout(d time.Duration) Option {
	return func(p *Publisher) {
		if d > 0 {
			p.collectorTimeout = d
		}
	}
}

// NewPublisher returns a Publisher of service's heartbeats to store. Uptime
// and the first CPU measurement start with this call. The service name is
// checked by Start and Beat.
//
// To publish to a Redis the service already uses, wrap its go-redis client
// with NewRedisStore; to publish with TLS settings of its own, pass
// WithTLSConfig to OpenRedis.
func NewPublisher(store Store, service string, opts ...Option) *Publisher {
	p := &Publisher{
		store:            store,
		service:          service,
		interval:         DefaultInterval,
		now:              time.Now,
		errorLog:         func(err error) { log.Print(err) },
		collectorTimeout: DefaultCollectorTimeout,
		cpuWindow:        MinCPUWindow,
		minInterval:      MinInterval,
		collectors:       make(map[string]*collector),
	}
	for _, o := range opts {
		o(p)
	}
	if p.instanceID == "" {
		p.instanceID = newInstanceID()
	}
	p.created = p.now()
	p.lastWall = p.created
	p.lastCPU, _ = processCPUTime()
	return p
}

// newInstanceID returns 128 random bits formatted like a UUID.
func newInstanceID() string {
	var b [16]byte
	// crypto/rand.Read never fails on supported systems.
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// InstanceID returns the instance id sent with each heartbeat.
func (p *Publisher) InstanceID() string { return p.instanceID }

// AddCollector makes fn supply the Data field name of every later
// heartbeat, replacing any collector of the same name. It refuses, with an
// error and without adding anything, an empty name, a name holding control
// or other non-printable characters, the name of a standard field (see
// IsStandardField) and a nil fn.
func (p *Publisher) AddCollector(name string, fn Collector) error {
	switch {
	case name == "":
		return fmt.Errorf("heartbeat %s: collector name is empty", p.service)
	case Escape(name) != name:
		return fmt.Errorf("heartbeat %s: collector name %q holds non-printable characters", p.service, name)
	case IsStandardField(name):
		return fmt.Errorf("heartbeat %s: collector name %q is a standard heartbeat field", p.service, name)
	case fn == nil:
		return fmt.Errorf("heartbeat %s: collector %q is nil", p.service, name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.collectors[name] = &collector{name: name, fn: fn}
	return nil
}

// Start publishes heartbeats from a new goroutine until Stop is called or
// ctx is done: the first one at once — except that the first beat after
// NewPublisher waits until MinCPUWindow has passed since it, to measure
// CPU usage over a real interval — and then one every interval after the
// first. Failed beats are reported to the error log and do not stop the
// loop. Start fails if the publisher is already running, ctx is already
// done, the interval is under MinInterval, or it cannot publish at all.
// After Stop, or once ctx is done, Start may be called again: it waits (up
// to 5s) for the loop of a done context to end, which takes no longer
// than the beat it may be in.
func (p *Publisher) Start(ctx context.Context) error {
	if err := p.check(); err != nil {
		return err
	}
	if p.interval < p.minInterval {
		return fmt.Errorf("heartbeat publisher for %q: interval %s is under the minimum of %s", p.service, p.interval, p.minInterval)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("heartbeat publisher for %q: not started: %w", p.service, err)
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.done != nil {
		if p.runCtx.Err() != nil {
			// The loop's context is done: it is ending.
			t := time.NewTimer(restartWait)
			select {
			case <-p.done:
			case <-t.C:
			}
			t.Stop()
		}
		select {
		case <-p.done:
			// The loop ended with its context; nobody called Stop.
			p.cancel()
			p.runCtx, p.cancel, p.done = nil, nil, nil
		default:
			return fmt.Errorf("heartbeat publisher for %q is already running", p.service)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p.runCtx, p.cancel, p.done = ctx, cancel, done
	go p.run(ctx, done)
	return nil
}

func (p *Publisher) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	if rs, ok := p.store.(*RedisStore); ok && rs.opLog == nil {
		// go-redis's lines from outside any beat come here while running,
		// unless the store has a log of its own.
		defer redisLogs.register(p.errorLog)()
	}
	beat := func() {
		if _, err := p.Beat(ctx); err != nil && ctx.Err() == nil {
			p.errorLog(err)
		}
	}
	// The first beat may wait for its CPU figure; the ticker starts when
	// it is sent, so that the next one is an interval later, not sooner.
	beat()
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		beat()
	}
}

// Stop stops the loop started by Start and waits for a beat in progress to
// end. It does nothing if the publisher is not running; Start may be called
// again afterwards.
func (p *Publisher) Stop() {
	p.runMu.Lock()
	cancel, done := p.cancel, p.done
	p.runCtx, p.cancel, p.done = nil, nil, nil
	p.runMu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (p *Publisher) check() error {
	if p.store == nil {
		return fmt.Errorf("heartbeat publisher for %q has no store", p.service)
	}
	if err := ValidServiceName(p.service); err != nil {
		return fmt.Errorf("heartbeat publisher: %w", err)
	}
	return nil
}

// Beat builds one heartbeat now and puts it in the store, returning what it
// sent. Collector failures are reported to the error log and leave their
// field out, as do collector values that would make the message larger
// than MaxMessageSize (the largest first, until it fits); only a store
// failure makes Beat fail. The heartbeat count goes
// up with every attempt, so gaps show lost beats. The first beat after
// NewPublisher may wait up to MinCPUWindow to measure CPU usage over a
// real interval.
func (p *Publisher) Beat(ctx context.Context) (Message, error) {
	if err := p.check(); err != nil {
		return Message{}, err
	}
	ctx = withLog(ctx, p.errorLog)
	data := p.collect(ctx)

	p.beatMu.Lock()
	defer p.beatMu.Unlock()
	if !p.measured && !p.noCPU {
		// The first figure: never over less than the window.
		if wait := p.cpuWindow - p.now().Sub(p.lastWall); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	now := p.now()
	p.count++
	m := Message{
		ServiceName:     p.service,
		InstanceID:      p.instanceID,
		Timestamp:       now,
		UptimeSeconds:   round1(now.Sub(p.created).Seconds()),
		HeartbeatCount:  p.count,
		MemoryUsageMB:   round1(residentMemoryMB()),
		CPUUsagePercent: round1(p.cpuPercent(now)),
		Data:            data,
	}
	p.fit(&m)
	if err := p.store.Put(ctx, m); err != nil {
		return m, fmt.Errorf("heartbeat %s: publish: %w", p.service, err)
	}
	return m, nil
}

// fit drops collector fields from m, largest first, until it encodes
// within MaxMessageSize, reporting each to the error log: one oversized
// value costs its field, not the beat.
func (p *Publisher) fit(m *Message) {
	b, err := m.MarshalJSON()
	if err != nil || len(b) <= MaxMessageSize || len(m.Data) == 0 {
		return
	}
	type field struct {
		name string
		size int
	}
	fields := make([]field, 0, len(m.Data))
	for k, v := range m.Data {
		vb, _ := json.Marshal(v)
		fields = append(fields, field{k, len(k) + len(vb) + 4}) // "k":v,
	}
	sort.Slice(fields, func(i, j int) bool {
		if fields[i].size != fields[j].size {
			return fields[i].size > fields[j].size
		}
		return fields[i].name < fields[j].name
	})
	data := make(map[string]any, len(m.Data))
	for k, v := range m.Data {
		data[k] = v
	}
	m.Data = data
	size := len(b)
	for _, f := range fields {
		if size <= MaxMessageSize {
			break
		}
		delete(m.Data, f.name)
		p.errorLog(fmt.Errorf("heartbeat %s: collector %q left out: its value of about %d bytes makes the message %d bytes, over the %d-byte limit",
			p.service, f.name, f.size, size, MaxMessageSize))
		if b, err := m.MarshalJSON(); err == nil {
			size = len(b)
		}
	}
}

// cpuPercent returns the CPU time used since the last measurement as a
// percentage of the wall time elapsed; it may exceed 100 on several cores,
// never the number of cores times 100. Less than the CPU window after the
// last measurement it returns that measurement again. The caller holds
// beatMu.
func (p *Publisher) cpuPercent(now time.Time) float64 {
	if p.noCPU {
		return 0
	}
	wall := now.Sub(p.lastWall)
	if p.measured && wall < p.cpuWindow {
		return p.cpu
	}
	cpu, ok := processCPUTime()
	if !ok {
		return 0
	}
	used := cpu - p.lastCPU
	p.lastCPU, p.lastWall = cpu, now
	p.cpu, p.measured = 0, true
	if wall > 0 && used >= 0 {
		p.cpu = min(float64(used)/float64(wall)*100, float64(runtime.NumCPU())*100)
	}
	return p.cpu
}

func round1(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*10) / 10
}

// collect calls every collector that has no call outstanding, all at once
// under one collector timeout, and returns the values of those that
// answered in time with a value that encodes as JSON.
func (p *Publisher) collect(ctx context.Context) map[string]any {
	p.mu.Lock()
	list := make([]*collector, 0, len(p.collectors))
	for _, c := range p.collectors {
		list = append(list, c)
	}
	p.mu.Unlock()
	if len(list) == 0 {
		return nil
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })

	type result struct {
		c     *collector
		value any
		err   error
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.collectorTimeout)
	defer cancel()
	// Buffered for all: a collector that answers late must not block.
	results := make(chan result, len(list))
	pending := make(map[*collector]bool, len(list))
	for _, c := range list {
		since, ok := c.begin(p.now())
		if !ok {
			p.errorLog(fmt.Errorf("heartbeat %s: collector %q skipped: its call of %s ago has not returned (does it ignore its context?)",
				p.service, c.name, p.now().Sub(since).Round(time.Millisecond)))
			continue
		}
		pending[c] = true
		go func() {
			v, err := c.call(ctx)
			results <- result{c, v, err}
		}()
	}

	data := make(map[string]any, len(list))
	for len(pending) > 0 {
		select {
		case r := <-results:
			delete(pending, r.c)
			err := r.err
			if err == nil {
				if _, jerr := json.Marshal(r.value); jerr != nil {
					err = fmt.Errorf("value does not encode as JSON: %w", jerr)
				}
			}
			if err != nil {
				p.errorLog(fmt.Errorf("heartbeat %s: collector %q skipped: %w", p.service, r.c.name, err))
				continue
			}
			data[r.c.name] = r.value
		case <-ctx.Done():
			if parent.Err() != nil {
				// The beat is abandoned (Stop, or the caller gave up): no
				// collector is at fault.
				return data
			}
			reason := fmt.Errorf("no answer within %s", p.collectorTimeout)
			for _, c := range list {
				if pending[c] {
					p.errorLog(fmt.Errorf("heartbeat %s: collector %q skipped: %w", p.service, c.name, reason))
				}
			}
			return data
		}
	}
	return data
}
