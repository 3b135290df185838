package cmd

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"checker/config"
	"checker/heartbeat"
	"checker/jobs"
	"checker/metrics"
	"checker/state"
	"checker/ui"
)

// statusQuery says what collectStatus gathers, from one read of the state.
type statusQuery struct {
	server  string
	jobs    []*jobs.Job
	windows func(job string, now time.Time) (string, bool)
	noMail  bool
	// failingOnly keeps only the failing jobs.
	failingOnly bool
	// noUptime skips the uptime figures, which read each job's history:
	// metrics do not need them.
	noUptime bool
}

// collectStatus computes the state of every job of q, the last cron run,
// the mail health, the recipients and the outbox as of now: what `checker
// status`, the status page and the metrics show. It reads only; tx may be
// a View.
func collectStatus(tx *state.Tx, q statusQuery, now time.Time) (statusDoc, error) {
	doc := statusDoc{Schema: statusSchema, Server: q.server, Generated: now, Jobs: []jobStatus{},
		Recipients: []recipientStatus{}, Outbox: []noticeStatus{}}
	silences, err := tx.Silences()
	if err != nil {
		return doc, err
	}
	running, err := tx.Running(now)
	if err != nil {
		return doc, err
	}
	for _, j := range q.jobs {
		js := jobStatus{Name: j.Name, Type: j.Type, Target: j.Target, State: "never run"}
		st, found, err := tx.Job(j.Name)
		if err != nil {
			js.Message = err.Error()
		}
		if found {
			js.Status, js.Code, js.Message = st.LastStatus, statusCode(st.LastStatus), st.LastMessage
			js.Perfdata, js.LongOutput = st.LastPerfdata, st.LastLongOutput
			js.Failures = st.Failures
			js.Since, js.LastNotified, js.LastRun, js.LastSuccess = timePtr(st.Since), timePtr(st.LastNotified), timePtr(st.LastRun), timePtr(st.LastSuccess)
			js.DurationSeconds = st.LastDuration.Seconds()
			js.Running = running[j.Name]
			js.HeldSince = timePtr(st.Held)
			if st.Ack != nil {
				js.Acknowledged = &ackState{By: st.Ack.By, At: st.Ack.At, Reason: st.Ack.Reason}
			}
			switch {
			case st.LastRun.IsZero():
			case st.Failing:
				js.State = "failing"
			default:
				js.State = "succeeding"
			}
			if !q.noUptime {
				up, err := tx.Uptime(j.Name, st, now)
				if err != nil {
					return doc, err
				}
				js.Uptime = uptimeStatus{Day: up.Day, Week: up.Week, Month: up.Month}
			}
		}
		for _, s := range silences {
			if now.Before(s.Until) && jobs.MatchName(s.Pattern, j.Name) {
				js.Silenced = &silenceState{Pattern: s.Pattern, Until: s.Until, By: s.By, Reason: s.Reason}
				break
			}
		}
		if q.windows != nil {
			js.Maintenance, _ = q.windows(j.Name, now)
		}
		if q.failingOnly && js.State != "failing" {
			continue
		}
		doc.Jobs = append(doc.Jobs, js)
	}
	h, err := tx.Health()
	if err != nil {
		return doc, err
	}
	if !h.LastRun.Finished.IsZero() {
		doc.LastRun = &runStatus{Tier: h.LastRun.Tier, Started: h.LastRun.Started, Finished: h.LastRun.Finished,
			DurationSeconds: h.LastRun.Finished.Sub(h.LastRun.Started).Seconds(), Error: h.LastRun.Error}
	}
	doc.Mail = mailStatus{Problem: h.Mail.Problem(), SelfCheckAt: timePtr(h.Mail.SelfCheckAt), SelfCheckOK: h.Mail.SelfCheckOK,
		LastSendAt: timePtr(h.Mail.SendAt), LastSendOK: h.Mail.SendOK, CrashedRun: h.Crashed(now)}
	switch {
	case q.noMail:
		doc.Mail.Status = "nomail"
	case !h.Mail.Checked():
		doc.Mail.Status = "unchecked"
	case h.Mail.Healthy():
		doc.Mail.Status = "healthy"
	default:
		doc.Mail.Status = "problem"
	}
	recs, err := tx.Recipients()
	if err != nil {
		return doc, err
	}
	doc.destinations = recs
	for _, r := range recs {
		if r.Failing {
			doc.Recipients = append(doc.Recipients, recipientStatus{To: r.To, Permanent: r.Permanent, Since: r.Since, LastTry: r.LastTry, LastError: r.LastError})
		}
	}
	outbox, err := tx.Outbox()
	for _, n := range outbox {
		ns := noticeStatus{Name: n.Job, Kind: n.Kind, Subject: n.Subject, Created: n.Created, Queued: n.Queued}
		for _, d := range n.To {
			ns.Recipients = append(ns.Recipients, deliveryStatus{To: d.To, Delivered: d.Done, Attempts: d.Attempts, LastTry: timePtr(d.LastTry), LastError: d.LastError})
		}
		doc.Outbox = append(doc.Outbox, ns)
	}
	return doc, err
}

