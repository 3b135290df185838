package server

import (
	"log/slog"
	"net/http"
	"time"

	"checker/heartbeat"
	"checker/peer"
	"checker/ui"
)

// answerWrite bounds the writing of the verdict's answers.
const answerWrite = 2 * time.Second

// Checker is what `checker serve` serves, from its settings.
type Checker struct {
	// ServerName and Version are reported by GET /status.
	ServerName, Version string
	// StaleAfter is [serve] jobs_stale_after.
	StaleAfter time.Duration
	// NoMail makes mail count as healthy.
	NoMail bool
	// PushToken is [serve] push_token: it authorises heartbeat pushes and
	// shows the details behind the verdict in GET /status.
	PushToken string
	// Health is the verdict's source, normally a StateHealth's Health.
	Health func() (peer.Health, error)
	// Heartbeats is where pushed heartbeats go; nil serves no push route,
	// unless HeartbeatsDown is set.
	Heartbeats heartbeat.Store
	// HeartbeatsDown, with Heartbeats nil, says that there should be a
	// store but it could not be opened: pushes are answered 503 (the log
	// said why when it failed), while the verdict is served as ever.
	HeartbeatsDown bool
	// IsLoopback decides whether a push without a token comes from this
	// machine; nil means IsLoopback.
	IsLoopback func(*http.Request) bool
	// UI is the status page; nil serves none. It applies [serve] ui_token
	// itself.
	UI *ui.UI
	// Metrics answers GET /metrics; nil serves none. Like the page, it is
	// for clients on this machine, or, with UIToken, for requests carrying
	// "Authorization: Bearer UIToken".
	Metrics http.Handler
	// UIToken is [serve] ui_token.
	UIToken string
	// Log receives what the handlers log; nil discards it.
	Log *slog.Logger
	// Now is the clock of the verdict and of pushed heartbeats; nil means
	// time.Now.
	Now func() time.Time
}

// Routes returns checker serve's routes:
//
//	GET  /                    the verdict, for peers (answered from memory)
//	GET  /status              the verdict as JSON; details with the push token
//	POST /heartbeat/{service} a heartbeat push
//	GET  /ui/…                the status page (see ui.UI.Routes)
//	GET  /metrics             Prometheus metrics
func (c Checker) Routes() []Route {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.IsLoopback == nil {
		c.IsLoopback = IsLoopback
	}
	health := c.Health
	if health != nil && c.NoMail {
		source := health
		health = func() (peer.Health, error) {
			h, err := source()
			h.NoMail = true
			return h, err
		}
	}
	p := peer.NewHandler(peer.ServerOptions{
		Health:     health,
		ServerName: c.ServerName,
		Version:    c.Version,
		StaleAfter: c.StaleAfter,
		Now:        c.Now,
		Privileged: Bearer(c.PushToken),
		Log:        c.Log,
	})
	// The verdict's answers are small and come from memory: a client that
	// has not taken one within answerWrite does not read (it may pipeline
	// requests whose answers it never reads), and its connection goes.
	routes := []Route{
		{Pattern: "GET /{$}", Handler: http.HandlerFunc(p.ServeVerdict), WriteTimeout: answerWrite},
		{Pattern: "GET /status", Handler: http.HandlerFunc(p.ServeStatus), WriteTimeout: answerWrite},
	}
	if c.Heartbeats != nil {
		routes = append(routes, Route{
			Pattern: "POST /heartbeat/{service}",
			// The push handler bounds its own turns, after checking who
			// pushes: strangers must not take turns from token holders.
			Handler: heartbeat.NewPushHandler(c.Heartbeats, heartbeat.PushOptions{
				Token:      c.PushToken,
				Now:        c.Now,
				Log:        c.Log,
				IsLoopback: c.IsLoopback,
			}),
		})
	}
	if c.Heartbeats == nil && c.HeartbeatsDown {
		routes = append(routes, Route{
			Pattern: "POST /heartbeat/{service}",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.Log.Warn("heartbeat push refused: the heartbeat store could not be opened (see the error logged at start or SIGHUP)", "client", r.RemoteAddr)
				Refuse(w, http.StatusServiceUnavailable, "this server cannot take heartbeats now: its heartbeat store could not be opened; its log says why")
			}),
		})
	}
	if c.UI != nil {
		for _, r := range c.UI.Routes() {
			routes = append(routes, Route{Pattern: r.Pattern, Handler: r.Handler, MaxInFlight: r.MaxInFlight})
		}
	}
	if c.Metrics != nil {
		routes = append(routes, Route{
			Pattern: "GET /metrics",
			Handler: LoopbackOrToken(c.UIToken, "[serve] ui_token", c.IsLoopback, c.Metrics),
			// A scrape may compute the metrics of every job; two at once
			// are plenty for any number of Prometheus servers.
			MaxInFlight: 2,
		})
	}
	return routes
}
