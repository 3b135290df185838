package config

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// rawSection is a section as written in the file: its name in its original
// case, where it starts, and where each key stands. It is used for line
// numbers, duplicate detection and original-case job names; the values
// themselves come from viper.
type rawSection struct {
	Name     string
	Line     int
	Keys     []string       // lower-cased, in file order, without duplicates
	KeyLines map[string]int // lower-cased key → line of its first appearance
}

type scanProblem struct {
	Line    int
	Section string
	Key     string
	Msg     string
}

// scan walks the INI text the way Python's configparser reads it: comment
// lines start with '#' or ';', a line starting with whitespace continues the
// previous value, "key = value" and "key: value" both work. It reports
// duplicate sections and keys (also those differing only by case), which the
// INI decoder would otherwise merge silently.
func scan(data []byte) ([]*rawSection, []scanProblem) {
	var (
		sections []*rawSection
		problems []scanProblem
		cur      *rawSection
		seen     = map[string]*rawSection{} // lower-cased name → first section
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if cur != nil && len(cur.Keys) > 0 {
				continue // continuation of the previous value
			}
		}
		if trimmed[0] == '[' {
			// Read the name exactly as the INI decoder and Python's
			// configparser do (up to the last ']', untrimmed); a name that
			// differs from theirs would silently lose the section's values.
			end := strings.LastIndexByte(trimmed, ']')
			if end < 0 {
				problems = append(problems, scanProblem{Line: line, Msg: "section header " + quote(trimmed) + " has no closing ']'"})
				cur = nil
				continue
			}
			name := trimmed[1:end]
			cur = &rawSection{Name: name, Line: line, KeyLines: map[string]int{}}
			if first, dup := seen[strings.ToLower(name)]; dup {
				msg := "duplicate section (first at line " + strconv.Itoa(first.Line) + ")"
				if first.Name != name {
					msg = "duplicate section: [" + first.Name + "] at line " + strconv.Itoa(first.Line) + " differs only by case"
				}
				problems = append(problems, scanProblem{Line: line, Section: name, Msg: msg})
				// Keep scanning its keys into a throwaway section so the
				// duplicate's own lines are not blamed on another one.
				continue
			}
			seen[strings.ToLower(name)] = cur
			sections = append(sections, cur)
			continue
		}
		i := strings.IndexAny(trimmed, "=:")
		key := trimmed
		if i >= 0 {
			key = strings.TrimSpace(trimmed[:i])
		}
		if cur == nil {
			problems = append(problems, scanProblem{Line: line, Key: key, Msg: "key outside any [section]"})
			continue
		}
		if i < 0 {
			problems = append(problems, scanProblem{Line: line, Section: cur.Name, Key: key, Msg: "line has no '=': " + quote(trimmed)})
			continue
		}
		if key == "" {
			problems = append(problems, scanProblem{Line: line, Section: cur.Name, Msg: "line has an empty key: " + quote(trimmed)})
			continue
		}
		lk := strings.ToLower(key)
		if first, dup := cur.KeyLines[lk]; dup {
			problems = append(problems, scanProblem{Line: line, Section: cur.Name, Key: key, Msg: "duplicate key (first at line " + strconv.Itoa(first) + ")"})
			continue
		}
		cur.KeyLines[lk] = line
		cur.Keys = append(cur.Keys, lk)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, scanProblem{Line: line + 1, Msg: "cannot read: " + err.Error()})
	}
	return sections, problems
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return "\"" + s + "\""
}
