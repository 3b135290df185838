package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/heartbeat"
	"checker/jobs"
	"checker/metrics"
	"checker/server"
	"checker/state"
	"checker/ui"
)

func newServeCommand(g *globalOptions) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Answer peers and accept heartbeat pushes",
		Long: `Serves, on [serve] listen (default :5000):

  GET  /                    True, MailProblem or JobProblem (text/plain), for peers
  GET  /status              the same verdict as JSON, with server name, last run and
                            the reason as a class; with "Authorization: Bearer TOKEN"
                            ([serve] push_token) also the detail behind it
  POST /heartbeat/SERVICE   record a heartbeat (JSON body optional). Without
                            push_token only clients on this machine may push;
                            with it, send "Authorization: Bearer TOKEN"
  GET  /ui/                 the status page: every job and heartbeat service,
                            heartbeats live. Without [serve] ui_token only for
                            clients on this machine; with it, log in with the
                            token (a form, or /ui/?token=TOKEN, sets a cookie)
                            or send "Authorization: Bearer TOKEN"
  GET  /metrics             Prometheus metrics; access as for /ui/ (bearer only)

It keeps what the verdict needs from the state file and reads the file
again only when it changes, so it needs no restart when cron runs, and
answers as fast with 100,000 jobs as with 10. Open connections are capped
(idle ones are closed first to make room), idle keep-alive connections close
after 5s. TLS when [serve] tls_cert and tls_key are set.

SIGHUP reopens the log file (-v) and reads the settings again; settings with
errors are not taken (the log says why) and the old ones stay in force.
SIGTERM stops cleanly.`,
		Example: "  checker -f /etc/checker/settings.cfg serve\n  curl -fsS -X POST -H 'Authorization: Bearer $TOKEN' http://monitor:5000/heartbeat/nightly-backup",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			// SIGHUP is caught from the start: its default action ends the
			// process, and systemd's reload sends it at any time.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serve(ctx, g, listen, hup)
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "address to listen on (overrides [serve] listen)")
	return c
}

func init() { extraCommands = append(extraCommands, newServeCommand) }

// logEvery is how often serve logs the same warning or error: a flood of
// refused requests writes a line now and then, with the count held back.
const logEvery = 30 * time.Second

// serveMemoryLimit is the Go runtime's soft memory limit in serve, unless
// GOMEMLIMIT sets another: near it the garbage collector works harder and
// returns freed memory to the system at once, so that a burst of status
// pages and scrapes of a large state does not leave serve holding a
// hundred megabytes it no longer uses. It is a target, not a cap: serve
// may exceed it for what is live. Measured in bench/serve.sh.
const serveMemoryLimit = 64 << 20

// errStoreDown is the metrics' heartbeat error while there is no store.
var errStoreDown = errors.New("the heartbeat store could not be opened")

// storeCloseDelay is how long a heartbeat store replaced by a reload stays
// open for the pushes still using it.
const storeCloseDelay = 15 * time.Second

// serving is what `checker serve` runs on: the settings in force and what
// was built from them.
type serving struct {
	g          *globalOptions
	listenFlag string
	log        *slog.Logger
	// hupLog is the same log without the rate limit: every SIGHUP's answer
	// (settings taken or refused, and why) is written, however many come.
	hupLog  *slog.Logger
	logFile *server.LogFile // nil unless -v logs to [general] logfile
	srv     *server.Server

	settings *config.Settings
	health   *server.StateHealth
	// hb is the heartbeat store; nil when it could not be opened, hbErr
	// saying why.
	hb    heartbeat.Store
	hbErr error
	// cfg is what the settings in force configure; feed follows hb for the
	// status page and the metrics; page is the status page being served.
	cfg  *serveConfig
	feed *ui.Feed
	page *ui.UI
	// ctx lives as long as serve; stopMirror ends the mirroring of the
	// store in force (a no-op for the local store).
	ctx        context.Context
	stopMirror context.CancelFunc
}

// serveConfig is what serve takes from the settings: the settings, the
// configured jobs and the maintenance windows.
type serveConfig struct {
	settings *config.Settings
	jobs     []*jobs.Job
	windows  func(job string, now time.Time) (string, bool)
}

