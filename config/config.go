package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/encoding/ini"
	"github.com/spf13/viper"
)

// keyDelim separates section and key inside viper. Section names hold dots
// and colons (job names, host names), so the usual "." would split them.
const keyDelim = "\x1f"

// CommonJobKeys are accepted by every job section and by [heartbeat], whose
// services become jobs.
var CommonJobKeys = []string{"every", "notify", "failures", "recovery", "timeout", "notify_to"}

// fixedKeys lists the keys of each fixed section. A nil list accepts any key.
var fixedKeys = map[string][]string{
	"general": {"servername", "alertcontact", "logfile", "statefile", "concurrency", "timeout",
		"forget_after", "history", "metrics_textfile"},
	"email": {"nomail", "user", "pass", "pass_file", "smtpserver", "smtpport", "smtp_tls",
		"imapserver", "imapport", "imap_tls", "ideletesentmessagesautomatically",
		"bustgmailthreading", "trashfolder", "selfcheck_wait", "helo"},
	"serve": {"listen", "jobs_stale_after", "tls_cert", "tls_key", "push_token", "ui_token"},
	"heartbeat": append([]string{"redis", "key_pattern", "channel_pattern", "services", "discover",
		"alive", "stale", "fail_on", "tls_ca", "tls_cert", "tls_key", "max_services", "key_ttl"}, CommonJobKeys...),
	"peers":    nil,
	"channels": nil,
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
		fmt.Fprintf(&b, "[%s] ", p.Section)
	}
	if p.Key != "" {
		fmt.Fprintf(&b, "%s: ", p.Key)
	}
	b.WriteString(p.Msg)
	return b.String()
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

// Section is a job section ([TYPE:NAME]) or [heartbeat] as written: the
// name in its original case and the raw values, keyed by lower-case key.
type Section struct {
	Name     string
	Line     int
	Values   map[string]string
	KeyLines map[string]int
	keys     []string
}

// Keys returns the section's keys in file order.
func (s Section) Keys() []string { return s.keys }

// Has reports whether the key was set.
func (s Section) Has(key string) bool { _, ok := s.Values[key]; return ok }

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
	// Warnings are not errors: the settings work, but something deserves
	// attention (a password readable by others).
	Warnings []string
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

// Options change how Load reads the settings.
type Options struct {
	// NoMail is the --nomail flag: mail is off whatever [email] says, so the
	// mail keys are not required.
	NoMail bool
}

// Load reads and checks the settings file. On problems it still returns
// what it could read, together with every problem found as Problems.
func Load(path string, env Env) (*Settings, error) { return LoadWith(path, env, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, env Env, opts Options) (*Settings, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("settings file %s does not exist", path)
		}
		return nil, fmt.Errorf("cannot read settings file: %w", err)
	}
	l := &loader{file: path, dir: filepath.Dir(abs), env: env, opts: opts}
	s := l.load(data)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o044 != 0 && s.Email.Pass != "" && l.passInFile {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s holds a password and is readable by others (mode %04o): chmod 600 %s, or use pass_file or CHECKER_EMAIL_PASS", path, fi.Mode().Perm(), path))
	}
	if len(l.problems) > 0 {
		return s, l.problems
	}
	return s, nil
}

type loader struct {
	file       string
	dir        string
	env        Env
	v          *viper.Viper
	raw        map[string]*rawSection // lower-cased name → section
	problems   Problems
	passInFile bool
	opts       Options
}

