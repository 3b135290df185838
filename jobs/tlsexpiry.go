package jobs

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"strings"
	"time"
)

func init() {
	register("tls", Type{New: func() Spec { return &TLS{WarnDays: 30, CritDays: CritDaysUnset} }})
}

// CritDaysUnset is TLS.CritDays when crit_days is not given.
const CritDaysUnset = math.MinInt32

// defaultCritDays is crit_days when not given, if warn_days is larger.
const defaultCritDays = 7

// TLS succeeds when the certificate chain of Addr verifies for its host name
// and the leaf expires more than WarnDays from now. It is CRITICAL when the
// chain does not verify or the leaf expires within CritDays, WARNING within
// WarnDays.
type TLS struct {
	Addr     string `cfg:"target,required,list=targets"`
	WarnDays int    `cfg:"warn_days"`
	// CritDays CritDaysUnset means not set: defaultCritDays, or 0
	// (CRITICAL only once expired, as before crit_days existed) when
	// WarnDays is not more.
	CritDays int `cfg:"crit_days"`
	host     string
}

// Validate checks the target and the thresholds and adds port 443 when no
// port is given.
func (t *TLS) Validate() error {
	if t.WarnDays < 0 {
		return &KeyError{Key: "warn_days", Err: fmt.Errorf("%d is less than 0", t.WarnDays)}
	}
	if t.CritDays != CritDaysUnset && t.CritDays < 0 {
		return &KeyError{Key: "crit_days", Err: fmt.Errorf("%d is less than 0", t.CritDays)}
	}
	if t.CritDays == CritDaysUnset {
		t.CritDays = 0
		if t.WarnDays > defaultCritDays {
			t.CritDays = defaultCritDays
		}
	}
	if t.CritDays > t.WarnDays {
		return &KeyError{Key: "crit_days", Err: fmt.Errorf("crit_days %d is more than warn_days %d; CRITICAL comes closer to the expiry than WARNING", t.CritDays, t.WarnDays)}
	}
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		// No port: a bare host, a bare IPv6 address or a bracketed one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(t.Addr, "["), "]"), "443"
	}
	if host == "" {
		return &KeyError{Key: "target", Err: fmt.Errorf("%q has no host", t.Addr)}
	}
	t.host = host
	t.Addr = net.JoinHostPort(host, port)
	return nil
}

// Target is host:port.
func (t *TLS) Target() string { return t.Addr }

// Check does a TLS handshake and inspects the leaf certificate.
func (t *TLS) Check(ctx context.Context, env *Env) Result {
	// Verify at env's clock too, so that a leaf expired by that clock fails
	// verification instead of passing with negative days left.
	d := tls.Dialer{Config: &tls.Config{ServerName: t.host, RootCAs: env.RootCAs, Time: env.now}}
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return Resultf(Critical, "TLS to %s: %v", t.Addr, unwrapOp(err))
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return Resultf(Critical, "TLS to %s: no certificate", t.Addr)
	}
	leaf := certs[0]
	left := leaf.NotAfter.Sub(env.now())
	days := int(math.Floor(left.Hours() / 24))
	expires := leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	var r Result
	switch {
	case left <= time.Duration(t.CritDays)*24*time.Hour:
		r = Resultf(Critical, "certificate of %s expires in %d day%s (%s), within crit_days %d", t.Addr, days, plural(days), expires, t.CritDays)
	case left <= time.Duration(t.WarnDays)*24*time.Hour:
		r = Resultf(Warning, "certificate of %s expires in %d day%s (%s), within warn_days %d", t.Addr, days, plural(days), expires, t.WarnDays)
	default:
		r = Resultf(OK, "certificate of %s valid for %d more day%s (until %s)", t.Addr, days, plural(days), expires)
	}
	// Days left are good while above the thresholds: the range "N:" alerts
	// below N (Monitoring Plugins range syntax).
	r.Perfdata = fmt.Sprintf("days=%d;%d:;%d:", days, t.WarnDays, t.CritDays)
	return r
}