// serve is `checker serve`; it returns when ctx ends.
func serve(ctx context.Context, g *globalOptions, listen string, hup <-chan os.Signal) error {
	cfg, err := g.loadServeConfig()
	if err != nil {
		return err
	}
	if g.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
	s := cfg.settings
	log, hupLog, logFile := g.serveLogger(s)
	if logFile != nil {
		defer logFile.Close()
	}
	sv := &serving{g: g, listenFlag: listen, log: log, hupLog: hupLog, logFile: logFile, settings: s, cfg: cfg, ctx: ctx}
	if listen == "" {
		listen = s.Serve.Listen
	}
	// The verdict does not need the heartbeat store: a store that cannot
	// be opened (a state directory serve's user may not write) is logged,
	// pushes are answered 503, and SIGHUP tries again.
	sv.hb, err = sv.openStore(s)
	if err != nil {
		sv.hb, sv.hbErr = nil, err
		log.Error(storeDownMsg, storeProblem(err)...)
	}
	sv.stopMirror = sv.mirror(sv.hb)
	defer func() {
		sv.stopMirror()
		if sv.hb != nil {
			sv.hb.Close()
		}
	}()
	sv.feed = sv.newFeed(sv.hb)
	defer func() { sv.feed.Close() }()
	sv.health = sv.newHealth(s)

	routes, page := sv.routes(cfg, sv.health, sv.hb, sv.feed)
	sv.page = page
	sv.srv, err = server.New(server.Options{Addr: listen, TLSCert: s.Serve.TLSCert, TLSKey: s.Serve.TLSKey, Log: log}, routes)
	if err != nil {
		return err
	}
	if err := sv.srv.Listen(); err != nil {
		return err
	}
	if sv.srv.BeyondLoopback() && s.Serve.PushToken == "" {
		log.Warn("checker serve listens beyond loopback without [serve] push_token: heartbeat pushes are accepted only from this machine; set push_token to take them from other hosts",
			"addr", sv.srv.Addr())
	}
	log.Info("checker serve listening", "addr", sv.srv.Addr(), "tls", sv.srv.TLS(), "max_conns", sv.srv.MaxConns(), "version", versionString())

	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-ctx.Done():
				// The page's live streams end now, so that the shutdown
				// does not wait for viewers.
				sv.page.Close()
				return
			case <-hup:
				sv.reload()
			}
		}
	}()
	err = sv.srv.Serve(ctx)
	<-reloads
	log.Info("checker serve stopped")
	return err
}

// loadServeConfig loads and validates the settings as every command does;
// serve keeps its own log, so the app's is closed at once.
func (g *globalOptions) loadServeConfig() (*serveConfig, error) {
	a, err := g.loadApp()
	if err != nil {
		return nil, err
	}
	a.close()
	return &serveConfig{settings: a.settings, jobs: a.jobs, windows: a.windows()}, nil
}

// serveLogger is serve's log: the journal (stderr) at info; with -d stderr
// at debug; with -v [general] logfile at debug, reopened on SIGHUP. The
// first logger rate-limits records per level and message (a flood of
// refused requests); the second writes to the same place unlimited, for
// what must never be held back: the answers to SIGHUP.
func (g *globalOptions) serveLogger(s *config.Settings) (*slog.Logger, *slog.Logger, *server.LogFile) {
	level := slog.LevelInfo
	if g.verbose || g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(g.stderr, opts)
	var lf *server.LogFile
	if g.verbose && !g.debug && s.General.LogFile != "" {
		f, err := server.OpenLogFile(s.General.LogFile)
		if err != nil {
			fmt.Fprintf(g.stderr, "checker: %v; logging to stderr\n", err)
		} else {
			lf = f
			h = slog.NewTextHandler(lf, opts)
		}
	}
	return slog.New(server.RateLimit(h, logEvery, nil)), slog.New(h), lf
}

// newHealth is the verdict's source for the state file of s, read now.
func (sv *serving) newHealth(s *config.Settings) *server.StateHealth {
	store := &state.Store{Path: s.General.StateFile}
	h := server.NewStateHealth(store, nil, func(err error) {
		sv.log.Error("peers are told JobProblem: the state cannot be read", "err", err)
	})
	_ = h.Load() // a failure is logged, and answered as JobProblem
	return h
}

// newFeed is the heartbeat feed of the status page and the metrics; nil
// without a store. A nil *ui.Feed may be closed.
func (sv *serving) newFeed(hb heartbeat.Store) *ui.Feed {
	if hb == nil {
		return nil
	}
	return ui.NewFeed(hb, ui.FeedOptions{Log: sv.log})
}

// storeDownMsg is logged when the heartbeat store cannot be opened.
const storeDownMsg = "heartbeat store cannot be opened: heartbeat pushes are answered 503 and the status page shows no heartbeats; peers' GET / is not affected; fix it and send SIGHUP"

// storeProblem is what the log says of a heartbeat store that cannot be
// opened: the error and, when it is a directory that cannot be made or
// written, that directory, its parent's owner and the user serve runs as.
func storeProblem(err error) []any {
	attrs := []any{"err", err}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return attrs
	}
	attrs = append(attrs, "dir", pe.Path)
	parent := filepath.Dir(pe.Path)
	if fi, err := os.Stat(parent); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			attrs = append(attrs, "parent", parent, "parent_owner", nameOfUID(st.Uid), "parent_mode", fi.Mode().Perm().String())
		}
	}
	return append(attrs, "serve_user", nameOfUID(uint32(os.Getuid())))
}

