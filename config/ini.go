package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the settings reader: it reads a file exactly as Python's
// configparser.ConfigParser() with its default arguments reads it, because
// settings files written for the earlier Python tool must keep their
// meaning. The rules (Lib/configparser.py, RawConfigParser._read):
//
//   - Lines end at "\n", "\r\n" or "\r" (Python opens the file with
//     universal newlines).
//   - A line whose stripped text starts with '#' or ';' is a comment,
//     wherever it stands, also between the lines of a multi-line value.
//     There are no inline comments.
//   - A line indented deeper than the line that started the current option
//     continues its value. An empty line inside a value is kept
//     (empty_lines_in_values); trailing ones go when the lines are joined
//     with "\n" and the result is right-stripped.
//   - "[NAME]" starts a section: NAME runs to the last ']' and is not
//     trimmed. [DEFAULT] holds fallbacks for every section.
//   - "key = value" and "key: value" set an option; the first '=' or ':'
//     delimits. Keys are lower-cased; both sides are stripped of whitespace
//     as Python's str.strip() sees it.
//   - Values are interpolated when read (BasicInterpolation, interp.go).
//
// Where Python stops at the first error, this reader reports every problem
// with its line and goes on, so that one run of `config validate` shows
// them all.

// located is a problem or a hint found while reading, before the loader
// attaches the file name.
type located struct {
	line    int
	section string
	key     string
	msg     string
}

// iniOption is one "key = value" as read.
type iniOption struct {
	key  string // lower-cased
	line int
	// raw is the value before interpolation. While reading it holds the
	// first line, and more (when not 0) is 1 + the index in iniFile.more of
	// the continuation lines ("" for an empty one); join makes raw the
	// whole value. Most values have one line: they carry no slice.
	raw  string
	more int
}

// iniSection is one section of the file.
type iniSection struct {
	name string
	line int
	// first and end delimit the section's options in iniFile.opts: a
	// section is written in one piece (a second header of the same name is
	// a duplicate, read into a throwaway section). [DEFAULT], which may
	// have several headers, keeps its options in iniFile.defaults instead.
	first, end int
	ignored    bool           // a duplicate: read, then left out
	keyIndex   map[string]int // key → index in its options, once there are many
}

// iniFile is a settings file as read.
type iniFile struct {
	sections []iniSection // in file order, without [DEFAULT]
	opts     []iniOption
	// defaults are the options of [DEFAULT]; defaultLine is the line of its
	// first header (0: none).
	defaults     []iniOption
	defaultIndex map[string]int
	defaultLine  int
	byName       map[string]int // lower-cased section name → index in sections
	more         [][]string     // continuation lines, see iniOption.more
	problems     []located
	hints        []located
}

// maxSettingsSize bounds what Load reads: a settings file with a million
// jobs stays well below it, and a wrong path (/dev/zero, a disk image)
// fails fast instead of filling memory.
const maxSettingsSize = 64 << 20

// maxUTF8Problems is how many lines of bad UTF-8 are reported one by one:
// a binary file gets a short report, not one problem per line.
const maxUTF8Problems = 5

// indexedKeys is the size from which a section finds duplicate keys with a
// map rather than by scanning its keys.
const indexedKeys = 16

// optRef points at the option that continuation lines extend: an index into
// a slice that may still grow (a pointer would go stale).
type optRef struct {
	slice *[]iniOption
	i     int
}

func (r optRef) get() *iniOption { return &(*r.slice)[r.i] }

// continueWith adds a continuation line to the option r points at.
func (f *iniFile) continueWith(r optRef, text string) *iniOption {
	o := r.get()
	if o.more == 0 {
		f.more = append(f.more, nil)
		o.more = len(f.more)
	}
	f.more[o.more-1] = append(f.more[o.more-1], text)
	return o
}

