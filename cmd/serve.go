package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/heartbeat"
	"checker/jobs"
	"checker/peer"
	"checker/state"
)

func newServeCommand(g *globalOptions) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Answer peers and accept heartbeat pushes",
		Long: `Serves, on [serve] listen (default :5000):

  GET  /                    True, MailProblem or JobProblem (text/plain), for peers
  GET  /status              the same verdict as JSON, with server name and last run
  POST /heartbeat/SERVICE   record a heartbeat (JSON body optional; with push_token
                            set, send "Authorization: Bearer TOKEN")

It reads the state file on every request, so it needs no restart when cron
runs. TLS when [serve] tls_cert and tls_key are set. Stops cleanly on SIGTERM.`,
		Example: "  checker -f /etc/checker/settings.cfg serve\n  curl -fsS -X POST -H 'Authorization: Bearer $TOKEN' http://monitor:5000/heartbeat/nightly-backup",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serve(ctx, g, listen)
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "address to listen on (overrides [serve] listen)")
	return c
}

func init() { extraCommands = append(extraCommands, newServeCommand) }

// serve is `checker serve`; it returns when ctx ends.
func serve(ctx context.Context, g *globalOptions, listen string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	s := a.settings
	if listen == "" {
		listen = s.Serve.Listen
	}
	// serve's log is its stderr (the journal under systemd), at info level.
	log := a.log
	if !g.verbose && !g.debug {
		log = slog.New(slog.NewTextHandler(g.stderr, nil))
	}
	hb, err := jobs.OpenHeartbeatStore(s)
	if err != nil {
		return fmt.Errorf("heartbeat store: %w", err)
	}
	defer hb.Close()

	store := a.store()
	nomail := s.Email.NoMail
	h := peer.NewHandler(peer.ServerOptions{
		Health:     func() (peer.Health, error) { return healthFromState(store, nomail) },
		ServerName: s.General.ServerName,
		Version:    versionString(),
		StaleAfter: s.Serve.JobsStaleAfter,
		Extra: map[string]http.Handler{
			"POST /heartbeat/{service}": heartbeat.PushHandler(hb, s.Serve.PushToken, nil),
		},
		Log: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) },
	})
	srv := peer.NewServer(listen, h, s.Serve.TLSCert, s.Serve.TLSKey)
	srv.Log = func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
	if err := srv.Listen(); err != nil {
		return err
	}
	log.Info("checker serve listening", "addr", srv.Addr(), "tls", s.Serve.TLSCert != "", "version", versionString())
	err = srv.ListenAndServe(ctx)
	log.Info("checker serve stopped")
	return err
}

// healthFromState is what peers are told, from the state's health record.
func healthFromState(store *state.Store, nomail bool) (peer.Health, error) {
	var h state.Health
	err := store.View(func(tx *state.Tx) error {
		var err error
		h, err = tx.Health()
		return err
	})
	if err != nil {
		return peer.Health{}, err
	}
	crashed := h.LastRun.Error
	if c := h.Crashed(time.Now()); c != "" {
		crashed = c
	}
	return peer.Health{
		MailChecked:  h.Mail.Checked(),
		MailOK:       h.Mail.Healthy(),
		MailError:    h.Mail.Problem(),
		LastRunEnd:   h.LastRun.Finished,
		LastRunError: crashed,
		NoMail:       nomail,
	}, nil
}
