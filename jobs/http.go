package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func init() {
	register("http", Type{New: func() Spec { return &HTTP{Method: http.MethodGet, ExpectStatus: 200, Follow: true} }})
}

// MaxHTTPBody caps how much of a response body an http job reads.
const MaxHTTPBody = 1 << 20

// maxRedirects is how many redirects a job follows before it fails.
const maxRedirects = 10

// HTTP succeeds when the URL answers with ExpectStatus and, if Contains is
// set, a body (first MaxHTTPBody bytes) that contains it. The body must be
// read (up to the cap) within the timeout. Redirects are followed when
// Follow is set and ExpectStatus is not itself a redirect (3xx); a redirect
// from https to plain http fails unless AllowDowngrade.
type HTTP struct {
	URL          string `cfg:"url,required,list=urls"`
	Method       string `cfg:"method"`
	ExpectStatus int    `cfg:"expect_status"`
	Contains     string `cfg:"contains"`
	Insecure     bool   `cfg:"insecure"`
	// Follow is on by default for jobs (the type's New); the zero value of
	// a literal HTTP does not follow.
	Follow         bool `cfg:"follow"`
	AllowDowngrade bool `cfg:"allow_downgrade"`
}

// Validate checks the URL, method and status.
func (h *HTTP) Validate() error {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &KeyError{Key: "url", Err: fmt.Errorf("%q is not an http:// or https:// URL", h.URL)}
	}
	h.Method = strings.ToUpper(h.Method)
	switch h.Method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH":
	default:
		return &KeyError{Key: "method", Err: fmt.Errorf("%q is not an HTTP method", h.Method)}
	}
	if h.ExpectStatus < 100 || h.ExpectStatus > 599 {
		return &KeyError{Key: "expect_status", Err: fmt.Errorf("%d is not an HTTP status", h.ExpectStatus)}
	}
	return nil
}

// Target is the URL.
func (h *HTTP) Target() string { return h.URL }

// follows says whether redirects are followed: not when told so, and not
// when the redirect itself is what is expected.
func (h *HTTP) follows() bool {
	return h.Follow && (h.ExpectStatus < 300 || h.ExpectStatus > 399)
}

// downgradeError is a redirect from https to plain http that was refused.
type downgradeError struct{ from, to *url.URL }

func (e *downgradeError) Error() string {
	return fmt.Sprintf("redirected from %s to plain http %s (allow_downgrade = yes, or --allow-downgrade on the command line, follows it)", e.from.Redacted(), e.to.Redacted())
}

// checkRedirect is the job's redirect policy, for http.Client.
func (h *HTTP) checkRedirect(req *http.Request, via []*http.Request) error {
	if !h.follows() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if req.URL.Scheme == "http" && !h.AllowDowngrade {
		for _, prev := range via {
			if prev.URL.Scheme == "https" {
				return &downgradeError{from: via[len(via)-1].URL, to: req.URL}
			}
		}
	}
	return nil
}

// Check fetches the URL and reads the body, up to MaxHTTPBody, within the
// deadline. Its perfdata is the time taken and the size read.
func (h *HTTP) Check(ctx context.Context, env *Env) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, h.Method, h.URL, nil)
	if err != nil {
		return Resultf(Unknown, "bad request for %s: %v", h.URL, err)
	}
	req.Header.Set("User-Agent", "checker")
	// A copy of the shared client, to give it this job's redirect policy;
	// the transport and its connections stay shared.
	client := *env.HTTPClient(h.Insecure)
	client.CheckRedirect = h.checkRedirect
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return Resultf(Critical, "%s %s: no answer within the timeout", h.Method, h.URL)
		}
		return Resultf(Critical, "%s %s: %v", h.Method, h.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody+1))
	elapsed := time.Since(start)
	cut := len(body) > MaxHTTPBody
	if cut {
		body = body[:MaxHTTPBody]
	}
	perf := fmt.Sprintf("time=%.6fs;;;0 size=%dB;;;0", elapsed.Seconds(), len(body))
	where := h.URL
	if final := resp.Request.URL.String(); final != req.URL.String() {
		where = h.URL + " (redirected to " + final + ")"
	}
	if err != nil {
		var r Result
		if ctx.Err() != nil {
			r = Resultf(Critical, "%s %s: status %s, but the body was not complete within the timeout (%d bytes read)", h.Method, where, resp.Status, len(body))
		} else {
			r = Resultf(Critical, "%s %s: status %s, reading the body: %v (%d bytes read)", h.Method, where, resp.Status, err, len(body))
		}
		r.Perfdata, r.Detail = perf, excerpt(body)
		return r
	}
	if resp.StatusCode != h.ExpectStatus {
		r := Resultf(Critical, "%s %s: status %s, want %d", h.Method, where, resp.Status, h.ExpectStatus)
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			r.Message += " (Location: " + loc + ")"
		}
		r.Perfdata, r.Detail = perf, excerpt(body)
		return r
	}
	if h.Contains != "" && !bytes.Contains(body, []byte(h.Contains)) {
		r := Resultf(Critical, "%s %s: body does not contain %q", h.Method, where, h.Contains)
		r.Perfdata, r.Detail = perf, excerpt(body)
		return r
	}
	size := fmt.Sprintf("%d bytes", len(body))
	if cut {
		size = fmt.Sprintf("more than %d bytes (read up to the cap)", MaxHTTPBody)
	}
	r := Resultf(OK, "%s %s: %s, %s in %s", h.Method, where, resp.Status, size, roundDuration(elapsed))
	r.Perfdata = perf
	return r
}

// excerpt is the start of a body, for the mail.
func excerpt(b []byte) string {
	const max = 500
	if len(b) == 0 {
		return ""
	}
	s := strings.ToValidUTF8(string(b[:min(len(b), max)]), "?")
	if len(b) > max {
		s += "…"
	}
	return "Response body starts:\n" + s
}
