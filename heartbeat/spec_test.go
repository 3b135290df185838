package heartbeat

import (
	"strings"
	"testing"
)

func TestParseRedisSpec(t *testing.T) {
	tests := []struct {
		spec    string
		addrs   string
		tls     bool
		cluster bool
		str     string
	}{
		{spec: "redis://127.0.0.1:6379/0", addrs: "127.0.0.1:6379", str: "redis://127.0.0.1:6379"},
		{spec: "redis://cache.internal", addrs: "cache.internal:6379", str: "redis://cache.internal:6379"},
		{spec: "rediss://user:s3cret@cache.example.com:6380/2?dial_timeout=3s", addrs: "cache.example.com:6380", tls: true, str: "rediss://cache.example.com:6380"},
		{spec: "redis://:pa%23ss%2Fw%3Fo%40rd@h:1", addrs: "h:1", str: "redis://h:1"},
		{spec: "redis://[::1]:7000", addrs: "[::1]:7000", str: "redis://[::1]:7000"},
		{spec: "10.0.0.1:6379", addrs: "10.0.0.1:6379", str: "10.0.0.1:6379"},
		{spec: " 10.0.0.1:7000, 10.0.0.2:7000 ,", addrs: "10.0.0.1:7000,10.0.0.2:7000", cluster: true, str: "10.0.0.1:7000,10.0.0.2:7000"},
		{spec: "redis://u:s3cret@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000", addrs: "10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000", cluster: true, str: "redis://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseRedisSpec(tt.spec)
			if err != nil {
				t.Fatalf("ParseRedisSpec: %v", err)
			}
			if got := strings.Join(s.Addrs, ","); got != tt.addrs {
				t.Errorf("Addrs = %s, want %s", got, tt.addrs)
			}
			if s.TLS != tt.tls || s.Cluster != tt.cluster {
				t.Errorf("TLS, Cluster = %v, %v; want %v, %v", s.TLS, s.Cluster, tt.tls, tt.cluster)
			}
			if s.String() != tt.str {
				t.Errorf("String() = %q, want %q", s.String(), tt.str)
			}
		})
	}
}

func TestParseRedisSpecErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "empty"},
		{"http://cache:6379", `scheme "http" is not supported`},
		{"cache", `"cache" is not host:port`},
		{"cache:", `port "" is not a number`},
		{"cache:0", `port "0" is not a number from 1 to 65535`},
		{"cache:65536", `port "65536"`},
		{":6379", "has no host"},
		{"a:1,,b", `"b" is not host:port`},
		{"redis://", "has no host"},
		{"redis://:6379", "has no host"},
		{"redis://cache:/0", `port "" is not a number`},
		{"redis://cache:99999", `port "99999"`},
		{"redis://cache:6379/x", `database "x" is not a number`},
		{"redis://cache:6379/0/1", `database "0/1" is not a number`},
		{"redis://cache:6379?bogus=1", "unexpected option: bogus"},
		{"redis://cache:6379?dial_timeout=soon", "dial_timeout"},
		{"redis://cache:6379/3?addr=other:6379", "a cluster has only database 0"},
		{"redis://cache:6379?addr=other", `"other" is not host:port`},
		{"user:pw@cache:6379", "credentials and a database need the URL form"},
		{"redis://127.0.0.1:abc", "the port after the host is not a number"},
		{"redis://[::1:6379", "an IPv6 host must be written in brackets"},
		{"redis://user%3Apw@h:1", "the user name holds an encoded ':' (%3A) and there is no password"},
		{"redis://user:Sup3r@S3cret@127.0.0.1:6379", "more than one '@' before its host"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := ParseRedisSpec(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRedisSpec(%q) = %v, want an error containing %q", tt.spec, err, tt.want)
			}
			if !strings.Contains(tt.spec, "@") && strings.Contains(err.Error(), "must be percent-encoded") {
				t.Errorf("ParseRedisSpec(%q) = %v, which blames a password the URL does not have", tt.spec, err)
			}
		})
	}
	// A host:port with no '@' is not taken for credentials, and not quoted.
	_, err := ParseRedisSpec("redis://Sup3rS3cret:x")
	if err == nil || strings.Contains(err.Error(), "percent-encoded") || strings.Contains(err.Error(), "Sup3r") {
		t.Errorf("ParseRedisSpec(redis://Sup3rS3cret:x) = %v", err)
	}
}

// TestParseRedisSpecNeverLeaksPasswords writes passwords with every
// character that confuses URL parsing, unencoded, into every place a
// password goes: whatever the result, neither the error nor String holds
// any part of the password (its markers).
func TestParseRedisSpecNeverLeaksPasswords(t *testing.T) {
	passwords := []string{
		"PWs3#cr3tPW", "PWpa/ssPW", "PWpa?ssPW", "PWp@ssPW", "PWp%ssPW", "PWp%zzPW", "PWp ssPW",
		"PW12/34PW", "PW1?x=2PW", "PW:colon:PW", "PW]x[PW", "PW\x1b]0;T\aPW", "PW%PW", "PW#PW@h:1/PW",
	}
	templates := []string{
		"redis://:%s@cache:6379/0",
		"redis://user:%s@cache:6379",
		"rediss://user:%s@cache/1?dial_timeout=1s",
		"redis://%s@cache:6379",
		"redis://user:%s@cache:6379?addr=other:6379",
		"redis://user:%s@cache",
		"redis://user:%s",
	}
	for _, tmpl := range templates {
		for _, pw := range passwords {
			if !strings.Contains(tmpl, "@") && strings.Contains(pw, "@") {
				// "redis://user:p@ss" is a valid URL for host "ss": nothing
				// can tell that the host was meant as part of a password.
				continue
			}
			spec := strings.Replace(tmpl, "%s", pw, 1)
			s, err := ParseRedisSpec(spec)
			if err != nil {
				if strings.Contains(err.Error(), "PW") {
					t.Errorf("ParseRedisSpec(%q) error leaks the password: %v", spec, err)
				}
				if _, oerr := OpenRedis(spec, Patterns{}); oerr == nil || strings.Contains(oerr.Error(), "PW") {
					t.Errorf("OpenRedis(%q) = %v, want an error without the password", spec, oerr)
				}
				continue
			}
			if strings.Contains(s.String(), "PW") || strings.Contains(strings.Join(s.Addrs, ","), "PW") {
				t.Errorf("ParseRedisSpec(%q) names the password as a node: %q", spec, s.String())
			}
		}
	}
}

func TestParseRedisSpecRawHashInPassword(t *testing.T) {
	// The case that reached an alert subject: a raw '#' in the password.
	_, err := ParseRedisSpec("redis://:s3#cr3t@cache:6379")
	if err == nil {
		t.Fatal("accepted a raw '#'")
	}
	for _, bad := range []string{"s3", "cr3t"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q holds part of the password", err)
		}
	}
	if !strings.Contains(err.Error(), "%23") {
		t.Errorf("error %q does not say how to write '#'", err)
	}
}
