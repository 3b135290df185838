package jobs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"checker/config"
	"checker/heartbeat"
	"checker/internal/redistest"
	"checker/internal/testcert"
	"checker/jobs"
	"checker/state"
)

// backend is a heartbeat store the heartbeat tests run against.
type backend struct {
	name string
	// start readies the store for one test and returns the [heartbeat]
	// lines that select it.
	start func(t *testing.T) string
}

// backends are both stores: a real redis-server on loopback, and the local
// store next to the state file.
var backends = []backend{
	{name: "redis", start: func(t *testing.T) string { t.Helper(); return "redis = " + redistest.Start(t).URL() + "\n" }},
	{name: "local", start: func(*testing.T) string { return "" }},
}

// hbFixture is a loaded settings file with its jobs, and an Env on its
// heartbeat store whose clock stands still at now.
type hbFixture struct {
	t        *testing.T
	settings *config.Settings
	jobs     []*jobs.Job
	env      *jobs.Env
	store    heartbeat.Store
	now      time.Time
}

// newHeartbeatFixture writes a settings.cfg whose [heartbeat] section holds
// the backend's lines and hbLines, followed by the other sections, and loads
// it. Settings problems fail the test.
func newHeartbeatFixture(t *testing.T, b backend, hbLines, sections string) *hbFixture {
	t.Helper()
	text := "[email]\nnomail = yes\n\n[heartbeat]\n" + b.start(t) + hbLines + "\n" + sections
	path := filepath.Join(t.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	all, problems := loadSettingsFile(t, path)
	if len(problems) > 0 {
		t.Fatalf("settings problems:\n%s\n--- settings.cfg:\n%s", problems.Error(), text)
	}
	s, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	f := &hbFixture{t: t, settings: s, jobs: all, env: jobs.NewEnv(s), now: time.Now().UTC().Truncate(time.Second)}
	f.env.Now = func() time.Time { return f.now }
	t.Cleanup(func() { f.env.Close() })
	if f.store, err = f.env.HeartbeatStore(); err != nil {
		t.Fatalf("open the heartbeat store: %v", err)
	}
	return f
}

// instanceID is a UUID-shaped instance id whose short form is head.
func instanceID(head string) string { return head + "-0000-4000-8000-00000000cafe" }

// put stores a heartbeat of service from instance, sent age before now.
func (f *hbFixture) put(service, instance string, age time.Duration) {
	f.t.Helper()
	m := heartbeat.Message{ServiceName: service, InstanceID: instance, Timestamp: f.now.Add(-age),
		UptimeSeconds: 3600, HeartbeatCount: 60, MemoryUsageMB: 12.5, CPUUsagePercent: 1.5}
	if err := f.store.Put(context.Background(), m); err != nil {
		f.t.Fatalf("Put(%s): %v", service, err)
	}
}

// putRaw stores b as service's latest heartbeat behind the store's back,
// so that bad data can get in: the value of its Redis key or its file.
func (f *hbFixture) putRaw(service string, b []byte) {
	f.t.Helper()
	switch st := f.store.(type) {
	case *heartbeat.LocalStore:
		if err := os.WriteFile(filepath.Join(st.Dir(), service+".json"), b, 0o600); err != nil {
			f.t.Fatal(err)
		}
	case *heartbeat.RedisStore:
		c := f.rawRedis()
		key := heartbeat.Patterns{Key: f.settings.Heartbeat.KeyPattern}.KeyFor(service)
		if err := c.Set(context.Background(), key, b, 0).Err(); err != nil {
			f.t.Fatalf("SET %s: %v", key, err)
		}
	default:
		f.t.Fatalf("unexpected store %T", f.store)
	}
}

// rawRedis is a plain client on the configured server, closed when the
// test ends.
func (f *hbFixture) rawRedis() *redis.Client {
	f.t.Helper()
	o, err := redis.ParseURL(f.settings.Heartbeat.Redis)
	if err != nil {
		f.t.Fatal(err)
	}
	c := redis.NewClient(o)
	f.t.Cleanup(func() { c.Close() })
	return c
}

// job returns the loaded job called name.
func (f *hbFixture) job(name string) *jobs.Job {
	f.t.Helper()
	for _, j := range f.jobs {
		if j.Name == name {
			return j
		}
	}
	f.t.Fatalf("no job %q among %s", name, jobNames(f.jobs))
	return nil
}

// run runs the job called name once on the fixture's Env.
func (f *hbFixture) run(name string) (*jobs.Job, jobs.Result) {
	f.t.Helper()
	j := f.job(name)
	f.env.Refresh()
	return j, runJob(f.t, j.Spec, f.env, j.Timeout)
}

func jobNames(all []*jobs.Job) string {
	var names []string
	for _, j := range all {
		names = append(names, j.Name)
	}
	return strings.Join(names, ", ")
}

// wantMessage fails the test unless r's message holds every one of parts.
func wantMessage(t *testing.T, r jobs.Result, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.Message, p) {
			t.Errorf("message %q lacks %q", r.Message, p)
		}
	}
}

