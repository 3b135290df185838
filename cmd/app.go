package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"checker/config"
	"checker/jobs"
	"checker/notify"
	"checker/state"
)

// windows tells which maintenance window covers a job at a time; nil when
// the settings have none.
func (a *app) windows() func(job string, now time.Time) (string, bool) {
	return jobs.WindowsAt(a.maintenance)
}

// app is what most commands need: the settings, the jobs, a logger.
type app struct {
	g           *globalOptions
	cron        bool // a cron run: no stderr line for a replaced state
	settings    *config.Settings
	jobs        []*jobs.Job
	log         *slog.Logger
	closeLog    func()
	env         *jobs.Env // made by newEnv, closed by close
	maintenance []*jobs.Window
	// discovered are the heartbeat services allJobs saw for the first time,
	// for the runner to remember.
	discovered []state.Service
	// print is the nomail printer, made by printer.
	print *notify.Printer
}

// loaded is the settings file with everything built from it, and every
// problem found on the way.
type loaded struct {
	path     string
	settings *config.Settings
	jobs     []*jobs.Job
	windows  []*jobs.Window
	problems config.Problems
}

// load reads the settings and builds the jobs and maintenance windows,
// collecting every problem, sorted by line. The error is for a file that
// cannot be found or read at all.
func (g *globalOptions) load() (*loaded, error) {
	path, err := config.Locate(g.configFile, g.getenv)
	if err != nil {
		return nil, &exitError{code: exitConfig, err: err}
	}
	return g.loadFile(path, config.Options{NoMail: g.nomail})
}

// loadFile is load for the settings file at path.
func (g *globalOptions) loadFile(path string, o config.Options) (*loaded, error) {
	s, err := config.LoadWith(path, g.getenv, o)
	var problems config.Problems
	if err != nil && !errors.As(err, &problems) {
		return nil, &exitError{code: exitConfig, err: err}
	}
	js, jobProblems := jobs.Load(s)
	problems = append(problems, jobProblems...)
	windows, windowProblems, windowWarnings := jobs.LoadWindows(s, js)
	problems = append(problems, windowProblems...)
	s.Warnings = append(s.Warnings, windowWarnings...)
	problems.Sort()
	return &loaded{path: path, settings: s, jobs: js, windows: windows, problems: problems}, nil
}

// loadApp loads and validates the settings and builds the jobs. Problems
// are an exitError with code 78 listing all of them.
func (g *globalOptions) loadApp() (*app, error) {
	l, err := g.load()
	if err != nil {
		return nil, err
	}
	if n := len(l.problems); n > 0 {
		return nil, &exitError{code: exitConfig, err: fmt.Errorf("%d problem%s in %s:\n%v", n, plural(n), l.path, l.problems)}
	}
	a := &app{g: g, settings: l.settings, jobs: l.jobs, maintenance: l.windows}
	a.log, a.closeLog = g.logger(l.settings)
	for _, w := range l.settings.Warnings {
		a.log.Warn(w)
	}
	return a, nil
}

func (a *app) close() {
	if a.env != nil {
		a.env.Close()
	}
	if a.closeLog != nil {
		a.closeLog()
	}
}

// logger is debug to stderr with -d; debug to the logfile with -v (stderr
// when there is none); else warnings and errors to the logfile, if set.
//
// A logfile that cannot be opened must neither stop the checks nor make
// cron mail every minute. The lines go to a fallback log next to the state
// file instead, and stderr (which cron mails) says so at most once an hour
// per logfile, remembered by a marker file beside the fallback log. With -v
// the operator is watching: lines and the notice go to stderr every time.
func (g *globalOptions) logger(s *config.Settings) (*slog.Logger, func()) {
	level := slog.LevelWarn
	if g.verbose || g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	toStderr := func() (*slog.Logger, func()) {
		return slog.New(slog.NewTextHandler(g.stderr, opts)), func() {}
	}
	logFile := s.General.LogFile
	if g.debug || (g.verbose && logFile == "") {
		// -d, or -v with no logfile to write to: debug to stderr.
		return toStderr()
	}
	if logFile == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil)), func() {}
	}
	dir := filepath.Dir(s.General.StateFile)
	marker := filepath.Join(dir, fmt.Sprintf(".checker-logfile-%016x", fnv64(logFile)))
	f, err := openLog(logFile, 0o755)
	if err == nil {
		// Working again: the next failure is news at once. Removing a
		// marker that is not there costs one system call.
		os.Remove(marker)
		return slog.New(slog.NewTextHandler(f, opts)), func() { f.Close() }
	}
	hint := fmt.Sprintf("make %s writable for user %s", logFile, userName())
	if g.verbose {
		fmt.Fprintf(g.stderr, "checker: cannot open logfile: %v; logging to stderr (%s)\n", err, hint)
		return toStderr()
	}
	// 0700: the state directory, if this creates it, is the state's.
	fallback := filepath.Join(dir, "checker-fallback.log")
	ff, ferr := openLog(fallback, 0o700)
	if ferr != nil {
		fmt.Fprintf(g.stderr, "checker: cannot open logfile: %v, nor the fallback: %v; logging to stderr (%s)\n", err, ferr, hint)
		return toStderr()
	}
	log := slog.New(slog.NewTextHandler(ff, opts))
	if reportDue(marker, logFile, g.clock(), time.Hour) {
		fmt.Fprintf(g.stderr, "checker: cannot open logfile: %v; logging to %s instead (%s; this notice repeats at most hourly)\n", err, fallback, hint)
		log.Error("cannot open logfile; logging here instead", "error", err)
	}
	return log, func() { ff.Close() }
}

