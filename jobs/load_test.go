package jobs_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"checker/jobs"
)

const validJobs = `
[general]
timeout = 7s

[tcp:x]
targets = a:1, b:2
every = hour
notify = 30m
failures = 3
recovery = no
timeout = 5s
notify_to = a@example.com, b@example.com

[http:Site]
url = https://example.com/health
method = head
contains = up

[tls:cert]
target = example.com

[command:disk]
command = check_disk -w "10%" -c 5%
`

func TestLoad(t *testing.T) {
	all, problems := loadSettings(t, validJobs)
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", problems.Error())
	}
	js := jobsByName(all, jobs.TypeNames()...)
	var names []string
	for n := range js {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"command:disk", "http:Site", "tcp:x[a:1]", "tcp:x[b:2]", "tls:cert"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("jobs %q, want %q", names, want)
	}

	t.Run("spawned", func(t *testing.T) {
		for _, target := range []string{"a:1", "b:2"} {
			j := js["tcp:x["+target+"]"]
			if j.Type != "tcp" || j.Target != target || j.Spec.(*jobs.TCP).Addr != target {
				t.Errorf("%s: type %q target %q spec %+v", j.Name, j.Type, j.Target, j.Spec)
			}
			if j.Every != jobs.Hour || j.Timeout != 5*time.Second {
				t.Errorf("%s: every %s timeout %s", j.Name, j.Every, j.Timeout)
			}
			p := j.Policy
			if p.Failures != 3 || p.Recovery != jobs.RecoveryNo || p.Notify.Mode != jobs.NotifyInterval ||
				p.Notify.After != 29*time.Minute+30*time.Second || !reflect.DeepEqual(p.NotifyTo, []string{"a@example.com", "b@example.com"}) {
				t.Errorf("%s: policy %+v", j.Name, p)
			}
		}
		if js["tcp:x[a:1]"].Spec == js["tcp:x[b:2]"].Spec {
			t.Error("spawned jobs share a spec")
		}
	})

	t.Run("defaults", func(t *testing.T) {
		j := js["http:Site"]
		h := j.Spec.(*jobs.HTTP)
		if h.Method != "HEAD" || h.ExpectStatus != 200 || h.Contains != "up" || h.Insecure {
			t.Errorf("http spec %+v", h)
		}
		if j.Every != jobs.DefaultEvery || j.Timeout != 7*time.Second {
			t.Errorf("every %s timeout %s, want the defaults", j.Every, j.Timeout)
		}
		p := j.Policy
		if p.Failures != jobs.DefaultFailures || p.Recovery != jobs.RecoveryAuto || p.Notify.Mode != jobs.NotifyStateChange || p.NotifyTo != nil {
			t.Errorf("policy %+v, want the defaults", p)
		}
		if tl := js["tls:cert"].Spec.(*jobs.TLS); tl.WarnDays != 30 || js["tls:cert"].Target != "example.com:443" {
			t.Errorf("tls spec %+v target %q", tl, js["tls:cert"].Target)
		}
		c := js["command:disk"].Spec.(*jobs.Command)
		if want := []string{"check_disk", "-w", "10%", "-c", "5%"}; !reflect.DeepEqual(c.Argv, want) {
			t.Errorf("command argv %q, want %q", c.Argv, want)
		}
	})
}

func TestLoadShellCommand(t *testing.T) {
	all, problems := loadSettings(t, "[command:pipe]\ncommand = df -h | grep -q /\nshell = yes\n")
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", problems.Error())
	}
	c := jobsByName(all, "command")["command:pipe"].Spec.(*jobs.Command)
	if want := []string{"/bin/sh", "-c", "df -h | grep -q /"}; !reflect.DeepEqual(c.Argv, want) {
		t.Errorf("argv %q, want %q", c.Argv, want)
	}
}

func TestSelect(t *testing.T) {
	all, problems := loadSettings(t, validJobs)
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", problems.Error())
	}
	names := func(js []*jobs.Job) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.Name)
		}
		sort.Strings(out)
		return out
	}

	tests := []struct {
		name  string
		args  []string
		want  []string
		error string
	}{
		{"exact", []string{"tcp:x[a:1]"}, []string{"tcp:x[a:1]"}, ""},
		{"ignoring case", []string{"HTTP:site"}, []string{"http:Site"}, ""},
		{"section selects spawned", []string{"tcp:x"}, []string{"tcp:x[a:1]", "tcp:x[b:2]"}, ""},
		{"no duplicates", []string{"tcp:x", "tcp:x[b:2]"}, []string{"tcp:x[a:1]", "tcp:x[b:2]"}, ""},
		{"several", []string{"tls:cert", "command:disk"}, []string{"command:disk", "tls:cert"}, ""},
		{"prefix is not a match", []string{"tcp"}, nil, "no such job: tcp"},
		{"unknown", []string{"tcp:x", "nope", "tcp:y"}, []string{"tcp:x[a:1]", "tcp:x[b:2]"}, "no such job: nope, tcp:y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := jobs.Select(all, tt.args)
			if tt.error == "" && err != nil {
				t.Fatalf("Select: %v", err)
			}
			if tt.error != "" && (err == nil || !strings.Contains(err.Error(), tt.error)) {
				t.Fatalf("Select error %v, want one containing %q", err, tt.error)
			}
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("selected %q, want %q", names(got), tt.want)
			}
		})
	}
}
