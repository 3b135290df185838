package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Who may see the page:
//
//   - Without [serve] ui_token, only clients on this machine (judged by
//     the TCP peer address; a reverse proxy on the same machine makes
//     every client local, so set a token behind one).
//   - With it, anyone who presents it: as "Authorization: Bearer TOKEN"
//     (scripts, curl), or through the login form the page shows a browser
//     in its place, or a link ending in /ui/?token=TOKEN. Both set a
//     cookie holding its expiry and an HMAC of it keyed by the token
//     (HttpOnly, SameSite=Lax, Secure under TLS, for 30 days, checked by
//     the server) and lead to /ui/ without the token in the address.
//     Changing the token logs every browser out.
//   - Details behind problems (the mail server's reply and the like) only
//     to requests carrying a token (see privileged); others see the class.

const (
	cookieName   = "checker_ui"
	cookieMaxAge = 30 * 24 * 3600
	// maxLoginBody bounds the login form's body.
	maxLoginBody = 4 << 10
)

// tokenSum is how a token is compared: hashed first, so that neither its
// content nor its length leaks through timing.
func tokenSum(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// cookieValue is the login cookie for a token, good until expires: the
// expiry and an HMAC of it keyed by the token, so that the cookie holds
// neither the token nor anything that outlives its expiry or the token.
func cookieValue(token string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + hex.EncodeToString(cookieMAC(token, exp))
}

func cookieMAC(token, exp string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("checker status page login\x00" + exp))
	return m.Sum(nil)
}

// cookieValid reports whether v is a login cookie made with token that
// has not expired at now.
func cookieValid(token, v string, now time.Time) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(sec, 0)) {
		return false
	}
	got, err := hex.DecodeString(mac)
	return err == nil && hmac.Equal(got, cookieMAC(token, exp))
}

// tokenMatches reports whether got is the token, in constant time.
func (u *UI) tokenMatches(got string) bool {
	if u.o.Token == "" {
		return false
	}
	a, b := tokenSum(got), tokenSum(u.o.Token)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// authorized reports whether r may see the page.
func (u *UI) authorized(r *http.Request) bool {
	if u.o.Token == "" {
		return u.o.IsLoopback != nil && u.o.IsLoopback(r)
	}
	if scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return u.tokenMatches(strings.TrimSpace(got))
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return cookieValid(u.o.Token, c.Value, u.o.Now())
	}
	return false
}

// privileged reports whether r, already authorized, may see the details
// behind problems (a mail server's reply, an account, an address): only
// when it carries a token, ui_token (as a bearer token or the login
// cookie) or push_token. Being on this machine is not enough: behind a
// reverse proxy on the same host every viewer is.
func (u *UI) privileged(r *http.Request) bool {
	if u.o.Token != "" && u.authorized(r) {
		return true
	}
	return u.o.Privileged != nil && u.o.Privileged(r)
}

// guard serves h to those authorized. For the page (page true), a browser
// without the token gets the login form, and ?token= logs it in.
func (u *UI) guard(h http.Handler, page bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if page && u.o.Token != "" && r.URL.Query().Has("token") {
			if u.tokenMatches(r.URL.Query().Get("token")) {
				u.login(w, r)
				return
			}
			u.refuseLogin(w, r, "That token is not the one set in [serve] ui_token.")
			return
		}
		if u.authorized(r) {
			h.ServeHTTP(w, r)
			return
		}
		switch {
		case u.o.Token == "":
			refuse(w, http.StatusForbidden, "only clients on the server's own machine may see the status page without a token: set [serve] ui_token on the server, then send \"Authorization: Bearer TOKEN\" or log in at /ui/")
		case page:
			u.refuseLogin(w, r, "")
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="checker"`)
			refuse(w, http.StatusUnauthorized, "missing or wrong token: send \"Authorization: Bearer TOKEN\" ([serve] ui_token) or log in at /ui/")
		}
	})
}

// serveLogin takes the login form.
func (u *UI) serveLogin(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if u.o.Token == "" {
		refuse(w, http.StatusNotFound, "this server has no [serve] ui_token: the status page is open to clients on its own machine only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBody+1))
	if err != nil || len(body) > maxLoginBody {
		refuse(w, http.StatusBadRequest, "the login form could not be read")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !u.tokenMatches(form.Get("token")) {
		u.refuseLogin(w, r, "That token is not the one set in [serve] ui_token.")
		return
	}
	u.login(w, r)
}

// login sets the cookie and leads to the page, without the token in the
// address.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: cookieValue(u.o.Token, u.o.Now().Add(cookieMaxAge*time.Second)), Path: "/ui/", MaxAge: cookieMaxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: u.o.SecureCookie,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// refuseLogin answers 401 with the login form.
func (u *UI) refuseLogin(w http.ResponseWriter, r *http.Request, problem string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="checker"`)
	u.render(w, r, http.StatusUnauthorized, "login.html", loginData{Server: u.o.Server, Problem: problem})
}

type loginData struct {
	Server, Problem string
}

// refuse answers with code and a one-line message.
func refuse(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "30")
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
