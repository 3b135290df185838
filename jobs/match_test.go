package jobs

import "testing"

func TestMatchName(t *testing.T) {
	tests := []struct {
		pattern, job string
		want         bool
	}{
		{"http:web", "http:web", true},
		{"HTTP:Web", "http:web", true},
		{"web", "http:web", true},
		{"web", "tcp:web", true},
		{"web", "tcp:webby", false},
		{"http:*", "http:web", true},
		{"http:*", "tcp:web", false},
		{"*:db*", "tcp:db2", true},
		{"w?b", "http:web", true},
		{"tcp:dns", "tcp:dns[a:53]", true},
		{"tcp:dns[a:53]", "tcp:dns[a:53]", true},
		{"tcp:dns[a:53]", "tcp:dns[b:53]", false},
		{"tcp:dns[*]", "tcp:dns[b:53]", true},
		{"tcp:dns[*]", "tcp:dnsb", false},
		{"dns[*]", "tcp:dns[b:53]", true},
		{"dns[b:53]", "tcp:dns[b:53]", true},
		{"dns[b:53]", "tcp:dns[a:53]", false},
		// Brackets are literal: a[1] is the job a[1], never a1.
		{"a[1]", "command:a[1]", true},
		{"a[1]", "command:a1", false},
		{"command:a[1]", "command:a1", false},
		{"a[1]*", "command:a1x", false},
		{"a[1]*", "command:a[1]x", true},
		{"[", "command:a", false},
		{`a\*`, "command:a*", false},
	}
	for _, tc := range tests {
		if got := MatchName(tc.pattern, tc.job); got != tc.want {
			t.Errorf("MatchName(%q, %q) = %v, want %v", tc.pattern, tc.job, got, tc.want)
		}
	}
}
