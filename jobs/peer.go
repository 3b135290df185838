package jobs

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"checker/config"
	"checker/peer"
)

func init() {
	register("peer", Type{System: true, New: func() Spec { return &Peer{} }})
	systemBuilders = append(systemBuilders, peerJobs)
}

// Peer asks another checker whether it is alive and can send mail (SPEC §7).
type Peer struct {
	URL string
}

// Validate accepts any URL; config checked its scheme.
func (p *Peer) Validate() error { return nil }

// Target is the peer's status URL.
func (p *Peer) Target() string { return p.URL }

// Check fetches the peer's verdict.
func (p *Peer) Check(ctx context.Context, env *Env) Result {
	c := peer.Client{UserAgent: "checker"}
	if env.RootCAs != nil {
		c.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.RootCAs}}}
	}
	r := c.Check(ctx, p.URL)
	if r.Outcome == peer.Up {
		return Resultf(OK, "%s reports %s", p.URL, r.Verdict)
	}
	subject := r.Subject(p.URL)
	msg := subject
	if r.Detail != "" {
		msg += " " + r.Detail
	}
	return Result{Status: Critical, Message: msg, Subject: subject}
}

// peerJobs adds one hourly job per [peers] entry, mailing that peer's admin.
func peerJobs(s *config.Settings) ([]*Job, config.Problems) {
	var out []*Job
	n, _ := ParseNotify("every")
	for _, p := range s.Peers {
		out = append(out, &Job{
			Name: "peer:" + p.Name, Type: "peer", Target: p.URL, Every: Hour,
			Policy:  Policy{Notify: n, Failures: 1, Recovery: RecoveryYes, NotifyTo: []string{p.Admin}, WarnIsFailure: true},
			Timeout: 10 * time.Second,
			Spec:    &Peer{URL: p.URL},
		})
	}
	return out, nil
}