// readINI reads data as configparser does. It never fails: what it cannot
// read becomes a problem with its line.
func readINI(data []byte) *iniFile {
	f := &iniFile{}
	text := strings.TrimPrefix(string(data), "\ufeff") // a UTF-8 byte order mark
	validUTF8 := utf8.ValidString(text)
	hasCR := strings.IndexByte(text, '\r') >= 0
	// Size the tables once: growing them while reading 100,000 sections
	// would copy them a dozen times.
	lines := strings.Count(text, "\n") + 1
	headers := strings.Count(text, "\n[") + 1
	f.sections = make([]iniSection, 0, headers)
	f.opts = make([]iniOption, 0, max(lines-2*headers, 0)+headers)
	f.byName = make(map[string]int, headers)

	const (
		none      = -2 // before the first section
		inDefault = -1 // in [DEFAULT]
	)
	var (
		cur         = none // index into f.sections, or none, or inDefault
		opt         optRef // opt.slice == nil: no option to continue
		scratch     []iniOption
		indentLevel int
		skipping    bool // after a broken section header, until the next one
		orphans     int  // lines before the first section, after the first one
		orphanProb  = -1 // index in f.problems of the first such line
		badUTF8     int
		lineno      int
	)
	sectionName := func() string {
		switch cur {
		case none:
			return ""
		case inDefault:
			return "DEFAULT"
		}
		return f.sections[cur].name
	}
	for pos := 0; pos < len(text); {
		// Cut the next line, ending at \n, \r\n or \r.
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			end = len(text) - pos
		}
		line := text[pos : pos+end]
		next := pos + end + 1
		if hasCR {
			if i := strings.IndexByte(line, '\r'); i >= 0 {
				line = line[:i]
				next = pos + i + 1
				if next < len(text) && text[next] == '\n' {
					next++
				}
			}
		}
		pos = next
		lineno++

		badLine := -1 // index in f.problems of this line's UTF-8 problem, to name its key
		if !validUTF8 && !utf8.ValidString(line) {
			badUTF8++
			if badUTF8 <= maxUTF8Problems {
				badLine = len(f.problems)
				f.problems = append(f.problems, located{line: lineno, section: sectionName(), msg: utf8Problem(line)})
			}
		}

		value := pyTrim(line)
		if value == "" {
			// A blank line belongs to the value being read: kept inside it,
			// stripped from its end.
			if opt.slice != nil {
				f.continueWith(opt, "")
			}
			continue
		}
		if value[0] == '#' || value[0] == ';' {
			continue // a comment, also inside a value
		}
		indent := pyIndent(line)
		if opt.slice != nil && indent > indentLevel {
			o := f.continueWith(opt, value)
			if badLine >= 0 {
				f.problems[badLine].key = o.key
			}
			if cur != none && !f.ignored(cur) {
				f.hintInlineComment(lineno, sectionName(), o.key, value)
			}
			continue
		}
		indentLevel = indent

		if value[0] == '[' {
			opt = optRef{}
			name, ok := sectionHeader(value)
			if !ok {
				msg := "section header " + quote(value) + " has no closing ']'"
				if strings.HasPrefix(value, "[]") {
					msg = "section header " + quote(value) + " has no name"
				}
				f.problems = append(f.problems, located{line: lineno, msg: msg})
				skipping = true
				continue
			}
			if trimmed := strings.TrimSpace(name); trimmed != name && trimmed != "" {
				// configparser keeps the spaces in the name, where nobody
				// would look for them (checker run ' tcp:db ').
				f.problems = append(f.problems, located{line: lineno, msg: "section name " + quote(name) + " has spaces around it: write it without them"})
			} else if r, col, bad := controlRune(name); bad {
				f.problems = append(f.problems, located{line: lineno, msg: fmt.Sprintf("section name %s holds a control or invisible character: %U at column %d", quote(name), r, col+1)})
			}
			skipping = false
			cur = f.startSection(name, lineno)
			continue
		}
		if skipping {
			continue // the broken header's problem covers its lines
		}
		i := indexDelimiter(value)
		if cur == none {
			if orphanProb >= 0 {
				orphans++
				continue
			}
			p := located{line: lineno, msg: "line outside any [section]: " + quote(value)}
			if i >= 0 {
				p.key, p.msg = pyRTrim(value[:i]), "key outside any [section]"
			}
			orphanProb = len(f.problems)
			f.problems = append(f.problems, p)
			continue
		}
		if i < 0 {
			// Python keeps the option before a bad line current: lines
			// indented below the bad one still continue it.
			f.problems = append(f.problems, located{line: lineno, section: sectionName(), msg: "line has no '=' or ':': " + quote(value)})
			continue
		}
		written := pyRTrim(value[:i])
		key := strings.ToLower(written)
		val := pyLTrim(value[i+1:])
		if badLine >= 0 {
			f.problems[badLine].key = written
		}
		if key == "" {
			f.problems = append(f.problems, located{line: lineno, section: sectionName(), msg: "line has an empty key: " + quote(value)})
			opt = optRef{} // Python's empty option name takes no continuation lines
			continue
		}
		slice, index := f.optionsOf(cur)
		if first := findKey(*slice, firstOf(f, cur), *index, key); first >= 0 {
			f.problems = append(f.problems, located{line: lineno, section: sectionName(), key: written,
				msg: "duplicate key (first at line " + strconv.Itoa((*slice)[first].line) + ")"})
			// Its continuation lines go to a throwaway option.
			scratch = append(scratch[:0], iniOption{key: key, line: lineno})
			opt = optRef{slice: &scratch}
			continue
		}
		*slice = append(*slice, iniOption{key: key, line: lineno, raw: val})
		n := len(*slice)
		if *index != nil || n-firstOf(f, cur) > indexedKeys {
			addIndex(index, *slice, firstOf(f, cur), n)
		}
		if cur >= 0 {
			f.sections[cur].end = n
		}
		opt = optRef{slice: slice, i: n - 1}
		if !f.ignored(cur) {
			f.hintInlineComment(lineno, sectionName(), key, val)
		}
	}
	if orphans > 0 {
		f.problems[orphanProb].msg += fmt.Sprintf(" (and %d more lines before the first section)", orphans)
	}
	if badUTF8 > maxUTF8Problems {
		f.problems = append(f.problems, located{line: lineno, msg: fmt.Sprintf("%d more lines are not valid UTF-8: is this a settings file?", badUTF8-maxUTF8Problems)})
	}
	f.join(f.opts)
	f.join(f.defaults)
	f.more = nil
	return f
}

