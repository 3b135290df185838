package jobs_test

import (
	"checker/internal/testcert"
	"net"
	"strings"
	"testing"
	"time"

	"checker/jobs"
)

func TestTLSExpiry(t *testing.T) {
	ca := testcert.NewCA(t)
	now := time.Now()
	day := 24 * time.Hour

	tests := []struct {
		name     string
		leaf     testcert.LeafOptions
		warnDays int
		// clock, when not zero, is how far env.Now is ahead of the real time.
		clock time.Duration
		want  jobs.Status
		msg   string
	}{
		{name: "valid for 90 days", leaf: testcert.LeafOptions{NotAfter: now.Add(90 * day)}, warnDays: 30, want: jobs.OK, msg: "valid for 89 more days"},
		{name: "10 days left", leaf: testcert.LeafOptions{NotAfter: now.Add(10 * day)}, warnDays: 30, want: jobs.Warning, msg: "expires in 9 days"},
		{name: "10 days left, warn_days 5", leaf: testcert.LeafOptions{NotAfter: now.Add(10 * day)}, warnDays: 5, want: jobs.OK, msg: "valid for 9 more days"},
		{name: "expired", leaf: testcert.LeafOptions{NotAfter: now.Add(-day)}, warnDays: 30, want: jobs.Critical, msg: "expired"},
		{name: "wrong host name", leaf: testcert.LeafOptions{NotAfter: now.Add(90 * day), IPs: []net.IP{net.IPv4(127, 0, 0, 2)}}, warnDays: 30, want: jobs.Critical, msg: "not 127.0.0.1"},
		{name: "no IP in certificate", leaf: testcert.LeafOptions{NotAfter: now.Add(90 * day), DNSNames: []string{"other.example"}}, warnDays: 30, want: jobs.Critical, msg: "doesn't contain any IP SANs"},
		{name: "clock 80 days ahead", leaf: testcert.LeafOptions{NotAfter: now.Add(90 * day)}, warnDays: 30, clock: 80 * day, want: jobs.Warning, msg: "expires in 9 days"},
		{name: "clock past expiry", leaf: testcert.LeafOptions{NotAfter: now.Add(90 * day)}, warnDays: 30, clock: 100 * day, want: jobs.Critical, msg: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveTLS(t, ca.Issue(t, tt.leaf))
			env := &jobs.Env{RootCAs: ca.Pool()}
			if tt.clock != 0 {
				env.Now = func() time.Time { return time.Now().Add(tt.clock) }
			}
			spec := validated(t, &jobs.TLS{Addr: addr, WarnDays: tt.warnDays})
			r := runJob(t, spec, env, 5*time.Second)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
		})
	}
}

func TestTLSUntrusted(t *testing.T) {
	ca := testcert.NewCA(t)
	addr := serveTLS(t, ca.Issue(t, testcert.LeafOptions{NotAfter: time.Now().Add(90 * 24 * time.Hour)}))
	r := runJob(t, validated(t, &jobs.TLS{Addr: addr, WarnDays: 30}), &jobs.Env{RootCAs: testcert.NewCA(t).Pool()}, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	if !strings.Contains(r.Message, "unknown authority") {
		t.Errorf("message %q does not say why", r.Message)
	}
}

func TestTLSNotTLS(t *testing.T) {
	ln := hungListener(t) // accepts and never answers the ClientHello
	r := runJob(t, validated(t, &jobs.TLS{Addr: ln.Addr().String(), WarnDays: 30}), nil, 300*time.Millisecond)
	wantStatus(t, r, jobs.Critical)
}

func TestTLSValidate(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"example.com", "example.com:443"},
		{"example.com:8443", "example.com:8443"},
		{"127.0.0.1", "127.0.0.1:443"},
		{"[::1]:853", "[::1]:853"},
		{"::1", "[::1]:443"},
		{"[::1]", "[::1]:443"},
	}
	for _, tt := range tests {
		spec := &jobs.TLS{Addr: tt.in}
		if err := spec.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", tt.in, err)
			continue
		}
		if spec.Target() != tt.want {
			t.Errorf("Validate(%q): target %q, want %q", tt.in, spec.Target(), tt.want)
		}
		if _, _, err := net.SplitHostPort(spec.Target()); err != nil {
			t.Errorf("Validate(%q): target %q: %v", tt.in, spec.Target(), err)
		}
	}
	for _, in := range []string{"", ":443"} {
		err := (&jobs.TLS{Addr: in}).Validate()
		if ke, ok := err.(*jobs.KeyError); !ok || ke.Key != "target" {
			t.Errorf("Validate(%q) = %v, want a KeyError for target", in, err)
		}
	}
}

