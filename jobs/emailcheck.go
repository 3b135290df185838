package jobs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"checker/config"
	"checker/notify"
	"checker/state"
)

func init() {
	register("email", Type{System: true, New: func() Spec { return &EmailCheck{} }})
	systemBuilders = append(systemBuilders, emailJobs)
}

// EmailFetchFailure is the subject of a failed self-check's notice.
const EmailFetchFailure = "Email Fetch Failure"

// EmailCheck is the email self-check (SPEC §6): a probe mail from the
// user to the user, found and deleted over IMAP.
type EmailCheck struct {
	Email config.Email
	// ServerName names this checker in the probe's subject, so that
	// checkers sharing a mailbox never delete each other's probes.
	ServerName string
}

// NewEmailCheck returns the self-check for the settings.
func NewEmailCheck(s *config.Settings) *EmailCheck {
	return &EmailCheck{Email: s.Email, ServerName: s.General.ServerName}
}

// Validate requires mail to be configured.
func (e *EmailCheck) Validate() error {
	if !e.Email.Configured() || e.Email.IMAPServer == "" {
		return errors.New("mail is not configured: [email] user, smtpserver and imapserver are needed")
	}
	return nil
}

// Target is the mailbox the probe travels to.
func (e *EmailCheck) Target() string {
	return fmt.Sprintf("%s via %s:%d to %s:%d %s", e.Email.User, e.Email.SMTPServer, e.Email.SMTPPort, e.Email.IMAPServer, e.Email.IMAPPort, e.mailbox())
}

func (e *EmailCheck) mailbox() string {
	if e.Email.DeleteSent {
		return e.Email.TrashFolder
	}
	return "INBOX"
}

// Check sends the probe and looks for it.
func (e *EmailCheck) Check(ctx context.Context, env *Env) Result {
	var tlsConf *tls.Config
	if env.RootCAs != nil {
		tlsConf = &tls.Config{RootCAs: env.RootCAs}
	}
	smtpConf := SMTPConfig(e.Email)
	smtpConf.TLSConfig = tlsConf
	sc := notify.SelfCheck{
		SMTP:       notify.NewSMTP(smtpConf),
		From:       e.Email.User,
		ServerName: e.ServerName,
		IMAP: notify.IMAPConfig{Host: e.Email.IMAPServer, Port: e.Email.IMAPPort, Security: e.Email.IMAPTLS,
			User: e.Email.User, Pass: e.Email.Pass, Mailbox: e.mailbox(), TLSConfig: tlsConf},
		Wait: e.Email.SelfCheckWait,
		Now:  env.Now,
	}
	log, err := sc.Run(ctx)
	if err != nil {
		return Result{Status: Critical, Message: err.Error(), Subject: EmailFetchFailure, Detail: "Session log:\n" + log}
	}
	return Resultf(OK, "probe mail from %s found in %s and deleted", e.Email.User, e.mailbox())
}

// SMTPConfig is how checker sends mail with these settings.
func SMTPConfig(e config.Email) notify.SMTPConfig {
	return notify.SMTPConfig{Host: e.SMTPServer, Port: e.SMTPPort, Security: e.SMTPTLS, User: e.User, Pass: e.Pass, From: e.User, Helo: e.Helo}
}

// emailJobs checks what config cannot of [email] (the EHLO name, the
// sender's address) and adds the hourly self-check when mail is configured
// and on.
func emailJobs(s *config.Settings) ([]*Job, config.Problems) {
	var problems config.Problems
	if h := s.Email.Helo; h != "" && !notify.ValidHelo(h) {
		problems = append(problems, config.Problem{File: s.File, Line: s.KeyLine("email", "helo"), Section: "email", Key: "helo",
			Msg: fmt.Sprintf("%q is not a fully qualified domain name (mail.example.org) or an address literal ([192.0.2.7])", h)})
	}
	if u := s.Email.User; u != "" && !s.Email.NoMail && !strings.Contains(u, "@") {
		problems = append(problems, config.Problem{File: s.File, Line: s.KeyLine("email", "user"), Section: "email", Key: "user",
			Msg: fmt.Sprintf("%q is not a mail address: mail is sent from it", u)})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if s.Email.NoMail || !s.Email.Configured() || s.Email.IMAPServer == "" {
		return nil, nil
	}
	n, _ := ParseNotify("every")
	return []*Job{EmailJob(s, n)}, nil
}

// EmailJob is the self-check as a job: hourly, notifying on every failure,
// recording the mail health that peers see.
func EmailJob(s *config.Settings, n Notify) *Job {
	spec := NewEmailCheck(s)
	return &Job{
		Name: "email:selfcheck", Type: "email", Target: spec.Target(), Every: Hour,
		Policy:  Policy{Notify: n, Failures: 1, Recovery: RecoveryYes, WarnIsFailure: true},
		Timeout: s.Email.SelfCheckWait + time.Minute,
		Spec:    spec,
		OnResult: func(tx *state.Tx, r Result, now time.Time) error {
			h, err := tx.Health()
			if err != nil {
				h = state.Health{}
			}
			h.Mail.SelfCheckAt = now
			h.Mail.SelfCheckOK = r.Status == OK
			h.Mail.SelfCheckError = ""
			if r.Status != OK {
				h.Mail.SelfCheckError = r.Message
			}
			return tx.PutHealth(&h)
		},
	}
}