func (l *loader) problem(sec, key string, format string, args ...any) {
	line := 0
	if rs := l.raw[strings.ToLower(sec)]; rs != nil {
		line = rs.Line
		if key != "" {
			if kl, ok := rs.KeyLines[key]; ok {
				line = kl
			}
		}
	}
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Section: sec, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) load(data []byte) *Settings {
	s := &Settings{File: l.file}
	sections, scanned := scan(data)
	for _, p := range scanned {
		l.problems = append(l.problems, Problem{File: l.file, Line: p.Line, Section: p.Section, Key: p.Key, Msg: p.Msg})
	}
	l.raw = map[string]*rawSection{}
	for _, rs := range sections {
		l.raw[strings.ToLower(rs.Name)] = rs
	}

	codecs := viper.NewCodecRegistry()
	codec := ini.Codec{KeyDelimiter: keyDelim, LoadOptions: ini.LoadOptions{
		SpaceBeforeInlineComment:   true, // "a;b" keeps its ';', "a ;b" is a comment
		PreserveSurroundedQuote:    true, // configparser keeps quotes
		IgnoreContinuation:         true, // a trailing backslash is just a backslash
		AllowPythonMultilineValues: true,
		SkipUnrecognizableLines:    true, // scan reports them with line numbers
		// scan reports duplicate sections; letting the INI library skip its
		// own uniqueness search keeps loading linear in the section count.
		AllowNonUniqueSections: true,
	}}
	if err := codecs.RegisterCodec("ini", codec); err != nil {
		l.problem("", "", "internal: %v", err)
		return s
	}
	l.v = viper.NewWithOptions(viper.KeyDelimiter(keyDelim), viper.WithCodecRegistry(codecs))
	l.v.SetConfigType("ini")
	if err := l.v.ReadConfig(bytes.NewReader(data)); err != nil {
		l.problem("", "", "not a valid INI file: %v", err)
		return s
	}

	for _, rs := range sections {
		name := strings.ToLower(rs.Name)
		if name == "default" && len(rs.Keys) == 0 {
			continue
		}
		allowed, fixed := fixedKeys[name]
		switch {
		case fixed:
			if allowed != nil {
				for _, k := range rs.Keys {
					if !contains(allowed, k) {
						l.problem(rs.Name, k, "unknown key (known keys: %s)", strings.Join(allowed, ", "))
					}
				}
			}
		case strings.HasPrefix(name, "maintenance:"):
			s.Maintenance = append(s.Maintenance, l.section(rs))
		case strings.Contains(rs.Name, ":"):
			s.Jobs = append(s.Jobs, l.section(rs))
		default:
			l.problem(rs.Name, "", "unknown section (expected general, email, serve, heartbeat, peers, channels, maintenance:NAME or TYPE:NAME for a job)")
		}
	}

	l.general(s)
	l.email(s)
	l.serve(s)
	l.heartbeat(s)
	l.peers(s)
	l.channels(s)
	return s
}

func (l *loader) section(rs *rawSection) Section {
	sec := Section{Name: rs.Name, Line: rs.Line, Values: map[string]string{}, KeyLines: rs.KeyLines, keys: rs.Keys}
	for _, k := range rs.Keys {
		sec.Values[k] = l.get(rs.Name, k)
	}
	return sec
}

// get returns a value as viper read it ("" when unset).
func (l *loader) get(section, key string) string {
	return strings.TrimSpace(l.v.GetString(strings.ToLower(section) + keyDelim + key))
}

func (l *loader) isSet(section, key string) bool {
	rs := l.raw[section]
	if rs == nil {
		return false
	}
	_, ok := rs.KeyLines[key]
	return ok
}

func (l *loader) str(section, key, def string) string {
	if !l.isSet(section, key) {
		return def
	}
	return l.get(section, key)
}

func (l *loader) boolean(section, key string, def bool) bool {
	if !l.isSet(section, key) {
		return def
	}
	b, err := ParseBool(l.get(section, key))
	if err != nil {
		l.problem(section, key, "%v", err)
		return def
	}
	return b
}

func (l *loader) duration(section, key string, def time.Duration) time.Duration {
	if !l.isSet(section, key) {
		return def
	}
	d, err := ParseDuration(l.get(section, key))
	if err != nil {
		l.problem(section, key, "%v", err)
		return def
	}
	return d
}

func (l *loader) integer(section, key string, def, min int) int {
	if !l.isSet(section, key) || l.get(section, key) == "" {
		return def
	}
	n, err := ParsePositiveInt(l.get(section, key), min)
	if err != nil {
		l.problem(section, key, "%v", err)
		return def
	}
	return n
}

func (l *loader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *loader) general(s *Settings) {
	g := &s.General
	g.ServerName = l.str("general", "servername", "")
	if g.ServerName == "" {
		g.ServerName, _ = os.Hostname()
	}
	g.AlertContact = SplitList(l.str("general", "alertcontact", ""))
	g.LogFile = l.path(l.str("general", "logfile", ""))
	g.StateFile = l.path(l.str("general", "statefile", "checker.state"))
	if g.StateFile == "" {
		g.StateFile = l.path("checker.state")
	}
	g.Concurrency = l.integer("general", "concurrency", DefaultConcurrency, 1)
	g.Timeout = l.duration("general", "timeout", DefaultTimeout)
	g.ForgetAfter = l.duration("general", "forget_after", DefaultForgetAfter)
	g.History = l.days("general", "history", DefaultHistory)
	g.MetricsTextfile = l.path(l.str("general", "metrics_textfile", ""))
}

