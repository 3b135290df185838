package peer

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	stale := 2 * time.Minute
	fresh := now.Add(-30 * time.Second)
	tests := []struct {
		name  string
		h     Health
		stale time.Duration
		want  Verdict
	}{
		{"healthy", Health{MailChecked: true, MailOK: true, LastRunEnd: fresh}, stale, OK},
		{"mail never checked counts healthy", Health{LastRunEnd: fresh}, stale, OK},
		{"mail failed", Health{MailChecked: true, MailError: "535 auth", LastRunEnd: fresh}, stale, MailProblem},
		{"mail checked first, before a crash", Health{MailChecked: true, LastRunError: "boom"}, stale, MailProblem},
		{"mail checked first, before staleness", Health{MailChecked: true, LastRunEnd: now.Add(-time.Hour)}, stale, MailProblem},
		{"mail checked first, before never run", Health{MailChecked: true}, stale, MailProblem},
		{"nomail ignores mail failure", Health{NoMail: true, MailChecked: true, LastRunEnd: fresh}, stale, OK},
		{"nomail still sees stale jobs", Health{NoMail: true, MailChecked: true, LastRunEnd: now.Add(-time.Hour)}, stale, JobProblem},
		{"never ran", Health{MailChecked: true, MailOK: true}, stale, JobProblem},
		{"last run crashed", Health{LastRunEnd: fresh, LastRunError: "panic"}, stale, JobProblem},
		{"exactly at the stale boundary", Health{LastRunEnd: now.Add(-stale)}, stale, OK},
		{"just past the stale boundary", Health{LastRunEnd: now.Add(-stale - time.Nanosecond)}, stale, JobProblem},
		{"zero staleAfter means default, inside", Health{LastRunEnd: now.Add(-DefaultStaleAfter)}, 0, OK},
		{"zero staleAfter means default, past", Health{LastRunEnd: now.Add(-DefaultStaleAfter - time.Second)}, 0, JobProblem},
		{"run end in the future (clock stepped back)", Health{LastRunEnd: now.Add(time.Minute)}, stale, JobProblem},
		{"run end a day in the future", Health{LastRunEnd: now.Add(24 * time.Hour)}, stale, JobProblem},
		{"run end within the clock slack", Health{LastRunEnd: now.Add(clockSlack)}, stale, OK},
		{"run end just past the clock slack", Health{LastRunEnd: now.Add(clockSlack + time.Nanosecond)}, stale, JobProblem},
		{"mail check in the future vouches for nothing", Health{MailChecked: true, MailOK: true, MailCheckedAt: now.Add(time.Hour), LastRunEnd: fresh}, stale, MailProblem},
		{"mail check now is fine", Health{MailChecked: true, MailOK: true, MailCheckedAt: now, LastRunEnd: fresh}, stale, OK},
		{"mail check in the future ignored with nomail", Health{NoMail: true, MailChecked: true, MailOK: true, MailCheckedAt: now.Add(time.Hour), LastRunEnd: fresh}, stale, OK},
		{"failed send in the future is still a problem", Health{MailChecked: true, MailFailed: MailSend, MailFailedAt: now.Add(time.Hour), MailCheckedAt: now.Add(time.Hour), LastRunEnd: fresh}, stale, MailProblem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Judge(tt.h, now, tt.stale); got != tt.want {
				t.Errorf("Judge(%+v) = %q, want %q", tt.h, got, tt.want)
			}
		})
	}
}