func (a *app) store() *state.Store {
	st := &state.Store{Path: a.settings.General.StateFile, Owner: settingsOwner(a.settings.File)}
	if !a.cron {
		// An operator's command says so at once; cron's run tells it by
		// notice (its stderr stays for what nothing else can carry).
		st.Replaced = func(msg string) { fmt.Fprintf(a.g.stderr, "checker: warning: %s\n", msg) }
	}
	return st
}

// settingsOwner is the settings file as the state records its owner: an
// absolute path, or "" for settings that are not a file.
func settingsOwner(file string) string {
	if file == "" {
		return ""
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	return abs
}

// sender is the SMTP sender, or the printer in nomail mode.
func (a *app) sender() notify.Sender {
	if a.settings.Email.NoMail {
		return a.printer()
	}
	return notify.NewSMTP(jobs.SMTPConfig(a.settings.Email))
}

// printer prints what nomail mode does not send, mail and channel messages
// alike, one at a time.
func (a *app) printer() *notify.Printer {
	if a.print == nil {
		a.print = &notify.Printer{W: a.g.stdout}
	}
	return a.print
}

// channelList are the [channels] of the settings, parsed. The settings
// were validated when loaded (jobs.Load), so every URL parses; one that
// does not is left out and logged.
func (a *app) channelList() []*notify.Channel {
	var out []*notify.Channel
	for _, sc := range a.settings.Channels {
		c, err := notify.ParseChannel(sc.Name, sc.URL)
		if err != nil {
			a.log.Error("channel left out", "channel", sc.Name, "error", err)
			continue
		}
		out = append(out, c)
	}
	return out
}

// channels are the ways to the [channels], by lower-cased name: each posts
// to its service or, in nomail mode (--nomail or [email] nomail), prints
// what it would post, so that a trial run never reaches a chat.
func (a *app) channels() map[string]notify.Poster {
	list := a.channelList()
	if len(list) == 0 {
		return nil
	}
	out := make(map[string]notify.Poster, len(list))
	for _, c := range list {
		if a.settings.Email.NoMail {
			out[c.Name] = a.printer().Channel(c)
		} else {
			out[c.Name] = c
		}
	}
	return out
}

func (a *app) runner(env *jobs.Env) *jobs.Runner {
	s := a.settings
	configured := make(map[string]bool, len(a.jobs))
	for _, j := range a.jobs {
		configured[j.Name] = true
	}
	return &jobs.Runner{
		Store:        a.store(),
		Sender:       a.sender(),
		Channels:     a.channels(),
		Composer:     notify.Composer{ServerName: s.General.ServerName, BustThreading: s.Email.BustThreading},
		Windows:      a.windows(),
		AlertContact: s.General.AlertContact,
		Concurrency:  s.General.Concurrency,
		Env:          env,
		Log:          a.log,
		Warn:         a.g.stderr,
		Configured:   configured,
		ForgetAfter:  s.General.ForgetAfter,
		History:      s.General.History,
		SettingsID:   a.settingsID(),
		Discovered:   a.discovered,
		Destinations: a.destinations(),
		KeepServices: s.Heartbeat.Discover,
		Printing:     s.Email.NoMail,
	}
}

// destinations are the recipients the settings name, lower-cased.
func (a *app) destinations() map[string]bool {
	out := map[string]bool{}
	for _, to := range a.settings.General.AlertContact {
		out[strings.ToLower(to)] = true
	}
	if len(a.settings.General.AlertContact) == 0 {
		out[strings.ToLower(jobs.NoAlertContact)] = true
	}
	for _, j := range a.jobs {
		for _, to := range j.Policy.NotifyTo {
			out[strings.ToLower(to)] = true
		}
	}
	for _, c := range a.settings.Channels {
		out[strings.ToLower(c.Name)] = true
	}
	return out
}

// settingsID changes whenever the settings file is edited.
func (a *app) settingsID() string {
	fi, err := os.Stat(a.settings.File)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// newEnv is the environment checks run in, made once; close closes it.
func (a *app) newEnv() *jobs.Env {
	if a.env == nil {
		a.env = jobs.NewEnv(a.settings)
		a.env.Supervisor = supervisorArgv()
	}
	return a.env
}

// allJobs is the configured jobs plus, with [heartbeat] discover, one for
// every service that has published or that the state remembers.
func (a *app) allJobs(ctx context.Context) []*jobs.Job {
	if !a.settings.Heartbeat.Discover {
		return a.jobs
	}
	var remembered []state.Service
	err := a.store().View(func(tx *state.Tx) error {
		var err error
		remembered, err = tx.Services()
		return err
	})
	if err != nil {
		a.log.Warn("cannot read the remembered heartbeat services; watching those in the store only", "error", err)
	}
	all, seen := jobs.DiscoverHeartbeats(ctx, a.newEnv(), a.jobs, remembered)
	a.discovered = seen
	return all
}