// days reads a number of days ("90") or a duration ("90d", "2160h").
func (l *loader) days(section, key string, def time.Duration) time.Duration {
	if !l.isSet(section, key) {
		return def
	}
	v := l.get(section, key)
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if n < 1 {
			l.problem(section, key, "%d is less than 1 day", n)
			return def
		}
		return time.Duration(n) * 24 * time.Hour
	}
	d, err := ParseDuration(v)
	if err != nil {
		l.problem(section, key, "%v (or a whole number of days)", err)
		return def
	}
	return d
}

// durationOrZero is duration where 0 means none.
func (l *loader) durationOrZero(section, key string, def time.Duration) time.Duration {
	if l.isSet(section, key) && strings.TrimSpace(l.get(section, key)) == "0" {
		return 0
	}
	return l.duration(section, key, def)
}

func (l *loader) email(s *Settings) {
	e := &s.Email
	before := len(l.problems)
	e.NoMail = l.boolean("email", "nomail", false) || l.opts.NoMail
	nomailInvalid := len(l.problems) > before
	e.User = l.str("email", "user", "")
	e.SMTPServer = l.str("email", "smtpserver", "")
	e.SMTPPort = l.integer("email", "smtpport", 587, 1)
	e.IMAPServer = l.str("email", "imapserver", "")
	e.IMAPPort = l.integer("email", "imapport", 993, 1)
	e.DeleteSent = l.boolean("email", "ideletesentmessagesautomatically", false)
	e.BustThreading = l.boolean("email", "bustgmailthreading", false)
	e.TrashFolder = l.str("email", "trashfolder", DefaultTrashFolder)
	e.SelfCheckWait = l.duration("email", "selfcheck_wait", DefaultSelfCheckWait)
	e.Helo = l.str("email", "helo", "")

	defTLS := "starttls"
	if e.SMTPPort == 465 {
		defTLS = "tls"
	}
	e.SMTPTLS = strings.ToLower(l.str("email", "smtp_tls", defTLS))
	defIMAP := "tls"
	if e.IMAPPort == 143 {
		defIMAP = "starttls"
	}
	e.IMAPTLS = strings.ToLower(l.str("email", "imap_tls", defIMAP))
	// A slice, not a map: problems come out in the same order every run.
	for _, kv := range [][2]string{{"smtp_tls", e.SMTPTLS}, {"imap_tls", e.IMAPTLS}} {
		if key, val := kv[0], kv[1]; val != "starttls" && val != "tls" && val != "none" {
			l.problem("email", key, "%q is not one of starttls, tls, none", val)
		}
	}

	// The password: pass, else pass_file, else $CHECKER_EMAIL_PASS.
	switch {
	case l.isSet("email", "pass") && l.get("email", "pass") != "":
		e.Pass = l.get("email", "pass")
		l.passInFile = true
		if l.isSet("email", "pass_file") {
			l.problem("email", "pass_file", "set both pass and pass_file; keep one")
		}
	case l.isSet("email", "pass_file"):
		pass, err := readSecret(l.path(l.get("email", "pass_file")))
		if err != nil {
			l.problem("email", "pass_file", "%v", err)
		} else {
			e.Pass = pass
		}
	default:
		e.Pass = l.env("CHECKER_EMAIL_PASS")
	}

	if e.NoMail || nomailInvalid {
		// With nomail unreadable, the mail keys' absence is not a second
		// problem: the user meant one or the other.
		return
	}
	if !e.Configured() {
		l.problem("email", "", "mail is not configured: set user and smtpserver, or nomail = yes")
		return
	}
	if len(s.General.AlertContact) == 0 {
		l.problem("general", "alertcontact", "missing: alerts need a recipient (or set [email] nomail = yes)")
	}
	if e.IMAPServer == "" {
		l.problem("email", "imapserver", "missing: the hourly email self-check reads its probe mail over IMAP")
	}
}

