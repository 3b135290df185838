package state

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Record kinds: the first byte of every encoded record.
const (
	kindJob       byte = 'J'
	kindHealth    byte = 'H'
	kindNotice    byte = 'N'
	kindEvent     byte = 'E'
	kindSilence   byte = 'S'
	kindService   byte = 'V'
	kindRecipient byte = 'R'
	kindClaims    byte = 'C'
)

// Job is the remembered state of one job.
type Job struct {
	// Failing is true during a failure streak.
	Failing bool
	// Failures counts the consecutive failed runs of the streak.
	Failures int
	// FirstFailure is when the streak started.
	FirstFailure time.Time
	// LastNotified is when a failure notice for this streak last reached a
	// recipient (was printed, with nomail).
	LastNotified time.Time
	// Since is when the job entered its current state (succeeding or
	// failing); zero if it never ran.
	Since time.Time
	// LastSlot is the schedule slot of the last run started by cron, so
	// that overlapping invocations run a job once per slot.
	LastSlot string
	// FirstRun is when the job first finished a run (uptime is measured
	// from then); LastRun when it last did; LastSuccess when a run last
	// succeeded; LastDuration how long the last run took.
	FirstRun     time.Time
	LastRun      time.Time
	LastSuccess  time.Time
	LastDuration time.Duration
	// LastStatus is OK, WARNING, CRITICAL or UNKNOWN; LastMessage the last
	// result's one-line message; LastPerfdata and LastLongOutput a
	// plugin's performance data and long output.
	LastStatus     string
	LastMessage    string
	LastPerfdata   string
	LastLongOutput string
	// NotifiedStatus is the status word of the last failure notice of the
	// streak, so that an escalation (WARNING → CRITICAL) can be told.
	NotifiedStatus string
	// Thread names the current outage, for mail threading.
	Thread string
	// Held is when a notice of this streak was first held back by a
	// silence or a maintenance window (zero: none held).
	Held time.Time
	// Ack is set when an operator acknowledged the current outage.
	Ack *Ack
}

// Ack is an acknowledgement of a job's current outage.
type Ack struct {
	By     string
	At     time.Time
	Reason string
}

// Claims are the jobs one cron invocation is running: one record per
// invocation (not a write to every job's record), so claiming 10,000 jobs
// costs one small write. A record whose process is gone before it expired
// is a crashed run: its jobs count as run in their slot until it expires.
type Claims struct {
	Claim
	Jobs []string
}

const claimsVersion = 1

func encodeClaims(c *Claims) []byte {
	n := 32
	for _, j := range c.Jobs {
		n += len(j) + 2
	}
	e := newEncoder(kindClaims, claimsVersion, n)
	e.int(int64(c.PID))
	e.time(c.Started)
	e.time(c.Expires)
	e.strs(c.Jobs)
	return e.b
}

