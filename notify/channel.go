package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/matrix"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/mattermost"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/telegram"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/ntfy"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// defaultPostTimeout bounds one message to a channel when Channel.Timeout
// is zero: connecting, TLS, a login (Matrix) and the request.
const defaultPostTimeout = 20 * time.Second

// service is one kind of channel: how shoutrrr builds it, how its URL is
// checked without connecting, and which parts of the URL are not secret.
type service struct {
	// new returns an uninitialised shoutrrr service.
	new func() types.Service
	// config returns an empty shoutrrr configuration whose SetURL parses
	// (and checks) a URL the way the service will, without any network.
	config func() types.ServiceConfig
	// server is true when the URL's host is a server that may be shown;
	// otherwise (Slack, Telegram, Discord, Teams) it holds a token or an
	// ID and is a secret like the rest of the URL.
	server bool
	// titleInText puts the title in front of the text, for services that
	// take a title parameter but never show it.
	titleInText bool
	// check finds what SetURL lets through but a send would refuse.
	check func(u *url.URL) error
}

// services are the chat and push services by URL scheme, through shoutrrr.
// Only these service packages are linked in: shoutrrr's router imports all
// of its services, whose package initialisation and code every `cron
// minute` would pay. The JSON webhook (http, https) is webhook.go: its
// shoutrrr counterpart ("generic") executes text/template, which makes the
// linker keep every exported method of the program (8.5 MB of binary).
var services = map[string]*service{
	"slack": {
		new:    func() types.Service { return &slack.Service{} },
		config: func() types.ServiceConfig { return &slack.Config{} },
	},
	"matrix": {
		new:    func() types.Service { return &matrix.Service{} },
		config: func() types.ServiceConfig { return &matrix.Config{} },
		server: true, titleInText: true, check: matrixCheck,
	},
	"mattermost": {
		new:    func() types.Service { return &mattermost.Service{} },
		config: func() types.ServiceConfig { return &mattermost.Config{} },
		server: true, titleInText: true, check: needHost,
	},
	"telegram": {
		new:    func() types.Service { return &telegram.Service{} },
		config: func() types.ServiceConfig { return &telegram.Config{} },
	},
	"ntfy": {
		new:    func() types.Service { return &ntfy.Service{} },
		config: func() types.ServiceConfig { return &ntfy.Config{} },
		server: true,
	},
	"gotify": {
		new:    func() types.Service { return &gotify.Service{} },
		config: func() types.ServiceConfig { return &gotify.Config{} },
		server: true, check: gotifyCheck,
	},
	"discord": {
		new:    func() types.Service { return &discord.Service{} },
		config: func() types.ServiceConfig { return &discord.Config{} },
	},
	"teams": {
		new:    func() types.Service { return &teams.Service{} },
		config: func() types.ServiceConfig { return &teams.Config{} },
	},
}

