package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"checker/config"
	"checker/jobs"
	"checker/notify"
	"checker/state"
)

// The benchmarks below are the in-process halves of bench/run.sh: what a
// `checker cron minute` does between starting and exiting, so that a CPU
// profile (-cpuprofile) shows where the time goes.

// benchSettings writes settings.cfg with n job sections made by section(i)
// and returns its path.
func benchSettings(b *testing.B, n int, section func(i int) string) string {
	b.Helper()
	var cfg strings.Builder
	cfg.WriteString("[email]\nnomail = yes\n")
	for i := 0; i < n; i++ {
		cfg.WriteString(section(i))
	}
	path := filepath.Join(b.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchLoad is what every invocation does first: settings, then jobs.
func benchLoad(b *testing.B, path string) (*config.Settings, []*jobs.Job) {
	b.Helper()
	s, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	js, problems := jobs.Load(s)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	return s, js
}

func benchTCPSections(addr, extra string) func(int) string {
	return func(i int) string { return fmt.Sprintf("[tcp:j%05d]\ntarget = %s\n%s", i, addr, extra) }
}

func benchTCPPort(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkLoadSettings10000 is config.Load and jobs.Load of 10,000 job
// sections: the fixed cost of every invocation with that many jobs.
func BenchmarkLoadSettings10000(b *testing.B) {
	path := benchSettings(b, 10000, benchTCPSections("127.0.0.1:9", ""))
	b.ReportAllocs()
	for b.Loop() {
		if _, js := benchLoad(b, path); len(js) != 10000 {
			b.Fatalf("%d jobs", len(js))
		}
	}
}

// benchRunner is the runner cron builds, printing (nomail) to nowhere.
func benchRunner(s *config.Settings) *jobs.Runner {
	return &jobs.Runner{
		Store:       &state.Store{Path: s.General.StateFile},
		Sender:      &notify.Printer{W: io.Discard},
		Composer:    notify.Composer{ServerName: "bench"},
		Concurrency: s.General.Concurrency,
		Env:         jobs.NewEnv(s),
	}
}

// benchClearSlots makes every job due again, as the next minute would.
func benchClearSlots(b *testing.B, s *config.Settings) {
	b.Helper()
	err := (&state.Store{Path: s.General.StateFile}).Update(context.Background(), func(tx *state.Tx) error {
		var names []string
		var recs []state.Job
		if err := tx.ForEachJob(func(name string, j state.Job, err error) error {
			j.LastSlot = ""
			names, recs = append(names, name), append(recs, j)
			return err
		}); err != nil {
			return err
		}
		for i := range names {
			if err := tx.PutJob(names[i], &recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCronNothingDue10000 is `cron minute` with 10,000 hourly jobs
// that already ran: load the settings, load and save the state.
func BenchmarkCronNothingDue10000(b *testing.B) {
	path := benchSettings(b, 10000, benchTCPSections(benchTCPPort(b), "every = hour\n"))
	s, js := benchLoad(b, path)
	ctx := context.Background()
	if _, err := benchRunner(s).Cron(ctx, jobs.Hour, js); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, js := benchLoad(b, path)
		out, err := benchRunner(s).Cron(ctx, jobs.Minute, js)
		if err != nil || len(out) != 0 {
			b.Fatalf("%d ran, %v", len(out), err)
		}
	}
}

// benchCron runs `cron minute` over the settings with every job due, and
// checks that all succeeded.
func benchCron(b *testing.B, path string, n int) {
	s, _ := benchLoad(b, path)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		benchClearSlots(b, s)
		b.StartTimer()
		s, js := benchLoad(b, path)
		r := benchRunner(s)
		out, err := r.Cron(ctx, jobs.Minute, js)
		r.Env.Close()
		if err != nil || len(out) != n {
			b.Fatalf("%d ran, %v", len(out), err)
		}
		for _, o := range out {
			if o.Result.Status != jobs.OK {
				b.Fatalf("%s: %s", o.Job.Name, o.Result.Line())
			}
		}
	}
}

// BenchmarkCronHTTP1000 is `cron minute` with 1,000 http jobs against a
// loopback server.
func BenchmarkCronHTTP1000(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	b.Cleanup(srv.Close)
	path := benchSettings(b, 1000, func(i int) string { return fmt.Sprintf("[http:j%05d]\nurl = %s/j%d\n", i, srv.URL, i) })
	benchCron(b, path, 1000)
}

// BenchmarkCronTCP10000 is `cron minute` with 10,000 tcp jobs against a
// loopback port.
func BenchmarkCronTCP10000(b *testing.B) {
	path := benchSettings(b, 10000, benchTCPSections(benchTCPPort(b), ""))
	benchCron(b, path, 10000)
}

// instant is a check that succeeds at once.
type instant struct{}

func (instant) Validate() error { return nil }
func (instant) Target() string  { return "nothing" }
func (instant) Check(context.Context, *jobs.Env) jobs.Result {
	return jobs.Resultf(jobs.OK, "done")
}

// BenchmarkRunOverhead10000 is a whole cron run of 10,000 jobs whose checks
// return at once: the bookkeeping, and running each job under its timeout.
func BenchmarkRunOverhead10000(b *testing.B) {
	path := benchSettings(b, 10000, benchTCPSections("127.0.0.1:9", ""))
	s, js := benchLoad(b, path)
	for _, j := range js {
		j.Spec = instant{}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		benchClearSlots(b, s)
		b.StartTimer()
		out, err := benchRunner(s).Cron(ctx, jobs.Minute, js)
		if err != nil || len(out) != len(js) {
			b.Fatalf("%d ran, %v", len(out), err)
		}
	}
}

// BenchmarkFlood100000 is the worst run: 100,000 jobs all start failing
// at once (their port is closed), each owes a notice, and one digest goes
// out (printed). Each iteration starts from an empty state.
func BenchmarkFlood100000(b *testing.B) { benchFlood(b, nil) }

// benchFlood runs 100,000 failing jobs at once, each time into a fresh
// state, with the runner as setup leaves it.
func benchFlood(b *testing.B, setup func(*jobs.Runner)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	path := benchSettings(b, 100000, benchTCPSections(closed, "failures = 1\n"))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s, js := benchLoad(b, path)
		s.General.StateFile = filepath.Join(b.TempDir(), "checker.state")
		b.StartTimer()
		r := benchRunner(s)
		if setup != nil {
			setup(r)
		}
		out, err := r.Cron(ctx, jobs.Minute, js)
		r.Env.Close()
		if err != nil || len(out) != 100000 || out[0].Result.Status != jobs.Critical {
			b.Fatalf("%d ran, %v", len(out), err)
		}
	}
}

// downSender refuses every mail as a server that is down for a while.
type downSender struct{}

func (downSender) Send(context.Context, notify.Mail) error {
	return errors.New("451 4.3.0 try again later")
}

// BenchmarkFlood100000MailDown is Flood100000 with an alert contact whose
// mail server refuses everything for now: the first run queues 100,000
// notices, tries the digest and records the failed attempt on each.
func BenchmarkFlood100000MailDown(b *testing.B) {
	benchFlood(b, func(r *jobs.Runner) {
		r.Sender = downSender{}
		r.AlertContact = []string{"ops@example.test"}
	})
}