func TestHeartbeatLiveness(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "services = fresh, stale, dead, ghost, ahead\n",
				"[heartbeat:strict]\nservice = stale\nfail_on = stale\n")
			f.put("fresh", instanceID("a1b2c3d4"), 10*time.Second)
			f.put("stale", instanceID("5eed5eed"), 2*time.Minute)
			f.put("dead", instanceID("deadbeef"), 10*time.Minute)
			f.put("ahead", instanceID("0a0a0a0a"), -2*time.Minute)

			tests := []struct {
				job    string
				status jobs.Status
				failed bool
				parts  []string
			}{
				{"heartbeat:fresh", jobs.OK, false, []string{"fresh alive", "10s ago", "instance a1b2c3d4 "}},
				{"heartbeat:stale", jobs.Warning, false, []string{"stale stale", "2m0s ago", "instance 5eed5eed "}},
				{"heartbeat:strict", jobs.Warning, true, []string{"stale stale", "2m0s ago", "instance 5eed5eed "}},
				{"heartbeat:dead", jobs.Critical, true, []string{"dead dead", "10m0s ago", "instance deadbeef "}},
				{"heartbeat:ghost", jobs.Critical, true, []string{"service ghost has never sent a heartbeat"}},
				{"heartbeat:ahead", jobs.Unknown, true, []string{"ahead", "0a0a0a0a", "2m0s in the future", "clock skew"}},
			}
			for _, tt := range tests {
				t.Run(tt.job, func(t *testing.T) {
					j, r := f.run(tt.job)
					wantStatus(t, r, tt.status)
					wantMessage(t, r, tt.parts...)
					if strings.Contains(r.Message, "-0000-4000-") {
						t.Errorf("message %q shows the whole instance id, want the short one", r.Message)
					}
					if got := j.Policy.Failed(r); got != tt.failed {
						t.Errorf("Policy.Failed = %v, want %v", got, tt.failed)
					}
				})
			}
		})
	}
}

func TestHeartbeatBadStoredValue(t *testing.T) {
	ts := time.Now().UTC().Format(time.RFC3339)
	huge := fmt.Sprintf(`{"service_name":"huge","timestamp":%q,"pad":"%s"}`, ts, strings.Repeat("x", heartbeat.MaxMessageSize))
	tests := []struct {
		service string
		value   string
		want    string
	}{
		{"truncated", `{"service_name":"truncated","timestamp":`, "not valid JSON"},
		{"notobject", `[1, 2, 3]`, "not a JSON object"},
		{"empty", ``, "empty"},
		{"notime", `{"service_name":"notime"}`, "has no timestamp"},
		{"badtime", `{"service_name":"badtime","timestamp":"yesterday"}`, "not RFC 3339"},
		{"wrongname", fmt.Sprintf(`{"service_name":"other","timestamp":%q}`, ts), `heartbeat of service "other"`},
		{"huge", huge, fmt.Sprintf("over the %d-byte limit", heartbeat.MaxMessageSize)},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var names []string
			for _, tt := range tests {
				names = append(names, tt.service)
			}
			f := newHeartbeatFixture(t, b, "services = "+strings.Join(names, ", ")+"\n", "")
			for _, tt := range tests {
				t.Run(tt.service, func(t *testing.T) {
					f.putRaw(tt.service, []byte(tt.value))
					_, r := f.run("heartbeat:" + tt.service)
					wantStatus(t, r, jobs.Critical)
					if !strings.HasPrefix(r.Message, "cannot read the heartbeat of "+tt.service+": ") {
						t.Errorf("message %q does not start by naming the service", r.Message)
					}
					wantMessage(t, r, tt.want)
					if len(r.Message) > 1000 {
						t.Errorf("message is %d bytes; it should explain, not echo the value", len(r.Message))
					}
				})
			}
		})
	}
}

