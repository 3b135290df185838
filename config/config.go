package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// CommonJobKeys are accepted by every job section and by [heartbeat], whose
// services become jobs.
var CommonJobKeys = []string{"every", "notify", "failures", "recovery", "timeout", "notify_to"}

// Keys of the fixed sections. Section names are case-sensitive, as in
// Python: [General] is not [general].
var (
	generalKeys = []string{"servername", "alertcontact", "logfile", "statefile", "concurrency", "timeout",
		"forget_after", "history", "metrics_textfile"}
	emailKeys = []string{"nomail", "user", "pass", "pass_file", "smtpserver", "smtpport", "smtp_tls",
		"imapserver", "imapport", "imap_tls", "ideletesentmessagesautomatically",
		"bustgmailthreading", "trashfolder", "selfcheck_wait", "helo"}
	serveKeys     = []string{"listen", "jobs_stale_after", "tls_cert", "tls_key", "push_token", "ui_token"}
	heartbeatKeys = []string{"redis", "key_pattern", "channel_pattern", "services", "discover",
		"alive", "stale", "fail_on", "tls_ca", "tls_cert", "tls_key", "max_services", "key_ttl",
		// CommonJobKeys: [heartbeat] holds the policy of its services' jobs.
		"every", "notify", "failures", "recovery", "timeout", "notify_to"}
)

// fixedKeys returns the keys of a fixed section, and whether name is one.
// A nil list accepts any key ([peers], [channels]).
func fixedKeys(name string) ([]string, bool) {
	switch name {
	case "general":
		return generalKeys, true
	case "email":
		return emailKeys, true
	case "serve":
		return serveKeys, true
	case "heartbeat":
		return heartbeatKeys, true
	case "peers", "channels":
		return nil, true
	}
	return nil, false
}

// Problem is one thing wrong with the settings, located as precisely as the
// file allows.
type Problem struct {
	File    string
	Line    int
	Section string
	Key     string
	Msg     string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Section != "" {
		fmt.Fprintf(&b, "[%s] ", clip(p.Section))
	}
	if p.Key != "" {
		fmt.Fprintf(&b, "%s: ", clip(p.Key))
	}
	b.WriteString(p.Msg)
	return b.String()
}

// clip shortens a name for a message: a 100,000-character key is named by
// its start.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Problems is every problem found in one load; it is an error when non-empty.
type Problems []Problem

// Sort orders problems by line, keeping the order of those on one line.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
}

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Section is a job section ([TYPE:NAME]), [maintenance:NAME] or
// [heartbeat] as Python's configparser reads it: the name as written, and
// the values by lower-case key, interpolated. A section also holds what it
// takes from [DEFAULT] (its fallbacks), located at the [DEFAULT] key's
// line; Keys lists only the section's own keys, so that a [DEFAULT] key is
// never an unknown key of the section.
//
// Read it with Lookup, Get, Has and KeyLine: they cost no allocation,
// where a map per section costs 100,000 of them for 100,000 jobs.
type Section struct {
	Name string
	Line int
	keys []string
	kv   []keyValue // own keys first, in file order, then [DEFAULT]'s
}

// keyValue is one value of a section, with the line it is set on.
type keyValue struct {
	key, value string
	line       int
}

// NewSection makes a Section from key = value pairs, all set on the
// section's line (tests build jobs from it).
func NewSection(name string, line int, keyValues ...string) Section {
	s := Section{Name: name, Line: line}
	for i := 0; i+1 < len(keyValues); i += 2 {
		k := strings.ToLower(keyValues[i])
		s.keys = append(s.keys, k)
		s.kv = append(s.kv, keyValue{key: k, value: keyValues[i+1], line: line})
	}
	return s
}

// Keys returns the section's own keys in file order (without those it
// takes from [DEFAULT]).
func (s Section) Keys() []string { return s.keys }

// Lookup returns the value of key (lower-case) and whether it is set, in
// the section or in [DEFAULT].
func (s Section) Lookup(key string) (string, bool) {
	for i := range s.kv {
		if s.kv[i].key == key {
			return s.kv[i].value, true
		}
	}
	return "", false
}

// Get returns the value of key, "" when it is not set.
func (s Section) Get(key string) string { v, _ := s.Lookup(key); return v }

// Has reports whether the key is set, in the section or in [DEFAULT].
func (s Section) Has(key string) bool { _, ok := s.Lookup(key); return ok }

// KeyLine returns the line key is set on, or the section's line when it is
// not set: where a problem with the key is to be reported.
func (s Section) KeyLine(key string) int {
	for i := range s.kv {
		if s.kv[i].key == key {
			return s.kv[i].line
		}
	}
	return s.Line
}

