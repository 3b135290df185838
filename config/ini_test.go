package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pyView reads data and returns every section as Python's
// ConfigParser.items(section) gives it (own keys and [DEFAULT] fallbacks,
// interpolated; "DEFAULT" for [DEFAULT] itself), with the problems and
// hints found. Duplicate sections are left out.
func pyView(data []byte) (map[string]map[string]string, Problems, Problems) {
	l := &loader{file: "settings.cfg", ip: newInterpolator()}
	l.ini = readINI(data)
	for _, p := range l.ini.problems {
		l.problems = append(l.problems, Problem{File: l.file, Line: p.line, Section: p.section, Key: p.key, Msg: p.msg})
	}
	for _, h := range l.ini.hints {
		l.hints = append(l.hints, Problem{File: l.file, Line: h.line, Section: h.section, Key: h.key, Msg: h.msg})
	}
	view := map[string]map[string]string{}
	if l.ini.defaultLine > 0 {
		m := map[string]string{}
		for _, d := range l.ini.defaults {
			m[d.key] = l.interpolate(nil, d, false)
		}
		view["DEFAULT"] = m
	}
	for i := range l.ini.sections {
		sec := &l.ini.sections[i]
		if sec.ignored {
			continue
		}
		m := map[string]string{}
		for _, kv := range l.section(sec, nil).kv {
			m[kv.key] = kv.value
		}
		view[sec.name] = m
	}
	for _, ip := range l.inherited {
		if ip.more > 0 {
			l.problems[ip.index].Msg += fmt.Sprintf(" (the same in %d more section%s)", ip.more, plural(ip.more))
		}
	}
	return view, l.problems, l.hints
}

// pyCase is a testdata/python/NAME.want file: what Python's configparser
// reads from NAME.cfg, and what checker reports about it.
type pyCase struct {
	refuses bool // Python's read() raises
	// sections maps a section to its keys: Python's value (a JSON string),
	// "~JSON" for a value Python refuses with InterpolationSyntaxError and
	// checker keeps as JSON, "!ERROR" for one Python refuses otherwise.
	sections   map[string]map[string]string
	duplicates []string // sections Python reads and checker refuses as duplicates
	errors     []string
	hints      []string
}

func readPyCase(t *testing.T, path string) pyCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := pyCase{sections: map[string]map[string]string{}}
	var cur map[string]string
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		switch {
		case line == "# python: reads":
		case line == "# python: refuses":
			c.refuses = true
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "error: "):
			c.errors = append(c.errors, strings.TrimPrefix(line, "error: "))
		case strings.HasPrefix(line, "hint: "):
			c.hints = append(c.hints, strings.TrimPrefix(line, "hint: "))
		case strings.HasPrefix(line, "["):
			name, dup := strings.CutSuffix(line, " (checker: duplicate)")
			name = name[1 : len(name)-1]
			cur = map[string]string{}
			if dup {
				c.duplicates = append(c.duplicates, name)
			} else {
				c.sections[name] = cur
			}
		default:
			if cur == nil {
				t.Fatalf("%s:%d: key outside a section", path, i+1)
			}
			if k, v, ok := strings.Cut(line, " = "); ok {
				cur[k] = v
			} else if k, v, ok := strings.Cut(line, " ~ "); ok {
				cur[k] = "~" + v
			} else if k, v, ok := strings.Cut(line, " ! "); ok {
				cur[k] = "!" + v
			} else {
				t.Fatalf("%s:%d: cannot read %q", path, i+1, line)
			}
		}
	}
	return c
}

// matchAll checks that each want is a substring of a different problem and
// that there are no other problems.
func matchAll(t *testing.T, what string, ps Problems, wants []string) {
	t.Helper()
	got := make([]string, len(ps))
	for i, p := range ps {
		q := p
		q.File, q.Line = "", 0
		got[i] = fmt.Sprintf("%d%s", p.Line, q.String())
	}
	used := make([]bool, len(got))
next:
	for _, w := range wants {
		for i, g := range got {
			if !used[i] && strings.Contains(g, w) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("no %s matches %q", what, w)
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected %s %q", what, g)
		}
	}
}

