package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"checker/internal/testcert"
)

// TestValidateWarnings: values that only look wrong are warnings (exit 0),
// each with file, line, section and key; a value they make invalid is a
// problem whose message says why, without a second warning.
func TestValidateWarnings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings string
		code     int
		stderr   []string
		absent   []string
	}{
		{
			name:     "warnings only",
			settings: "[email]\nnomail = yes\npass = yourpass ;word\n[tcp:x]\ntarget = 127.0.0.1:1\nnotify_to = 50%off@example.com\n",
			code:     0,
			stderr: []string{
				"warning: FILE:3: [email] pass: inline comments are not comments",
				"warning: FILE:6: [tcp:x] notify_to: a '%' that is not %% or %(key)s is kept as written",
			},
			absent: []string{"yourpass", ";word"},
		},
		{
			name:     "the comment makes the value invalid",
			settings: "[email]\nnomail = yes # for now\n",
			code:     78,
			stderr: []string{
				`FILE:2: [email] nomail: "yes # for now" is not a boolean (use yes/no, true/false, on/off or 1/0) (inline comments are not comments: "# for now" is part of the value`,
				"1 problem",
			},
			absent: []string{"warning:"},
		},
		{
			name:     "group-readable password",
			settings: "[email]\nnomail = yes\npass = hunter2\n",
			code:     0,
			absent:   []string{"warning:", "hunter2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "settings.cfg")
			if err := os.WriteFile(cfg, []byte(tc.settings), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, 0o640); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI(t, nil, "-f", cfg, "config", "validate")
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.code == 0 && !strings.Contains(out, "OK") {
				t.Errorf("stdout %q, want OK", out)
			}
			for _, w := range tc.stderr {
				if w = strings.ReplaceAll(w, "FILE", cfg); !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(errOut, a) {
					t.Errorf("stderr shows %q:\n%s", a, errOut)
				}
			}
		})
	}
}

// TestValidateHeartbeatTLS: TLS files go with a rediss:// URL or a list of
// cluster nodes (which they turn to TLS), not with a redis:// URL.
func TestValidateHeartbeatTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	caFile := ca.WritePEM(t, dir)
	for _, tc := range []struct {
		redis string
		code  int
	}{
		{"rediss://127.0.0.1:7000", 0},
		{"127.0.0.1:7000,127.0.0.1:7001", 0},
		{"redis://127.0.0.1:7000", 78},
	} {
		cfg := writeFile(t, dir, "settings.cfg", "[email]\nnomail = yes\n[heartbeat]\nredis = "+tc.redis+"\ntls_ca = "+caFile+"\n", 0o600)
		out, errOut, code := runCLI(t, nil, "-f", cfg, "config", "validate")
		if code != tc.code {
			t.Errorf("redis = %s with tls_ca: exit %d, want %d\n%s%s", tc.redis, code, tc.code, out, errOut)
		}
	}
}
