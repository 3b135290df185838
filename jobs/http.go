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
	register("http", Type{New: func() Spec { return &HTTP{Method: http.MethodGet, ExpectStatus: 200} }})
}

// MaxHTTPBody caps how much of a response body an http job reads.
const MaxHTTPBody = 1 << 20

// HTTP succeeds when the URL answers with ExpectStatus and, if Contains is
// set, a body (first MaxHTTPBody bytes) that contains it.
type HTTP struct {
	URL          string `cfg:"url,required,list=urls"`
	Method       string `cfg:"method"`
	ExpectStatus int    `cfg:"expect_status"`
	Contains     string `cfg:"contains"`
	Insecure     bool   `cfg:"insecure"`
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

// Check fetches the URL.
func (h *HTTP) Check(ctx context.Context, env *Env) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, h.Method, h.URL, nil)
	if err != nil {
		return Resultf(Unknown, "bad request for %s: %v", h.URL, err)
	}
	req.Header.Set("User-Agent", "checker")
	resp, err := env.HTTPClient(h.Insecure).Do(req)
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody))
	if err != nil && h.Contains != "" {
		return Resultf(Critical, "%s %s: reading the body: %v", h.Method, h.URL, err)
	}
	if resp.StatusCode != h.ExpectStatus {
		r := Resultf(Critical, "%s %s: status %s, want %d", h.Method, h.URL, resp.Status, h.ExpectStatus)
		r.Detail = excerpt(body)
		return r
	}
	if h.Contains != "" && !bytes.Contains(body, []byte(h.Contains)) {
		r := Resultf(Critical, "%s %s: body does not contain %q", h.Method, h.URL, h.Contains)
		r.Detail = excerpt(body)
		return r
	}
	return Resultf(OK, "%s %s: %s in %s", h.Method, h.URL, resp.Status, roundDuration(time.Since(start)))
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