// byWhy is " by WHO (WHY)", each part only when known.
func byWhy(by, reason string) string {
	var s string
	if by != "" {
		s += " by " + by
	}
	if reason != "" {
		s += " (" + reason + ")"
	}
	return s
}

// jobNotes are the marks on a job a person should see next to its state:
// a silence, a maintenance window, an acknowledgement, a held notice.
func jobNotes(j jobStatus) []string {
	var notes []string
	if j.Silenced != nil {
		notes = append(notes, "silenced until "+j.Silenced.Until.Format(timeLayout)+byWhy(j.Silenced.By, j.Silenced.Reason))
	}
	if j.Maintenance != "" {
		notes = append(notes, "in maintenance window "+j.Maintenance)
	}
	if j.Acknowledged != nil {
		notes = append(notes, "acknowledged at "+j.Acknowledged.At.Format(timeLayout)+byWhy(j.Acknowledged.By, j.Acknowledged.Reason))
	}
	if j.HeldSince != nil {
		notes = append(notes, "notice held since "+j.HeldSince.Format(timeLayout))
	}
	return notes
}

// discoveredJobs are the heartbeat jobs that discovery ([heartbeat]
// discover) added in earlier cron runs and that the state keeps records
// of: the jobs a process that does not run discovery itself (serve) shows
// besides the configured ones. Configured names are skipped.
func discoveredJobs(tx *state.Tx, configured []*jobs.Job) ([]*jobs.Job, error) {
	known := make(map[string]bool, len(configured))
	for _, j := range configured {
		known[strings.ToLower(j.Name)] = true
	}
	var out []*jobs.Job
	err := tx.ForEachJob(func(name string, _ state.Job, _ error) error {
		svc, ok := strings.CutPrefix(name, "heartbeat:")
		if !ok || known[strings.ToLower(name)] || name == jobs.HeartbeatStoreJob {
			return nil
		}
		svc, _, _ = strings.Cut(svc, "#") // heartbeat:x#2 when a configured job is named heartbeat:x
		out = append(out, &jobs.Job{Name: name, Type: "heartbeat", Target: svc})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the discovered heartbeat jobs: %w", err)
	}
	return out, nil
}

// pageStatus is doc as the status page shows it.
func pageStatus(doc statusDoc) ui.Status {
	st := ui.Status{Mail: doc.Mail.Status, MailProblem: doc.Mail.Problem, Crashed: doc.Mail.CrashedRun,
		Outbox: len(doc.Outbox), FailingRecipients: len(doc.Recipients), Jobs: make([]ui.Job, 0, len(doc.Jobs))}
	if r := doc.LastRun; r != nil {
		st.LastRun = &ui.Run{Tier: r.Tier, Finished: r.Finished, Took: r.Finished.Sub(r.Started).Round(time.Millisecond), Error: r.Error}
	}
	for _, j := range doc.Jobs {
		st.Jobs = append(st.Jobs, ui.Job{
			Name: j.Name, Type: j.Type, Target: j.Target, State: j.State, Status: j.Status, Message: j.Message,
			Since: deref(j.Since), LastRun: deref(j.LastRun), Failures: j.Failures, Running: j.Running,
			Uptime: [3]*float64{j.Uptime.Day, j.Uptime.Week, j.Uptime.Month}, Notes: jobNotes(j),
		})
	}
	return st
}

// metricsSnapshot is doc as metrics. readErr is the error of reading the
// state, if it could not be read.
func metricsSnapshot(doc statusDoc, readErr error, s *config.Settings) metrics.Snapshot {
	m := metrics.Snapshot{Server: s.General.ServerName, Version: versionString(), StateError: readErr}
	if readErr != nil {
		return m
	}
	for _, j := range doc.Jobs {
		mj := metrics.Job{Name: j.Name, Type: j.Type, Ran: j.LastRun != nil, Up: j.State == "succeeding", Failures: j.Failures,
			LastRun: deref(j.LastRun), LastSuccess: deref(j.LastSuccess), Duration: time.Duration(j.DurationSeconds * float64(time.Second)),
			Silenced: j.Silenced != nil, Acked: j.Acknowledged != nil, InWindow: j.Maintenance != "", Status: int(jobs.Unknown)}
		if j.Code != nil {
			mj.Status = *j.Code
		}
		m.Jobs = append(m.Jobs, mj)
	}
	if r := doc.LastRun; r != nil {
		m.LastRun = metrics.Run{Tier: r.Tier, Started: r.Started, Finished: r.Finished}
		m.LastRun.Failed = r.Error != ""
	}
	m.LastRun.Failed = m.LastRun.Failed || doc.Mail.CrashedRun != ""
	m.Mail = metrics.Mail{Healthy: doc.Mail.Status != "problem", SelfCheck: deref(doc.Mail.SelfCheckAt), SelfCheckOK: doc.Mail.SelfCheckOK,
		Send: deref(doc.Mail.LastSendAt), SendOK: doc.Mail.LastSendOK}
	kinds := channelKinds(s)
	for _, r := range doc.destinations {
		if r.To == jobs.NoAlertContact {
			continue // a placeholder nomail prints to, not a destination
		}
		kind, ok := kinds[strings.ToLower(r.To)]
		if !ok {
			kind = "email"
		}
		m.Destinations = append(m.Destinations, metrics.Destination{Name: r.To, Channel: kind, Sent: r.Sent, Failed: r.Failed, Failing: r.Failing})
	}
	m.Outbox = len(doc.Outbox)
	return m
}

// channelKinds maps each [channels] name, lower-cased, to the service it
// sends to: the scheme of its URL (slack, ntfy, generic…), never more of
// the URL, which holds secrets.
func channelKinds(s *config.Settings) map[string]string {
	out := make(map[string]string, len(s.Channels))
	for _, c := range s.Channels {
		kind := "channel"
		if u, err := url.Parse(c.URL); err == nil && u.Scheme != "" {
			kind = strings.ToLower(u.Scheme)
		}
		out[strings.ToLower(c.Name)] = kind
	}
	return out
}

// heartbeatThresholds returns the liveness thresholds of each service: a
// heartbeat job's own, else those of [heartbeat].
func heartbeatThresholds(s *config.Settings, all []*jobs.Job) func(service string) heartbeat.Thresholds {
	def := heartbeat.Thresholds{Alive: s.Heartbeat.Alive, Stale: s.Heartbeat.Stale}
	if def.Validate() != nil {
		def = heartbeat.DefaultThresholds()
	}
	own := map[string]heartbeat.Thresholds{}
	for _, j := range all {
		if h, ok := j.Spec.(*jobs.Heartbeat); ok {
			if t := (heartbeat.Thresholds{Alive: h.Alive, Stale: h.Stale}); t.Validate() == nil {
				own[h.Service] = t
			}
		}
	}
	return func(service string) heartbeat.Thresholds {
		if t, ok := own[service]; ok {
			return t
		}
		return def
	}
}

// addHeartbeats puts the store's heartbeats into m as of now.
func addHeartbeats(m *metrics.Snapshot, msgs []heartbeat.Message, err error, thresholds func(string) heartbeat.Thresholds, now time.Time) {
	m.HeartbeatsRead, m.HeartbeatError = true, err
	for _, hb := range msgs {
		m.Heartbeats = append(m.Heartbeats, metrics.Heartbeat{Service: hb.ServiceName, Timestamp: hb.Timestamp,
			State: ui.Liveness(hb, thresholds(hb.ServiceName), now)})
	}
}

// watchesHeartbeats reports whether the settings watch any heartbeat, so
// that metrics list the store.
func watchesHeartbeats(s *config.Settings, all []*jobs.Job) bool {
	if s.Heartbeat.Discover {
		return true
	}
	for _, j := range all {
		if _, ok := j.Spec.(*jobs.Heartbeat); ok {
			return true
		}
	}
	return false
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
