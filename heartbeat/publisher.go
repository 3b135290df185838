package heartbeat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"sync"
	"time"
)

// Publisher defaults.
const (
	DefaultInterval         = 60 * time.Second
	DefaultCollectorTimeout = time.Second
)

// Publisher sends a heartbeat for one service instance to a Store every
// interval, with the process figures filled in and one Data field per
// collector. Create it with NewPublisher, add collectors, then Start it when
// the service starts and Stop it when the service stops; or call Beat for a
// single heartbeat.
type Publisher struct {
	store            Store
	service          string
	interval         time.Duration
	instanceID       string
	now              func() time.Time
	errorLog         func(error)
	collectorTimeout time.Duration
	created          time.Time

	mu         sync.Mutex // guards collectors
	collectors map[string]Collector

	beatMu   sync.Mutex // serializes beats; guards count, lastCPU, lastWall
	count    int64
	lastCPU  time.Duration
	lastWall time.Time

	runMu  sync.Mutex // guards cancel and done
	cancel context.CancelFunc
	done   chan struct{}
}

// Collector returns one service-specific value for a heartbeat. It must
// return promptly and should give up when ctx is done; a collector that
// fails, panics or takes longer than the collector timeout is left out of
// that heartbeat. The value must encode as JSON.
type Collector func(ctx context.Context) (any, error)

// Option configures a Publisher.
type Option func(*Publisher)

// WithInterval sets the time between heartbeats (default 60s).
func WithInterval(d time.Duration) Option {
	return func(p *Publisher) {
		if d > 0 {
			p.interval = d
		}
	}
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

// WithErrorLog sets where failed beats and failed collectors are
// reported (default: the standard library's log package). fn is called from
// the publishing goroutine.
func WithErrorLog(fn func(error)) Option {
	return func(p *Publisher) {
		if fn != nil {
			p.errorLog = fn
		}
	}
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
// is counted from this call. The service name is checked by Start and Beat.
func NewPublisher(store Store, service string, opts ...Option) *Publisher {
	p := &Publisher{
		store:            store,
		service:          service,
		interval:         DefaultInterval,
		now:              time.Now,
		errorLog:         func(err error) { log.Print(err) },
		collectorTimeout: DefaultCollectorTimeout,
		collectors:       make(map[string]Collector),
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
// heartbeat, replacing any collector of the same name. Names of standard
// fields (see IsStandardField) are refused at beat time with an error.
func (p *Publisher) AddCollector(name string, fn func(ctx context.Context) (any, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.collectors[name] = fn
}

// Start publishes one heartbeat at once and then one every interval, from a
// new goroutine, until Stop is called or ctx is done. Failed beats are
// reported to the error log and do not stop the loop. Start fails if the
// publisher is already running or cannot publish at all.
func (p *Publisher) Start(ctx context.Context) error {
	if err := p.check(); err != nil {
		return err
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.done != nil {
		return fmt.Errorf("heartbeat publisher for %q is already running", p.service)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p.cancel, p.done = cancel, done
	go p.run(ctx, done)
	return nil
}

func (p *Publisher) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		if _, err := p.Beat(ctx); err != nil && ctx.Err() == nil {
			p.errorLog(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Stop stops the loop started by Start and waits for a beat in progress to
// end. It does nothing if the publisher is not running; Start may be called
// again afterwards.
func (p *Publisher) Stop() {
	p.runMu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
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
// field out; only a store failure makes Beat fail. The heartbeat count goes
// up with every attempt, so gaps show lost beats.
func (p *Publisher) Beat(ctx context.Context) (Message, error) {
	if err := p.check(); err != nil {
		return Message{}, err
	}
	data := p.collect(ctx)

	p.beatMu.Lock()
	defer p.beatMu.Unlock()
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
	if err := p.store.Put(ctx, m); err != nil {
		return m, fmt.Errorf("heartbeat %s: publish: %w", p.service, err)
	}
	return m, nil
}

// cpuPercent returns the CPU time used since the previous beat as a
// percentage of the wall time elapsed; it may exceed 100 on several cores.
// The caller holds beatMu.
func (p *Publisher) cpuPercent(now time.Time) float64 {
	cpu, ok := processCPUTime()
	if !ok {
		return 0
	}
	wall := now.Sub(p.lastWall)
	used := cpu - p.lastCPU
	p.lastCPU, p.lastWall = cpu, now
	if wall <= 0 || used < 0 {
		return 0
	}
	return float64(used) / float64(wall) * 100
}

func round1(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*10) / 10
}

// collect runs all collectors at once, each under the collector timeout,
// and returns the values of those that succeeded.
func (p *Publisher) collect(ctx context.Context) map[string]any {
	p.mu.Lock()
	collectors := make(map[string]Collector, len(p.collectors))
	for name, fn := range p.collectors {
		collectors[name] = fn
	}
	p.mu.Unlock()
	if len(collectors) == 0 {
		return nil
	}

	type result struct {
		name  string
		value any
		err   error
	}
	results := make(chan result, len(collectors))
	for name, fn := range collectors {
		go func() {
			v, err := p.runCollector(ctx, name, fn)
			results <- result{name, v, err}
		}()
	}
	data := make(map[string]any, len(collectors))
	for range collectors {
		r := <-results
		if r.err != nil {
			p.errorLog(fmt.Errorf("heartbeat %s: collector %q skipped: %w", p.service, r.name, r.err))
			continue
		}
		data[r.name] = r.value
	}
	return data
}

// runCollector calls fn, turning a panic, a timeout, or a value that does not
// encode as JSON into an error. A collector that ignores its context keeps
// its goroutine until it returns, but the beat does not wait for it.
func (p *Publisher) runCollector(ctx context.Context, name string, fn Collector) (any, error) {
	if IsStandardField(name) {
		return nil, fmt.Errorf("%q is a standard heartbeat field", name)
	}
	ctx, cancel := context.WithTimeout(ctx, p.collectorTimeout)
	defer cancel()
	type result struct {
		value any
		err   error
	}
	ch := make(chan result, 1) // buffered: a late collector must not block forever
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: fmt.Errorf("panic: %v", r)}
			}
		}()
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if _, err := json.Marshal(r.value); err != nil {
			return nil, fmt.Errorf("value does not encode as JSON: %w", err)
		}
		return r.value, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s", p.collectorTimeout)
		}
		return nil, ctx.Err()
	}
}
