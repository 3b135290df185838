package jobs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"checker/config"
	"checker/heartbeat"
)

// Env is what checks share: clients, roots, the clock and the settings.
// Expensive parts are built on first use, so a cron run with nothing due
// pays nothing for them.
type Env struct {
	Settings *config.Settings
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RootCAs verifies TLS peers; nil means the system roots.
	RootCAs *x509.CertPool
	// Supervisor is the argv of the supervisor process that runs each
	// command job (the checker binary with its hidden supervise command).
	// The supervisor leads the job's process group and kills the whole
	// group when checker dies, even by SIGKILL, or the timeout passes. Nil
	// runs jobs directly, with PR_SET_PDEATHSIG on the job's first process
	// as the only guard against checker dying (unit tests).
	Supervisor []string

	jobEnvOnce sync.Once
	jobEnv     []string

	httpOnce     sync.Once
	httpClient   *http.Client
	insecureHTTP *http.Client

	mu      sync.Mutex // guards closers and the heartbeat store below
	closers []func() error
	hb      heartbeat.Store
	hbErr   error
	hbSnap  *heartbeatSnapshot
	// hbWant are the services the next read of the store reads, when it
	// does not list them all ([heartbeat] discover).
	hbWant map[string]bool
}

// HeartbeatStore opens the configured heartbeat store on first use and
// returns the same one after; Close closes it.
func (e *Env) HeartbeatStore() (heartbeat.Store, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heartbeatStoreLocked()
}

func (e *Env) heartbeatStoreLocked() (heartbeat.Store, error) {
	if e.hb == nil && e.hbErr == nil {
		if e.Settings == nil {
			e.hbErr = errors.New("no settings: the heartbeat store is configured in [heartbeat]")
		} else if e.hb, e.hbErr = OpenHeartbeatStore(e.Settings); e.hbErr == nil {
			e.closers = append(e.closers, e.hb.Close)
		}
	}
	return e.hb, e.hbErr
}

// Close releases what checks opened (connections, stores).
func (e *Env) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var first error
	for _, c := range e.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	e.closers = nil
	if e.httpClient != nil {
		e.httpClient.CloseIdleConnections()
		e.insecureHTTP.CloseIdleConnections()
	}
	return first
}

// JobEnviron is the environment command jobs run with: this process's,
// without any CHECKER_* variable (CHECKER_EMAIL_PASS gives the mail
// password) and without any variable whose value is the configured mail
// password. It is built once per Env, that is once per run.
func (e *Env) JobEnviron() []string {
	e.jobEnvOnce.Do(func() {
		pass := ""
		if e.Settings != nil {
			pass = e.Settings.Email.Pass
		}
		e.jobEnv = scrubEnviron(os.Environ(), pass)
	})
	return e.jobEnv
}

// scrubEnviron drops from environ (KEY=value entries) the CHECKER_*
// variables and, when pass is not empty, every variable whose value is
// pass.
func scrubEnviron(environ []string, pass string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(k), "CHECKER_") || (pass != "" && v == pass) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// NewEnv returns an Env for the settings.
func NewEnv(s *config.Settings) *Env { return &Env{Settings: s} }

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// HTTPClient returns the shared client (verifying certificates, or not
// when insecure). Timeouts come from each request's context.
func (e *Env) HTTPClient(insecure bool) *http.Client {
	e.httpOnce.Do(func() {
		mk := func(skip bool) *http.Client {
			tr := &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
				TLSClientConfig:       &tls.Config{RootCAs: e.RootCAs, InsecureSkipVerify: skip}, //nolint:gosec // only with insecure = yes
				MaxIdleConns:          1024,
				MaxIdleConnsPerHost:   256,
				IdleConnTimeout:       30 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ExpectContinueTimeout: time.Second,
				ForceAttemptHTTP2:     true,
			}
			return &http.Client{Transport: tr}
		}
		e.httpClient = mk(false)
		e.insecureHTTP = mk(true)
	})
	if insecure {
		return e.insecureHTTP
	}
	return e.httpClient
}
