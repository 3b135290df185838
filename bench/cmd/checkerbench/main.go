// Command checkerbench measures the real checker binary: wall time and peak
// RSS of whole `checker cron` processes against servers it runs itself on
// loopback, and the time a 10,000-job state file takes to load and save.
// bench/run.sh builds the binary and runs this; see there.
//
// Every scenario runs the binary several times in a fresh directory. Job
// scenarios are primed by one run first and get their slots cleared before
// each measured run, so each run loads and saves the full state file as a
// steady-state cron minute does. After every run the state is checked, so a
// fast run that did not do its work fails the benchmark.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"checker/state"
)

func main() {
	bin := flag.String("bin", "bin/checker", "the checker binary to measure")
	runs := flag.Int("runs", 5, "measured runs per scenario")
	only := flag.String("run", "", "only scenarios whose name matches this regexp")
	keep := flag.Bool("keep", false, "keep the scenario directories (printed) for a look afterwards")
	flag.Parse()
	if err := run(*bin, *runs, *only, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "checkerbench:", err)
		os.Exit(1)
	}
}

// scenario is one row of the table.
type scenario struct {
	name   string
	target string
	// settings returns settings.cfg for the scenario's directory.
	settings func(dir string) string
	// command, when set, is run instead of `checker -f settings.cfg cron
	// minute`: "{bin}" stands for the checker binary.
	command []string
	// prime is the tier of an unmeasured first run; "" for none.
	prime string
	// reset clears the slots before each measured run, so the jobs are due.
	reset bool
	// verify checks the state after a run.
	verify func(f *state.Snapshot) error
	// met says whether a measurement meets the target; nil for a row
	// that only informs.
	met func(m summary) bool
	// quiet requires empty stdout and stderr (no notices printed).
	quiet bool
	// minRuns raises the number of runs: a process of a few
	// milliseconds needs many for a median that holds from one run of
	// the benchmark to the next.
	minRuns int
}

// summary is what the table shows for a scenario.
type summary struct {
	median, min, max time.Duration
	peakRSS          int64 // KiB, the largest of the runs
	cpu              time.Duration
}

type servers struct {
	httpURL  string
	tcpAddr  string
	hungAddr string
	close    func()
}