// General is [general].
type General struct {
	ServerName   string
	AlertContact []string
	LogFile      string
	StateFile    string
	Concurrency  int
	Timeout      time.Duration
	// ForgetAfter is how long the state keeps a job that is no longer
	// configured; History is how long events are kept.
	ForgetAfter time.Duration
	History     time.Duration
	// MetricsTextfile, if set, is where cron writes its metrics for
	// node_exporter's textfile collector.
	MetricsTextfile string
}

// Email is [email].
type Email struct {
	NoMail        bool
	User          string
	Pass          string
	SMTPServer    string
	SMTPPort      int
	SMTPTLS       string
	IMAPServer    string
	IMAPPort      int
	IMAPTLS       string
	DeleteSent    bool // ideletesentmessagesautomatically
	BustThreading bool // bustgmailthreading
	TrashFolder   string
	SelfCheckWait time.Duration
	// Helo is the name given in EHLO; empty means the machine's FQDN.
	Helo string
}

// Configured reports whether mail can be sent at all.
func (e Email) Configured() bool { return e.User != "" && e.SMTPServer != "" }

// Serve is [serve].
type Serve struct {
	Listen         string
	JobsStaleAfter time.Duration
	TLSCert        string
	TLSKey         string
	PushToken      string
	// UIToken guards the status page; without it only loopback clients
	// may see it.
	UIToken string
}

// Heartbeat is the store part of [heartbeat]; its job policy keys stay in
// Section for the jobs package.
type Heartbeat struct {
	Redis          string
	KeyPattern     string
	ChannelPattern string
	Services       []string
	Discover       bool
	Alive          time.Duration
	Stale          time.Duration
	// TLSCA, TLSCert and TLSKey are the CA bundle and client certificate
	// for rediss:// (paths, resolved against the settings file).
	TLSCA, TLSCert, TLSKey string
	// MaxServices caps the services a store keeps; KeyTTL is how long a
	// service's heartbeat is kept after its last beat (0: forever).
	MaxServices int
	KeyTTL      time.Duration
	// LocalDir is where the local store keeps heartbeats (in LocalDir/heartbeat)
	// when Redis is not set: the state file's directory.
	LocalDir string
	Section  Section
}

// Peer is one [peers] entry: name = URL,admin email.
type Peer struct {
	Name  string
	URL   string
	Admin string
}

// Channel is one [channels] entry: NAME = URL.
type Channel struct {
	Name string
	URL  string
	// Line is where it is set, for problems found later (a bad URL).
	Line int
}

// Settings is a loaded settings.cfg.
type Settings struct {
	File      string
	General   General
	Email     Email
	Serve     Serve
	Heartbeat Heartbeat
	Peers     []Peer
	Channels  []Channel
	Jobs      []Section
	// Maintenance are the [maintenance:NAME] sections as written.
	Maintenance []Section
	// Warnings are not errors: the settings work, but something about the
	// file deserves attention (a password readable by others). Every
	// command logs them.
	Warnings []string
	// Hints are warnings about single values, located like problems: what
	// looks like an inline comment but is part of the value, a '%' kept
	// literally. `config validate` shows them; they are not logged on every
	// run, because a value may be meant exactly as written.
	Hints Problems

	fixed map[string]Section // [general], [email], [serve], [heartbeat] as read
}

// KeyLine returns the line a key of a fixed section ([general], [email],
// [serve], [heartbeat]) is set on, else the section's line, else 0: where
// a problem found later with the key is to be reported.
func (s *Settings) KeyLine(section, key string) int {
	sec, ok := s.fixed[section]
	if !ok {
		return 0
	}
	return sec.KeyLine(key)
}

// Defaults for keys that are not set.
const (
	DefaultConcurrency    = 64
	DefaultTimeout        = 10 * time.Second
	DefaultSelfCheckWait  = 60 * time.Second
	DefaultListen         = ":5000"
	DefaultJobsStaleAfter = 120 * time.Second
	DefaultTrashFolder    = "[Gmail]/Trash"
	DefaultKeyPattern     = "heartbeat:service:{service}"
	DefaultAlive          = 90 * time.Second
	DefaultStale          = 180 * time.Second
	DefaultForgetAfter    = 7 * 24 * time.Hour
	DefaultHistory        = 90 * 24 * time.Hour
	DefaultMaxServices    = 10000
	DefaultKeyTTL         = 7 * 24 * time.Hour
)

// Env is how the process environment reaches Load; pass os.Getenv.
type Env func(string) string

// Locate picks the settings file: the flag, else $CHECKER_CONFIG, else
// ./settings.cfg, else /etc/checker/settings.cfg.
func Locate(flag string, env Env) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := env("CHECKER_CONFIG"); p != "" {
		return p, nil
	}
	candidates := []string{"settings.cfg", "/etc/checker/settings.cfg"}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no settings file: give -f FILE or set CHECKER_CONFIG (looked for %s)", strings.Join(candidates, " and "))
}
