package ui

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"checker/heartbeat"
)

// pageTimeout bounds the reads behind one page view.
const pageTimeout = 5 * time.Second

// timeLayout is how times are shown: with their zone, as `checker status`
// shows them.
const timeLayout = "2006-01-02 15:04:05 MST"

// Liveness is the state of a service's heartbeat m at now: alive, stale or
// dead by its age and t, or future when its timestamp is ahead of this
// machine's clock beyond heartbeat.ClockSkewTolerance (its age cannot be
// trusted).
func Liveness(m heartbeat.Message, t heartbeat.Thresholds, now time.Time) string {
	if _, future := heartbeat.FutureBy(m, now); future {
		return "future"
	}
	return string(t.Classify(heartbeat.Age(m, now)))
}

// pageData is what page.html shows.
type pageData struct {
	Server, Version string
	Generated       string
	NowMillis       int64
	Summary         summary
	StateError      string
	Status          Status
	Jobs            []jobRow
	// MoreJobs and MoreBeats are the rows left out beyond Options.MaxRows.
	MoreJobs int
	// Heartbeats is false when there is no heartbeat section at all.
	Heartbeats bool
	BeatsError string
	Beats      []beat
	MoreBeats  int
}

type summary struct {
	Jobs, Failing, Warning, NeverRun int
	Beats, Alive, Stale, Dead        int
	LastRun, LastRunAgo, Mail        string
	MailClass                        string
}

// jobRow is a job as shown.
type jobRow struct {
	Name, Type, Target string
	State, StateClass  string
	Result             string
	Since, SinceAgo    string
	LastRun, LastAgo   string
	Failures           int
	Uptime             [3]string
	Notes              []string
}

// beat is a heartbeat as shown, in the page and in the live stream alike.
type beat struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
	// TS is the heartbeat's time in Unix milliseconds; When the same for
	// people. Alive and Stale are the thresholds in milliseconds: the
	// script works the state out from them as time passes.
	TS     int64  `json:"ts"`
	When   string `json:"when"`
	Alive  int64  `json:"alive"`
	Stale  int64  `json:"stale"`
	Uptime string `json:"uptime"`
	Count  int64  `json:"count"`
	Memory string `json:"memory"`
	CPU    string `json:"cpu"`
	Data   string `json:"data"`
	// State and Age are as of the page's making (the script keeps them
	// current).
	State string `json:"-"`
	Age   string `json:"-"`
}

// servePage renders the page.
func (u *UI) servePage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	now := u.o.Now()
	d := pageData{Server: u.o.Server, Version: u.o.Version, Generated: now.Format(timeLayout), NowMillis: now.UnixMilli()}
	st, err := u.o.Status(ctx)
	if err != nil {
		u.o.Log.Error("status page: cannot read the state", "err", err)
		d.StateError = "The state cannot be read; serve's log says why."
	}
	if !u.privileged(r) {
		st = withoutDetails(st)
	}
	d.Status = st
	d.Jobs, d.Summary = jobRows(st, now, u.o.MaxRows)
	d.MoreJobs = d.Summary.Jobs - len(d.Jobs)
	if st.LastRun != nil {
		d.Summary.LastRun = st.LastRun.Finished.Format(timeLayout)
		d.Summary.LastRunAgo = ago(now.Sub(st.LastRun.Finished))
	}
	d.Summary.Mail, d.Summary.MailClass = mailSummary(st)
	if u.o.Feed != nil {
		d.Heartbeats = true
		msgs, err := u.o.Feed.Heartbeats(ctx)
		if err != nil {
			d.BeatsError = "The heartbeat store cannot be read; serve's log says why. Shown: what was known before."
		}
		all := make([]beat, 0, len(msgs))
		for _, m := range msgs {
			b := u.beatOf(m, now)
			all = append(all, b)
			d.Summary.Beats++
			switch b.State {
			case "alive":
				d.Summary.Alive++
			case "stale":
				d.Summary.Stale++
			default:
				d.Summary.Dead++
			}
		}
		d.Beats = firstBeats(all, u.o.MaxRows)
		d.MoreBeats = len(all) - len(d.Beats)
	}
	w.Header().Set("Cache-Control", "no-store")
	u.render(w, r, http.StatusOK, "page.html", d)
}

