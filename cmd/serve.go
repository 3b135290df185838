package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/config"
	"checker/heartbeat"
	"checker/jobs"
	"checker/server"
	"checker/state"
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

// storeCloseDelay is how long a heartbeat store replaced by a reload stays
// open for the pushes still using it.
const storeCloseDelay = 15 * time.Second

// serving is what `checker serve` runs on: the settings in force and what
// was built from them.
type serving struct {
	g          *globalOptions
	listenFlag string
	log        *slog.Logger
	logFile    *server.LogFile // nil unless -v logs to [general] logfile
	srv        *server.Server

	settings *config.Settings
	health   *server.StateHealth
	hb       heartbeat.Store
	// ctx lives as long as serve; stopMirror ends the mirroring of the
	// store in force (a no-op for the local store).
	ctx        context.Context
	stopMirror context.CancelFunc
}

// serve is `checker serve`; it returns when ctx ends.
func serve(ctx context.Context, g *globalOptions, listen string, hup <-chan os.Signal) error {
	s, err := g.loadServeSettings()
	if err != nil {
		return err
	}
	log, logFile := g.serveLogger(s)
	if logFile != nil {
		defer logFile.Close()
	}
	sv := &serving{g: g, listenFlag: listen, log: log, logFile: logFile, settings: s, ctx: ctx}
	if listen == "" {
		listen = s.Serve.Listen
	}
	sv.hb, err = sv.openStore(s)
	if err != nil {
		return fmt.Errorf("heartbeat store: %w", err)
	}
	sv.stopMirror = sv.mirror(sv.hb)
	defer func() { sv.stopMirror(); sv.hb.Close() }()
	sv.health = sv.newHealth(s)

	sv.srv, err = server.New(server.Options{Addr: listen, TLSCert: s.Serve.TLSCert, TLSKey: s.Serve.TLSKey, Log: log}, sv.routes(s, sv.health, sv.hb))
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

// loadServeSettings loads and validates the settings as every command does;
// serve keeps its own log, so the app's is closed at once.
func (g *globalOptions) loadServeSettings() (*config.Settings, error) {
	a, err := g.loadApp()
	if err != nil {
		return nil, err
	}
	a.close()
	return a.settings, nil
}

// serveLogger is serve's log: the journal (stderr) at info; with -d stderr
// at debug; with -v [general] logfile at debug, reopened on SIGHUP. Warnings
// and errors are rate-limited per message.
func (g *globalOptions) serveLogger(s *config.Settings) (*slog.Logger, *server.LogFile) {
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
	return slog.New(server.RateLimit(h, logEvery, nil)), lf
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

// routes are the routes for settings s.
func (sv *serving) routes(s *config.Settings, health *server.StateHealth, hb heartbeat.Store) []server.Route {
	return server.Checker{
		ServerName: s.General.ServerName,
		Version:    versionString(),
		StaleAfter: s.Serve.JobsStaleAfter,
		NoMail:     s.Email.NoMail,
		PushToken:  s.Serve.PushToken,
		Health:     health.Health,
		Heartbeats: hb,
		Log:        sv.log,
	}.Routes()
}

// reload is SIGHUP: reopen the log file, read the settings again and put
// them in force — all of them or, when something fails, none.
func (sv *serving) reload() {
	log := sv.log
	if sv.logFile != nil {
		if err := sv.logFile.Reopen(); err != nil {
			log.Error("SIGHUP: cannot reopen the log file; still writing to the old one", "err", err)
		}
	}
	s, err := sv.g.loadServeSettings()
	if err != nil {
		log.Error("SIGHUP: the settings have errors; the ones in force stay", "err", err)
		return
	}
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

	hb := sv.hb
	if jobs.HeartbeatStoreConfig(s) != jobs.HeartbeatStoreConfig(old) {
		if hb, err = sv.openStore(s); err != nil {
			log.Error("SIGHUP: cannot open the new heartbeat store; the settings in force stay", "err", err)
			return
		}
	}
	undo := func() {
		if hb != sv.hb {
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
	if err := sv.srv.SetRoutes(sv.routes(s, health, hb)); err != nil {
		undo()
		log.Error("SIGHUP: cannot serve the new settings; the ones in force stay", "err", err)
		return
	}
	if hb != sv.hb {
		oldStore, oldMirror := sv.hb, sv.stopMirror
		oldMirror()
		sv.stopMirror = sv.mirror(hb)
		time.AfterFunc(storeCloseDelay, func() { oldStore.Close() })
	}
	sv.settings, sv.health, sv.hb = s, health, hb
	log.Info("SIGHUP: settings reloaded", "file", s.File)
}

// openStore opens the heartbeat store of s, its problems (lost and restored
// subscriptions, refused mirrored beats) going to serve's log.
func (sv *serving) openStore(s *config.Settings) (heartbeat.Store, error) {
	return jobs.OpenHeartbeatStore(s, heartbeat.WithStoreLog(func(err error) {
		if errors.Is(err, heartbeat.ErrWatchLost) || errors.Is(err, heartbeat.ErrWatchRestored) {
			sv.log.Warn("heartbeat store", "err", err)
			return
		}
		sv.log.Debug("heartbeat store", "err", err)
	}))
}

// mirror keeps the Redis keys of services that only PUBLISH up to date (see
// heartbeat.RedisStore.Mirror), so cron, check and status see them too. It
// returns the function that stops it.
func (sv *serving) mirror(hb heartbeat.Store) context.CancelFunc {
	rs, ok := hb.(*heartbeat.RedisStore)
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