// TestTLSCritDays: CRITICAL within crit_days, WARNING within warn_days, and
// both thresholds in the perfdata as Monitoring Plugins ranges.
func TestTLSCritDays(t *testing.T) {
	ca := testcert.NewCA(t)
	day := 24 * time.Hour
	tests := []struct {
		name          string
		left          time.Duration
		warn, crit    int
		want          jobs.Status
		msg, perfdata string
	}{
		{"outside both", 90 * day, 30, 7, jobs.OK, "valid for 89 more days", "days=89;30:;7:"},
		{"within warn", 20 * day, 30, 7, jobs.Warning, "within warn_days 30", "days=19;30:;7:"},
		{"within crit", 5 * day, 30, 7, jobs.Critical, "expires in 4 days", "days=4;30:;7:"},
		{"crit equals warn", 5 * day, 7, 7, jobs.Critical, "within crit_days 7", "days=4;7:;7:"},
		{"crit 0", 5 * day, 7, 0, jobs.Warning, "within warn_days 7", "days=4;7:;0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveTLS(t, ca.Issue(t, testcert.LeafOptions{NotAfter: time.Now().Add(tt.left)}))
			spec := validated(t, &jobs.TLS{Addr: addr, WarnDays: tt.warn, CritDays: tt.crit})
			r := runJob(t, spec, &jobs.Env{RootCAs: ca.Pool()}, 5*time.Second)
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
			if r.Perfdata != tt.perfdata {
				t.Errorf("perfdata %q, want %q", r.Perfdata, tt.perfdata)
			}
		})
	}
}

// TestTLSThresholdKeys: crit_days defaults to 7 (0 when warn_days is 7 or
// less, so older settings keep their meaning) and may not exceed warn_days.
func TestTLSThresholdKeys(t *testing.T) {
	tests := []struct {
		name, keys string
		crit       int
		problem    string
	}{
		{"defaults", "", 7, ""},
		{"warn only", "warn_days = 21", 7, ""},
		{"short warn", "warn_days = 5", 0, ""},
		{"both", "warn_days = 21\ncrit_days = 14", 14, ""},
		{"crit equals warn", "warn_days = 14\ncrit_days = 14", 14, ""},
		{"crit above warn", "warn_days = 14\ncrit_days = 21", 0, "crit_days 21 is more than warn_days 14"},
		{"crit above default warn", "crit_days = 31", 0, "crit_days 31 is more than warn_days 30"},
		{"negative", "crit_days = -1", 0, "less than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, problems := loadSettings(t, "[tls:site]\ntarget = 127.0.0.1:1\n"+tt.keys+"\n")
			if tt.problem != "" {
				if len(problems) != 1 || problems[0].Key != "crit_days" || !strings.Contains(problems[0].Msg, tt.problem) {
					t.Fatalf("problems %v, want one for crit_days saying %q", problems, tt.problem)
				}
				return
			}
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			if got := jobsByName(js, "tls")["tls:site"].Spec.(*jobs.TLS).CritDays; got != tt.crit {
				t.Errorf("crit_days %d, want %d", got, tt.crit)
			}
		})
	}
}
