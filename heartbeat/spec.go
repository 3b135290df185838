package heartbeat

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// defaultRedisPort is the port of a redis:// URL that names none, as the
// redis URI scheme says.
const defaultRedisPort = "6379"

// RedisSpec is a Redis address as [heartbeat] redis gives it, checked by
// ParseRedisSpec. Its String form names the scheme and nodes only, never
// the user name or password, so it is safe in any message.
type RedisSpec struct {
	// Addrs are the host:port of each node the spec names, the URL's host
	// first.
	Addrs []string
	// TLS is true for rediss:// URLs.
	TLS bool
	// Cluster is true when the spec names several nodes (a comma list, or a
	// URL with addr= parameters). A single node may still turn out to be a
	// cluster node; OpenRedis finds out on first use.
	Cluster bool
	// URL is true when the spec is a redis:// or rediss:// URL rather than a
	// list of host:port.
	URL bool

	spec      string                // as given, secrets included; never printed
	options   *redis.Options        // a single-node URL, parsed by go-redis
	clOptions *redis.ClusterOptions // a URL with addr= parameters
}

// String returns the spec without credentials or parameters, e.g.
// "rediss://cache.example.com:6379" or "10.0.0.1:6379,10.0.0.2:6379".
func (s RedisSpec) String() string {
	addrs := strings.Join(s.Addrs, ",")
	if !s.URL {
		return addrs
	}
	scheme := "redis://"
	if s.TLS {
		scheme = "rediss://"
	}
	return scheme + addrs
}

// ParseRedisSpec checks a Redis address without connecting to anything:
// either a redis:// or rediss:// URL, as go-redis reads it
// (redis://[user:password@]host[:port][/db][?option=value&addr=host:port…]),
// or a comma-separated list of host:port. It checks the scheme, that there
// is a host, that ports are numbers from 1 to 65535 (a URL without a port
// means 6379), the database number and go-redis's URL options, and it
// refuses characters that a URL cannot hold unencoded: a '#', '/', '?' or
// '@' in a password must be written %23, %2F, %3F or %40 (a URL with two
// '@' before its host is refused, although Go's URL parser would read the
// last one as the end of the password).
//
// Error messages never contain the password or the user name, whatever the
// input: a spec that does not parse is described, not quoted. `checker
// config validate` uses ParseRedisSpec; OpenRedis calls it too.
func ParseRedisSpec(spec string) (RedisSpec, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return RedisSpec{}, errors.New("redis address is empty")
	}
	if scheme, _, ok := strings.Cut(spec, "://"); ok {
		return parseRedisURL(scheme, spec)
	}
	if strings.Contains(spec, "@") || strings.Contains(spec, "/") {
		return RedisSpec{}, errors.New("redis address is not a redis:// or rediss:// URL nor a list of host:port (credentials and a database need the URL form)")
	}
	s := RedisSpec{spec: spec}
	for _, a := range strings.Split(spec, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		addr, err := checkHostPort(a)
		if err != nil {
			return RedisSpec{}, err
		}
		s.Addrs = append(s.Addrs, addr)
	}
	if len(s.Addrs) == 0 {
		return RedisSpec{}, fmt.Errorf("redis address %q lists no host:port", spec)
	}
	s.Cluster = len(s.Addrs) > 1
	return s, nil
}

// checkHostPort checks one host:port and returns it in canonical form.
func checkHostPort(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("redis address %q is not host:port (e.g. cache.internal:6379)", Escape(a))
	}
	if host == "" {
		return "", fmt.Errorf("redis address %q has no host", Escape(a))
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'<>\^`+"`{|}%", r) }) {
		return "", fmt.Errorf("redis address %q: host %q holds characters no host name has", Escape(a), Escape(host))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("redis address %q: port %q is not a number from 1 to 65535", Escape(a), Escape(port))
	}
	return net.JoinHostPort(host, port), nil
}