// TestPythonCases reads every testdata/python/*.cfg and compares what the
// reader makes of it with the .want file beside it, whose values are those
// Python's configparser gives (testdata/python/confirm.py checks them
// against Python; this test does not run Python).
func TestPythonCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "python", "*.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d cases; is testdata/python missing?", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".cfg")
		t.Run(name, func(t *testing.T) {
			want := readPyCase(t, strings.TrimSuffix(file, ".cfg")+".want")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			view, problems, hints := pyView(data)
			matchAll(t, "problem", problems, want.errors)
			matchAll(t, "hint", hints, want.hints)
			if want.refuses && len(want.errors) == 0 {
				t.Error("Python refuses this file, but the case expects no problem")
			}
			for _, d := range want.duplicates {
				if _, ok := view[d]; ok {
					t.Errorf("[%s] was read; want it refused as a duplicate", d)
				}
			}
			for sec, keys := range want.sections {
				got, ok := view[sec]
				if !ok {
					t.Errorf("no section [%s]; have %v", sec, sortedKeys(view))
					continue
				}
				for k, w := range keys {
					g, ok := got[k]
					if !ok {
						t.Errorf("[%s] has no key %q", sec, k)
						continue
					}
					if strings.HasPrefix(w, "!") {
						continue // Python raises; the problem is in want.errors
					}
					var v string
					if err := json.Unmarshal([]byte(strings.TrimPrefix(w, "~")), &v); err != nil {
						t.Fatalf("[%s] %s: bad JSON %s: %v", sec, k, w, err)
					}
					if g != v {
						t.Errorf("[%s] %s = %q, want %q", sec, k, g, v)
					}
				}
				if !want.refuses {
					for k := range got {
						if _, ok := keys[k]; !ok {
							t.Errorf("[%s] has key %q = %q, which Python does not", sec, k, got[k])
						}
					}
				}
			}
			if !want.refuses {
				for sec := range view {
					if _, ok := want.sections[sec]; !ok {
						t.Errorf("section [%s] read, which Python does not", sec)
					}
				}
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestPyWhitespace(t *testing.T) {
	// The characters Python's str.isspace() accepts, from
	// [hex(c) for c in range(0x110000) if chr(c).isspace()].
	spaces := []rune{0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
		0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
		0x2028, 0x2029, 0x202f, 0x205f, 0x3000}
	want := map[rune]bool{}
	for _, r := range spaces {
		want[r] = true
	}
	for r := rune(0); r <= 0x3100; r++ {
		if pyIsSpace(r) != want[r] {
			t.Errorf("pyIsSpace(%U) = %v", r, !want[r])
		}
	}
	for _, tc := range []struct{ in, trim string }{
		{"", ""},
		{" \t a b \x1f\u3000", "a b"},
		{"\u00a0\u2028x\u0085", "x"},
		{"\u200bx", "\u200bx"}, // zero width space is not whitespace
		{"\xff ", "\xff"},
	} {
		if got := pyTrim(tc.in); got != tc.trim {
			t.Errorf("pyTrim(%q) = %q, want %q", tc.in, got, tc.trim)
		}
	}
	for _, tc := range []struct {
		in     string
		indent int
	}{{"x", 0}, {"  x", 2}, {"\tx", 1}, {"\u00a0x", 1}, {"\u3000 x", 2}, {"   ", 0}} {
		if got := pyIndent(tc.in); got != tc.indent {
			t.Errorf("pyIndent(%q) = %d, want %d", tc.in, got, tc.indent)
		}
	}
}

func TestReference(t *testing.T) {
	for _, tc := range []struct {
		in, name, after string
		ok              bool
	}{
		{"%(a)s", "a", "", true},
		{"%(a b)sx", "a b", "x", true},
		{"%(a\nb)s", "a\nb", "", true},
		{"%()s", "", "", false},
		{"%(a)", "", "", false},
		{"%(a)d", "", "", false},
		{"%(a", "", "", false},
		{"%a", "", "", false},
		{"%", "", "", false},
	} {
		name, after, ok := reference(tc.in)
		if name != tc.name || after != tc.after || ok != tc.ok {
			t.Errorf("reference(%q) = %q, %q, %v; want %q, %q, %v", tc.in, name, after, ok, tc.name, tc.after, tc.ok)
		}
	}
}
