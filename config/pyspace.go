package config

import "unicode/utf8"

// Whitespace as Python's str.isspace() and the regular expression \s see
// it, which is what configparser strips and measures indentation with. It
// is not Go's unicode.IsSpace: Python also counts the separators
// U+001C..U+001F.

// asciiSpace marks the ASCII bytes Python counts as whitespace.
var asciiSpace = [128]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true,
	0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true, ' ': true}

// pyIsSpace reports whether r is whitespace to Python.
func pyIsSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiSpace[r]
	}
	switch r {
	case 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pyLTrim is Python's str.lstrip().
func pyLTrim(s string) string {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			if !asciiSpace[c] {
				return s
			}
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		if !pyIsSpace(r) {
			return s
		}
		s = s[size:]
	}
	return s
}

// pyRTrim is Python's str.rstrip().
func pyRTrim(s string) string {
	for len(s) > 0 {
		c := s[len(s)-1]
		if c < utf8.RuneSelf {
			if !asciiSpace[c] {
				return s
			}
			s = s[:len(s)-1]
			continue
		}
		r, size := utf8.DecodeLastRuneInString(s)
		if !pyIsSpace(r) {
			return s
		}
		s = s[:len(s)-size]
	}
	return s
}

// pyTrim is Python's str.strip().
func pyTrim(s string) string { return pyRTrim(pyLTrim(s)) }

// pyIndent is configparser's indentation of a line: the position, in
// characters, of its first non-whitespace character (0 for a blank line).
func pyIndent(line string) int {
	n := 0
	for i := 0; i < len(line); {
		c := line[i]
		if c < utf8.RuneSelf {
			if !asciiSpace[c] {
				return n
			}
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		if !pyIsSpace(r) {
			return n
		}
		i += size
		n++
	}
	return 0
}