// parseRedisURL checks a redis:// or rediss:// URL. Every message names
// only the scheme, host and port: anything before the host may be a
// password, and a password with an unencoded '/', '?' or '#' moves parts
// of itself into the host, path or query, so those are never quoted
// either unless they parsed cleanly.
func parseRedisURL(scheme, spec string) (RedisSpec, error) {
	switch scheme {
	case "redis", "rediss":
	default:
		return RedisSpec{}, fmt.Errorf("redis URL scheme %q is not supported (use redis:// or rediss://, or a list of host:port)", Escape(preview([]byte(scheme))))
	}
	const encodeHint = "a password or user name holding '#', '/', '?', '@' or '%' must be percent-encoded (%23, %2F, %3F, %40, %25)"
	if strings.Contains(spec, "#") {
		return RedisSpec{}, fmt.Errorf("%s URL holds a '#', which is never part of a Redis URL: %s", scheme, encodeHint)
	}
	rest := spec[len(scheme)+len("://"):]
	authority, _, _ := strings.Cut(rest, "/")
	if strings.Count(authority, "@") > 1 {
		// url.Parse would take the last '@' and read the rest as part of
		// the password.
		return RedisSpec{}, fmt.Errorf("%s URL has more than one '@' before its host: %s", scheme, encodeHint)
	}
	u, err := url.Parse(spec)
	if err != nil {
		// url.Parse quotes the offending part, which may be the password:
		// describe it instead.
		switch {
		case strings.Contains(rest, "@"):
			return RedisSpec{}, fmt.Errorf("%s URL does not parse: %s", scheme, encodeHint)
		case strings.Contains(err.Error(), "invalid port"):
			return RedisSpec{}, fmt.Errorf("%s URL: the port after the host is not a number from 1 to 65535 (want %s://host:port; credentials go before an '@': %s://user:password@host:port)", scheme, scheme, scheme)
		case strings.Contains(err.Error(), "']'") || strings.Contains(err.Error(), "IP-literal"):
			return RedisSpec{}, fmt.Errorf("%s URL: an IPv6 host must be written in brackets, with the port after them (e.g. %s://[::1]:6379)", scheme, scheme)
		}
		return RedisSpec{}, fmt.Errorf("%s URL does not parse (want %s://[user:password@]host[:port][/db])", scheme, scheme)
	}
	if strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") {
		return RedisSpec{}, fmt.Errorf("%s URL has an '@' after its host: %s", scheme, encodeHint)
	}
	if u.Opaque != "" || u.Host == "" {
		return RedisSpec{}, fmt.Errorf("%s URL has no host (want %s://host:port)", scheme, scheme)
	}
	if _, hasPass := u.User.Password(); u.User != nil && !hasPass && strings.Contains(u.User.Username(), ":") {
		return RedisSpec{}, fmt.Errorf("%s URL: the user name holds an encoded ':' (%%3A) and there is no password; write user:password@ with a plain ':' between them (only '#', '/', '?', '@' and '%%' are encoded)", scheme)
	}
	first := u.Host
	if u.Port() == "" && !strings.HasSuffix(u.Host, ":") {
		first = net.JoinHostPort(u.Hostname(), defaultRedisPort)
	}
	addr, err := checkHostPort(first)
	if err != nil {
		return RedisSpec{}, err
	}
	s := RedisSpec{Addrs: []string{addr}, TLS: scheme == "rediss", URL: true, spec: spec}

	db := strings.Trim(u.Path, "/")
	if db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || strings.Contains(db, "/") {
			return RedisSpec{}, fmt.Errorf("%s URL for %s: database %q is not a number (write %s://host:port/0)", scheme, addr, Escape(db), scheme)
		}
	}
	q := u.Query()
	if q.Has("addr") {
		for _, a := range q["addr"] {
			extra, err := checkHostPort(a)
			if err != nil {
				return RedisSpec{}, fmt.Errorf("%s URL for %s: addr parameter: %w", scheme, addr, err)
			}
			s.Addrs = append(s.Addrs, extra)
		}
		if db != "" && db != "0" {
			return RedisSpec{}, fmt.Errorf("%s URL for %s: a cluster has only database 0, not %s", scheme, addr, db)
		}
		o, err := redis.ParseClusterURL(spec)
		if err != nil {
			return RedisSpec{}, fmt.Errorf("%s URL for %s: %v", scheme, addr, goRedisReason(err))
		}
		s.Cluster, s.clOptions = true, o
		return s, nil
	}
	o, err := redis.ParseURL(spec)
	if err != nil {
		return RedisSpec{}, fmt.Errorf("%s URL for %s: %v", scheme, addr, goRedisReason(err))
	}
	s.options = o
	return s, nil
}

// goRedisReason is go-redis's URL error without its "redis: " prefix. Its
// messages quote option names and values, never the user information.
func goRedisReason(err error) string {
	return Escape(strings.TrimPrefix(err.Error(), "redis: "))
}