func run(bin string, runs int, only string, keep bool) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("no binary: %w (build it first: make build)", err)
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return err
	}
	srv, err := startServers()
	if err != nil {
		return err
	}
	defer srv.close()

	root, err := os.MkdirTemp("", "checkerbench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("scenario directories under", root)
	} else {
		defer os.RemoveAll(root)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\truns\twall median\twall min–max\tpeak RSS\tCPU (user+sys)\ttarget\tmet\n")
	failed := false
	for i, sc := range scenarios(srv) {
		if !re.MatchString(sc.name) {
			continue
		}
		dir := filepath.Join(root, fmt.Sprintf("%02d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		n := max(runs, sc.minRuns)
		sum, err := measure(abs, dir, sc, n)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		rss := "—"
		if sum.peakRSS > 0 {
			rss = fmt.Sprintf("%.1f MB", float64(sum.peakRSS)/1024)
		}
		cpu := "—"
		if sum.cpu > 0 {
			cpu = ms(sum.cpu)
		}
		met := "—"
		switch {
		case sc.met == nil:
		case sc.met(sum):
			met = "yes"
		default:
			met = "NO"
			failed = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s–%s\t%s\t%s\t%s\t%s\n", sc.name, n, ms(sum.median), ms(sum.min), ms(sum.max), rss, cpu, sc.target, met)
		fmt.Fprintf(os.Stderr, "  measured: %s\n", sc.name)
	}
	tw.Flush()
	if failed {
		fmt.Println("\nsome targets were not met (see NO above)")
	}
	return nil
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func scenarios(srv *servers) []scenario {
	const mb = 1024 // KiB per MB, for peakRSS
	jobsOK := func(n int) func(f *state.Snapshot) error {
		return func(f *state.Snapshot) error { return countStatus(f, n, "OK", "") }
	}
	wall := func(limit time.Duration) func(summary) bool {
		return func(m summary) bool { return m.median <= limit }
	}
	return []scenario{
		{
			// What every invocation pays before it does anything: the
			// runtime and the package start-up of the libraries linked in.
			name:     "checker version (start-up alone)",
			target:   "— (informative)",
			settings: func(string) string { return "" },
			command:  []string{"{bin}", "version"},
			minRuns:  41,
		},
		{
			name:   "cron minute, nothing due (100 hourly jobs)",
			target: "≤ 2.5 ms",
			settings: func(string) string {
				return many(100, "tcp", "target", func(int) string { return srv.tcpAddr }, "every = hour\n")
			},
			prime:   "hour",
			verify:  jobsOK(100),
			met:     wall(2500 * time.Microsecond),
			quiet:   true,
			minRuns: 41,
		},
		{
			name:   "cron minute, nothing due (100,000 hourly jobs)",
			target: "≤ 300 ms, ≤ 150 MB",
			settings: func(string) string {
				return many(100000, "tcp", "target", func(int) string { return srv.tcpAddr }, "every = hour\n")
			},
			prime: "hour",
			met:   func(m summary) bool { return m.median <= 300*time.Millisecond && m.peakRSS <= 150*mb },
			quiet: true,
		},
		{
			name:   "1,000 http jobs (loopback)",
			target: "≤ 60 ms",
			settings: func(string) string {
				return many(1000, "http", "url", func(i int) string { return fmt.Sprintf("%s/j%d", srv.httpURL, i) }, "")
			},
			prime:  "minute",
			reset:  true,
			verify: jobsOK(1000),
			met:    wall(60 * time.Millisecond),
			quiet:  true,
		},
		{
			name:     "10,000 tcp jobs (loopback)",
			target:   "≤ 250 ms",
			settings: func(string) string { return many(10000, "tcp", "target", func(int) string { return srv.tcpAddr }, "") },
			prime:    "minute",
			reset:    true,
			verify:   jobsOK(10000),
			met:      wall(250 * time.Millisecond),
			quiet:    true,
		},
		{
			name:   "10,000 discovered heartbeat services (local store)",
			target: "≤ 250 ms",
			settings: func(dir string) string {
				if err := writeBeats(dir, 10000); err != nil {
					panic(err)
				}
				return "[email]\nnomail = yes\n[heartbeat]\ndiscover = yes\nalive = 1h\nstale = 2h\n"
			},
			prime:  "minute",
			reset:  true,
			verify: jobsOK(10001), // and heartbeat:store
			met:    wall(250 * time.Millisecond),
			quiet:  true,
		},
		{
			name:   "10,000 http jobs (loopback)",
			target: "— (informative)",
			settings: func(string) string {
				return many(10000, "http", "url", func(i int) string { return fmt.Sprintf("%s/j%d", srv.httpURL, i) }, "")
			},
			prime:  "minute",
			reset:  true,
			verify: jobsOK(10000),
			quiet:  true,
		},
		{
			name:   "50 hung http endpoints, timeout 2s",
			target: "about 2 s (< 3 s)",
			settings: func(string) string {
				return "[general]\ntimeout = 2s\n" + many(50, "http", "url", func(i int) string { return fmt.Sprintf("http://%s/h%d", srv.hungAddr, i) }, "notify = every\n")
			},
			reset: true,
			verify: func(f *state.Snapshot) error {
				return countStatus(f, 50, "CRITICAL", "within the timeout")
			},
			met: func(m summary) bool { return m.median >= 2*time.Second && m.median < 3*time.Second },
		},
	}
}

// writeBeats puts n fresh heartbeats in the local store of dir.
func writeBeats(dir string, n int) error {
	hb := filepath.Join(dir, "heartbeat")
	if err := os.MkdirAll(hb, 0o700); err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc%05d", i)
		msg := fmt.Sprintf(`{"service_name":%q,"instance_id":"i-%05d","timestamp":%q,"uptime_seconds":60,"heartbeat_count":1,"memory_usage_mb":12.5,"cpu_usage_percent":1.5}`, name, i, now)
		if err := os.WriteFile(filepath.Join(hb, name+".json"), []byte(msg), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// many writes n job sections of type typ, with key = value(i) and extra
// lines, after an [email] section that turns mail off.
func many(n int, typ, key string, value func(int) string, extra string) string {
	var b strings.Builder
	b.WriteString("[email]\nnomail = yes\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[%s:j%05d]\n%s = %s\n%s", typ, i, key, value(i), extra)
	}
	return b.String()
}

// countStatus checks that exactly want jobs have the status and message.
func countStatus(f *state.Snapshot, want int, status, msg string) error {
	got := 0
	for name, j := range f.Jobs {
		if j.LastStatus == status && strings.Contains(j.LastMessage, msg) {
			got++
		} else if j.LastStatus != "" {
			return fmt.Errorf("job %s: %s %q, want %s", name, j.LastStatus, j.LastMessage, status)
		}
	}
	if got != want {
		return fmt.Errorf("%d jobs %s, want %d", got, status, want)
	}
	return nil
}

func measure(bin, dir string, sc scenario, runs int) (summary, error) {
	cfg := filepath.Join(dir, "settings.cfg")
	if err := os.WriteFile(cfg, []byte(sc.settings(dir)), 0o600); err != nil {
		return summary{}, err
	}
	store := &state.Store{Path: filepath.Join(dir, "checker.state")}
	check := func() error {
		if sc.verify == nil {
			return nil
		}
		f, err := store.Snapshot()
		if err != nil {
			return err
		}
		return sc.verify(f)
	}
	if sc.prime != "" {
		if _, err := cron(bin, dir, cfg, sc.prime, false); err != nil {
			return summary{}, fmt.Errorf("priming run: %w", err)
		}
		if err := check(); err != nil {
			return summary{}, fmt.Errorf("after the priming run: %w", err)
		}
	}
	var walls []time.Duration
	var sum summary
	for r := 0; r < runs; r++ {
		if sc.reset {
			err := store.Update(context.Background(), func(tx *state.Tx) error {
				var names []string
				var recs []state.Job
				err := tx.ForEachJob(func(name string, j state.Job, err error) error {
					j.LastSlot = ""
					names, recs = append(names, name), append(recs, j)
					return err
				})
				for i := range names {
					if err := tx.PutJob(names[i], &recs[i]); err != nil {
						return err
					}
				}
				return err
			})
			if err != nil {
				return sum, err
			}
		}
		var m sample
		var err error
		if sc.command != nil {
			m, err = runCommand(dir, sc.command, bin)
		} else {
			m, err = cron(bin, dir, cfg, "minute", sc.quiet)
		}
		if err != nil {
			return sum, fmt.Errorf("run %d: %w", r+1, err)
		}
		if err := check(); err != nil {
			return sum, fmt.Errorf("after run %d: %w", r+1, err)
		}
		walls = append(walls, m.wall)
		sum.peakRSS = max(sum.peakRSS, m.rss)
		sum.cpu += m.cpu
	}
	slices.Sort(walls)
	sum.min, sum.max, sum.median = walls[0], walls[len(walls)-1], walls[len(walls)/2]
	sum.cpu /= time.Duration(runs)
	return sum, nil
}

type sample struct {
	wall time.Duration
	rss  int64 // KiB
	cpu  time.Duration
}

// runCommand runs args in dir ({bin} is the checker binary) and measures
// it.
func runCommand(dir string, args []string, bin string) (sample, error) {
	argv := make([]string, len(args))
	for i, a := range args {
		argv[i] = strings.ReplaceAll(a, "{bin}", bin)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s := sample{wall: time.Since(start)}
	if err != nil {
		return s, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rss = ru.Maxrss
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s, nil
}

// cron runs `checker -f cfg cron tier` in dir and measures it. With quiet,
// any output is an error.
func cron(bin, dir, cfg, tier string, quiet bool) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", cfg, "cron", tier)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	s := sample{wall: time.Since(start)}
	if err != nil {
		return s, fmt.Errorf("checker cron %s: %v\n%s", tier, err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rss = ru.Maxrss // KiB on Linux
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if quiet && stdout.Len()+stderr.Len() > 0 {
		return s, fmt.Errorf("checker cron %s printed:\n%s%s", tier, stdout.String(), stderr.String())
	}
	return s, nil
}

// startServers runs the loopback servers: an HTTP server answering 200
// "ok", a TCP port that accepts and closes, and a port that accepts and
// never answers.
func startServers() (*servers, error) {
	var closers []func()
	closeAll := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			closers = append(closers, func() { ln.Close() })
		}
		return ln, err
	}

	hl, err := listen()
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go hs.Serve(hl)

	tl, err := listen()
	if err != nil {
		closeAll()
		return nil, err
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	ul, err := listen()
	if err != nil {
		closeAll()
		return nil, err
	}
	var mu sync.Mutex // guards held
	held := map[net.Conn]bool{}
	closers = append(closers, func() {
		mu.Lock()
		defer mu.Unlock()
		for c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held[c] = true
			mu.Unlock()
			go func() {
				// Say nothing; read until the client gives up.
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				mu.Lock()
				delete(held, c)
				mu.Unlock()
			}()
		}
	}()

	return &servers{
		httpURL:  "http://" + hl.Addr().String(),
		tcpAddr:  tl.Addr().String(),
		hungAddr: ul.Addr().String(),
		close:    closeAll,
	}, nil
}
