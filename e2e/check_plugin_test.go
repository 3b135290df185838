package e2e_test

// `checker check …` as a Monitoring Plugin, through the real binary: one
// line "TYPE STATUS - text | perfdata" (the long output of a command on the
// following lines), exit codes 0-3, -t in seconds or as a duration, -V,
// --json, and the http and tls flags.

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"checker/internal/testcert"
)

// pluginPath is the fake plugin of the command job tests, copied into dir
// as name (the name shapes the label `check command` prints).
func pluginPath(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile("../jobs/testdata/plugin.sh")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckPluginOutput(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n")
	port := newTCPPort(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "hello")
	}))
	t.Cleanup(web.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, web.URL+"/", http.StatusFound)
	}))
	t.Cleanup(secure.Close)
	ca := testcert.NewCA(t)
	soon := tlsServer(t, ca.Leaf(t, time.Now().Add(5*24*time.Hour+time.Hour)))
	later := tlsServer(t, ca.Leaf(t, time.Now().Add(90*24*time.Hour)))
	in.env = append(in.env, "SSL_CERT_FILE="+ca.WritePEM(t, in.dir))
	// The https server's own certificate, for the downgrade case.
	secureCA := filepath.Join(in.dir, "secure.pem")
	if err := os.WriteFile(secureCA, pemOf(secure.Certificate().Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	checkDisk := pluginPath(t, in.dir, "check_disk")
	script := pluginPath(t, in.dir, "plugin.sh")
	num := `[0-9]+(\.[0-9]+)?`

	tests := []struct {
		name string
		args []string
		env  []string
		code int
		out  string // a regular expression for the whole stdout
	}{
		{"tcp", []string{"check", "tcp", port.addr}, nil, 0,
			`^TCP OK - connected to ` + regexp.QuoteMeta(port.addr) + ` in [^|]+ \| time=` + num + `s;;;0\n$`},
		{"tcp -t seconds", []string{"check", "tcp", "-t", "5", port.addr}, nil, 0, `^TCP OK - `},
		{"tcp -t fraction", []string{"check", "tcp", "-t", "2.5", port.addr}, nil, 0, `^TCP OK - `},
		{"tcp --timeout duration", []string{"check", "tcp", "--timeout", "5s", port.addr}, nil, 0, `^TCP OK - `},
		{"tcp -t garbage", []string{"check", "tcp", "-t", "soon", port.addr}, nil, 3, `^TCP UNKNOWN - invalid argument "soon" for "-t, --timeout" flag: .*\n$`},
		{"tcp -t 0", []string{"check", "tcp", "-t", "0", port.addr}, nil, 3, `^TCP UNKNOWN - .*must be more than 0\n$`},
		{"tcp -V", []string{"check", "tcp", "-V"}, nil, 3, `^checker check tcp \S+\n$`},
		{"http --version", []string{"check", "http", "--version"}, nil, 3, `^checker check http \S+\n$`},
		{"tcp without target", []string{"check", "tcp"}, nil, 3, `^TCP UNKNOWN - accepts 1 arg\(s\), received 0\n$`},
		{"tcp closed", []string{"check", "tcp", "127.0.0.1:1"}, nil, 2, `^TCP CRITICAL - cannot connect to 127.0.0.1:1: .*refused\n$`},
		{"no check", []string{"check"}, nil, 3, `^CHECK UNKNOWN - name a check`},
		{"http", []string{"check", "http", web.URL}, nil, 0,
			`^HTTP OK - GET ` + regexp.QuoteMeta(web.URL) + `: 200 OK, 5 bytes in [^|]+ \| time=` + num + `s;;;0 size=5B;;;0\n$`},
		{"http follows", []string{"check", "http", web.URL + "/old"}, nil, 0, `^HTTP OK - .*redirected to ` + regexp.QuoteMeta(web.URL+"/")},
		{"http --expect-status 301", []string{"check", "http", web.URL + "/old", "--expect-status", "301"}, nil, 0, `^HTTP OK - GET \S+: 301 Moved Permanently`},
		{"http --no-follow", []string{"check", "http", web.URL + "/old", "--no-follow"}, nil, 2, `^HTTP CRITICAL - GET \S+: status 301 Moved Permanently, want 200 \(Location: /\) \| `},
		{"https to http", []string{"check", "http", secure.URL}, []string{"SSL_CERT_FILE=" + secureCA}, 2, `^HTTP CRITICAL - GET \S+: redirected from \S+ to plain http \S+ \(allow_downgrade = yes, or --allow-downgrade`},
		{"https to http allowed", []string{"check", "http", secure.URL, "--allow-downgrade"}, []string{"SSL_CERT_FILE=" + secureCA}, 0, `^HTTP OK - `},
		{"tls ok", []string{"check", "tls", later}, nil, 0, `^TLS OK - certificate of \S+ valid for 89 more days .*\| days=89;30:;7:\n$`},
		{"tls --crit-days", []string{"check", "tls", soon, "--warn-days", "30", "--crit-days", "7"}, nil, 2, `^TLS CRITICAL - .*expires in 5 days .*within crit_days 7 \| days=5;30:;7:\n$`},
		{"tls warning", []string{"check", "tls", soon, "--crit-days", "3"}, nil, 1, `^TLS WARNING - .*within warn_days 30 \| days=5;30:;3:\n$`},
		{"tls crit above warn", []string{"check", "tls", soon, "--warn-days", "5", "--crit-days", "7"}, nil, 3, `^TLS UNKNOWN - --crit-days 7 is more than --warn-days 5`},
		{"tls short warn, default crit", []string{"check", "tls", soon, "--warn-days", "6"}, nil, 1, `\| days=5;6:;0:\n$`},
		{"command", []string{"check", "command", "--", checkDisk, "multiline-perfdata"}, nil, 1,
			`^DISK WARNING - / is 91% full \| root=91%;80;90 var=40%;80;90 boot=10%;80;90\n/ 91% used\n/var 40% used\n$`},
		{"command, not a check_ plugin", []string{"check", "command", "--", script, "procs-warning"}, nil, 1, `^COMMAND WARNING - 76 processes \| procs=76;1;;0;\n$`},
		{"command exit 127", []string{"check", "command", "--", script, "exit127"}, nil, 3, `^COMMAND UNKNOWN - sh: check_nothing: not found \(exit status 127\)\n$`},
		{"command -t", []string{"check", "command", "-t", "0.5", "--", "sleep", "5"}, nil, 2, `^COMMAND CRITICAL - sleep: killed at the timeout\n$`},
		{"command not found", []string{"check", "command", "--", "/nonexistent/check_x"}, nil, 3, `^X UNKNOWN - cannot run /nonexistent/check_x: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := in.env
			in.env = append(append([]string(nil), in.env...), tt.env...)
			defer func() { in.env = saved }()
			r := in.run(tt.args...)
			if r.code != tt.code || !regexp.MustCompile(tt.out).MatchString(r.stdout) {
				t.Errorf("checker %s: exit %d, stdout %q\nwant exit %d, stdout matching %s\nstderr: %s",
					strings.Join(tt.args, " "), r.code, r.stdout, tt.code, tt.out, r.stderr)
			}
		})
	}
}

// TestCheckJSON: --json prints one object in the shared vocabulary.
func TestCheckJSON(t *testing.T) {
	in := newInstance(t, "[email]\nnomail = yes\n")
	r := in.run("check", "command", "--json", "--", pluginPath(t, in.dir, "check_disk"), "multiline-perfdata")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	want := map[string]string{
		"schema": "1", "type": "command", "status": "WARNING", "code": "1",
		"message": "/ is 91% full", "perfdata": "root=91%;80;90 var=40%;80;90 boot=10%;80;90",
		"long_output": "/ 91% used\n/var 40% used",
	}
	for k, v := range want {
		if got := strings.TrimSpace(toString(doc[k])); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if name := toString(doc["name"]); !strings.HasPrefix(name, "command:") || !strings.Contains(name, "check_disk multiline-perfdata") {
		t.Errorf("name %q", name)
	}
	if d, err := doc["duration_seconds"].(json.Number).Float64(); err != nil || d <= 0 {
		t.Errorf("duration_seconds %v", doc["duration_seconds"])
	}
}

// pemOf is a DER certificate in PEM, for SSL_CERT_FILE.
func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return "<missing>"
	}
	return "<not a string>"
}