// TestHeartbeatKeyOfWrongType: a Redis key that is not a string (another
// program's hash) is the server refusing GET, not an unreachable store.
func TestHeartbeatKeyOfWrongType(t *testing.T) {
	f := newHeartbeatFixture(t, backends[0], "services = hashed\n", "")
	if err := f.rawRedis().HSet(context.Background(), "heartbeat:service:hashed", "field", "value").Err(); err != nil {
		t.Fatal(err)
	}
	_, r := f.run("heartbeat:hashed")
	wantStatus(t, r, jobs.Critical)
	if !strings.HasPrefix(r.Message, "cannot read the heartbeat of hashed: ") {
		t.Errorf("message %q does not start by naming the service", r.Message)
	}
	wantMessage(t, r, "WRONGTYPE")
}

func TestHeartbeatKeyPattern(t *testing.T) {
	tests := []struct {
		name, lines, key, channel string
	}{
		{"key_pattern", "key_pattern = hb.{service}.latest\n", "hb.svc.latest", "hb.svc.latest"},
		{"both", "key_pattern = hb.{service}.latest\nchannel_pattern = events:{service}\n", "hb.svc.latest", "events:svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, backends[0], tt.lines+"services = svc, other\n", "")
			raw := f.rawRedis()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			ps := raw.PSubscribe(ctx, strings.Replace(tt.channel, "svc", "*", 1))
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
				t.Fatalf("PSUBSCRIBE: %v", err)
			}
			f.put("svc", instanceID("12345678"), 5*time.Second)
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				t.Fatalf("no heartbeat published on %s: %v", tt.channel, err)
			}
			if msg.Channel != tt.channel || !strings.Contains(msg.Payload, `"service_name":"svc"`) {
				t.Errorf("published %q on %q, want the heartbeat of svc on %q", msg.Payload, msg.Channel, tt.channel)
			}
			if n, err := raw.Exists(ctx, tt.key).Result(); err != nil || n != 1 {
				t.Errorf("key %s: exists %d, %v; want the heartbeat there", tt.key, n, err)
			}
			if n, err := raw.Exists(ctx, "heartbeat:service:svc").Result(); err != nil || n != 0 {
				t.Errorf("default key: exists %d, %v; want nothing there", n, err)
			}

			_, r := f.run("heartbeat:svc")
			wantStatus(t, r, jobs.OK)
			wantMessage(t, r, "svc alive", "12345678")

			// A heartbeat under the default key is not one the settings name.
			if err := raw.Set(ctx, "heartbeat:service:other", fmt.Sprintf(`{"service_name":"other","timestamp":%q}`, f.now.Format(time.RFC3339)), 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, r = f.run("heartbeat:other")
			wantStatus(t, r, jobs.Critical)
			wantMessage(t, r, "service other has never sent a heartbeat")
		})
	}
}

