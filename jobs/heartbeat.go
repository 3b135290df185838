package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"checker/config"
	"checker/heartbeat"
	"checker/state"
)

func init() {
	register("heartbeat", Type{New: func() Spec { return &Heartbeat{} }})
	systemBuilders = append(systemBuilders, heartbeatServiceJobs, heartbeatStoreJobs)
}

// Heartbeat succeeds while a service's latest heartbeat is alive, warns
// while it is stale (fails, with fail_on = stale) and fails when it is dead
// or was never seen (SPEC §8).
type Heartbeat struct {
	Service string        `cfg:"service"`
	Alive   time.Duration `cfg:"alive"`
	Stale   time.Duration `cfg:"stale"`
	FailOn  string        `cfg:"fail_on"`
	// Remembered is when discovery first saw the service; a remembered
	// service whose heartbeat is gone from the store is dead, not unknown.
	Remembered time.Time
}

// fromSection fills what the section left out: the service is the job's
// NAME, thresholds and fail_on come from [heartbeat].
func (h *Heartbeat) fromSection(name string, s *config.Settings) {
	if h.Service == "" {
		h.Service = name
	}
	if h.Alive == 0 {
		h.Alive = s.Heartbeat.Alive
	}
	if h.Stale == 0 {
		h.Stale = s.Heartbeat.Stale
	}
	if h.FailOn == "" {
		h.FailOn = s.Heartbeat.Section.Get("fail_on")
	}
}

// Validate checks the service name, thresholds and fail_on.
func (h *Heartbeat) Validate() error {
	if err := heartbeat.ValidServiceName(h.Service); err != nil {
		return &KeyError{Key: "service", Err: err}
	}
	if h.Alive == 0 {
		h.Alive = config.DefaultAlive
	}
	if h.Stale == 0 {
		h.Stale = config.DefaultStale
	}
	if err := (heartbeat.Thresholds{Alive: h.Alive, Stale: h.Stale}).Validate(); err != nil {
		return &KeyError{Key: "stale", Err: err}
	}
	switch h.FailOn = strings.ToLower(strings.TrimSpace(h.FailOn)); h.FailOn {
	case "":
		h.FailOn = "dead"
	case "dead", "stale":
	default:
		return &KeyError{Key: "fail_on", Err: fmt.Errorf("%q is not dead or stale", h.FailOn)}
	}
	return nil
}

// adjustPolicy: a stale heartbeat (WARNING) fails only with fail_on = stale.
func (h *Heartbeat) adjustPolicy(p *Policy) { p.WarnIsFailure = h.FailOn == "stale" }

// Target is the service name.
func (h *Heartbeat) Target() string { return h.Service }

// Check judges the service's latest heartbeat, from the run's one read of
// the store. When the store cannot be read the job is not checked at all:
// it keeps its state, and the heartbeat:store job reports the outage once.
func (h *Heartbeat) Check(ctx context.Context, env *Env) Result {
	snap := env.heartbeats(h.Service)
	select {
	case <-snap.done:
	case <-ctx.Done():
		return Resultf(Critical, "timed out waiting for the heartbeat store")
	}
	if snap.err != nil {
		return Result{Status: Unknown, Message: notChecked + storeProblem(snap.err), Skipped: true}
	}
	m, found := snap.beats[h.Service]
	if !found && (snap.partial != nil || !snap.covers(h.Service)) {
		// The read skipped this entry (unreadable) or did not ask for
		// it (a service named after the read began): read it alone.
		var err error
		m, found, err = snap.store.Get(ctx, h.Service)
		if err != nil {
			return Resultf(Critical, "cannot read the heartbeat of %s: %v", h.Service, err)
		}
	}
	if !found {
		if !h.Remembered.IsZero() {
			return Resultf(Critical, "%s dead: its heartbeat vanished from the store (first seen %s; the key was deleted, expired or the store lost its data)",
				h.Service, h.Remembered.Format(time.RFC3339))
		}
		return Resultf(Critical, "service %s has never sent a heartbeat", h.Service)
	}
	return h.judge(m, env.now())
}

