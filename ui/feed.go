package ui

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"checker/heartbeat"
)

// FeedOptions tune a Feed; zero values mean the defaults.
type FeedOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the feed's troubles (a watch that stops, a store that
	// cannot be listed); nil discards them.
	Log *slog.Logger
	// Resync is how often the whole store is listed again, so that deleted
	// services and beats missed while a watch was down are caught up
	// (default 30s).
	Resync time.Duration
	// ListTimeout bounds one listing of the store (default 5s).
	ListTimeout time.Duration
	// Buffer is how many heartbeats may wait for one subscriber; a
	// subscriber that falls further behind is dropped (default 256).
	Buffer int
}

// Feed keeps the latest heartbeat of every service in memory and passes
// new ones to its subscribers: one Watch of the store, and one listing
// every Resync, shared by every viewer of the page and every scrape of the
// metrics, however many there are. It starts on first use and runs until
// Close. Build it with NewFeed.
type Feed struct {
	store heartbeat.Store
	o     FeedOptions

	start  sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.WaitGroup
	listed chan struct{} // closed after the first listing ended

	mu     sync.Mutex // guards the fields below
	beats  map[string]entry
	err    error // of the last listing
	subs   map[*subscriber]struct{}
	closed bool
}

// entry is a service's latest heartbeat and when the feed got it.
type entry struct {
	m       heartbeat.Message
	watched time.Time // zero: from a listing
}

type subscriber struct {
	ch chan heartbeat.Message
}

// NewFeed returns a feed of store's heartbeats. It does not touch the
// store until first used.
func NewFeed(store heartbeat.Store, o FeedOptions) *Feed {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Resync <= 0 {
		o.Resync = 30 * time.Second
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = 5 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	f := &Feed{store: store, o: o, listed: make(chan struct{}), beats: map[string]entry{}, subs: map[*subscriber]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// ErrFeedClosed is returned by a closed Feed.
var ErrFeedClosed = errors.New("the heartbeat feed is closed")

// Heartbeats returns the latest heartbeat of every service, sorted by
// service, and the error of the last listing of the store (the beats are
// then those known before, and those seen by the watch since). The first
// call starts the feed and waits for the first listing, as long as ctx
// allows.
func (f *Feed) Heartbeats(ctx context.Context) ([]heartbeat.Message, error) {
	f.ensureStarted()
	select {
	case <-f.listed:
	case <-ctx.Done():
		return nil, errors.New("the heartbeat store has not answered yet")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrFeedClosed
	}
	out := make([]heartbeat.Message, 0, len(f.beats))
	for _, e := range f.beats {
		out = append(out, e.m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServiceName < out[j].ServiceName })
	return out, f.err
}

// Subscribe returns a channel receiving every heartbeat the store
// publishes from now on, and a function to call when done. The channel is
// closed when the subscriber falls more than Buffer heartbeats behind, or
// the feed closes.
func (f *Feed) Subscribe() (<-chan heartbeat.Message, func()) {
	f.ensureStarted()
	s := &subscriber{ch: make(chan heartbeat.Message, f.o.Buffer)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	f.subs[s] = struct{}{}
	return s.ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[s]; ok {
			delete(f.subs, s)
			close(s.ch)
		}
	}
}

// Close stops the watch and closes every subscription. It does not close
// the store.
func (f *Feed) Close() {
	if f == nil {
		return // serve without a heartbeat store has no feed
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for s := range f.subs {
		close(s.ch)
	}
	f.subs = nil
	f.mu.Unlock()
	f.start.Do(func() { close(f.listed) }) // never started: nothing to wait for
	f.cancel()
	f.done.Wait()
}

func (f *Feed) ensureStarted() {
	f.start.Do(func() {
		f.done.Add(2)
		go f.watch()
		go f.resync()
	})
}

// watch runs the store's Watch, again after a pause whenever it gives up.
func (f *Feed) watch() {
	defer f.done.Done()
	pause := time.Second
	for {
		err := f.store.Watch(f.ctx, f.publish)
		if f.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the watch ended")
		}
		f.o.Log.Warn("status page: cannot watch the heartbeat store; live updates resume when it answers", "err", err, "retry_in", pause)
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// publish takes a heartbeat from the watch.
func (f *Feed) publish(m heartbeat.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if old, ok := f.beats[m.ServiceName]; ok && old.m.Timestamp.After(m.Timestamp) {
		return // an older beat arriving late
	}
	f.beats[m.ServiceName] = entry{m: m, watched: f.o.Now()}
	for s := range f.subs {
		select {
		case s.ch <- m:
		default:
			// Too far behind: drop it rather than hold up the others.
			// Its page reconnects and starts from a fresh snapshot.
			delete(f.subs, s)
			close(s.ch)
		}
	}
}

// resync lists the store at once, then every Resync.
func (f *Feed) resync() {
	defer f.done.Done()
	first := true
	t := time.NewTicker(f.o.Resync)
	defer t.Stop()
	for {
		f.list()
		if first {
			first = false
			close(f.listed)
		}
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepWatched is how long a service the watch brought stays when the
// store's listing lacks it: a service that only publishes has no key to
// list, and shows until it has been silent this long.
const keepWatched = 10 * time.Minute

// list replaces what the feed knows with a listing of the store, keeping
// the beats of the watch that are newer or that the listing lacks (see
// keepWatched).
func (f *Feed) list() {
	started := f.o.Now()
	ctx, cancel := context.WithTimeout(f.ctx, f.o.ListTimeout)
	msgs, err := f.store.List(ctx)
	cancel()
	if f.ctx.Err() != nil {
		return
	}
	if err != nil {
		f.o.Log.Warn("status page: cannot list the heartbeat store", "err", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	if err != nil && len(msgs) == 0 {
		return // keep what is known; the page says the store failed
	}
	beats := make(map[string]entry, len(msgs))
	for _, m := range msgs {
		beats[m.ServiceName] = entry{m: m}
	}
	for svc, e := range f.beats {
		l, listed := beats[svc]
		switch {
		case listed && e.m.Timestamp.After(l.m.Timestamp):
			beats[svc] = e // the watch was quicker than the listing
		case !listed && !e.watched.IsZero() && started.Sub(e.watched) < keepWatched:
			beats[svc] = e
		}
	}
	f.beats = beats
}
