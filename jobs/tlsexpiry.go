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

func init() { register("tls", Type{New: func() Spec { return &TLS{WarnDays: 30} }}) }

// TLS succeeds when the certificate chain of Addr verifies for its host name
// and the leaf expires more than WarnDays from now.
type TLS struct {
	Addr     string `cfg:"target,required,list=targets"`
	WarnDays int    `cfg:"warn_days"`
	host     string
}

// Validate checks the target and adds port 443 when none is given.
func (t *TLS) Validate() error {
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
	if left <= time.Duration(t.WarnDays)*24*time.Hour {
		return Resultf(Warning, "certificate of %s expires in %d days (%s), within warn_days %d", t.Addr, days, expires, t.WarnDays)
	}
	return Resultf(OK, "certificate of %s valid for %d more days (until %s)", t.Addr, days, expires)
}
