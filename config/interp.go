package config

import (
	"errors"
	"fmt"
	"strings"
)

// Interpolation as configparser's BasicInterpolation does it when a value is
// read: "%(key)s" is replaced by the value of key in the same section or, if
// the section has no such key, in [DEFAULT]; "%%" is a literal '%'. A value
// that is put in may itself hold references, up to maxInterpolationDepth
// levels. A '%' followed by anything else makes Python refuse the value; it
// is kept literally here, with a hint, because a settings file that worked
// with checker before (a password with a '%' in it) must not stop working.

// maxInterpolationDepth is configparser's MAX_INTERPOLATION_DEPTH.
const maxInterpolationDepth = 10

// Interpolation is bounded, where Python's is not: references that
// multiply at every level (a value with ten references to a value with ten
// references, ten levels deep), or a huge [DEFAULT] value taken into every
// one of 100,000 sections, would otherwise take forever or fill memory.
// maxInterpolated is how much a value may grow when its references are put
// in; interpolationRefs and interpolationBytes bound the references
// resolved and the bytes written while reading one file.
const (
	maxInterpolated    = 1 << 20
	interpolationRefs  = 1 << 22
	interpolationBytes = 256 << 20
)

// interpError is an interpolation failure with a fixed message; a constant,
// so that no error value is built at start-up.
type interpError string

func (e interpError) Error() string { return string(e) }

const (
	errDepth interpError = "references nest deeper than 10 levels: does a key refer to itself, directly or through others?"
	errSize  interpError = "the value grows by more than 1 MiB when its references are put in"
	errSteps interpError = "putting in references takes too much work: references that multiply at every level, or a huge value taken in everywhere?"
)

// missingKeyError is a reference to a key that neither the section nor
// [DEFAULT] has.
type missingKeyError struct{ key, section string }

func (e *missingKeyError) Error() string {
	where := "[" + e.section + "] or [DEFAULT]"
	if e.section == "DEFAULT" {
		where = "[DEFAULT]"
	}
	return fmt.Sprintf("%%(%s)s refers to %q, which is not set in %s (write %%%% for a literal %%)", e.key, e.key, where)
}

// interpolator expands values, sharing one budget over a whole file.
type interpolator struct {
	refs, bytes int // left for the file
	limit       int // the size the value being expanded may reach
}

func newInterpolator() interpolator {
	return interpolator{refs: interpolationRefs, bytes: interpolationBytes}
}

// expand interpolates raw in a section whose values lookup returns (raw,
// as read). lone reports a '%' kept literally. On an error the value is
// unusable and the caller keeps raw.
func (ip *interpolator) expand(section, raw string, lookup func(string) (string, bool)) (val string, lone bool, err error) {
	if strings.IndexByte(raw, '%') < 0 {
		return raw, false, nil
	}
	var b strings.Builder
	ip.limit = len(raw) + maxInterpolated
	err = ip.some(&b, raw, lookup, 1, &lone)
	var missing *missingKeyError
	if errors.As(err, &missing) {
		missing.section = section
	}
	return b.String(), lone, err
}

// write appends text to the value within the bounds.
func (ip *interpolator) write(b *strings.Builder, text string) error {
	if b.Len()+len(text) > ip.limit {
		return errSize
	}
	if ip.bytes -= len(text); ip.bytes < 0 {
		return errSteps
	}
	b.WriteString(text)
	return nil
}

// some is configparser's BasicInterpolation._interpolate_some, except for
// the lone '%'.
func (ip *interpolator) some(b *strings.Builder, rest string, lookup func(string) (string, bool), depth int, lone *bool) error {
	if depth > maxInterpolationDepth {
		return errDepth
	}
	for rest != "" {
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			return ip.write(b, rest)
		}
		if err := ip.write(b, rest[:p]); err != nil {
			return err
		}
		rest = rest[p:]
		if len(rest) >= 2 && rest[1] == '%' {
			if err := ip.write(b, "%"); err != nil {
				return err
			}
			rest = rest[2:]
			continue
		}
		if name, after, ok := reference(rest); ok {
			if ip.refs--; ip.refs < 0 {
				return errSteps
			}
			key := strings.ToLower(name)
			v, found := lookup(key)
			if !found {
				return &missingKeyError{key: key}
			}
			var err error
			if strings.IndexByte(v, '%') >= 0 {
				err = ip.some(b, v, lookup, depth+1, lone)
			} else {
				err = ip.write(b, v)
			}
			if err != nil {
				return err
			}
			rest = after
			continue
		}
		// A lone '%': Python raises InterpolationSyntaxError.
		*lone = true
		if err := ip.write(b, "%"); err != nil {
			return err
		}
		rest = rest[1:]
	}
	return nil
}

// reference matches configparser's _KEYCRE, r"%\(([^)]+)\)s", at the start
// of s: the key name and the text after the reference.
func reference(s string) (name, after string, ok bool) {
	if len(s) < 2 || s[1] != '(' {
		return "", "", false
	}
	end := strings.IndexByte(s[2:], ')')
	if end <= 0 || 2+end+1 >= len(s) || s[2+end+1] != 's' {
		return "", "", false
	}
	return s[2 : 2+end], s[2+end+2:], true
}

// loneHint is the hint for a value whose '%' is kept literally.
const loneHint = "a '%' that is not %% or %(key)s is kept as written; write %% for a literal % (Python's configparser refuses this value)"

// commentLike returns the index in value of the first '#' or ';' that
// starts it or follows whitespace (what looks like an inline comment), or
// -1.
func commentLike(value string) int {
	for j := 0; j < len(value); j++ {
		if c := value[j]; (c == '#' || c == ';') && (j == 0 || len(pyRTrim(value[:j])) != j) {
			return j
		}
	}
	return -1
}

// InlineCommentHint explains a value that is invalid because of what looks
// like an inline comment: settings.cfg has none, so "hour  # reminder" is
// the whole value. It returns "" when the value holds no '#' or ';' at its
// start or after whitespace, else a parenthesised sentence, with a leading
// space, to append to the error message:
//
//	fmt.Errorf("%q is not a valid mode%s", v, config.InlineCommentHint(v))
func InlineCommentHint(value string) string {
	i := commentLike(value)
	if i < 0 {
		return ""
	}
	tail := value[i:]
	if nl := strings.IndexByte(tail, '\n'); nl >= 0 {
		tail = tail[:nl]
	}
	return " (inline comments are not comments: " + quote(tail) + " is part of the value; put comments on a line of their own)"
}

// hintInlineComment records a hint when one line of a value holds what
// looks like an inline comment. The value is not quoted where it may be a
// secret.
func (f *iniFile) hintInlineComment(lineno int, section, key, text string) {
	i := commentLike(text)
	if i < 0 {
		return
	}
	msg := "inline comments are not comments: " + quote(text[i:]) + " is part of the value; put comments on a line of their own"
	if secretKey(section, key) {
		msg = fmt.Sprintf("inline comments are not comments: the %q and what follows it are part of the value (not shown: it may be a secret); put comments on a line of their own", text[i])
	}
	f.hints = append(f.hints, located{line: lineno, section: section, key: key, msg: msg})
}

// secretKey reports whether a value may hold a secret, which messages must
// not quote: passwords, tokens, URLs with credentials, and [DEFAULT] values,
// which other values may take in through %(key)s.
func secretKey(section, key string) bool {
	switch section {
	case "DEFAULT", "channels":
		return true
	case "email":
		return key == "pass"
	case "serve":
		return key == "push_token" || key == "ui_token"
	case "heartbeat":
		return key == "redis"
	}
	return false
}