// nameOfUID is uid's name, or the number when it has none.
func nameOfUID(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (" + id + ")"
	}
	return id
}

// routes are the routes for the settings of cfg, with the status page
// they serve.
func (sv *serving) routes(cfg *serveConfig, health *server.StateHealth, hb heartbeat.Store, feed *ui.Feed) ([]server.Route, *ui.UI) {
	s := cfg.settings
	view := newStateView(cfg)
	thresholds := heartbeatThresholds(s, cfg.jobs)
	page := ui.New(ui.Options{
		Server:  s.General.ServerName,
		Version: versionString(),
		Status: func(context.Context) (ui.Status, error) {
			v, err := view.snap.Get()
			if err != nil {
				return ui.Status{}, err
			}
			return v.page(), nil
		},
		Feed:         feed, // nil without a store: no heartbeat section
		Thresholds:   thresholds,
		Token:        s.Serve.UIToken,
		IsLoopback:   server.IsLoopback,
		SecureCookie: s.Serve.TLSCert != "" || s.Serve.TLSKey != "",
		Log:          sv.log,
	})
	stateMetrics := func(context.Context) []byte {
		v, err := view.snap.Get()
		if err != nil {
			text, _ := metrics.TextOf(metrics.StateFamilies(metricsSnapshot(statusDoc{}, err, s)))
			return text
		}
		return v.metrics()
	}
	liveMetrics := func(ctx context.Context) []byte {
		now := time.Now()
		var m metrics.Snapshot
		var msgs []heartbeat.Message
		err := errStoreDown
		if feed != nil {
			msgs, err = feed.Heartbeats(ctx)
		}
		addHeartbeats(&m, msgs, err, thresholds, now)
		text, _ := metrics.TextOf(metrics.LiveFamilies(m, now))
		return text
	}
	return server.Checker{
		ServerName: s.General.ServerName,
		Version:    versionString(),
		StaleAfter: s.Serve.JobsStaleAfter,
		NoMail:     s.Email.NoMail,
		PushToken:  s.Serve.PushToken,
		Health:     health.Health,
		Heartbeats: hb,
		// Without a store, pushes are refused with 503.
		HeartbeatsDown: hb == nil,
		UI:             page,
		Metrics:        metrics.Handler(stateMetrics, liveMetrics),
		UIToken:        s.Serve.UIToken,
		Log:            sv.log,
	}.Routes(), page
}

// stateView is the state as the status page and the metrics show it: read
// again when the state file changes, and once a minute besides (uptime
// and running jobs move with the clock), never per request.
type stateView struct {
	snap *server.Snapshot[viewKey, *viewValue]
}

type viewKey struct {
	file   server.FileID
	minute int64
}

// viewValue is one read of the state; its status page data and its
// metrics text are made on first use, once, and shared by every page view
// and scrape until the state changes.
type viewValue struct {
	doc     statusDoc
	page    func() ui.Status
	metrics func() []byte
}

func newStateView(cfg *serveConfig) *stateView {
	s := cfg.settings
	store := &state.Store{Path: s.General.StateFile}
	read := func() (*viewValue, error) {
		now := time.Now()
		var doc statusDoc
		err := store.View(func(tx *state.Tx) error {
			all := cfg.jobs
			if s.Heartbeat.Discover {
				found, err := discoveredJobs(tx, cfg.jobs)
				if err != nil {
					return err
				}
				all = append(all[:len(all):len(all)], found...)
			}
			var err error
			doc, err = collectStatus(tx, statusQuery{server: s.General.ServerName, jobs: all, windows: cfg.windows, noMail: s.Email.NoMail}, now)
			return err
		})
		if err != nil {
			return nil, err
		}
		v := &viewValue{doc: doc}
		v.page = sync.OnceValue(func() ui.Status { return pageStatus(doc) })
		v.metrics = sync.OnceValue(func() []byte {
			text, _ := metrics.TextOf(metrics.StateFamilies(metricsSnapshot(doc, nil, s)))
			return text
		})
		return v, nil
	}
	identity := func() (viewKey, error) {
		id, err := server.FileIdentity(store.Path)
		return viewKey{file: id, minute: time.Now().Unix() / 60}, err
	}
	return &stateView{snap: server.NewSnapshot(identity, read, nil)}
}