// DecodeClaims decodes an invocation's claims.
func DecodeClaims(b []byte) (Claims, error) {
	d, _ := newDecoder(b, kindClaims, claimsVersion)
	c := Claims{Claim: Claim{PID: d.count("claim pid"), Started: d.time(), Expires: d.time()}}
	n := d.uint()
	if n > 1<<24 || n > uint64(len(d.b)) {
		d.fail("%d claimed jobs", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		c.Jobs = append(c.Jobs, d.str())
	}
	if err := d.done(); err != nil {
		return Claims{}, fmt.Errorf("claims record: %w", err)
	}
	return c, nil
}

// MaxClaim is the longest a claim may hold: longer than any job timeout or
// delivery. A claim that says otherwise comes from a damaged file and is
// ignored, so it cannot switch a job off.
const MaxClaim = 24 * time.Hour

// Claim marks a job (or a notice) as being handled by a process, so that
// another invocation does not start it again.
type Claim struct {
	PID     int
	Started time.Time
	// Expires is when the claim is void even if the process lives on: the
	// job's timeout plus a margin.
	Expires time.Time
}

// Alive reports whether the claim still holds at now: not expired, and its
// process still exists (a process of another user counts as existing).
func (c *Claim) Alive(now time.Time) bool {
	if c == nil {
		return false
	}
	// A pid of 0 or less would signal a process group (kill(0, 0) always
	// succeeds); such a claim, from a damaged record, holds nothing.
	if c.PID <= 0 || !now.Before(c.Expires) || c.Expires.Sub(c.Started) > MaxClaim {
		return false
	}
	return processExists(c.PID)
}

// Dead reports whether the claim has not expired but its process is gone:
// the invocation that made it died.
func (c *Claim) Dead(now time.Time) bool {
	if c == nil || c.PID <= 0 || !now.Before(c.Expires) || c.Expires.Sub(c.Started) > MaxClaim {
		return false
	}
	return !processExists(c.PID)
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

const jobVersion = 1

func encodeJob(j *Job) []byte {
	e := newEncoder(kindJob, jobVersion, 96+len(j.LastMessage)+len(j.LastSlot)+len(j.LastPerfdata)+len(j.LastLongOutput))
	e.bool(j.Failing)
	e.int(int64(j.Failures))
	e.time(j.FirstFailure)
	e.time(j.LastNotified)
	e.time(j.Since)
	e.str(j.LastSlot)
	e.time(j.FirstRun)
	e.time(j.LastRun)
	e.time(j.LastSuccess)
	e.int(int64(j.LastDuration))
	e.str(j.LastStatus)
	e.str(j.LastMessage)
	e.str(j.LastPerfdata)
	e.str(j.LastLongOutput)
	e.str(j.NotifiedStatus)
	e.str(j.Thread)
	e.time(j.Held)
	e.bool(j.Ack != nil)
	if j.Ack != nil {
		e.str(j.Ack.By)
		e.time(j.Ack.At)
		e.str(j.Ack.Reason)
	}
	return e.b
}

func encodeClaim(e *encoder, c *Claim) {
	e.bool(c != nil)
	if c != nil {
		e.int(int64(c.PID))
		e.time(c.Started)
		e.time(c.Expires)
	}
}

func decodeClaim(d *decoder) *Claim {
	if !d.bool() {
		return nil
	}
	return &Claim{PID: d.count("claim pid"), Started: d.time(), Expires: d.time()}
}

// DecodeJob decodes a job record.
func DecodeJob(b []byte) (Job, error) {
	d, _ := newDecoder(b, kindJob, jobVersion)
	var j Job
	j.Failing = d.bool()
	j.Failures = d.count("failure count")
	j.FirstFailure = d.time()
	j.LastNotified = d.time()
	j.Since = d.time()
	j.LastSlot = d.str()
	j.FirstRun = d.time()
	j.LastRun = d.time()
	j.LastSuccess = d.time()
	j.LastDuration = d.duration()
	j.LastStatus = d.str()
	j.LastMessage = d.str()
	j.LastPerfdata = d.str()
	j.LastLongOutput = d.str()
	j.NotifiedStatus = d.str()
	j.Thread = d.str()
	j.Held = d.time()
	if d.bool() {
		j.Ack = &Ack{By: d.str(), At: d.time(), Reason: d.str()}
	}
	if err := d.done(); err != nil {
		return Job{}, fmt.Errorf("job record: %w", err)
	}
	return j, nil
}

// peekLastSlot reads only a job record's LastSlot, for the claim of a run,
// which looks at every due job's slot and at nothing else of it.
func peekLastSlot(b []byte) (string, error) {
	d, _ := newDecoder(b, kindJob, jobVersion)
	d.bool()            // Failing
	d.count("failures") // Failures
	d.time()            // FirstFailure
	d.time()            // LastNotified
	d.time()            // Since
	slot := d.str()
	if d.err != nil {
		return "", fmt.Errorf("job record: %w", d.err)
	}
	return slot, nil
}

// Health is the small record `checker serve` reads to answer peers: the
// last completed cron run, the health of the mail path, and the cron runs
// in progress (a run that dies leaves its entry behind).
type Health struct {
	LastRun Run
	Mail    Mail
	// Running are the invocations in progress, by pid.
	Running []Claim
}

// Run describes the last cron invocation that completed.
type Run struct {
	Tier     string
	Started  time.Time
	Finished time.Time
	// Error is set when the run did not complete its work (a job could not
	// be recorded, the state could not be saved in full).
	Error string
}

// Mail is the health of the mail path as peers see it.
type Mail struct {
	SelfCheckAt    time.Time
	SelfCheckOK    bool
	SelfCheckError string
	SendAt         time.Time
	SendOK         bool
	SendError      string
}

// Checked reports whether mail was ever exercised (self-check or send).
func (m Mail) Checked() bool { return !m.SelfCheckAt.IsZero() || !m.SendAt.IsZero() }

// Healthy reports whether the last self-check and the last send, where they
// happened, succeeded.
func (m Mail) Healthy() bool {
	if !m.SelfCheckAt.IsZero() && !m.SelfCheckOK {
		return false
	}
	if !m.SendAt.IsZero() && !m.SendOK {
		return false
	}
	return true
}

// Problem describes what is wrong with mail, or "" when healthy.
func (m Mail) Problem() string {
	if !m.SelfCheckAt.IsZero() && !m.SelfCheckOK {
		return "email self-check failed: " + m.SelfCheckError
	}
	if !m.SendAt.IsZero() && !m.SendOK {
		return "sending mail failed: " + m.SendError
	}
	return ""
}

// Crashed describes a cron run that died while running jobs: an invocation
// entry that has not expired but whose process is gone. It returns "" when
// there is none. A crash followed by a run that started later and
// completed is history, not the state of cron: its claim still keeps its
// jobs from starting twice until it expires, but the last run did not
// crash.
func (h Health) Crashed(now time.Time) string {
	for _, c := range h.Running {
		superseded := !h.LastRun.Finished.IsZero() && h.LastRun.Started.After(c.Started)
		if c.Dead(now) && !superseded {
			return fmt.Sprintf("cron run (pid %d, started %s) died before it finished", c.PID, c.Started.Format(time.RFC3339))
		}
	}
	return ""
}

const healthVersion = 1

func encodeHealth(h *Health) []byte {
	e := newEncoder(kindHealth, healthVersion, 128)
	e.str(h.LastRun.Tier)
	e.time(h.LastRun.Started)
	e.time(h.LastRun.Finished)
	e.str(h.LastRun.Error)
	e.time(h.Mail.SelfCheckAt)
	e.bool(h.Mail.SelfCheckOK)
	e.str(h.Mail.SelfCheckError)
	e.time(h.Mail.SendAt)
	e.bool(h.Mail.SendOK)
	e.str(h.Mail.SendError)
	e.uint(uint64(len(h.Running)))
	for i := range h.Running {
		encodeClaim(e, &h.Running[i])
	}
	return e.b
}

// DecodeHealth decodes the health record.
func DecodeHealth(b []byte) (Health, error) {
	d, _ := newDecoder(b, kindHealth, healthVersion)
	var h Health
	h.LastRun = Run{Tier: d.str(), Started: d.time(), Finished: d.time(), Error: d.str()}
	h.Mail = Mail{SelfCheckAt: d.time(), SelfCheckOK: d.bool(), SelfCheckError: d.str(),
		SendAt: d.time(), SendOK: d.bool(), SendError: d.str()}
	n := d.uint()
	if n > maxList {
		d.fail("%d running entries", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		if c := decodeClaim(d); c != nil {
			h.Running = append(h.Running, *c)
		}
	}
	if err := d.done(); err != nil {
		return Health{}, fmt.Errorf("health record: %w", err)
	}
	return h, nil
}

// Notice kinds.
const (
	KindFailure  = "failure"
	KindRecovery = "recovery"
	KindSystem   = "system"
)

// Notice is a notification waiting to be delivered. It stays in the outbox
// until every recipient got it; one pending notice per job and kind.
type Notice struct {
	Job     string
	Kind    string
	Subject string
	Body    string
	// To are the recipients (mail addresses or channel names) with what
	// delivery to each has done so far.
	To      []Delivery
	Created time.Time
	// Status is the job's status word the notice reports (OK, WARNING,
	// CRITICAL, UNKNOWN), for the X-Checker-State header.
	Status string
	// Thread identifies the outage the notice belongs to (the same for a
	// failure, its reminders and its recovery), so that mail can thread
	// them; First marks the outage's first notice, which starts the thread.
	Thread string
	First  bool
	// Queued is when the first notice of this job and kind still waiting
	// was queued: a notice held back by an outage says so.
	Queued time.Time
	// Sending is set while an invocation delivers the notice (with the
	// state lock released), so that another does not send it too.
	Sending *Claim
}

// Delivery is the state of one recipient of a notice.
type Delivery struct {
	To        string
	Done      bool
	Attempts  int
	LastTry   time.Time
	LastError string
}

// Owed returns the recipients the notice has not reached yet.
func (n *Notice) Owed() []string {
	var out []string
	for _, d := range n.To {
		if !d.Done {
			out = append(out, d.To)
		}
	}
	return out
}

// Recipients returns every recipient's address or channel name.
func (n *Notice) Recipients() []string {
	out := make([]string, len(n.To))
	for i, d := range n.To {
		out[i] = d.To
	}
	return out
}

// Key is the notice's key in the outbox: one pending notice per job and kind.
func (n *Notice) Key() string { return n.Job + "\x00" + n.Kind }

const noticeVersion = 1

func encodeNotice(n *Notice) []byte {
	e := newEncoder(kindNotice, noticeVersion, 128+len(n.Subject)+len(n.Body))
	e.str(n.Job)
	e.str(n.Kind)
	e.str(n.Subject)
	e.str(n.Body)
	e.uint(uint64(len(n.To)))
	for _, d := range n.To {
		e.str(d.To)
		e.bool(d.Done)
		e.int(int64(d.Attempts))
		e.time(d.LastTry)
		e.str(d.LastError)
	}
	e.time(n.Created)
	e.str(n.Status)
	e.str(n.Thread)
	e.bool(n.First)
	e.time(n.Queued)
	encodeClaim(e, n.Sending)
	return e.b
}

// DecodeNotice decodes an outbox record.
func DecodeNotice(b []byte) (Notice, error) {
	d, _ := newDecoder(b, kindNotice, noticeVersion)
	var n Notice
	n.Job = d.str()
	n.Kind = d.str()
	n.Subject = d.str()
	n.Body = d.str()
	cnt := d.uint()
	if cnt > maxList {
		d.fail("%d recipients", cnt)
	}
	for i := uint64(0); i < cnt && d.err == nil; i++ {
		n.To = append(n.To, Delivery{To: d.str(), Done: d.bool(), Attempts: d.count("attempts"), LastTry: d.time(), LastError: d.str()})
	}
	n.Created = d.time()
	n.Status = d.str()
	n.Thread = d.str()
	n.First = d.bool()
	n.Queued = d.time()
	n.Sending = decodeClaim(d)
	if err := d.done(); err != nil {
		return Notice{}, fmt.Errorf("outbox record: %w", err)
	}
	return n, nil
}

// Event kinds.
const (
	EventFailing    = "failing"    // a job started failing
	EventEscalated  = "escalated"  // its non-OK status changed (WARNING ↔ CRITICAL)
	EventRecovered  = "recovered"  // it succeeded again
	EventQueued     = "queued"     // a notice was queued
	EventDelivered  = "delivered"  // a notice reached recipients
	EventRejected   = "rejected"   // a recipient refused a notice permanently
	EventPrinted    = "printed"    // a notice was printed instead of sent (nomail)
	EventHeld       = "held"       // a notice was held by a silence or window
	EventSilenced   = "silenced"   // an operator silenced jobs
	EventUnsilenced = "unsilenced" // a silence was lifted
	EventAcked      = "acked"      // an operator acknowledged an outage
	EventForgotten  = "forgotten"  // a job or service was dropped from the state
	EventState      = "state"      // the state itself (moved aside, reset)
	EventTest       = "test"       // `checker notify test` sent a test notice
)

// Event is one entry of the history.
type Event struct {
	Time    time.Time
	Job     string
	Kind    string
	Status  string
	Message string
	// To are the recipients of a notice event.
	To []string
	// By is who did it, for operator actions.
	By string
}

const eventVersion = 1

func encodeEvent(ev *Event) []byte {
	e := newEncoder(kindEvent, eventVersion, 64+len(ev.Job)+len(ev.Message))
	e.time(ev.Time)
	e.str(ev.Job)
	e.str(ev.Kind)
	e.str(ev.Status)
	e.str(ev.Message)
	e.strs(ev.To)
	e.str(ev.By)
	return e.b
}

// DecodeEvent decodes a history record.
func DecodeEvent(b []byte) (Event, error) {
	d, _ := newDecoder(b, kindEvent, eventVersion)
	ev := Event{Time: d.time(), Job: d.str(), Kind: d.str(), Status: d.str(), Message: d.str(), To: d.strs(), By: d.str()}
	if err := d.done(); err != nil {
		return Event{}, fmt.Errorf("event record: %w", err)
	}
	return ev, nil
}

// Silence holds back the notices of the jobs matching Pattern until Until.
type Silence struct {
	Pattern string
	Until   time.Time
	Reason  string
	By      string
	Created time.Time
}

const silenceVersion = 1

func encodeSilence(s *Silence) []byte {
	e := newEncoder(kindSilence, silenceVersion, 64+len(s.Pattern)+len(s.Reason))
	e.str(s.Pattern)
	e.time(s.Until)
	e.str(s.Reason)
	e.str(s.By)
	e.time(s.Created)
	return e.b
}

// DecodeSilence decodes a silence record.
func DecodeSilence(b []byte) (Silence, error) {
	d, _ := newDecoder(b, kindSilence, silenceVersion)
	s := Silence{Pattern: d.str(), Until: d.time(), Reason: d.str(), By: d.str(), Created: d.time()}
	if err := d.done(); err != nil {
		return Silence{}, fmt.Errorf("silence record: %w", err)
	}
	return s, nil
}

// Service is a heartbeat service that discovery has seen: it stays watched
// until `checker heartbeat forget` removes it, even when its key vanishes.
type Service struct {
	Name      string
	FirstSeen time.Time
	LastSeen  time.Time
}

const serviceVersion = 1

func encodeService(s *Service) []byte {
	e := newEncoder(kindService, serviceVersion, 32+len(s.Name))
	e.str(s.Name)
	e.time(s.FirstSeen)
	e.time(s.LastSeen)
	return e.b
}

// DecodeService decodes a remembered heartbeat service.
func DecodeService(b []byte) (Service, error) {
	d, _ := newDecoder(b, kindService, serviceVersion)
	s := Service{Name: d.str(), FirstSeen: d.time(), LastSeen: d.time()}
	if err := d.done(); err != nil {
		return Service{}, fmt.Errorf("service record: %w", err)
	}
	return s, nil
}

// Recipient is the delivery health of one destination (a mail address or a
// channel): whether sends to it fail, and whether that was reported.
type Recipient struct {
	To string
	// Failing is set while sends to it fail; Permanent when the last
	// failure was a permanent rejection (SMTP 5xx), which is retried at
	// most hourly.
	Failing   bool
	Permanent bool
	Since     time.Time
	LastTry   time.Time
	LastError string
	// Settings identifies the settings file version the rejection was
	// seen with: a changed file retries at once.
	Settings string
	// Reported is set once the failure was announced to the others.
	Reported bool
	// Sent and Failed count the mails (or channel messages) that went out
	// to it and that did not, since the state began (for metrics).
	Sent, Failed int64
}

const recipientVersion = 1

func encodeRecipient(r *Recipient) []byte {
	e := newEncoder(kindRecipient, recipientVersion, 64+len(r.To)+len(r.LastError))
	e.str(r.To)
	e.bool(r.Failing)
	e.bool(r.Permanent)
	e.time(r.Since)
	e.time(r.LastTry)
	e.str(r.LastError)
	e.str(r.Settings)
	e.bool(r.Reported)
	e.int(r.Sent)
	e.int(r.Failed)
	return e.b
}

// DecodeRecipient decodes a recipient record.
func DecodeRecipient(b []byte) (Recipient, error) {
	d, _ := newDecoder(b, kindRecipient, recipientVersion)
	r := Recipient{To: d.str(), Failing: d.bool(), Permanent: d.bool(), Since: d.time(), LastTry: d.time(),
		LastError: d.str(), Settings: d.str(), Reported: d.bool(), Sent: d.int(), Failed: d.int()}
	if r.Sent < 0 || r.Failed < 0 {
		d.fail("negative counter")
	}
	if err := d.done(); err != nil {
		return Recipient{}, fmt.Errorf("recipient record: %w", err)
	}
	return r, nil
}