// render executes a template into memory first, so that a failure is a
// clean 500 rather than half a page.
func (u *UI) render(w http.ResponseWriter, _ *http.Request, code int, name string, data any) {
	t, err := u.templates()
	var buf bytes.Buffer
	if err == nil {
		err = t.ExecuteTemplate(&buf, name, data)
	}
	if err != nil {
		u.o.Log.Error("status page: cannot render", "template", name, "err", err)
		refuse(w, http.StatusInternalServerError, "the status page could not be rendered; serve's log says why")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// jobRows orders the jobs for people, failing ones first, counts them
// all, and makes rows of the first max.
func jobRows(st Status, now time.Time, max int) ([]jobRow, summary) {
	var s summary
	order := make([]int, len(st.Jobs))
	for i, j := range st.Jobs {
		order[i] = i
		switch classOf(j) {
		case "bad":
			s.Failing++
		case "none":
			s.NeverRun++
		case "warn":
			s.Warning++
		}
	}
	s.Jobs = len(st.Jobs)
	sort.SliceStable(order, func(a, b int) bool { return rank(classOf(st.Jobs[order[a]])) < rank(classOf(st.Jobs[order[b]])) })
	if len(order) > max {
		order = order[:max]
	}
	rows := make([]jobRow, 0, len(order))
	for _, i := range order {
		rows = append(rows, jobRowOf(st.Jobs[i], now))
	}
	return rows, s
}

// classOf is the class of j's state: bad (failing), warn, none (never
// run) or ok.
func classOf(j Job) string {
	switch {
	case j.State == "failing":
		return "bad"
	case j.State == "never run":
		return "none"
	case j.Status == "WARNING":
		return "warn"
	}
	return "ok"
}

// jobRowOf is j as shown at now.
func jobRowOf(j Job, now time.Time) jobRow {
	r := jobRow{Name: text(j.Name), Type: text(j.Type), Target: text(j.Target), Failures: j.Failures, StateClass: classOf(j)}
	switch r.StateClass {
	case "bad":
		r.State = "failing"
	case "none":
		r.State = "never run"
	case "warn":
		r.State = "warning"
	default:
		r.State = "succeeding"
	}
	if j.Status != "" && j.Status != "OK" && r.StateClass != "none" {
		r.State += " (" + j.Status + ")"
	}
	switch {
	case j.Status != "" && j.Message != "":
		r.Result = text(j.Status + " - " + j.Message)
	case j.Message != "":
		r.Result = text(j.Message)
	}
	if j.Running {
		r.Result = strings.TrimSpace(r.Result + " (running now)")
	}
	if !j.Since.IsZero() {
		r.Since, r.SinceAgo = j.Since.Format(timeLayout), ago(now.Sub(j.Since))
	}
	if !j.LastRun.IsZero() {
		r.LastRun, r.LastAgo = j.LastRun.Format(timeLayout), ago(now.Sub(j.LastRun))
	}
	for i, p := range j.Uptime {
		r.Uptime[i] = percent(p)
	}
	for _, n := range j.Notes {
		r.Notes = append(r.Notes, text(n))
	}
	return r
}

// rank puts problems first.
func rank(class string) int {
	switch class {
	case "bad":
		return 0
	case "warn":
		return 1
	}
	return 2
}

// firstBeats are the first max of beats, dead and future ones first, then
// stale ones, then the alive, each group in its order. beats is reordered.
func firstBeats(beats []beat, max int) []beat {
	if len(beats) <= max {
		return beats
	}
	sort.SliceStable(beats, func(a, b int) bool { return beatRank(beats[a].State) < beatRank(beats[b].State) })
	return beats[:max]
}

func beatRank(state string) int {
	switch state {
	case "alive":
		return 2
	case "stale":
		return 1
	}
	return 0
}

// withoutDetails is st for a viewer without a token: the mail problem
// and the last run's error as classes, as GET /status gives them, without
// a server's reply, an account or an address. st is shared: it is copied.
func withoutDetails(st Status) Status {
	if st.MailProblem != "" {
		st.MailProblem = st.MailClass
		if st.MailProblem == "" {
			st.MailProblem = "mail failed"
		}
		st.MailProblem += " (details with a token)"
	}
	if st.LastRun != nil && st.LastRun.Error != "" {
		run := *st.LastRun
		run.Error = "the run reported an error (details with a token)"
		st.LastRun = &run
	}
	return st
}

func mailSummary(st Status) (string, string) {
	switch st.Mail {
	case "healthy":
		return "healthy", "ok"
	case "nomail":
		return "nomail (notices are printed, not sent)", "none"
	case "unchecked", "":
		return "not exercised yet", "none"
	}
	return "PROBLEM: " + text(st.MailProblem), "bad"
}

// beatOf is m as shown at now.
func (u *UI) beatOf(m heartbeat.Message, now time.Time) beat {
	t := u.o.Thresholds(m.ServiceName)
	b := beat{
		Service:  text(m.ServiceName),
		Instance: heartbeat.ShortInstanceID(m.InstanceID),
		TS:       m.Timestamp.UnixMilli(),
		When:     m.Timestamp.In(now.Location()).Format(timeLayout),
		Alive:    t.Alive.Milliseconds(),
		Stale:    t.Stale.Milliseconds(),
		Uptime:   (time.Duration(m.UptimeSeconds) * time.Second).String(),
		Count:    m.HeartbeatCount,
		Memory:   fmt.Sprintf("%.1f MB", m.MemoryUsageMB),
		CPU:      fmt.Sprintf("%.1f %%", m.CPUUsagePercent),
		Data:     dataText(m.Data),
		State:    Liveness(m, t, now),
		Age:      ago(now.Sub(m.Timestamp)),
	}
	if b.State == "future" {
		b.Age = "in the future"
	}
	return b
}

// dataText shows a heartbeat's own fields as key=value, sorted.
func dataText(data map[string]any) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", k, data[k])
	}
	return text(b.String())
}

// text makes text from jobs and heartbeats safe to show: control,
// format (bidirectional overrides) and other invisible characters become
// visible escapes, so that a name cannot pass itself off as another.
// HTML escaping is the template's job.
func text(s string) string { return heartbeat.Escape(s) }

// ago is a duration for people, as the script writes it too.
func ago(d time.Duration) string {
	if d < 0 {
		return "in the future"
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds ago", s)
	case s < 3600:
		return fmt.Sprintf("%dm %ds ago", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm ago", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd %dh ago", s/86400, s%86400/3600)
}

func percent(p *float64) string {
	if p == nil {
		return "–"
	}
	if *p >= 99.995 {
		return "100%"
	}
	return fmt.Sprintf("%.2f%%", *p)
}

var funcs = template.FuncMap{
	"plural": func(n int, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return strconv.Itoa(n) + " " + word + "s"
	},
}