func TestHeartbeatServicesSpawnJobs(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "services = a, b\nnotify = hour\nfailures = 3\nfail_on = stale\nrecovery = yes\ntimeout = 4s\n", "")
			for _, svc := range []string{"a", "b"} {
				j := f.job("heartbeat:" + svc)
				h, ok := j.Spec.(*jobs.Heartbeat)
				if !ok || j.Type != "heartbeat" || j.Target != svc || h.Service != svc {
					t.Fatalf("%s: type %q target %q spec %#v", j.Name, j.Type, j.Target, j.Spec)
				}
				p := j.Policy
				if p.Notify.Label != "hour" || p.Failures != 3 || p.Recovery != jobs.RecoveryYes || !p.WarnIsFailure || j.Timeout != 4*time.Second || j.Every != jobs.DefaultEvery {
					t.Errorf("%s: policy %+v every %s timeout %s; want [heartbeat]'s notify, failures, recovery, fail_on, timeout", j.Name, p, j.Every, j.Timeout)
				}
				if h.Alive != config.DefaultAlive || h.Stale != config.DefaultStale {
					t.Errorf("%s: thresholds %s/%s, want the defaults", j.Name, h.Alive, h.Stale)
				}
			}

			f.put("a", instanceID("aaaaaaaa"), time.Second)
			f.put("b", instanceID("bbbbbbbb"), 100*time.Second)
			_, r := f.run("heartbeat:a")
			wantStatus(t, r, jobs.OK)
			j, r := f.run("heartbeat:b")
			wantStatus(t, r, jobs.Warning)
			if !j.Policy.Failed(r) {
				t.Error("stale b does not fail although [heartbeat] fail_on = stale")
			}
		})
	}
}

func TestHeartbeatSectionOverrides(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "alive = 2m\nstale = 5m\n", "[heartbeat:x]\nservice = other\nalive = 30s\nstale = 60s\n")
			j := f.job("heartbeat:x")
			if h := j.Spec.(*jobs.Heartbeat); h.Service != "other" || j.Target != "other" || h.Alive != 30*time.Second || h.Stale != time.Minute {
				t.Fatalf("spec %+v target %q", h, j.Target)
			}
			// A fresh heartbeat of a service called x is no help to a job
			// watching other.
			f.put("x", instanceID("0000000a"), 0)
			for _, tt := range []struct {
				age    time.Duration
				status jobs.Status
				parts  []string
			}{
				{10 * time.Second, jobs.OK, []string{"other alive", "10s ago", "00000001"}},
				{45 * time.Second, jobs.Warning, []string{"other stale", "45s ago", "alive under 30s"}},
				{90 * time.Second, jobs.Critical, []string{"other dead", "1m30s ago"}},
			} {
				t.Run(tt.age.String(), func(t *testing.T) {
					f.put("other", instanceID("00000001"), tt.age)
					_, r := f.run("heartbeat:x")
					wantStatus(t, r, tt.status)
					wantMessage(t, r, tt.parts...)
				})
			}
		})
	}
}

// heartbeatJobs returns the heartbeat jobs of all by name, failing the test
// if two share a name (ignoring case, as the state file does).
func heartbeatJobs(t *testing.T, all []*jobs.Job) map[string]*jobs.Job {
	t.Helper()
	out := map[string]*jobs.Job{}
	seen := map[string]bool{}
	for _, j := range all {
		if seen[strings.ToLower(j.Name)] {
			t.Errorf("two jobs named %q: %s", j.Name, jobNames(all))
		}
		seen[strings.ToLower(j.Name)] = true
		if j.Type == "heartbeat" {
			out[j.Name] = j
		}
	}
	return out
}

// discover runs DiscoverHeartbeats, failing the test if it hangs.
func (f *hbFixture) discover() []*jobs.Job {
	f.t.Helper()
	done := make(chan []*jobs.Job, 1)
	f.env.Refresh()
	go func() { all, _ := jobs.DiscoverHeartbeats(context.Background(), f.env, f.jobs, nil); done <- all }()
	select {
	case all := <-done:
		return all
	case <-time.After(30 * time.Second):
		f.t.Fatal("DiscoverHeartbeats did not return within 30s")
		return nil
	}
}

