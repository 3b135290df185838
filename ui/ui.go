package ui

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"checker/heartbeat"
)

//go:embed templates static
var assets embed.FS

// Defaults of the live stream.
const (
	// DefaultMaxStreams caps the live streams served at once. Each holds a
	// connection for as long as the page is open, and serve's connection
	// cap never sheds an active one: the cap keeps viewers from taking the
	// room peers need.
	DefaultMaxStreams = 32
	// DefaultPingEvery is how often an idle stream sends a comment, so
	// that proxies keep it and a gone viewer is noticed.
	DefaultPingEvery = 15 * time.Second
	// DefaultWriteTimeout bounds each write to a stream: a viewer that
	// stops reading is dropped.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxStreamAge ends a stream after this long; the page
	// reconnects on its own, and the access rule in force is applied again.
	DefaultMaxStreamAge = 10 * time.Minute
	// DefaultMaxRows caps the job rows and the heartbeat rows of one page
	// (and the heartbeats of its live stream), problems first: a page of
	// 10,000 jobs is 8 MB of HTML that nobody reads and that serve would
	// hold in memory once per viewer; a line says how many more there are
	// and that `checker status` lists them all. The summary counts all.
	DefaultMaxRows = 1000
)

// Status is what the page shows of the state: the jobs, the last cron run
// and the health of the mail path.
type Status struct {
	Jobs    []Job
	LastRun *Run // nil: no cron run completed yet
	// Mail is healthy, problem, nomail or unchecked; MailProblem says what
	// is wrong, with the details (shown only to requests carrying a
	// token), MailClass the same as a class and a time, for the others.
	Mail, MailProblem, MailClass string
	// Crashed describes a cron run that died, if any.
	Crashed string
	// Outbox is the number of notices waiting; FailingRecipients those of
	// the destinations that refuse them.
	Outbox, FailingRecipients int
}

// Job is one job's line on the page.
type Job struct {
	Name, Type, Target string
	// State is succeeding, failing or never run; Status the last result's
	// status word (OK, WARNING, CRITICAL, UNKNOWN) and Message its text.
	State, Status, Message string
	Since, LastRun         time.Time
	Failures               int
	Running                bool
	// Uptime over 24 hours, 7 days and 30 days, in percent; nil where the
	// job has no history that long.
	Uptime [3]*float64
	// Notes are marks such as a silence, an acknowledgement, a
	// maintenance window or a held notice.
	Notes []string
}

// Run is the last completed cron run.
type Run struct {
	Tier     string
	Finished time.Time
	Took     time.Duration
	Error    string
}

// Options configure the status page.
type Options struct {
	// Server and Version are shown in the page's header and footer.
	Server, Version string
	// Status returns the state as of now; it is called for each page view.
	Status func(ctx context.Context) (Status, error)
	// Feed brings the heartbeats; nil shows no heartbeat section.
	Feed *Feed
	// Thresholds returns the liveness thresholds of a service; nil means
	// heartbeat.DefaultThresholds.
	Thresholds func(service string) heartbeat.Thresholds
	// Token is [serve] ui_token: with it, a viewer must present it (see
	// the package's access rule); without it, only clients on this machine
	// may look.
	Token string
	// IsLoopback tells whether a request comes from this machine.
	IsLoopback func(*http.Request) bool
	// Privileged tells whether a request carries another token that shows
	// the details behind problems ([serve] push_token); nil: none does.
	// A request carrying Token always sees them.
	Privileged func(*http.Request) bool
	// SecureCookie marks the login cookie Secure (serve speaks TLS).
	SecureCookie bool
	// MaxStreams, PingEvery, WriteTimeout and MaxStreamAge bound the live
	// streams; zero means the defaults above.
	MaxStreams                            int
	PingEvery, WriteTimeout, MaxStreamAge time.Duration
	// MaxRows caps the job rows and the heartbeat rows shown; zero means
	// DefaultMaxRows.
	MaxRows int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives what the page has to report; nil discards it.
	Log *slog.Logger
}

// UI is the status page. Build it with New; mount Routes; Close it when
// it is replaced or serve stops, which ends its live streams.
type UI struct {
	o       Options
	streams chan struct{} // a token per live stream
	closing chan struct{}
	close   sync.Once

	// Templates are parsed on first use, not at start: every process
	// linking this package (cron too) would pay for it otherwise.
	templates func() (*template.Template, error)
	etags     sync.Map // static file name → ETag
}

// New returns the status page for o.
func New(o Options) *UI {
	if o.Thresholds == nil {
		o.Thresholds = func(string) heartbeat.Thresholds { return heartbeat.DefaultThresholds() }
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.PingEvery <= 0 {
		o.PingEvery = DefaultPingEvery
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.MaxStreamAge <= 0 {
		o.MaxStreamAge = DefaultMaxStreamAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Status == nil {
		o.Status = func(context.Context) (Status, error) { return Status{}, nil }
	}
	return &UI{
		o:         o,
		streams:   make(chan struct{}, o.MaxStreams),
		closing:   make(chan struct{}),
		templates: sync.OnceValues(parseTemplates),
	}
}

// Close ends the live streams (their pages reconnect, to the page that
// replaced this one) and refuses new ones. The Feed is not closed.
func (u *UI) Close() { u.close.Do(func() { close(u.closing) }) }

// Route is one handler of the page, with the bound on its requests served
// at once that it needs (0: none; the live stream bounds itself).
type Route struct {
	Pattern     string
	Handler     http.Handler
	MaxInFlight int
}

// Routes are the page's routes:
//
//	GET  /ui/            the page
//	GET  /ui/events      the live stream of heartbeats (server-sent events)
//	GET  /ui/static/...  stylesheet and script (open to all)
//	POST /ui/login       the token form, which sets the login cookie
func (u *UI) Routes() []Route {
	return []Route{
		{Pattern: "GET /ui", Handler: http.RedirectHandler("/ui/", http.StatusMovedPermanently)},
		{Pattern: "GET /ui/{$}", Handler: u.guard(http.HandlerFunc(u.servePage), true), MaxInFlight: 4},
		{Pattern: "GET /ui/events", Handler: u.guard(http.HandlerFunc(u.serveEvents), false)},
		// The stylesheet and script are the same in every checker binary
		// and hold nothing of this server: the login form needs them.
		{Pattern: "GET /ui/static/{file}", Handler: http.HandlerFunc(u.serveStatic), MaxInFlight: 8},
		{Pattern: "POST /ui/login", Handler: http.HandlerFunc(u.serveLogin), MaxInFlight: 2},
	}
}

// parseTemplates parses the embedded templates.
func parseTemplates() (*template.Template, error) {
	return template.New("").Funcs(funcs).ParseFS(assets, "templates/*.html")
}

// securityHeaders are set on every answer of the page: nothing from
// elsewhere, no inline script, no framing, no referrer (a token in a URL
// must not travel on).
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