// judge turns a heartbeat and the time into a result.
func (h *Heartbeat) judge(m heartbeat.Message, now time.Time) Result {
	inst := heartbeat.InstanceLabel(m.InstanceID)
	if err := heartbeat.CheckClockSkew(m, now); err != nil {
		return Resultf(Unknown, "heartbeat of %s from instance %s: %v", h.Service, inst, err)
	}
	age := heartbeat.Age(m, now)
	if age < 0 {
		age = 0
	}
	ago := heartbeat.FormatAge(age)
	var r Result
	switch (heartbeat.Thresholds{Alive: h.Alive, Stale: h.Stale}).Classify(age) {
	case heartbeat.Alive:
		r = Resultf(OK, "%s alive: last heartbeat %s ago from instance %s (beat %d, up %s)", h.Service, ago, inst, m.HeartbeatCount, heartbeat.FormatSeconds(m.UptimeSeconds))
	case heartbeat.Stale:
		r = Resultf(Warning, "%s stale: last heartbeat %s ago from instance %s (alive under %s)", h.Service, ago, inst, h.Alive)
	default:
		r = Resultf(Critical, "%s dead: last heartbeat %s ago from instance %s at %s", h.Service, ago, inst, m.Timestamp.Format(time.RFC3339))
	}
	// The age against its thresholds, as a plugin's perfdata: stale
	// (WARNING) past alive, dead (CRITICAL) past stale.
	r.Perfdata = fmt.Sprintf("age=%ds;%d;%d;0;", int64(age/time.Second), int64(h.Alive/time.Second), int64(h.Stale/time.Second))
	return r
}

// OpenHeartbeatStore opens the store the settings name: Redis when [heartbeat]
// redis is set (with its TLS files), else the local store next to the state
// file; with the cap on services and the key TTL. It does not connect; an
// unreachable server shows on first use.
func OpenHeartbeatStore(s *config.Settings, opts ...heartbeat.StoreOption) (heartbeat.Store, error) {
	return heartbeat.OpenStore(HeartbeatStoreConfig(s), opts...)
}

// HeartbeatStoreConfig is the store [heartbeat] names.
func HeartbeatStoreConfig(s *config.Settings) heartbeat.StoreConfig {
	h := s.Heartbeat
	return heartbeat.StoreConfig{
		Redis:       h.Redis,
		Patterns:    heartbeat.Patterns{Key: h.KeyPattern, Channel: h.ChannelPattern},
		LocalDir:    h.LocalDir,
		TLSCA:       h.TLSCA,
		TLSCert:     h.TLSCert,
		TLSKey:      h.TLSKey,
		MaxServices: h.MaxServices,
		KeyTTL:      h.KeyTTL,
	}
}

// heartbeatServiceJobs adds one job per [heartbeat] services entry, with
// the policy keys of [heartbeat].
func heartbeatServiceJobs(s *config.Settings) ([]*Job, config.Problems) {
	if len(s.Heartbeat.Services) == 0 {
		return nil, nil
	}
	var problems config.Problems
	var errs keyErrors
	sec := s.Heartbeat.Section
	c := decodeCommon(sec, s.General.Timeout, DefaultEvery, DefaultNotify, &errs)
	var out []*Job
	for _, svc := range s.Heartbeat.Services {
		spec := &Heartbeat{Service: svc}
		spec.fromSection(svc, s)
		if err := spec.Validate(); err != nil {
			errs.add("services", err)
			continue
		}
		j := &Job{Name: "heartbeat:" + svc, Type: "heartbeat", Target: svc, Every: c.Every, Policy: c.Policy, Timeout: c.Timeout, Spec: spec}
		spec.adjustPolicy(&j.Policy)
		out = append(out, j)
	}
	for _, e := range errs {
		msg := e.Err.Error()
		if e.Key != "" {
			msg += config.InlineCommentHint(sec.Get(e.Key))
		}
		problems = append(problems, config.Problem{File: s.File, Line: sec.KeyLine(e.Key), Section: "heartbeat", Key: e.Key, Msg: msg})
	}
	return out, problems
}