func TestDiscoverHeartbeats(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "discover = yes\nservices = listed\nfailures = 2\nfail_on = stale\nalive = 1m\nstale = 2m\n",
				"[heartbeat:renamed]\nservice = watched\n")
			for _, svc := range []string{"listed", "watched", "new1"} {
				f.put(svc, instanceID("11111111"), time.Second)
			}
			f.put("new2", instanceID("22222222"), 90*time.Second)

			all := f.discover()
			got := heartbeatJobs(t, all)
			var names []string
			for n := range got {
				names = append(names, n)
			}
			want := []string{"heartbeat:listed", "heartbeat:new1", "heartbeat:new2", "heartbeat:renamed"}
			if len(got) != len(want) {
				t.Fatalf("heartbeat jobs %v, want %v", names, want)
			}
			for _, n := range want {
				if got[n] == nil {
					t.Fatalf("heartbeat jobs %v, want %v", names, want)
				}
			}
			if len(all) != len(f.jobs)+2 {
				t.Errorf("discovery added %d jobs, want 2: %s", len(all)-len(f.jobs), jobNames(all))
			}
			for _, n := range []string{"heartbeat:new1", "heartbeat:new2"} {
				j := got[n]
				h := j.Spec.(*jobs.Heartbeat)
				if j.Policy.Failures != 2 || !j.Policy.WarnIsFailure || h.Alive != time.Minute || h.Stale != 2*time.Minute || j.Target != strings.TrimPrefix(n, "heartbeat:") {
					t.Errorf("%s: policy %+v spec %+v target %q; want [heartbeat]'s", n, j.Policy, h, j.Target)
				}
			}
			f.jobs = all
			_, r := f.run("heartbeat:new1")
			wantStatus(t, r, jobs.OK)
			j, r := f.run("heartbeat:new2")
			wantStatus(t, r, jobs.Warning)
			if !j.Policy.Failed(r) {
				t.Error("discovered stale job does not fail with fail_on = stale")
			}
		})
	}
}

// TestDiscoverNameTaken: a published service whose job name a configured
// job already has (a [heartbeat:NAME] section watching another service) is
// still watched, under a name of its own.
func TestDiscoverNameTaken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "discover = yes\n", "[heartbeat:x]\nservice = other\n")
			f.put("other", instanceID("11111111"), time.Second)
			f.put("x", instanceID("22222222"), time.Second)
			all := f.discover()
			watching := map[string][]string{}
			for n, j := range heartbeatJobs(t, all) {
				svc := j.Spec.(*jobs.Heartbeat).Service
				watching[svc] = append(watching[svc], n)
			}
			if fmt.Sprint(watching["other"]) != "[heartbeat:x]" || fmt.Sprint(watching["x"]) != "[heartbeat:x#2]" || len(all) != len(f.jobs)+1 {
				t.Errorf("jobs watching each service: %v; want heartbeat:x for other, heartbeat:x#2 for x", watching)
			}
		})
	}
}

// TestDiscoverUnreadableEntry: one unreadable heartbeat does not hide the
// others from discovery; heartbeat:store warns, naming it.
func TestDiscoverUnreadableEntry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "discover = yes\n", "")
			f.put("fine", instanceID("11111111"), time.Second)
			f.putRaw("broken", []byte("{not json"))
			f.jobs = f.discover()
			got := heartbeatJobs(t, f.jobs)
			if got["heartbeat:fine"] == nil || len(got) != 1 {
				t.Fatalf("heartbeat jobs: %s; want heartbeat:fine", jobNames(f.jobs))
			}
			j, r := f.run(jobs.HeartbeatStoreJob)
			wantStatus(t, r, jobs.Warning)
			wantMessage(t, r, "unreadable", "broken")
			if !j.Policy.Failed(r) {
				t.Error("an unreadable heartbeat must count as a failure of heartbeat:store")
			}
			_, r = f.run("heartbeat:fine")
			wantStatus(t, r, jobs.OK)
		})
	}
}