// ChannelSchemes are the URL schemes a channel may use, sorted: the
// services and the JSON webhook's http and https.
func ChannelSchemes() []string {
	out := []string{"http", "https"}
	for s := range services {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Channel is one [channels] entry: a chat or push service, or a JSON
// webhook, that notices go to like to a mail address. Its URL holds
// secrets (tokens, passwords, webhook paths): it is never printed, and
// every error it returns has them removed.
type Channel struct {
	// Name is the channel's name in the settings, lower-cased: notify_to
	// and alertcontact name it, the outbox tracks delivery to it.
	Name string
	// Service is the kind of channel: "webhook" for a JSON webhook, else
	// the shoutrrr service (slack, ntfy, …).
	Service string
	// Timeout bounds one message. 0 means 20s.
	Timeout time.Duration

	svc     *service
	url     *url.URL // the shoutrrr service URL; secret
	webhook *url.URL // the JSON webhook's URL, instead of svc; secret
	server  string   // the host shown in String, "" when it is a secret
	secrets []string // what Redact removes, longest first
}

// CheckChannel checks a [channels] entry without connecting anywhere: the
// name, a known service, and the URL as that service reads it (the parts it
// requires, its options). Errors name the problem but never carry a secret
// part of the URL.
func CheckChannel(name, raw string) error {
	c, err := ParseChannel(name, raw)
	if err != nil {
		return err
	}
	return c.Check()
}

// ParseChannel returns the channel of a [channels] entry after the cheap
// checks (the name, a URL of a known service); Check adds the service's
// own, which costs some 20µs of reflection per channel, so that settings
// checked once when loaded (CheckChannel) are not checked again on every
// run. Errors never carry a secret part of the URL.
func ParseChannel(name, raw string) (*Channel, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if err := validChannelName(name); err != nil {
		return nil, err
	}
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL: keep only the reason, and
		// redact that too (it can quote a piece of the URL).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a valid URL: %s", redactAll(err.Error(), rawSecrets(raw)))
	}
	c := &Channel{Name: name}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "":
		return nil, fmt.Errorf("not a URL: want SERVICE://…, where SERVICE is one of %s", strings.Join(ChannelSchemes(), ", "))
	case "http", "https":
		c.Service = "webhook"
		c.webhook = u
		c.server = u.Host
		c.secrets = sortSecrets(secretsOf(raw, u, true))
		if u.Hostname() == "" {
			return nil, errors.New("webhook URL: no host")
		}
		return c, nil
	default:
		svc, ok := services[scheme]
		if !ok {
			return nil, fmt.Errorf("unknown channel service %q: want one of %s", scheme, strings.Join(ChannelSchemes(), ", "))
		}
		c.Service = scheme
		c.svc = svc
		su := *u
		su.Scheme = scheme
		c.url = &su
	}
	c.secrets = secretsOf(raw, u, c.svc.server)
	c.secrets = append(c.secrets, secretsOf(c.url.String(), c.url, c.svc.server)...)
	c.secrets = sortSecrets(c.secrets)
	if c.svc.server {
		c.server = u.Host
	}
	return c, nil
}

// Check parses the URL with the service's own configuration, without
// connecting anywhere, and adds the checks of parts the service would only
// refuse when sending. The error never carries a secret.
func (c *Channel) Check() error {
	if c.webhook != nil {
		return nil // ParseChannel checked all a webhook needs
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("%s URL: %s", c.Service, c.Redact(err.Error()))
	}
	return nil
}

func (c *Channel) check() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable: %v", p)
		}
	}()
	u := *c.url // SetURL may change what it is given (ntfy does)
	if err := c.svc.config().SetURL(&u); err != nil {
		return err
	}
	if c.svc.check != nil {
		return c.svc.check(c.url)
	}
	return nil
}

func needHost(u *url.URL) error {
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	return nil
}

func matrixCheck(u *url.URL) error {
	if err := needHost(u); err != nil {
		return err
	}
	if p, _ := u.User.Password(); p == "" {
		return errors.New("no password or access token (matrix://USER:PASSWORD@HOST or matrix://:TOKEN@HOST)")
	}
	return nil
}

func gotifyCheck(u *url.URL) error {
	if err := needHost(u); err != nil {
		return err
	}
	token := strings.Trim(u.Path, "/")
	if i := strings.LastIndexByte(token, '/'); i >= 0 {
		token = token[i+1:]
	}
	if !(&gotify.DefaultValidator{}).ValidateToken(token) {
		return errors.New("the application token (the last part of the path) is not a gotify token (a gotify application token is 15 characters and starts with A)")
	}
	return nil
}

// validChannelName checks what a channel name may look like: letters,
// digits, '.', '_' and '-', starting with a letter or digit; no '@' (that
// is an address), no spaces or commas (lists are comma-separated).
func validChannelName(name string) error {
	ok := name != ""
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("channel name %q: use letters, digits, '.', '_' and '-' (no '@': that is a mail address)", name)
	}
	return nil
}

