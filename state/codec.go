package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Records are encoded in a small binary form: a kind byte, a record version
// byte, then the fields in a fixed order as varints and length-prefixed
// strings. It is several times faster than JSON for the thousands of job
// records a run writes, and a decoder that meets an unknown version refuses
// the record instead of misreading it.

// maxString bounds one string field, so that a damaged length cannot make
// the decoder allocate gigabytes.
const maxString = 1 << 20

// maxList bounds the entries of one list field.
const maxList = 1 << 16

// encoder appends fields to b.
type encoder struct{ b []byte }

func newEncoder(kind, version byte, sizeHint int) *encoder {
	e := &encoder{b: make([]byte, 0, sizeHint)}
	e.b = append(e.b, kind, version)
	return e
}

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) str(s string) {
	if len(s) > maxString {
		s = truncateUTF8(s, maxString)
	}
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// time stores t as Unix nanoseconds; the zero time is 0. The location is
// not kept: times are shown in the reader's local zone.
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.int(0)
		return
	}
	e.int(t.UnixNano())
}

func (e *encoder) strs(list []string) {
	e.uint(uint64(len(list)))
	for _, s := range list {
		e.str(s)
	}
}

// decoder reads fields back; the first error sticks and later reads return
// zero values, so a record is decoded straight through and checked once.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("record is truncated")

// newDecoder checks the kind and version bytes. Versions above max are
// refused: they come from a newer checker.
func newDecoder(b []byte, kind byte, max byte) (*decoder, byte) {
	d := &decoder{b: b}
	if len(b) < 2 {
		d.err = errTruncated
		return d, 0
	}
	if b[0] != kind {
		d.err = fmt.Errorf("record kind %d where %d was expected", b[0], kind)
		return d, 0
	}
	if b[1] == 0 || b[1] > max {
		d.err = fmt.Errorf("record version %d (this checker reads up to %d)", b[1], max)
		return d, 0
	}
	d.b = b[2:]
	return d, b[1]
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a non-negative int that fits an int.
func (d *decoder) count(what string) int {
	v := d.int()
	if v < 0 || v > math.MaxInt32 {
		d.fail("%s %d is out of range", what, v)
		return 0
	}
	return int(v)
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail("boolean byte %d", v)
	}
	return v == 1
}

func (d *decoder) str() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > maxString || n > uint64(len(d.b)) {
		d.err = errTruncated
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !utf8.ValidString(s) {
		d.fail("string is not valid UTF-8")
		return ""
	}
	return s
}

func (d *decoder) time() time.Time {
	n := d.int()
	if n == 0 || d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (d *decoder) duration() time.Duration {
	v := d.int()
	if v < 0 {
		d.fail("negative duration")
		return 0
	}
	return time.Duration(v)
}

func (d *decoder) strs() []string {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > maxList || n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// done reports the first error, or trailing bytes, which a record of a known
// version never has.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d unexpected bytes after the record", len(d.b))
	}
	return nil
}

// truncateUTF8 cuts s to at most max bytes on a character boundary.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
