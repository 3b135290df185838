package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"checker/config"
	"checker/heartbeat"
)

func init() {
	register("heartbeat", Type{New: func() Spec { return &Heartbeat{} }})
	systemBuilders = append(systemBuilders, heartbeatServiceJobs)
}

// Heartbeat succeeds while a service's latest heartbeat is alive, warns
// while it is stale (fails, with fail_on = stale) and fails when it is dead
// or was never seen (SPEC §8).
type Heartbeat struct {
	Service string        `cfg:"service"`
	Alive   time.Duration `cfg:"alive"`
	Stale   time.Duration `cfg:"stale"`
	FailOn  string        `cfg:"fail_on"`
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
		h.FailOn = s.Heartbeat.Section.Values["fail_on"]
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

// Check reads the service's latest heartbeat and judges its age.
func (h *Heartbeat) Check(ctx context.Context, env *Env) Result {
	store, err := env.HeartbeatStore()
	if err != nil {
		return Resultf(Critical, "heartbeat store unreachable: %v", err)
	}
	m, found, err := store.Get(ctx, h.Service)
	if err != nil {
		if heartbeat.IsUnavailable(err) {
			// One reason for every job of the run, read first in the mail.
			if !strings.HasPrefix(err.Error(), "heartbeat store unreachable") {
				return Resultf(Critical, "heartbeat store unreachable: %v", err)
			}
			return Resultf(Critical, "%v", err)
		}
		// A bad value names only its key or file; say whose it is.
		return Resultf(Critical, "cannot read the heartbeat of %s: %v", h.Service, err)
	}
	if !found {
		return Resultf(Critical, "service %s has never sent a heartbeat", h.Service)
	}
	return h.judge(m, env.now())
}

// judge turns a heartbeat and the time into a result.
func (h *Heartbeat) judge(m heartbeat.Message, now time.Time) Result {
	inst := heartbeat.ShortInstanceID(m.InstanceID)
	if err := heartbeat.CheckClockSkew(m, now); err != nil {
		return Resultf(Unknown, "heartbeat of %s from instance %s: %v", h.Service, inst, err)
	}
	age := heartbeat.Age(m, now)
	if age < 0 {
		age = 0
	}
	ago := age.Round(time.Second)
	switch (heartbeat.Thresholds{Alive: h.Alive, Stale: h.Stale}).Classify(age) {
	case heartbeat.Alive:
		return Resultf(OK, "%s alive: last heartbeat %s ago from instance %s (beat %d, up %s)", h.Service, ago, inst, m.HeartbeatCount, (time.Duration(m.UptimeSeconds) * time.Second).String())
	case heartbeat.Stale:
		return Resultf(Warning, "%s stale: last heartbeat %s ago from instance %s (alive under %s)", h.Service, ago, inst, h.Alive)
	}
	return Resultf(Critical, "%s dead: last heartbeat %s ago from instance %s at %s", h.Service, ago, inst, m.Timestamp.Format(time.RFC3339))
}

// OpenHeartbeatStore opens the store the settings name: Redis when [heartbeat]
// redis is set, else the local store next to the state file. It does not
// connect; an unreachable server shows on first use.
func OpenHeartbeatStore(s *config.Settings) (heartbeat.Store, error) {
	if s.Heartbeat.Redis != "" {
		return heartbeat.OpenRedis(s.Heartbeat.Redis, heartbeat.Patterns{Key: s.Heartbeat.KeyPattern, Channel: s.Heartbeat.ChannelPattern})
	}
	return heartbeat.OpenLocal(s.Heartbeat.LocalDir)
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
		line := sec.Line
		if l, ok := sec.KeyLines[e.Key]; ok {
			line = l
		}
		problems = append(problems, config.Problem{File: s.File, Line: line, Section: "heartbeat", Key: e.Key, Msg: e.Err.Error()})
	}
	return out, problems
}

// DiscoverHeartbeats adds a heartbeat job for every service in the store
// that no configured job watches yet ([heartbeat] discover = yes), named
// heartbeat:SERVICE, or heartbeat:SERVICE#2 when a configured job already
// has that name for another service. When
// the store cannot be listed it adds one failing job saying why, instead
// of losing sight of every service quietly.
func DiscoverHeartbeats(ctx context.Context, env *Env, all []*Job) []*Job {
	s := env.Settings
	if s == nil || !s.Heartbeat.Discover {
		return all
	}
	watched := map[string]bool{}
	// Job names key the state file, ignoring case, so a discovered job must
	// not take a name a configured job has: [heartbeat:x] may watch another
	// service than x.
	taken := map[string]bool{}
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
	store, err := env.HeartbeatStore()
	var beats []heartbeat.Message
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, c.Timeout)
		beats, err = store.List(ctx)
		cancel()
	}
	if err != nil {
		j := &Job{Name: name("heartbeat:discover"), Type: "heartbeat", Target: "every published service", Every: c.Every,
			Policy: c.Policy, Timeout: c.Timeout, Spec: fixedResult{Resultf(Critical, "cannot list heartbeats to discover services: %v", err)}}
		all = append(all, j)
	}
	for _, m := range beats {
		if watched[m.ServiceName] {
			continue
		}
		watched[m.ServiceName] = true
		spec := &Heartbeat{}
		spec.fromSection(m.ServiceName, s)
		if spec.Validate() != nil {
			continue
		}
		j := &Job{Name: name("heartbeat:" + m.ServiceName), Type: "heartbeat", Target: m.ServiceName, Every: c.Every, Policy: c.Policy, Timeout: c.Timeout, Spec: spec}
		spec.adjustPolicy(&j.Policy)
		all = append(all, j)
	}
	return all
}

// fixedResult is a Spec whose check returns a fixed result.
type fixedResult struct{ r Result }

func (f fixedResult) Validate() error                    { return nil }
func (f fixedResult) Target() string                     { return "" }
func (f fixedResult) Check(context.Context, *Env) Result { return f.r }

// NewHeartbeat is the heartbeat check of service with the thresholds and
// fail_on of [heartbeat].
func NewHeartbeat(service string, s *config.Settings) *Heartbeat {
	h := &Heartbeat{}
	h.fromSection(service, s)
	return h
}
