package metrics

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// ContentType is the media type of the text exposition format.
var ContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

// Snapshot is what the metrics are made of: the state as one read saw it,
// and the heartbeats as the store holds them.
type Snapshot struct {
	// Server and Version describe this checker (checker_info).
	Server, Version string
	// StateError is set when the state could not be read: the job, run,
	// mail and delivery metrics are then left out and checker_state_ok is 0.
	StateError error
	Jobs       []Job
	// LastRun is the last completed cron run; zero Finished: none yet.
	LastRun Run
	// Mail is the health of the mail path.
	Mail Mail
	// Destinations are the recipients (mail addresses and channels) with
	// their delivery counters.
	Destinations []Destination
	// Outbox is the number of notices waiting to be delivered.
	Outbox int
	// Heartbeats are the services in the heartbeat store. HeartbeatsRead
	// says whether the store was read at all (false: no heartbeat metrics);
	// HeartbeatError is set when reading it failed.
	Heartbeats     []Heartbeat
	HeartbeatsRead bool
	HeartbeatError error
}

// Job is one job's metrics.
type Job struct {
	Name, Type string
	// Ran is false for a job that never ran: only its info is exported.
	Ran bool
	// Up is whether the last run succeeded (the job is not failing).
	Up bool
	// Status is the Nagios status of the last run: 0 OK, 1 WARNING,
	// 2 CRITICAL, 3 UNKNOWN.
	Status int
	// Failures is the count of consecutive failed runs.
	Failures                  int
	LastRun, LastSuccess      time.Time
	Duration                  time.Duration
	Silenced, Acked, InWindow bool
}

// Run is the last completed cron run.
type Run struct {
	Tier              string
	Started, Finished time.Time
	// Failed is set when the run did not complete its work, or a later
	// run crashed.
	Failed bool
}

// Mail is the mail path's health.
type Mail struct {
	// Healthy is false when the last self-check or the last send failed.
	Healthy bool
	// SelfCheck and Send are the times of the last self-check and the
	// last send (zero: never); their OK fields say how they went.
	SelfCheck, Send     time.Time
	SelfCheckOK, SendOK bool
}

// Destination is one recipient of notices: a mail address or a channel.
type Destination struct {
	// Name is the address or the channel's name; Channel the kind of
	// channel ("email", or the service of a [channels] entry).
	Name, Channel string
	Sent, Failed  int64
	Failing       bool
}

// Heartbeat is one service's latest heartbeat.
type Heartbeat struct {
	Service string
	// Timestamp is when the heartbeat was sent.
	Timestamp time.Time
	// State is alive, stale, dead, or future (the timestamp is ahead of
	// this machine's clock by more than the tolerance).
	State string
}

// HeartbeatStates are the values of the state label of
// checker_heartbeat_state, one series each per service.
var HeartbeatStates = []string{"alive", "stale", "dead", "future"}

// Families returns the metric families of s as of now, sorted by name,
// each with its series sorted by their labels. A job, destination or
// service named twice is exported once, as the format requires.
func Families(s Snapshot, now time.Time) []*dto.MetricFamily {
	b := newBuilder()
	b.stateFamilies(s)
	b.liveFamilies(s, now)
	return b.families()
}

// StateFamilies are the families of s that depend on the state alone, not
// on the time they are asked for: a server may keep them until the state
// changes. LiveFamilies are the others.
func StateFamilies(s Snapshot) []*dto.MetricFamily {
	b := newBuilder()
	b.stateFamilies(s)
	return b.families()
}

// LiveFamilies are the families of s that depend on now: the time of the
// scrape and the heartbeats.
func LiveFamilies(s Snapshot, now time.Time) []*dto.MetricFamily {
	b := newBuilder()
	b.liveFamilies(s, now)
	return b.families()
}

func (b *builder) liveFamilies(s Snapshot, now time.Time) {
	b.family("checker_scrape_timestamp_seconds", "When these metrics were computed, as a Unix time.").add(unix(now), nil)
	if s.HeartbeatsRead {
		b.heartbeatFamilies(s, now)
	}
}