// optionsOf returns the slice that holds section cur's options and its key
// index.
func (f *iniFile) optionsOf(cur int) (*[]iniOption, *map[string]int) {
	if cur < 0 {
		return &f.defaults, &f.defaultIndex
	}
	return &f.opts, &f.sections[cur].keyIndex
}

// firstOf is where section cur's options start in the slice optionsOf
// returns.
func firstOf(f *iniFile, cur int) int {
	if cur < 0 {
		return 0
	}
	return f.sections[cur].first
}

func (f *iniFile) ignored(cur int) bool { return cur >= 0 && f.sections[cur].ignored }

// findKey returns the index in opts of key among the current section's
// options, opts[first:] (the current section's options are always the last
// ones), or -1. A large section has an index; a small one is scanned.
func findKey(opts []iniOption, first int, index map[string]int, key string) int {
	if index != nil {
		if i, ok := index[key]; ok {
			return i
		}
		return -1
	}
	for i := first; i < len(opts); i++ {
		if opts[i].key == key {
			return i
		}
	}
	return -1
}

// addIndex records opts[first:n] in *index, creating it on first use.
func addIndex(index *map[string]int, opts []iniOption, first, n int) {
	if *index == nil {
		*index = make(map[string]int, n-first)
		for i := first; i < n; i++ {
			(*index)[opts[i].key] = i
		}
		return
	}
	(*index)[opts[n-1].key] = n - 1
}

// indexDelimiter returns the index of the first '=' or ':' in s, or -1.
func indexDelimiter(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' || s[i] == ':' {
			return i
		}
	}
	return -1
}

// sectionHeader matches configparser's SECTCRE, r"\[(?P<header>.+)\]",
// against a stripped line: the name runs from after '[' to the last ']',
// untrimmed, and is not empty. Text after the last ']' is ignored.
func sectionHeader(value string) (string, bool) {
	j := strings.LastIndexByte(value, ']')
	if j < 2 {
		return "", false
	}
	return value[1:j], true
}

// startSection begins the section of a header at lineno and returns the
// new current section. A second [DEFAULT] continues the first, as in
// Python; any other name seen before (also in another case) is a duplicate,
// read into a throwaway section so that its lines are not blamed on
// another one.
func (f *iniFile) startSection(name string, lineno int) int {
	if name == "DEFAULT" {
		if f.defaultLine == 0 {
			f.defaultLine = lineno
		}
		return -1
	}
	sec := iniSection{name: name, line: lineno, first: len(f.opts), end: len(f.opts)}
	lname := strings.ToLower(name)
	if i, dup := f.byName[lname]; dup {
		first := f.sections[i]
		msg := "duplicate section (first at line " + strconv.Itoa(first.line) + ")"
		if first.name != name {
			msg = "duplicate section: [" + first.name + "] at line " + strconv.Itoa(first.line) + " differs only by case"
		}
		f.problems = append(f.problems, located{line: lineno, section: name, msg: msg})
		sec.ignored = true
	} else {
		f.byName[lname] = len(f.sections)
	}
	f.sections = append(f.sections, sec)
	return len(f.sections) - 1
}

// join makes each option's raw value whole: Python's
// '\n'.join(lines).rstrip().
func (f *iniFile) join(opts []iniOption) {
	for i := range opts {
		o := &opts[i]
		if o.more == 0 {
			continue // one line, already stripped
		}
		more := f.more[o.more-1]
		n := len(o.raw)
		for _, m := range more {
			n += 1 + len(m)
		}
		var b strings.Builder
		b.Grow(n)
		b.WriteString(o.raw)
		for _, m := range more {
			b.WriteByte('\n')
			b.WriteString(m)
		}
		o.raw, o.more = pyRTrim(b.String()), 0
	}
}

// controlRune finds the first control or invisible formatting character
// of s (a line break, a tab, ESC, U+202E, a zero-width space), which has no
// place in a name: it returns it and its column (from 1).
func controlRune(s string) (rune, int, bool) {
	col := 0
	for _, r := range s {
		col++
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r) {
			return r, col, true
		}
	}
	return 0, 0, false
}

// utf8Problem describes the first invalid byte of line.
func utf8Problem(line string) string {
	col := 1
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		if r == utf8.RuneError && size <= 1 {
			msg := fmt.Sprintf("not valid UTF-8: byte 0x%02X at column %d", line[i], col)
			if line[i] >= 0xA0 {
				// A lone byte of the upper half, as in é = 0xE9: Latin-1.
				msg += " (Latin-1? convert the file: iconv -f latin1 -t utf-8)"
			}
			return msg
		}
		i += size
		col++
	}
	return "not valid UTF-8"
}

// quote quotes text from the file for a message, cut to a readable length
// (a huge line must not make a huge message).
func quote(s string) string {
	if len(s) > 80 {
		cut := 77
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}