func TestAssessReasons(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		h          Health
		wantReason string
		wantDetail string
		hidden     string // must not be in the reason
	}{
		{"crash text is detail only", Health{LastRunEnd: now, LastRunError: "job secret-db failed"},
			"the last cron run crashed", "job secret-db failed", "secret-db"},
		{"self-check failure with its time", Health{MailChecked: true, MailFailed: MailSelfCheck, MailFailedAt: now.Add(-time.Hour),
			MailError: "email self-check failed: dial smtp.corp:\n refused"},
			"the last mail self-check failed at 2025-03-01T11:00:00Z", "email self-check failed: dial smtp.corp: refused", "smtp.corp"},
		{"send failure with its time", Health{MailChecked: true, MailFailed: MailSend, MailFailedAt: now.Add(-time.Minute), MailError: "550 user@corp unknown"},
			"the last notification send failed at 2025-03-01T11:59:00Z", "550 user@corp unknown", "user@corp"},
		{"stale run says when", Health{LastRunEnd: now.Add(-10 * time.Minute)},
			"the last cron run completed at 2025-03-01T11:50:00Z, 10m0s ago, more than 2m0s", "", ""},
		{"future run says the clock stepped back", Health{LastRunEnd: now.Add(time.Hour)},
			"the last cron run is dated 2025-03-01T13:00:00Z, which is in the future: the clock was stepped back", "", ""},
		{"future mail check says the clock stepped back", Health{MailChecked: true, MailOK: true, MailCheckedAt: now.Add(time.Hour), LastRunEnd: now},
			"mail was last checked at 2025-03-01T13:00:00Z, which is in the future", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := assess(tt.h, now, 2*time.Minute)
			if !strings.Contains(a.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", a.Reason, tt.wantReason)
			}
			if a.Detail != tt.wantDetail {
				t.Errorf("detail = %q, want %q", a.Detail, tt.wantDetail)
			}
			if tt.hidden != "" && strings.Contains(a.Reason, tt.hidden) {
				t.Errorf("reason %q reveals %q", a.Reason, tt.hidden)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        Verdict
		wantErr     string // substring of the error; "" means no error
	}{
		{"True", "text/plain", "True", OK, ""},
		{"True with newline", "text/plain", "True\n", OK, ""},
		{"True inside text, as the Python tool", "text/html", "<html>True</html>", OK, ""},
		{"MailProblem", "text/plain", "MailProblem", MailProblem, ""},
		{"JobProblem padded", "", "  JobProblem\r\n", JobProblem, ""},
		{"JSON by content type", "application/json; charset=utf-8", `{"status":"MailProblem","server":"a"}`, MailProblem, ""},
		{"JSON by leading brace", "text/plain", ` {"status":"True","last_run":null}`, OK, ""},
		{"JSON status wins over True elsewhere", "application/json", `{"status":"JobProblem","server":"True"}`, JobProblem, ""},
		{"JSON problem+json", "application/problem+json", `{"status":"JobProblem"}`, JobProblem, ""},
		{"JSON unknown status", "application/json", `{"status":"Fine"}`, "", `unknown status "Fine"`},
		{"JSON without status", "application/json", `{"server":"a"}`, "", `no "status"`},
		{"JSON status not a string", "application/json", `{"status":true}`, "", "not valid JSON"},
		{"JSON broken", "application/json", `{"status":`, "", "not valid JSON"},
		{"JSON content type, plain body", "application/json", "True", "", "not valid JSON"},
		{"empty", "text/plain", "", "", "empty reply"},
		{"blank", "text/plain", " \n\t", "", "empty reply"},
		{"garbage", "text/plain", "Nope", "", `"Nope"`},
		{"lowercase true is not True", "text/plain", "true", "", `"true"`},
		{"binary garbage", "", "\x00\xff\xfe", "", `"\x00\xff\xfe"`},
		{"bad content type ignored", "%%%", "True", OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseReply(tt.contentType, []byte(tt.body))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseReply(%q, %q) = %q, %v; want %q, nil", tt.contentType, tt.body, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseReply(%q, %q) = %q, nil; want error containing %q", tt.contentType, tt.body, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseReply(%q, %q) error = %q, want it to contain %q", tt.contentType, tt.body, err, tt.wantErr)
			}
		})
	}
}

func TestParseReplyTruncatesGarbage(t *testing.T) {
	body := strings.Repeat("é", 5000) // multi-byte runes: the cut must not split one
	_, err := ParseReply("text/plain", []byte(body))
	if err == nil {
		t.Fatal("ParseReply accepted 10000 bytes of garbage")
	}
	msg := err.Error()
	if len(msg) > 200 {
		t.Errorf("error is %d bytes long, want it truncated: %q", len(msg), msg)
	}
	if !strings.Contains(msg, "(10000 bytes)") {
		t.Errorf("error %q does not give the body length", msg)
	}
	if strings.Contains(msg, `\x`) {
		t.Errorf("error %q split a rune", msg)
	}
}

// FuzzParseReply checks that no reply makes ParseReply panic, that it gives
// a verdict or an error and never both, and that errors stay short.
func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{"True", "True\n", "MailProblem", "{", `{"status":"True"}`, "\xff", ""} {
		f.Add("text/plain", []byte(seed))
		f.Add("application/json", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		v, err := ParseReply(contentType, body)
		switch {
		case err == nil && v != OK && v != MailProblem && v != JobProblem:
			t.Errorf("ParseReply(%q, %q) = %q, nil: not a verdict", contentType, body, v)
		case err != nil && v != "":
			t.Errorf("ParseReply(%q, %q) = %q, %v: verdict with an error", contentType, body, v, err)
		case err != nil && len(err.Error()) > 1000:
			t.Errorf("ParseReply error is %d bytes long", len(err.Error()))
		}
	})
}