// heartbeatFamilies adds the metrics of the heartbeat store.
func (b *builder) heartbeatFamilies(s Snapshot, now time.Time) {
	b.family("checker_heartbeat_store_ok", "Whether the heartbeat store could be read (1) or not (0).").add(boolf(s.HeartbeatError == nil), nil)
	var (
		ts    = b.family("checker_heartbeat_timestamp_seconds", "When the service's latest heartbeat was sent, as a Unix time.")
		age   = b.family("checker_heartbeat_age_seconds", "Age of the service's latest heartbeat when the metrics were computed (prefer time() - checker_heartbeat_timestamp_seconds).")
		state = b.family("checker_heartbeat_state", "The service's liveness: 1 for the state it is in, 0 for the others.")
	)
	seen := make(map[string]bool, len(s.Heartbeats))
	for _, h := range s.Heartbeats {
		if seen[h.Service] {
			continue
		}
		seen[h.Service] = true
		l := labels("service", h.Service)
		ts.add(unix(h.Timestamp), l)
		age.add(now.Sub(h.Timestamp).Seconds(), l)
		for _, st := range HeartbeatStates {
			state.add(boolf(h.State == st), append(l[:1:1], pair("state", st)))
		}
	}
}

// stateFamilies adds the metrics read from the state.
func (b *builder) stateFamilies(s Snapshot) {
	b.family("checker_info", "Information about this checker; always 1.").add(1, labels("server", s.Server, "version", s.Version))
	b.family("checker_state_ok", "Whether the state could be read (1) or not (0): without it, the job, run, mail and delivery metrics are missing.").add(boolf(s.StateError == nil), nil)
	if s.StateError != nil {
		return
	}
	var (
		info     = b.family("checker_job_info", "A configured job; always 1.")
		up       = b.family("checker_job_up", "Whether the job's last run succeeded (1) or the job is failing (0).")
		status   = b.family("checker_job_status", "The Nagios status of the job's last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
		failures = b.family("checker_job_consecutive_failures", "Consecutive failed runs of the job.")
		lastRun  = b.family("checker_job_last_run_timestamp_seconds", "When the job's last run ended, as a Unix time.")
		duration = b.family("checker_job_last_run_duration_seconds", "How long the job's last run took.")
		success  = b.family("checker_job_last_success_timestamp_seconds", "When a run of the job last succeeded, as a Unix time.")
		held     = b.family("checker_job_notices_held", "Whether the job's notices are held back (1) by a silence, an acknowledgement or a maintenance window.")
	)
	seen := make(map[string]bool, len(s.Jobs))
	for _, j := range s.Jobs {
		if seen[j.Name] {
			continue
		}
		seen[j.Name] = true
		l := labels("name", j.Name, "type", j.Type)
		info.add(1, l)
		if !j.Ran {
			continue
		}
		up.add(boolf(j.Up), l)
		status.add(float64(j.Status), l)
		failures.add(float64(j.Failures), l)
		lastRun.add(unix(j.LastRun), l)
		duration.add(j.Duration.Seconds(), l)
		if !j.LastSuccess.IsZero() {
			success.add(unix(j.LastSuccess), l)
		}
		held.add(boolf(j.Silenced || j.Acked || j.InWindow), l)
	}
	if !s.LastRun.Finished.IsZero() {
		l := labels("tier", s.LastRun.Tier)
		b.family("checker_last_run_timestamp_seconds", "When the last cron run completed, as a Unix time.").add(unix(s.LastRun.Finished), l)
		b.family("checker_last_run_duration_seconds", "How long the last completed cron run took.").add(s.LastRun.Finished.Sub(s.LastRun.Started).Seconds(), l)
	}
	// No completed run yet is not OK: peers are told JobProblem then, and
	// the alert on this metric must fire as well.
	b.family("checker_last_run_ok", "Whether a cron run has completed, the last one completed its work and no run has crashed since (1), or not (0).").add(boolf(!s.LastRun.Failed && !s.LastRun.Finished.IsZero()), nil)
	b.family("checker_mail_ok", "Whether the mail path is healthy (1): the last self-check and the last send, where they happened, succeeded.").add(boolf(s.Mail.Healthy), nil)
	if !s.Mail.SelfCheck.IsZero() {
		b.family("checker_mail_selfcheck_timestamp_seconds", "When the last email self-check ran, as a Unix time.").add(unix(s.Mail.SelfCheck), nil)
		b.family("checker_mail_selfcheck_ok", "Whether the last email self-check succeeded.").add(boolf(s.Mail.SelfCheckOK), nil)
	}
	if !s.Mail.Send.IsZero() {
		b.family("checker_mail_send_timestamp_seconds", "When mail was last sent, as a Unix time.").add(unix(s.Mail.Send), nil)
		b.family("checker_mail_send_ok", "Whether the last send of mail succeeded.").add(boolf(s.Mail.SendOK), nil)
	}
	b.family("checker_outbox_notices", "Notices waiting in the outbox to be delivered.").add(float64(s.Outbox), nil)
	var (
		sent    = b.counter("checker_notices_sent_total", "Notices (mails or channel messages) delivered to the destination.")
		failed  = b.counter("checker_notices_failed_total", "Attempts to deliver notices to the destination that failed.")
		failing = b.family("checker_destination_failing", "Whether deliveries to the destination are failing (1) or not (0).")
	)
	seenDest := make(map[string]bool, len(s.Destinations))
	for _, d := range s.Destinations {
		if seenDest[d.Name] {
			continue
		}
		seenDest[d.Name] = true
		l := labels("channel", d.Channel, "destination", d.Name)
		sent.add(float64(d.Sent), l)
		failed.add(float64(d.Failed), l)
		failing.add(boolf(d.Failing), l)
	}
}

// Write writes the families in the text exposition format.
func Write(w io.Writer, fams []*dto.MetricFamily) error {
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
			return fmt.Errorf("writing metric %s: %w", f.GetName(), err)
		}
	}
	return nil
}