// String names the channel for people: its name and service, and the
// server when the URL's host is not a secret. It never holds a secret.
func (c *Channel) String() string {
	if c.server != "" {
		return fmt.Sprintf("%s (%s at %s)", c.Name, c.Service, c.server)
	}
	return fmt.Sprintf("%s (%s)", c.Name, c.Service)
}

// Redact removes the channel's secrets from s.
func (c *Channel) Redact(s string) string { return redactAll(s, c.secrets) }

// ChatMessage is what a channel shows: a title, a plain-text body, and
// fields that a JSON webhook carries as keys of its document.
type ChatMessage struct {
	Title  string
	Text   string
	Fields map[string]string
}

// Poster delivers a ChatMessage to a channel. Implementations must honour
// ctx's deadline and cancellation.
type Poster interface {
	Post(ctx context.Context, m ChatMessage) error
}

// Post sends m to the channel. The service's own client takes no context,
// so the send runs aside and Post returns when ctx ends or the timeout
// passes, whichever is first; a send cut short ends with the process or
// with the service's own HTTP timeout. The error never holds a secret.
func (c *Channel) Post(ctx context.Context, m ChatMessage) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultPostTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.webhook != nil {
		if err := c.postWebhook(ctx, m); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("webhook: no answer within %s", timeout)
			}
			return errors.New(c.sanitize(err))
		}
		return nil
	}
	done := make(chan error, 1) // the send never blocks on a gone caller
	go func() { done <- c.send(m) }()
	select {
	case err := <-done:
		if err != nil {
			return errors.New(c.sanitize(err))
		}
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s", c.Service, timeout)
		}
		return fmt.Errorf("%s: not sent: %v", c.Service, ctx.Err())
	}
}

// send builds a fresh service (shoutrrr services keep per-send settings in
// themselves) and sends m. A panic in the service is an error, never the
// end of the run.
func (c *Channel) send(m ChatMessage) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s service failed: %v", c.Service, p)
		}
	}()
	s := c.svc.new()
	u := *c.url
	if err := s.Initialize(&u, nil); err != nil {
		return err
	}
	params := types.Params{types.TitleKey: m.Title}
	text := m.Text
	if c.svc.titleInText && m.Title != "" {
		text = m.Title + "\n\n" + text
	}
	return s.Send(text, &params)
}

// sanitize is err's text without secrets: the URLs in url.Errors (the API
// URLs a service builds, which hold tokens the settings' URL does not show
// in the same form, such as a Matrix access token obtained by login) are
// cut to scheme and host, then every secret part of the settings' URL is
// removed.
func (c *Channel) sanitize(err error) string {
	msg := err.Error()
	for e := err; e != nil; {
		var ue *url.Error
		if !errors.As(e, &ue) {
			break
		}
		if ue.URL != "" {
			short := shortURL(ue.URL)
			msg = strings.ReplaceAll(msg, strconv.Quote(ue.URL), strconv.Quote(short))
			msg = strings.ReplaceAll(msg, ue.URL, short)
		}
		e = ue.Err
	}
	return c.Redact(oneLine(shortenQuotedURLs(msg)))
}

// shortenQuotedURLs cuts every quoted URL in msg to scheme and host: the
// services' errors quote the API URLs they tried, and some flatten the
// url.Error that would name them into text.
func shortenQuotedURLs(msg string) string {
	var b strings.Builder
	rest := msg
	for {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i+1:], '"')
		if j < 0 {
			break
		}
		quoted := rest[i+1 : i+1+j]
		b.WriteString(rest[:i+1])
		if u, err := url.Parse(quoted); err == nil && u.Scheme != "" && u.Host != "" {
			b.WriteString(shortURL(quoted))
		} else {
			b.WriteString(quoted)
		}
		b.WriteByte('"')
		rest = rest[i+1+j+1:]
	}
	b.WriteString(rest)
	return b.String()
}

// shortURL is scheme://host/… of a URL, without user, path or query.
func shortURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(URL hidden)"
	}
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

