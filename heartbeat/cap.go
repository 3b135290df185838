package heartbeat

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// capRefresh is how long a store trusts its count of services before it
// counts again. Counting is a scan of every key or file, too dear for each
// Put when untrusted clients push, and cheap enough every few seconds.
const capRefresh = 5 * time.Second

// serviceCap enforces WithMaxServices for one store. It remembers which
// services it has seen existing, so that an update of one of them costs
// nothing, and keeps the number of services the store held at the last
// count plus those it admitted since.
type serviceCap struct {
	max int
	now func() time.Time

	countMu sync.Mutex // held while counting; a Put that finds it held uses the cached count

	mu      sync.Mutex // guards the fields below
	count   int
	counted time.Time // when count was last taken from the store; zero: never
	known   map[string]struct{}
}

func newServiceCap(max int, now func() time.Time) *serviceCap {
	return &serviceCap{max: max, now: now, known: make(map[string]struct{})}
}

// admit returns nil if service may be put: there is no cap, the service is
// already kept (exists says so), or the store holds fewer than max
// services. Otherwise it returns ErrTooManyServices. countAll counts the
// services the store holds.
func (c *serviceCap) admit(ctx context.Context, service string, exists func(context.Context) (bool, error), countAll func(context.Context) (int, error)) error {
	if c == nil || c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	_, known := c.known[service]
	c.mu.Unlock()
	if known {
		return nil
	}
	ok, err := exists(ctx)
	if err != nil {
		return err
	}
	if ok {
		c.remember(service, false)
		return nil
	}
	n, err := c.current(ctx, countAll)
	if err != nil {
		return err
	}
	if n >= c.max {
		return fmt.Errorf("%w: it keeps %d, the maximum (max_services); %q is new", ErrTooManyServices, n, service)
	}
	c.remember(service, true)
	return nil
}

// remember notes that service exists, and counts it when it is new.
func (c *serviceCap) remember(service string, added bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.known) >= 2*c.max {
		// Services that expired or were forgotten linger here; start over
		// rather than grow without bound. Forgetting costs an EXISTS.
		clear(c.known)
	}
	c.known[service] = struct{}{}
	if added {
		c.count++
	}
}

// forget drops service from the known services, after it was removed.
func (c *serviceCap) forget(service string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.known, service)
}

// current returns the cached count, counting again when it is older than
// capRefresh. Only one caller counts at a time; the others use the cached
// count meanwhile, or wait for the first count.
func (c *serviceCap) current(ctx context.Context, countAll func(context.Context) (int, error)) (int, error) {
	c.mu.Lock()
	n, counted := c.count, c.counted
	c.mu.Unlock()
	if !counted.IsZero() && c.now().Sub(counted) < capRefresh && c.now().Sub(counted) >= 0 {
		return n, nil
	}
	if !c.countMu.TryLock() {
		if !counted.IsZero() {
			return n, nil
		}
		c.countMu.Lock()
	}
	defer c.countMu.Unlock()
	// Someone else may have counted while this caller waited.
	c.mu.Lock()
	if !c.counted.IsZero() && c.counted != counted {
		n = c.count
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	n, err := countAll(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count, c.counted = n, c.now()
	return n, nil
}
