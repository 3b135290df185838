package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// keyDelim separates section and key inside viper. It is not ".", which
// host names in values and keys would collide with; the fixed sections'
// keys are plain words.
const keyDelim = "\x1f"

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
	data, err := readSettings(path)
	if err != nil {
		return nil, err
	}
	l := &loader{file: path, dir: filepath.Dir(abs), env: env, opts: opts, ip: newInterpolator()}
	s := l.load(data)
	// Group-readable is the way to let a service user read the file
	// (root:checker 0640); only a file everyone may read gives the
	// password away.
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 && s.Email.Pass != "" && l.passInFile {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s holds a password and is readable by others (mode %04o): chmod o-r %s, or use pass_file or CHECKER_EMAIL_PASS", path, fi.Mode().Perm(), path))
	}
	if len(l.problems) > 0 {
		return s, l.problems
	}
	return s, nil
}

// readSettings reads the file whole, refusing one larger than
// maxSettingsSize (a wrong path to a device or an image).
func readSettings(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("settings file %s does not exist", path)
		}
		return nil, fmt.Errorf("cannot read settings file: %w", err)
	}
	defer f.Close()
	tooLarge := fmt.Errorf("settings file %s is larger than %d MiB: is it the right file?", path, maxSettingsSize>>20)
	size := 0
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > maxSettingsSize {
			return nil, tooLarge
		}
		size = int(fi.Size())
	}
	// Read into a buffer of the file's size, as os.ReadFile does. A device
	// or a pipe has no size: read at most one byte more than allowed.
	r := io.LimitReader(f, maxSettingsSize+1)
	data := make([]byte, 0, size+512)
	for {
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read settings file: %w", err)
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	if len(data) > maxSettingsSize {
		return nil, tooLarge
	}
	return data, nil
}

type loader struct {
	file string
	dir  string
	env  Env
	opts Options
	ini  *iniFile
	ip   interpolator
	// fixed are the fixed sections found, by name; values holds what each
	// fixed section with a key list reads (own keys and [DEFAULT]
	// fallbacks), also given to v.
	fixed  map[string]*iniSection
	values map[string]Section
	// keys and kvs back the key lists and values of every Section.
	keys     []string
	kvs      []keyValue
	v        *viper.Viper
	problems Problems
	hints    Problems
	// inherited counts the interpolation problems of each [DEFAULT] key
	// after the first, which alone is reported.
	inherited map[string]*inheritedProblem
	// broken are the values (section + "\x00" + key) whose interpolation
	// failed: their problem is reported, they read as unset.
	broken         map[string]bool
	hintedDefaults map[string]bool // [DEFAULT] keys with a hint given
	miscased       map[string]bool // fixed sections written in another case ([Email])
	passInFile     bool
}

type inheritedProblem struct {
	index int // in problems
	more  int
}