// DiscoverHeartbeats adds a heartbeat job for every service that no
// configured job watches yet ([heartbeat] discover = yes): those in the store
// now and those remembered from earlier runs (a remembered service whose
// heartbeat vanished is dead and alerts, until `checker heartbeat forget`).
// Jobs are named heartbeat:SERVICE, or heartbeat:SERVICE#2 when a configured
// job already has that name for another service. It also returns the
// services seen for the first time, for the state to remember. When the
// store cannot be read, the remembered services are still watched: their
// jobs report "not checked" and heartbeat:store reports the outage once.
func DiscoverHeartbeats(ctx context.Context, env *Env, all []*Job, remembered []state.Service) ([]*Job, []state.Service) {
	s := env.Settings
	if s == nil || !s.Heartbeat.Discover {
		return all, nil
	}
	watched := map[string]bool{}
	// Job names key the state, ignoring case, so a discovered job must not
	// take a name a configured job has: [heartbeat:x] may watch another
	// service than x.
	taken := make(map[string]bool, len(all)+len(remembered))
	for _, j := range all {
		taken[strings.ToLower(j.Name)] = true
		if h, ok := j.Spec.(*Heartbeat); ok {
			watched[h.Service] = true
		}
	}
	name := func(base string) string {
		n := base
		for i := 2; taken[strings.ToLower(n)]; i++ {
			n = fmt.Sprintf("%s#%d", base, i)
		}
		taken[strings.ToLower(n)] = true
		return n
	}
	var errs keyErrors
	c := decodeCommon(s.Heartbeat.Section, s.General.Timeout, DefaultEvery, DefaultNotify, &errs)
	snap := env.readHeartbeats(true, nil)
	select {
	case <-snap.done:
	case <-ctx.Done():
	}
	known := make(map[string]time.Time, len(remembered))
	for _, r := range remembered {
		known[r.Name] = r.FirstSeen
	}
	var names []string
	var seen []state.Service
	for _, r := range remembered {
		names = append(names, r.Name)
	}
	if snap.err == nil {
		now := env.now()
		for svc := range snap.beats {
			if _, ok := known[svc]; !ok {
				known[svc] = now
				names = append(names, svc)
				seen = append(seen, state.Service{Name: svc, FirstSeen: now, LastSeen: now})
			}
		}
	}
	sort.Strings(names)
	for _, svc := range names {
		if watched[svc] {
			continue
		}
		watched[svc] = true
		spec := &Heartbeat{Remembered: known[svc]}
		spec.fromSection(svc, s)
		if spec.Validate() != nil {
			continue
		}
		j := &Job{Name: name("heartbeat:" + svc), Type: "heartbeat", Target: svc, Every: c.Every, Policy: c.Policy, Timeout: c.Timeout, Spec: spec}
		spec.adjustPolicy(&j.Policy)
		all = append(all, j)
	}
	return all, seen
}

// HeartbeatStoreJob is the system job that reads the heartbeat store once a
// run for every heartbeat job: it fails, once, when the store is down, while
// the heartbeat jobs keep their state.
const HeartbeatStoreJob = "heartbeat:store"

// heartbeatStoreJobs checks the store settings (without connecting) and
// adds heartbeat:store when any heartbeat is watched.
func heartbeatStoreJobs(s *config.Settings) ([]*Job, config.Problems) {
	if problems := checkStoreSettings(s); len(problems) > 0 {
		return nil, problems
	}
	watches := s.Heartbeat.Discover || len(s.Heartbeat.Services) > 0
	name := HeartbeatStoreJob
	for _, sec := range s.Jobs {
		typ, _, _ := strings.Cut(sec.Name, ":")
		if strings.EqualFold(strings.TrimSpace(typ), "heartbeat") {
			watches = true
		}
		if strings.EqualFold(sec.Name, name) {
			name += "#2"
		}
	}
	for _, svc := range s.Heartbeat.Services {
		if strings.EqualFold("heartbeat:"+svc, HeartbeatStoreJob) {
			name = HeartbeatStoreJob + "#2"
		}
	}
	if !watches {
		return nil, nil
	}
	n, _ := ParseNotify("state_change")
	return []*Job{{
		Name: name, Type: "store", Target: storeTarget(s), Every: Minute,
		Policy:  Policy{Notify: n, Failures: 1, Recovery: RecoveryYes, WarnIsFailure: true},
		Timeout: heartbeatStoreTimeout + time.Second,
		Spec:    storeCheck{},
	}}, nil
}

