package jobs_test

import (
	"strings"
	"testing"
)

// TestDestinations: [channels] URLs are checked without connecting, and
// every destination in alertcontact and notify_to is an address or a
// configured channel; no problem repeats a secret of a channel URL.
func TestDestinations(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		section  string
		key      string
		line     int
		want     string
		secrets  []string
	}{
		{"unknown service", "[channels]\nchat = pigeon://coop/s3cretbird\n", "channels", "chat", 5, `unknown channel service "pigeon"`, []string{"s3cretbird"}},
		{"gotify token", "[channels]\nphone = gotify://gotify.example.com/w4ats3cret\n", "channels", "phone", 5, "not a gotify token", []string{"w4ats3cret"}},
		{"telegram without chats", "[channels]\ntg = telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram\n", "channels", "tg", 5, "telegram URL", []string{"AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}},
		{"bad channel name", "[channels]\nops@chat = ntfy://ntfy.example.com/topic\n", "channels", "ops@chat", 5, "no '@'", nil},
		{"notify_to unknown name", "[channels]\nchat = ntfy://ntfy.example.com/topic\n\n[tcp:x]\ntarget = a:1\nnotify_to = ops@example.com, chta\n", "tcp:x", "notify_to", 9, `"chta" is neither a mail address nor a channel of [channels] (channels: chat)`, nil},
		{"notify_to bad address", "[tcp:x]\ntarget = a:1\nnotify_to = ops@\n", "tcp:x", "notify_to", 6, `"ops@" is not a mail address`, nil},
		{"notify_to missing comma", "[tcp:x]\ntarget = a:1\nnotify_to = ops@example.com chat\n", "tcp:x", "notify_to", 6, "separated by commas", nil},
		{"heartbeat notify_to", "[heartbeat]\nservices = a\nnotify_to = pager\n", "heartbeat", "notify_to", 6, `"pager" is neither`, nil},
		{"alertcontact", "[general]\nalertcontact = ops@example.com, pager\n", "general", "alertcontact", 5, `"pager" is neither`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := loadSettings(t, tt.settings)
			all := problems.Error()
			for _, s := range tt.secrets {
				if strings.Contains(all, s) {
					t.Errorf("problems repeat the secret %q:\n%s", s, all)
				}
			}
			for _, p := range problems {
				if p.Section == tt.section && p.Key == tt.key && strings.Contains(p.Msg, tt.want) {
					if p.Line != tt.line {
						t.Errorf("problem %q at line %d, want %d", p, p.Line, tt.line)
					}
					return
				}
			}
			t.Errorf("no problem in [%s] %s saying %q; got:\n%s", tt.section, tt.key, tt.want, all)
		})
	}
}

func TestDestinationsValid(t *testing.T) {
	all, problems := loadSettings(t, `[general]
alertcontact = ops@example.com, chat

[channels]
chat = ntfy://ntfy.example.com/alerts
hook = https://hooks.example.com/in/abc

[tcp:x]
target = a:1
notify_to = Hook, dev@example.com
`)
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", problems.Error())
	}
	if j := jobsByName(all, "tcp")["tcp:x"]; j == nil || strings.Join(j.Policy.NotifyTo, ",") != "Hook,dev@example.com" {
		t.Errorf("job %+v", j)
	}
}