func (l *loader) problem(sec, key string, format string, args ...any) {
	line := 0
	if fs, ok := l.values[sec]; ok {
		line = fs.KeyLine(key)
	} else if is := l.fixed[sec]; is != nil {
		line = is.line
	}
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Section: sec, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) load(data []byte) *Settings {
	s := &Settings{File: l.file}
	l.ini = readINI(data)
	for _, p := range l.ini.problems {
		l.problems = append(l.problems, Problem{File: l.file, Line: p.line, Section: p.section, Key: p.key, Msg: p.msg})
	}
	for _, h := range l.ini.hints {
		l.hints = append(l.hints, Problem{File: l.file, Line: h.line, Section: h.section, Key: h.key, Msg: h.msg})
	}

	l.fixed = map[string]*iniSection{}
	s.Jobs = make([]Section, 0, len(l.ini.sections))
	l.keys = make([]string, 0, len(l.ini.opts))
	l.kvs = make([]keyValue, 0, len(l.ini.opts)+len(l.ini.defaults)*len(l.ini.sections))
	for i := range l.ini.sections {
		sec := &l.ini.sections[i]
		if sec.ignored {
			continue
		}
		lname := strings.ToLower(sec.name)
		allowed, fixed := fixedKeys(sec.name)
		switch {
		case fixed:
			l.fixed[sec.name] = sec
			if allowed != nil {
				for _, o := range l.ini.opts[sec.first:sec.end] {
					if !contains(allowed, o.key) {
						l.problemAt(o.line, sec.name, o.key, "unknown key (known keys: %s)", strings.Join(allowed, ", "))
					}
				}
			}
		case strings.HasPrefix(lname, "maintenance:"):
			s.Maintenance = append(s.Maintenance, l.section(sec, nil))
		case strings.Contains(sec.name, ":"):
			s.Jobs = append(s.Jobs, l.section(sec, nil))
		default:
			msg := "unknown section (expected general, email, serve, heartbeat, peers, channels, maintenance:NAME or TYPE:NAME for a job)"
			if _, ok := fixedKeys(lname); ok {
				msg = fmt.Sprintf("unknown section: section names are case-sensitive, did you mean [%s]?", lname)
				if l.miscased == nil {
					l.miscased = map[string]bool{}
				}
				l.miscased[lname] = true
			} else if lname == "default" {
				msg = "unknown section: the section of fallbacks for every section is [DEFAULT], in capitals"
			}
			l.problemAt(sec.line, sec.name, "", "%s", msg)
		}
	}
	l.readFixed()
	s.fixed = l.values

	l.general(s)
	l.email(s)
	l.serve(s)
	l.heartbeat(s)
	l.peers(s)
	l.channels(s)
	for _, ip := range l.inherited {
		if ip.more > 0 {
			l.problems[ip.index].Msg += fmt.Sprintf(" (the same in %d more section%s)", ip.more, plural(ip.more))
		}
	}
	l.problems.Sort()
	l.hints.Sort()
	s.Hints = l.hints
	return s
}