// checkStoreSettings checks [heartbeat] redis and its TLS files as far as
// can be done without connecting. No message holds a password.
func checkStoreSettings(s *config.Settings) config.Problems {
	h := s.Heartbeat
	sec := h.Section
	var problems config.Problems
	prob := func(key string, err error) {
		problems = append(problems, config.Problem{File: s.File, Line: sec.KeyLine(key), Section: "heartbeat", Key: key, Msg: err.Error()})
	}
	var spec heartbeat.RedisSpec
	if h.Redis != "" {
		var err error
		if spec, err = heartbeat.ParseRedisSpec(h.Redis); err != nil {
			prob("redis", err)
			return problems
		}
	}
	if h.TLSCA == "" && h.TLSCert == "" && h.TLSKey == "" {
		return problems
	}
	key := "tls_ca"
	if h.TLSCA == "" {
		key = "tls_cert"
	}
	switch {
	case h.Redis == "":
		prob(key, errors.New("set for a Redis store, but [heartbeat] redis is not set"))
	case spec.URL && !spec.TLS:
		prob(key, errors.New("TLS files given but redis is a redis:// URL, which says no TLS; use rediss:// (or a list of host:port, which the TLS files turn to TLS)"))
	default:
		// Each file is checked on its own, so that a problem names the key
		// (and line) that holds it.
		if h.TLSCA != "" {
			if _, err := heartbeat.LoadTLSConfig(h.TLSCA, "", ""); err != nil {
				prob("tls_ca", err)
			}
		}
		if h.TLSCert == "" && h.TLSKey == "" {
			break
		}
		if _, err := heartbeat.LoadTLSConfig("", h.TLSCert, h.TLSKey); err != nil {
			switch {
			case h.TLSCert == "" || strings.Contains(err.Error(), "client key"):
				prob("tls_key", err)
			case h.TLSKey == "" || !strings.Contains(err.Error(), " and key "):
				prob("tls_cert", err)
			default:
				// The pair does not go together: the key is named, with
				// the certificate's line.
				prob("tls_key", fmt.Errorf("does not go with tls_cert (line %d): %w", sec.KeyLine("tls_cert"), err))
			}
		}
	}
	return problems
}

func storeTarget(s *config.Settings) string {
	if s.Heartbeat.Redis != "" {
		return "heartbeat store (redis)"
	}
	return "heartbeat store (local, " + s.Heartbeat.LocalDir + ")"
}

// storeCheck is the check of heartbeat:store.
type storeCheck struct{}

func (storeCheck) Validate() error { return nil }
func (storeCheck) Target() string  { return "heartbeat store" }
func (storeCheck) Check(ctx context.Context, env *Env) Result {
	// Read at least the services [heartbeat] names, so that the probe
	// reads as the heartbeat jobs do even on a run where none is due; with
	// discovery, list them all as discovery does.
	var named []string
	discover := false
	if env.Settings != nil {
		named, discover = env.Settings.Heartbeat.Services, env.Settings.Heartbeat.Discover
	}
	snap := env.readHeartbeats(discover, named)
	select {
	case <-snap.done:
	case <-ctx.Done():
		return Resultf(Critical, "heartbeat store unreachable: no answer within %s", heartbeatStoreTimeout)
	}
	if snap.err != nil {
		return Resultf(Critical, "%s", storeProblem(snap.err))
	}
	r := Resultf(OK, "%d heartbeat%s read in %s", len(snap.beats), plural(len(snap.beats)), roundDuration(snap.took))
	if snap.partial != nil {
		r = Resultf(Warning, "%d heartbeats read in %s; some entries unreadable: %v", len(snap.beats), roundDuration(snap.took), snap.partial)
	}
	r.Perfdata = fmt.Sprintf("services=%d time=%.6fs", len(snap.beats), snap.took.Seconds())
	return r
}

// heartbeatStoreTimeout bounds the run's one read of the heartbeat store,
// whatever the number of services.
const heartbeatStoreTimeout = 5 * time.Second

// storeProblem is the reason the store could not be read, as the
// heartbeat jobs and heartbeat:store show it: the store's own error names
// the address (never a password) and says "unreachable" only when it
// could not be reached.
func storeProblem(err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, "heartbeat store") {
		msg = "heartbeat store: " + msg
	}
	return msg
}

