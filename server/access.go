package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
)

// IsLoopback reports whether r came from this machine, judged by the TCP
// peer address alone: headers such as X-Forwarded-For are the client's to
// write and prove nothing.
func IsLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// Bearer returns a check that a request carries "Authorization: Bearer
// token". The comparison takes the same time whatever the guess (both
// sides are hashed first, so not even the length leaks). An empty token
// matches no request.
func Bearer(token string) func(*http.Request) bool {
	if token == "" {
		return func(*http.Request) bool { return false }
	}
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) bool {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
}

// LoopbackOrToken guards h: with a token, only requests carrying it pass
// (401 otherwise); without one, only requests from this machine (403,
// naming the setting to make, otherwise). setting names the token's key
// for that message, e.g. "[serve] ui_token". isLoopback nil means
// IsLoopback.
func LoopbackOrToken(token, setting string, isLoopback func(*http.Request) bool, h http.Handler) http.Handler {
	if isLoopback == nil {
		isLoopback = IsLoopback
	}
	hasToken := Bearer(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case token != "" && !hasToken(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="checker"`)
			Refuse(w, http.StatusUnauthorized, "missing or wrong bearer token")
		case token == "" && !isLoopback(r):
			Refuse(w, http.StatusForbidden, "only clients on the server's own machine may use this without a token: set "+setting+" on the server and send \"Authorization: Bearer TOKEN\"")
		default:
			h.ServeHTTP(w, r)
		}
	})
}