func (l *loader) problemAt(line int, sec, key string, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Section: sec, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// readFixed reads the fixed sections with a key list ([general], [email],
// [serve], [heartbeat]) and hands their values to viper, from which the
// typed settings are read. Job sections do not go through viper: they are
// handed on as Sections for the jobs registry to decode, and viper's
// per-key lookups (and its copy of every map) made loading 100,000 of them
// take most of a second.
func (l *loader) readFixed() {
	l.values = map[string]Section{}
	cfg := map[string]any{}
	for _, name := range []string{"general", "email", "serve", "heartbeat"} {
		sec := l.fixed[name]
		if sec == nil {
			continue
		}
		allowed, _ := fixedKeys(name)
		fs := l.section(sec, func(k string) bool { return contains(allowed, k) })
		l.values[name] = fs
		m := make(map[string]any, len(fs.kv))
		for _, kv := range fs.kv {
			m[kv.key] = kv.value
		}
		cfg[name] = m
	}
	l.v = viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	if err := l.v.MergeConfigMap(cfg); err != nil {
		l.problemAt(0, "", "", "internal: %v", err)
	}
}

// section reads sec as Python's configparser does: its own options, then
// the [DEFAULT] options it does not set itself (all of them when inherit is
// nil, as Python's items(section) gives them; else those inherit accepts),
// each interpolated. The keys and values of every section share two
// backing arrays: 100,000 sections should not mean 100,000 allocations.
func (l *loader) section(sec *iniSection, inherit func(string) bool) Section {
	own := l.ini.opts[sec.first:sec.end]
	out := Section{Name: sec.name, Line: sec.line}
	start, kstart := len(l.kvs), len(l.keys)
	for _, o := range own {
		l.kvs = append(l.kvs, keyValue{key: o.key, value: l.interpolate(sec, o, false), line: o.line})
		l.keys = append(l.keys, o.key)
	}
	for _, d := range l.ini.defaults {
		if findKey(l.ini.opts[:sec.end], sec.first, sec.keyIndex, d.key) >= 0 || (inherit != nil && !inherit(d.key)) {
			continue
		}
		l.kvs = append(l.kvs, keyValue{key: d.key, value: l.interpolate(sec, d, true), line: d.line})
	}
	out.kv = l.kvs[start:len(l.kvs):len(l.kvs)]
	out.keys = l.keys[kstart:len(l.keys):len(l.keys)]
	return out
}

// lookup returns a function that finds a key's raw value in sec, else in
// [DEFAULT]: what %(key)s refers to. sec nil is [DEFAULT] itself.
func (l *loader) lookup(sec *iniSection) func(string) (string, bool) {
	defs := l.ini.defaults
	return func(key string) (string, bool) {
		if sec != nil {
			if i := findKey(l.ini.opts[:sec.end], sec.first, sec.keyIndex, key); i >= 0 {
				return l.ini.opts[i].raw, true
			}
		}
		if i := findKey(defs, 0, l.ini.defaultIndex, key); i >= 0 {
			return defs[i].raw, true
		}
		return "", false
	}
}

// interpolate returns the value of o read in section sec (nil: [DEFAULT]). On a problem
// it is reported and the raw value kept. A problem with a value from
// [DEFAULT] is reported once for all the sections that read it.
func (l *loader) interpolate(sec *iniSection, o iniOption, fromDefault bool) string {
	if strings.IndexByte(o.raw, '%') < 0 {
		return o.raw
	}
	secName := "DEFAULT"
	if sec != nil {
		secName = sec.name
	}
	val, lone, err := l.ip.expand(secName, o.raw, l.lookup(sec))
	if lone {
		// A [DEFAULT] value's hint is given once, at [DEFAULT].
		hint := Problem{File: l.file, Line: o.line, Section: secName, Key: o.key, Msg: loneHint}
		if fromDefault {
			hint.Section = "DEFAULT"
			if l.hintedDefaults == nil {
				l.hintedDefaults = map[string]bool{}
			}
		}
		if !fromDefault || !l.hintedDefaults[o.key] {
			l.hints = append(l.hints, hint)
			if fromDefault {
				l.hintedDefaults[o.key] = true
			}
		}
	}
	if err == nil {
		return val
	}
	if l.broken == nil {
		l.broken = map[string]bool{}
	}
	l.broken[secName+"\x00"+o.key] = true
	msg := err.Error()
	if fromDefault {
		msg += " (the value comes from [DEFAULT])"
		if l.inherited == nil {
			l.inherited = map[string]*inheritedProblem{}
		}
		if ip := l.inherited[o.key]; ip != nil {
			ip.more++
			return o.raw
		}
		l.inherited[o.key] = &inheritedProblem{index: len(l.problems)}
	}
	l.problemAt(o.line, secName, o.key, "%s", msg)
	return o.raw
}

// get returns a fixed section's value as viper holds it ("" when unset).
func (l *loader) get(section, key string) string {
	return l.v.GetString(section + keyDelim + key)
}

// isSet reports whether a fixed section's key is set, in the section or in
// [DEFAULT].
func (l *loader) isSet(section, key string) bool {
	return l.values[section].Has(key) && !l.broken[section+"\x00"+key]
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
	v := l.get(section, key)
	b, err := ParseBool(v)
	if err != nil {
		l.problem(section, key, "%v%s", err, InlineCommentHint(v))
		return def
	}
	return b
}

func (l *loader) duration(section, key string, def time.Duration) time.Duration {
	if !l.isSet(section, key) {
		return def
	}
	v := l.get(section, key)
	d, err := ParseDuration(v)
	if err != nil {
		l.problem(section, key, "%v%s", err, InlineCommentHint(v))
		return def
	}
	return d
}

func (l *loader) integer(section, key string, def, min int) int {
	if !l.isSet(section, key) || l.get(section, key) == "" {
		return def
	}
	v := l.get(section, key)
	n, err := ParsePositiveInt(v, min)
	if err != nil {
		l.problem(section, key, "%v%s", err, InlineCommentHint(v))
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
	g.ServerName = strings.TrimSpace(l.str("general", "servername", ""))
	if r, col, bad := controlRune(g.ServerName); bad {
		// It names the checker in every subject and message.
		l.problem("general", "servername", "must be one line without control characters: %U at column %d", r, col)
		g.ServerName = ""
	}
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
		l.problem(section, key, "%v (or a whole number of days)%s", err, InlineCommentHint(v))
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

// oneOf reads a key whose value is one of choices, in any case.
func (l *loader) oneOf(section, key, def string, choices ...string) string {
	v := strings.ToLower(l.str(section, key, def))
	if !contains(choices, v) {
		l.problem(section, key, "%q is not one of %s%s", l.get(section, key), strings.Join(choices, ", "), InlineCommentHint(v))
	}
	return v
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
	e.SMTPTLS = l.oneOf("email", "smtp_tls", defTLS, "starttls", "tls", "none")
	defIMAP := "tls"
	if e.IMAPPort == 143 {
		defIMAP = "starttls"
	}
	e.IMAPTLS = l.oneOf("email", "imap_tls", defIMAP, "starttls", "tls", "none")

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

	if e.NoMail || nomailInvalid || l.miscased["email"] {
		// With nomail unreadable, or [email] written [Email], the mail
		// keys' absence is not a second problem.
		return
	}
	if !e.Configured() {
		if !l.anyAddress(s) {
			// Every destination is a channel: no mail to send, and no
			// self-check of a mail path that is not there.
			return
		}
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
			l.problem("heartbeat", key, "must contain {service}%s", InlineCommentHint(l.get("heartbeat", key)))
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
		l.problem("heartbeat", "fail_on", "%q is not dead or stale%s", v, InlineCommentHint(v))
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
	if fs, ok := l.values["heartbeat"]; ok {
		h.Section = fs
	} else {
		h.Section = Section{Name: "heartbeat"}
	}
}

// noDefaults keeps [DEFAULT] out of the sections whose keys are names
// ([peers], [channels]): a fallback is no peer. Their values may still
// refer to [DEFAULT] keys.
func noDefaults(string) bool { return false }

func (l *loader) peers(s *Settings) {
	sec := l.fixed["peers"]
	if sec == nil {
		return
	}
	own := l.section(sec, noDefaults)
	for _, name := range own.Keys() {
		val := own.Get(name)
		line := own.KeyLine(name)
		url, admin, ok := strings.Cut(val, ",")
		url, admin = strings.TrimSpace(url), strings.TrimSpace(admin)
		switch {
		case !ok || url == "" || admin == "":
			l.problemAt(line, "peers", name, "want \"URL,admin email\", got %q%s", val, InlineCommentHint(val))
			continue
		case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
			l.problemAt(line, "peers", name, "%q is not an http:// or https:// URL%s", url, InlineCommentHint(url))
			continue
		case !strings.Contains(admin, "@"):
			l.problemAt(line, "peers", name, "%q is not an email address%s", admin, InlineCommentHint(admin))
			continue
		}
		s.Peers = append(s.Peers, Peer{Name: name, URL: url, Admin: admin})
	}
	sort.SliceStable(s.Peers, func(i, j int) bool { return s.Peers[i].Name < s.Peers[j].Name })
}

// anyAddress reports whether some recipient the settings name is a mail
// address rather than a channel: alertcontact, a job's notify_to, a peer's
// admin, or no recipient at all (alerts then need mail to go anywhere).
func (l *loader) anyAddress(s *Settings) bool {
	if len(s.General.AlertContact) == 0 || l.fixed["peers"] != nil {
		return true
	}
	for _, to := range s.General.AlertContact {
		if strings.Contains(to, "@") {
			return true
		}
	}
	for _, sec := range s.Jobs {
		if v, ok := sec.Lookup("notify_to"); ok && strings.Contains(v, "@") {
			return true
		}
	}
	if v := l.get("heartbeat", "notify_to"); strings.Contains(v, "@") {
		return true
	}
	return false
}

func (l *loader) channels(s *Settings) {
	sec := l.fixed["channels"]
	if sec == nil {
		return
	}
	own := l.section(sec, noDefaults)
	for _, name := range own.Keys() {
		url := own.Get(name)
		if url == "" {
			l.problemAt(own.KeyLine(name), "channels", name, "missing: want NAME = URL")
			continue
		}
		s.Channels = append(s.Channels, Channel{Name: name, URL: url, Line: own.KeyLine(name)})
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
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