// reload is SIGHUP: reopen the log file, read the settings again and put
// them in force — all of them or, when something fails, none.
func (sv *serving) reload() {
	// Each SIGHUP is an operator's question (did it take?) and gets its
	// answer in the log, never held back by the rate limit.
	log := sv.hupLog
	if sv.logFile != nil {
		if err := sv.logFile.Reopen(); err != nil {
			log.Error("SIGHUP: cannot reopen the log file; still writing to the old one", "err", err)
		}
	}
	cfg, err := sv.g.loadServeConfig()
	if err != nil {
		log.Error("SIGHUP: the settings have errors; the ones in force stay", "err", err)
		return
	}
	s := cfg.settings
	old := sv.settings
	if sv.listenFlag == "" && s.Serve.Listen != old.Serve.Listen {
		log.Warn("SIGHUP: [serve] listen changed; restart checker serve to listen there", "listening", sv.srv.Addr(), "configured", s.Serve.Listen)
	}
	if sv.logFile != nil && s.General.LogFile != old.General.LogFile {
		log.Warn("SIGHUP: [general] logfile changed; restart checker serve to log there", "logging_to", sv.logFile.Path())
	}
	wantTLS := s.Serve.TLSCert != "" || s.Serve.TLSKey != ""
	if wantTLS != sv.srv.TLS() {
		log.Warn("SIGHUP: [serve] tls_cert/tls_key switch TLS on or off; restart checker serve for that")
	}

	hb, feed, hbErr := sv.hb, sv.feed, sv.hbErr
	if hb == nil || jobs.HeartbeatStoreConfig(s) != jobs.HeartbeatStoreConfig(old) {
		hb, err = sv.openStore(s)
		switch {
		case err != nil && sv.hb != nil:
			log.Error("SIGHUP: cannot open the new heartbeat store; the settings in force stay", "err", err)
			return
		case err != nil:
			// There was none before either: the rest of the settings
			// are taken, and pushes still get 503.
			hbErr = err
			log.Error(storeDownMsg, storeProblem(err)...)
		default:
			hbErr = nil
			feed = sv.newFeed(hb)
		}
	}
	undo := func() {
		if hb != sv.hb && hb != nil {
			feed.Close()
			hb.Close()
		}
	}
	if wantTLS && sv.srv.TLS() {
		if err := sv.srv.ReloadTLS(s.Serve.TLSCert, s.Serve.TLSKey); err != nil {
			undo()
			log.Error("SIGHUP: cannot load the TLS certificate; the settings in force stay", "err", err)
			return
		}
	}
	health := sv.health
	if s.General.StateFile != old.General.StateFile {
		health = sv.newHealth(s)
	}
	routes, page := sv.routes(cfg, health, hb, feed)
	if err := sv.srv.SetRoutes(routes); err != nil {
		page.Close()
		undo()
		log.Error("SIGHUP: cannot serve the new settings; the ones in force stay", "err", err)
		return
	}
	// The old page's live streams end; their pages reconnect to the new
	// one, under the access rule now in force.
	sv.page.Close()
	if hb != sv.hb {
		oldStore, oldFeed := sv.hb, sv.feed
		sv.stopMirror()
		sv.stopMirror = sv.mirror(hb)
		if oldStore != nil {
			time.AfterFunc(storeCloseDelay, func() {
				oldFeed.Close()
				oldStore.Close()
			})
		}
	}
	sv.settings, sv.health, sv.hb, sv.hbErr, sv.feed, sv.page, sv.cfg = s, health, hb, hbErr, feed, page, cfg
	log.Info("SIGHUP: settings reloaded", "file", s.File)
}

// openStore opens the heartbeat store of s, its problems (lost and restored
// subscriptions, refused mirrored beats) going to serve's log. On error
// the store is nil, not an interface holding a nil pointer.
func (sv *serving) openStore(s *config.Settings) (heartbeat.Store, error) {
	hb, err := jobs.OpenHeartbeatStore(s, heartbeat.WithStoreLog(func(err error) {
		if errors.Is(err, heartbeat.ErrWatchLost) || errors.Is(err, heartbeat.ErrWatchRestored) {
			sv.log.Warn("heartbeat store", "err", err)
			return
		}
		sv.log.Debug("heartbeat store", "err", err)
	}))
	if err != nil {
		return nil, err
	}
	return hb, nil
}

// mirror keeps the Redis keys of services that only PUBLISH up to date (see
// heartbeat.RedisStore.Mirror), so cron, check and status see them too. It
// returns the function that stops it.
func (sv *serving) mirror(hb heartbeat.Store) context.CancelFunc {
	rs, ok := hb.(*heartbeat.RedisStore) // false for nil too
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(sv.ctx)
	go func() {
		for ctx.Err() == nil {
			if err := rs.Mirror(ctx); err != nil {
				sv.log.Error("heartbeat mirror: cannot subscribe; retrying in a minute", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
		}
	}()
	return cancel
}
