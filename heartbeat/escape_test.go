package heartbeat

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tracker_fetcher", "tracker_fetcher"},
		{"日本語 ok", "日本語 ok"},
		{"\x1b]0;TITLE\a", `\x1b]0;TITLE\x07`},
		{"line1\nline2\r\tx", `line1\nline2\r\tx`},
		{"del\x7f", `del\x7f`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"nb\u00a0sp", `nb\u00a0sp`},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"tag\U000E0041", `tag\U000e0041`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeJSON(t *testing.T) {
	rows := []map[string]string{{"instance_id": "\x1b]0;TITLE\a", "note": "a\u202eb\u0085c", "ok": "日本"}}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := EscapeJSON(b)
	for _, bad := range []string{"\x1b", "\a", "\u202e", "\u0085"} {
		if strings.Contains(string(got), bad) {
			t.Errorf("EscapeJSON left %q in %s", bad, got)
		}
	}
	var back []map[string]string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("EscapeJSON output is not JSON: %v\n%s", err, got)
	}
	if back[0]["instance_id"] != rows[0]["instance_id"] || back[0]["note"] != rows[0]["note"] || back[0]["ok"] != "日本" {
		t.Errorf("EscapeJSON changed the meaning: %q", back)
	}
	if plain := []byte(`{"a": "b"}`); &EscapeJSON(plain)[0] != &plain[0] {
		t.Error("EscapeJSON copied JSON that needed nothing")
	}
}

// TestHostileHeartbeatText: what a service (or anyone who can push) puts in
// a heartbeat never reaches the terminal raw, wherever it is printed.
func TestHostileHeartbeatText(t *testing.T) {
	now := time.Date(2025, 1, 16, 8, 30, 20, 0, time.UTC)
	m := Message{
		ServiceName: "svc",
		InstanceID:  "\x1b]0;TITLE\a",
		Timestamp:   now.Add(-5 * time.Second),
		Data: map[string]any{
			"\x1b[2Jkey":  "v",
			"list":        []any{"\x1b[31m", "\u009b"},
			"bidi":        "x\u202ey",
			"quote\"safe": "a\"b\x1b",
		},
	}
	out := FormatBeat(m, now)
	for _, r := range out {
		if r != '\n' && r != ' ' && needsEscape(r) {
			t.Errorf("FormatBeat output holds %U:\n%q", r, out)
		}
	}
	for _, want := range []string{`svc (\x1b]0;TITLE\x07)`, `\x1b[2Jkey: v`, `bidi: "x\u202ey"`, `list: ["\u001b[31m","\u009b"]`} {
		if !strings.Contains(out, want) {
			t.Errorf("FormatBeat output lacks %q:\n%s", want, out)
		}
	}
	if got := ShortInstanceID("\x1b]0;TITLE\a"); got != `\x1b]0;TITLE\x07` {
		t.Errorf("ShortInstanceID = %q, want it escaped", got)
	}
	// Cut at 24 characters, not in the middle of one.
	if got := ShortInstanceID(strings.Repeat("é", 30)); got != strings.Repeat("é", 24) {
		t.Errorf("ShortInstanceID of 30 é = %q, want 24 é", got)
	}
}