func (l *loader) serve(s *Settings) {
	v := &s.Serve
	v.Listen = l.str("serve", "listen", DefaultListen)
	v.JobsStaleAfter = l.duration("serve", "jobs_stale_after", DefaultJobsStaleAfter)
	v.TLSCert = l.path(l.str("serve", "tls_cert", ""))
	v.TLSKey = l.path(l.str("serve", "tls_key", ""))
	v.PushToken = l.str("serve", "push_token", "")
	v.UIToken = l.str("serve", "ui_token", "")
	if (v.TLSCert == "") != (v.TLSKey == "") {
		l.problem("serve", "tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
}

func (l *loader) heartbeat(s *Settings) {
	h := &s.Heartbeat
	h.Redis = l.str("heartbeat", "redis", "")
	h.KeyPattern = l.str("heartbeat", "key_pattern", DefaultKeyPattern)
	h.ChannelPattern = l.str("heartbeat", "channel_pattern", h.KeyPattern)
	for _, key := range []string{"key_pattern", "channel_pattern"} {
		if l.isSet("heartbeat", key) && !strings.Contains(l.get("heartbeat", key), "{service}") {
			l.problem("heartbeat", key, "must contain {service}")
		}
	}
	h.Services = SplitList(l.str("heartbeat", "services", ""))
	h.Discover = l.boolean("heartbeat", "discover", false)
	h.Alive = l.duration("heartbeat", "alive", DefaultAlive)
	h.Stale = l.duration("heartbeat", "stale", DefaultStale)
	if h.Stale <= h.Alive {
		l.problem("heartbeat", "stale", "stale (%s) must be longer than alive (%s)", h.Stale, h.Alive)
	}
	if v := strings.ToLower(l.str("heartbeat", "fail_on", "dead")); v != "dead" && v != "stale" {
		l.problem("heartbeat", "fail_on", "%q is not dead or stale", v)
	}
	h.TLSCA = l.path(l.str("heartbeat", "tls_ca", ""))
	h.TLSCert = l.path(l.str("heartbeat", "tls_cert", ""))
	h.TLSKey = l.path(l.str("heartbeat", "tls_key", ""))
	if (h.TLSCert == "") != (h.TLSKey == "") {
		l.problem("heartbeat", "tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
	h.MaxServices = l.integer("heartbeat", "max_services", DefaultMaxServices, 1)
	h.KeyTTL = l.durationOrZero("heartbeat", "key_ttl", DefaultKeyTTL)
	h.LocalDir = filepath.Dir(s.General.StateFile)
	if rs := l.raw["heartbeat"]; rs != nil {
		h.Section = l.section(rs)
	} else {
		h.Section = Section{Name: "heartbeat", Values: map[string]string{}, KeyLines: map[string]int{}}
	}
}

func (l *loader) peers(s *Settings) {
	rs := l.raw["peers"]
	if rs == nil {
		return
	}
	for _, name := range rs.Keys {
		val := l.get("peers", name)
		url, admin, ok := strings.Cut(val, ",")
		url, admin = strings.TrimSpace(url), strings.TrimSpace(admin)
		switch {
		case !ok || url == "" || admin == "":
			l.problem("peers", name, "want \"URL,admin email\", got %q", val)
			continue
		case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
			l.problem("peers", name, "%q is not an http:// or https:// URL", url)
			continue
		case !strings.Contains(admin, "@"):
			l.problem("peers", name, "%q is not an email address", admin)
			continue
		}
		s.Peers = append(s.Peers, Peer{Name: name, URL: url, Admin: admin})
	}
	sort.SliceStable(s.Peers, func(i, j int) bool { return s.Peers[i].Name < s.Peers[j].Name })
}

func (l *loader) channels(s *Settings) {
	rs := l.raw["channels"]
	if rs == nil {
		return
	}
	for _, name := range rs.Keys {
		url := l.get("channels", name)
		if url == "" {
			l.problem("channels", name, "missing: want NAME = URL")
			continue
		}
		s.Channels = append(s.Channels, Channel{Name: name, URL: url})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readSecret reads a password file: a regular file of at most 4 KiB (a pipe
// or device would hang or flood the load), without its trailing newline.
func readSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read password file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("password file %s is not a regular file", path)
	}
	if fi.Size() > 4096 {
		return "", fmt.Errorf("password file %s is larger than 4 KiB", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