// Text returns the families of s as of now in the text exposition format.
func Text(s Snapshot, now time.Time) ([]byte, error) { return TextOf(Families(s, now)) }

// TextOf returns fams in the text exposition format.
func TextOf(fams []*dto.MetricFamily) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, fams); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// builder collects the families.
type builder struct {
	fams []*dto.MetricFamily
}

func newBuilder() *builder { return &builder{} }

// family is one metric family being built.
type family struct{ f *dto.MetricFamily }

// family starts a gauge family; an empty one is left out.
func (b *builder) family(name, help string) family {
	return b.start(name, help, dto.MetricType_GAUGE)
}

// counter starts a counter family.
func (b *builder) counter(name, help string) family {
	return b.start(name, help, dto.MetricType_COUNTER)
}

func (b *builder) start(name, help string, typ dto.MetricType) family {
	f := &dto.MetricFamily{Name: &name, Help: &help, Type: typ.Enum()}
	b.fams = append(b.fams, f)
	return family{f}
}

// add adds a series. Series may share their label pairs: the writer only
// reads them.
func (f family) add(v float64, l []*dto.LabelPair) {
	m := &dto.Metric{Label: l}
	if f.f.GetType() == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	f.f.Metric = append(f.f.Metric, m)
}

// labels makes label pairs of name, value arguments.
func labels(nv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(nv)/2+1) // room for one more, see heartbeatFamilies
	for i := 0; i+1 < len(nv); i += 2 {
		out = append(out, pair(nv[i], nv[i+1]))
	}
	return out
}

// pair is one label; a value that is not UTF-8 (which the format does not
// allow) has the bad bytes replaced.
func pair(name, value string) *dto.LabelPair {
	if !utf8.ValidString(value) {
		value = strings.ToValidUTF8(value, "\uFFFD")
	}
	return &dto.LabelPair{Name: &name, Value: &value}
}

// families returns the non-empty families sorted by name, their series by
// labels.
func (b *builder) families() []*dto.MetricFamily {
	out := b.fams[:0]
	for _, f := range b.fams {
		if len(f.Metric) == 0 {
			continue
		}
		slices.SortStableFunc(f.Metric, func(x, y *dto.Metric) int {
			for i := 0; i < len(x.Label) && i < len(y.Label); i++ {
				if c := cmp.Compare(x.Label[i].GetValue(), y.Label[i].GetValue()); c != 0 {
					return c
				}
			}
			return cmp.Compare(len(x.Label), len(y.Label))
		})
		out = append(out, f)
	}
	slices.SortFunc(out, func(x, y *dto.MetricFamily) int { return cmp.Compare(x.GetName(), y.GetName()) })
	return out
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unix is t as a Unix time in seconds, with its fraction.
func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