// heartbeatSnapshot is the heartbeats of a run, read once and shared by
// all heartbeat jobs: for discovery ([heartbeat] discover), every
// heartbeat in the store (a listing, SCAN on Redis); otherwise only those
// of the services the run's jobs watch (GET, no SCAN).
type heartbeatSnapshot struct {
	done    chan struct{} // closed when the read is over
	store   heartbeat.Store
	all     bool            // every service was listed
	asked   map[string]bool // the services read, when not all
	beats   map[string]heartbeat.Message
	err     error // the store could not be read at all
	partial error // some entries could not be read
	took    time.Duration
}

// covers reports whether the snapshot read service's heartbeat.
func (s *heartbeatSnapshot) covers(service string) bool { return s.all || s.asked[service] }

// wantHeartbeats adds the services of the heartbeat jobs among jobs to
// those the next read of the store reads, so that one read serves them
// all.
func (e *Env) wantHeartbeats(jobs []*Job) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range jobs {
		if h, ok := j.Spec.(*Heartbeat); ok {
			if e.hbWant == nil {
				e.hbWant = make(map[string]bool)
			}
			e.hbWant[h.Service] = true
		}
	}
}

// Refresh makes the next heartbeat check read the store again instead of
// sharing the read already made (each cron run makes a new Env; a process
// that runs checks repeatedly calls Refresh between rounds).
func (e *Env) Refresh() {
	e.mu.Lock()
	e.hbSnap = nil
	e.mu.Unlock()
}

// heartbeats starts the run's read of the store on first use, reading
// services too, and returns it; callers wait on done.
func (e *Env) heartbeats(services ...string) *heartbeatSnapshot {
	return e.readHeartbeats(false, services)
}

// readHeartbeats is heartbeats; with all, a read it starts lists every
// service in the store (discovery).
func (e *Env) readHeartbeats(all bool, services []string) *heartbeatSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hbSnap != nil {
		return e.hbSnap
	}
	snap := &heartbeatSnapshot{done: make(chan struct{}), asked: make(map[string]bool), all: all}
	for svc := range e.hbWant {
		snap.asked[svc] = true
	}
	for _, svc := range services {
		snap.asked[svc] = true
	}
	names := make([]string, 0, len(snap.asked))
	for svc := range snap.asked {
		names = append(names, svc)
	}
	e.hbSnap = snap
	go func() {
		defer close(snap.done)
		start := time.Now()
		store, err := e.HeartbeatStore()
		if err != nil {
			snap.err = err
			return
		}
		snap.store = store
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatStoreTimeout)
		defer cancel()
		var list []heartbeat.Message
		if snap.all {
			list, err = store.List(ctx)
		} else {
			list, err = heartbeat.GetMany(ctx, store, names)
		}
		snap.took = time.Since(start)
		// Unreadable entries (a bad value) are the services' own problem:
		// the listing goes on without them and their jobs read them alone.
		// Anything else is the store's.
		var unreadable *heartbeat.UnreadableError
		entriesOnly := errors.As(err, &unreadable)
		if err != nil && (!entriesOnly || heartbeat.IsUnavailable(err) || ctx.Err() != nil) {
			if ctx.Err() != nil && !heartbeat.IsUnavailable(err) {
				err = fmt.Errorf("heartbeat store unreachable: no answer within %s", heartbeatStoreTimeout)
			}
			snap.err = err
			return
		}
		if rs, ok := store.(*heartbeat.RedisStore); ok {
			// Reads working says nothing of writes: a server out of
			// memory refuses every publisher while reads go on. One
			// round trip tells, and makes it one store problem.
			if werr := rs.CheckWritable(ctx); werr != nil {
				snap.err = werr
				return
			}
		}
		snap.partial = err
		snap.beats = make(map[string]heartbeat.Message, len(list))
		for _, m := range list {
			snap.beats[m.ServiceName] = m
		}
	}()
	return snap
}

// NewHeartbeat is the heartbeat check of service with the thresholds and
// fail_on of [heartbeat].
func NewHeartbeat(service string, s *config.Settings) *Heartbeat {
	h := &Heartbeat{}
	h.fromSection(service, s)
	return h
}