// TestDiscoverStoreUnreachable: with the store down, the services configured
// (and remembered) are still watched but not checked, and heartbeat:store is
// the one job that fails, saying why.
func TestDiscoverStoreUnreachable(t *testing.T) {
	unreachable := backend{name: "redis-down", start: func(t *testing.T) string {
		return "redis = redis://" + redistest.ClosedAddr(t) + "/0\n"
	}}
	f := newHeartbeatFixture(t, unreachable, "discover = yes\nservices = a\n", "")
	all, seen := jobs.DiscoverHeartbeats(context.Background(), f.env, f.jobs, []state.Service{{Name: "remembered", FirstSeen: f.now.Add(-time.Hour)}})
	f.jobs = all
	got := heartbeatJobs(t, f.jobs)
	if len(got) != 2 || got["heartbeat:a"] == nil || got["heartbeat:remembered"] == nil || len(seen) != 0 {
		t.Fatalf("heartbeat jobs: %s, newly seen %v; want heartbeat:a and heartbeat:remembered", jobNames(f.jobs), seen)
	}
	j, r := f.run(jobs.HeartbeatStoreJob)
	wantStatus(t, r, jobs.Critical)
	wantMessage(t, r, "heartbeat store unreachable")
	if !j.Policy.Failed(r) {
		t.Error("the store job's failure does not count as one")
	}
	for _, name := range []string{"heartbeat:a", "heartbeat:remembered"} {
		_, r = f.run(name)
		if !r.Skipped || !strings.Contains(r.Message, "not checked") {
			t.Errorf("%s: %+v; want not checked", name, r)
		}
	}
}

// TestRememberedServiceVanished: a service discovery remembers whose key is
// gone is dead, not forgotten.
func TestRememberedServiceVanished(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "discover = yes\n", "")
			f.put("alive", instanceID("11111111"), time.Second)
			all, seen := jobs.DiscoverHeartbeats(context.Background(), f.env, f.jobs, []state.Service{{Name: "gone", FirstSeen: f.now.Add(-time.Hour)}})
			f.jobs = all
			if len(seen) != 1 || seen[0].Name != "alive" {
				t.Errorf("newly seen %+v; want alive", seen)
			}
			_, r := f.run("heartbeat:gone")
			wantStatus(t, r, jobs.Critical)
			wantMessage(t, r, "gone dead", "vanished")
		})
	}
}

// TestHeartbeatStoreGoesAway: Redis dies between two runs; no heartbeat job
// of the next run is checked (heartbeat:store reports the outage once), and
// the run does not hang.
func TestHeartbeatStoreGoesAway(t *testing.T) {
	srv := redistest.Start(t)
	f := newHeartbeatFixture(t, backend{name: "redis", start: func(*testing.T) string { return "redis = " + srv.URL() + "\n" }},
		"services = a, b, c, d, e\n", "")
	var hb []*jobs.Job
	for _, svc := range []string{"a", "b", "c", "d", "e"} {
		f.put(svc, instanceID("abcdef01"), time.Second)
		hb = append(hb, f.job("heartbeat:"+svc))
	}
	runner := &jobs.Runner{Env: f.env, Concurrency: 4}
	run := func() []jobs.Outcome {
		t.Helper()
		done := make(chan []jobs.Outcome, 1)
		go func() {
			out, err := runner.RunNow(context.Background(), hb, false)
			if err != nil {
				t.Errorf("RunNow: %v", err)
			}
			done <- out
		}()
		select {
		case out := <-done:
			return out
		case <-time.After(60 * time.Second):
			t.Fatal("the run did not return within 60s")
			return nil
		}
	}

	for _, o := range run() { // connections are open and pooled now
		wantStatus(t, o.Result, jobs.OK)
	}
	srv.Kill()
	f.env.Refresh()
	for _, o := range run() {
		if !o.Result.Skipped || !strings.Contains(o.Result.Message, "not checked: heartbeat store unreachable") {
			t.Errorf("%s: %s; want not checked: heartbeat store unreachable", o.Job.Name, o.Result.Line())
		}
	}
}

// aclBackend is a redis-server with an ACL user noscan that may do all but
// the commands in deny, reached as that user on database db.
func aclBackend(deny string, db int, srv **redistest.Server) backend {
	return backend{name: "redis-acl", start: func(t *testing.T) string {
		t.Helper()
		*srv = redistest.Start(t, "--user", "default", "on", "nopass", "~*", "&*", "+@all",
			"--user", "noscan", "on", ">Pw0rd", "~*", "&*", "+@all", deny)
		return fmt.Sprintf("redis = redis://noscan:Pw0rd@%s/%d\n", (*srv).Addr, db)
	}}
}