// minSecret is the shortest URL part treated as a secret: shorter path
// segments and query values ("v1", "yes") would only garble messages.
const minSecret = 4

// secretsOf lists the parts of u that are secrets: the user information,
// every path segment, the values of query parameters (long ones, and
// those whose key speaks of a secret or sets a header), and the host when
// it is not a server's name; each also in its escaped forms.
func secretsOf(raw string, u *url.URL, hostIsServer bool) []string {
	var out []string
	add := func(s string) {
		if len(s) < minSecret {
			return
		}
		out = append(out, s, url.PathEscape(s), url.QueryEscape(s))
	}
	add(raw)
	if u == nil {
		return out
	}
	if u.User != nil {
		add(u.User.String())
		add(u.User.Username())
		if p, ok := u.User.Password(); ok {
			add(p)
			add(u.User.Username() + ":" + p)
		}
	}
	if !hostIsServer {
		add(u.Host)
		add(u.Hostname())
		add(u.Host + u.Path)
		add(strings.TrimPrefix(u.Host+u.Path, "/"))
	}
	path := strings.Trim(u.Path, "/")
	add(path)
	add(u.Path)
	add(u.RawPath)
	for seg := range strings.SplitSeq(path, "/") {
		add(seg)
	}
	add(u.RawQuery)
	for k, vs := range u.Query() {
		lk := strings.ToLower(k)
		secretKey := strings.HasPrefix(k, "@") || strings.HasPrefix(k, "$")
		for _, w := range []string{"token", "key", "secret", "pass", "auth", "sig", "code"} {
			secretKey = secretKey || strings.Contains(lk, w)
		}
		for _, v := range vs {
			if secretKey || len(v) >= 8 {
				add(v)
			}
		}
	}
	return out
}

// rawSecrets are the secrets of a URL that does not parse: the whole of it
// and its pieces between separators.
func rawSecrets(raw string) []string {
	out := []string{raw}
	for _, f := range strings.FieldsFunc(raw, func(r rune) bool { return strings.ContainsRune(":/@?&=#", r) }) {
		if len(f) >= minSecret {
			out = append(out, f)
		}
	}
	return sortSecrets(out)
}

// sortSecrets orders secrets longest first, without duplicates, so that a
// secret containing another is removed whole.
func sortSecrets(s []string) []string {
	sort.Slice(s, func(i, j int) bool {
		if len(s[i]) != len(s[j]) {
			return len(s[i]) > len(s[j])
		}
		return s[i] < s[j]
	})
	return slices.Compact(s)
}

// redacted replaces a secret in text.
const redacted = "***"

// A secret shorter than boundedBelow is replaced only where it stands
// alone, not inside a word: a webhook path "/hook" must not turn every
// "webhook" of a message into "web***". Longer ones go wherever they are.
const boundedBelow = 12

func redactAll(s string, secrets []string) string {
	for _, x := range secrets {
		switch {
		case x == "" || x == redacted:
		case len(x) < boundedBelow:
			s = replaceBounded(s, x)
		default:
			s = strings.ReplaceAll(s, x, redacted)
		}
	}
	return s
}

// replaceBounded replaces the occurrences of x in s that no letter or
// digit touches on either side.
func replaceBounded(s, x string) string {
	if !strings.Contains(s, x) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	rest := s
	for {
		i := strings.Index(rest, x)
		if i < 0 {
			break
		}
		before, _ := utf8.DecodeLastRuneInString(rest[:i])
		after, _ := utf8.DecodeRuneInString(rest[i+len(x):])
		if i > 0 && isWordRune(before) || i+len(x) < len(rest) && isWordRune(after) {
			b.WriteString(rest[:i+1]) // inside a word: step one byte on
			rest = rest[i+1:]
			continue
		}
		b.WriteString(rest[:i])
		b.WriteString(redacted)
		rest = rest[i+len(x):]
	}
	b.WriteString(rest)
	return b.String()
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