// TestHeartbeatWithoutScanPermission: named services are read with GET, so
// a user without SCAN checks them; discovery needs SCAN and says so, by
// cause, without calling the store unreachable.
func TestHeartbeatWithoutScanPermission(t *testing.T) {
	var srv *redistest.Server
	f := newHeartbeatFixture(t, aclBackend("-scan", 0, &srv), "services = beta\n", "")
	admin, err := heartbeat.OpenRedis(srv.URL(), heartbeat.Patterns{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Put(context.Background(), heartbeat.Message{ServiceName: "beta", InstanceID: instanceID("bbbbbbbb"), Timestamp: f.now.Add(-5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	runner := &jobs.Runner{Env: f.env}
	out, err := runner.RunNow(context.Background(), []*jobs.Job{f.job("heartbeat:beta"), f.job(jobs.HeartbeatStoreJob)}, false)
	if err != nil {
		t.Fatalf("RunNow: %v", err)
	}
	for _, o := range out {
		wantStatus(t, o.Result, jobs.OK)
	}
	wantMessage(t, out[0].Result, "beta alive")

	// The same user with discovery: the listing is refused.
	f = newHeartbeatFixture(t, backend{name: "same", start: func(*testing.T) string {
		return "redis = redis://noscan:Pw0rd@" + srv.Addr + "/0\n"
	}}, "discover = yes\nservices = beta\n", "")
	_, r := f.run(jobs.HeartbeatStoreJob)
	wantStatus(t, r, jobs.Critical)
	wantMessage(t, r, "NOPERM", "scan", srv.Addr)
	if strings.Contains(r.Message, "unreachable") {
		t.Errorf("message %q calls a refusing store unreachable", r.Message)
	}
	// A named service is still read, alone, with GET.
	_, r = f.run("heartbeat:beta")
	wantStatus(t, r, jobs.OK)

	// A wrong password: every job says so, not "unreachable".
	f = newHeartbeatFixture(t, backend{name: "wrongpass", start: func(*testing.T) string {
		return "redis = redis://noscan:Wr0ng@" + srv.Addr + "/0\n"
	}}, "services = beta\n", "")
	_, store := f.run(jobs.HeartbeatStoreJob)
	_, beta := f.run("heartbeat:beta")
	wantStatus(t, store, jobs.Critical)
	if !beta.Skipped {
		t.Errorf("heartbeat:beta = %+v, want not checked", beta)
	}
	for _, r := range []jobs.Result{store, beta} {
		wantMessage(t, r, "WRONGPASS", srv.Addr)
		if strings.Contains(r.Message, "unreachable") || strings.Contains(r.Message, "Wr0ng") {
			t.Errorf("message %q calls a refusing store unreachable or shows the password", r.Message)
		}
	}
}

// TestHeartbeatWithoutSelectPermission: a user who may not SELECT is told
// so, naming the database.
func TestHeartbeatWithoutSelectPermission(t *testing.T) {
	var srv *redistest.Server
	f := newHeartbeatFixture(t, aclBackend("-select", 2, &srv), "services = beta\n", "")
	_, r := f.run(jobs.HeartbeatStoreJob)
	wantStatus(t, r, jobs.Critical)
	t.Logf("store: %s", r.Message)
	wantMessage(t, r, "NOPERM", "select", "database 2", srv.Addr)
	_, r = f.run("heartbeat:beta")
	wantMessage(t, r, "not checked", "database 2")
}

// TestHeartbeatStoreRefusingWrites: a Redis out of memory (noeviction)
// still answers reads, but no publisher can store a beat; heartbeat:store
// fails once, naming OOM, and the heartbeat jobs are not checked instead
// of going stale one by one.
func TestHeartbeatStoreRefusingWrites(t *testing.T) {
	srv := redistest.Start(t)
	f := newHeartbeatFixture(t, backend{name: "redis", start: func(*testing.T) string { return "redis = " + srv.URL() + "\n" }},
		"services = a\n", "")
	f.put("a", instanceID("aaaaaaaa"), time.Second)
	_, r := f.run(jobs.HeartbeatStoreJob)
	wantStatus(t, r, jobs.OK)
	raw := f.rawRedis()
	ctx := context.Background()
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := raw.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, r = f.run(jobs.HeartbeatStoreJob)
	wantStatus(t, r, jobs.Critical)
	wantMessage(t, r, "refuses writes", "OOM", srv.Addr)
	_, r = f.run("heartbeat:a")
	if !r.Skipped {
		t.Errorf("heartbeat:a = %+v, want not checked", r)
	}
	wantMessage(t, r, "not checked", "OOM")
}

// TestHeartbeatTLSFileProblems: a problem with a TLS file is reported at
// the key, and line, that names it.
func TestHeartbeatTLSFileProblems(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	caFile := ca.WritePEM(t, dir)
	certFile, _ := testcert.WriteLeaf(t, dir, ca.Leaf(t, time.Now().Add(time.Hour)))
	_, otherKey := testcert.WriteLeaf(t, t.TempDir(), ca.Leaf(t, time.Now().Add(time.Hour)))
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name, lines, key string
		line             int
		want             []string
	}{
		{"key of another certificate", "tls_ca = " + caFile + "\ntls_cert = " + certFile + "\ntls_key = " + otherKey + "\n",
			"tls_key", 7, []string{"does not go with tls_cert (line 6)", "private key does not match public key"}},
		{"missing key file", "tls_ca = " + caFile + "\ntls_cert = " + certFile + "\ntls_key = " + missing + "\n",
			"tls_key", 7, []string{"client key", "missing.pem"}},
		{"missing certificate file", "tls_ca = " + caFile + "\ntls_cert = " + missing + "\ntls_key = " + otherKey + "\n",
			"tls_cert", 6, []string{"client certificate", "missing.pem"}},
		{"missing CA file", "tls_ca = " + missing + "\ntls_cert = " + certFile + "\ntls_key = " + otherKey + "\n",
			"tls_ca", 5, []string{"CA file", "missing.pem"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "settings.cfg")
			text := "[email]\nnomail = yes\n[heartbeat]\nredis = rediss://127.0.0.1:6379/0\n" + c.lines
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, problems := loadSettingsFile(t, path)
			for _, p := range problems {
				if p.Key == c.key && p.Line == c.line && containsAll(p.Msg, c.want) {
					return
				}
			}
			t.Errorf("want a problem at %s (line %d) holding %q; got:\n%s", c.key, c.line, c.want, problems.Error())
		})
	}
}

// TestHeartbeatExtremes: timestamps centuries away, a missing instance id
// and an oversized value are told honestly, not as saturated durations.
func TestHeartbeatExtremes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newHeartbeatFixture(t, b, "services = future, ancient, huge\n", "")
			f.putRaw("future", []byte(`{"service_name":"future","instance_id":"i-1","timestamp":"9999-12-31T23:59:59Z"}`))
			f.putRaw("ancient", []byte(`{"service_name":"ancient","timestamp":"0001-01-01T00:00:01Z","uptime_seconds":1e15}`))
			f.putRaw("huge", []byte(`{"service_name":"huge","timestamp":"2025-01-16T08:30:00Z","x":"`+strings.Repeat("x", 80<<10)+`"}`))
			_, r := f.run("heartbeat:future")
			wantStatus(t, r, jobs.Unknown)
			wantMessage(t, r, "timestamp is more than 100 years in the future")
			_, r = f.run("heartbeat:ancient")
			wantStatus(t, r, jobs.Critical)
			wantMessage(t, r, "last heartbeat more than 100 years ago from instance (none) at 0001-01-01")
			_, r = f.run("heartbeat:huge")
			wantStatus(t, r, jobs.Critical)
			if b.name == "redis" {
				wantMessage(t, r, "more than 65536 bytes")
			} else {
				wantMessage(t, r, fmt.Sprintf("is %d bytes", 80<<10+len(`{"service_name":"huge","timestamp":"2025-01-16T08:30:00Z","x":""}`)))
			}
			for _, bad := range []string{"2562047h", "65537"} {
				if strings.Contains(r.Message, bad) {
					t.Errorf("message %q holds %s", r.Message, bad)
				}
			}
		})
	}
}
