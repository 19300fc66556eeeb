// Package timefmt formats record timestamps with strftime patterns, in UTC.
//
// It owns the time_key_format language: every verb of
// github.com/lestrrat-go/strftime (with its '-' and '#' no-padding flags),
// plus %s (seconds since the epoch) and the sub-second verbs of Fluent Bit's C
// plugins: %3N (milliseconds), %9N and %L (nanoseconds). %L means nanoseconds
// here, as in Fluent Bit's C plugins, not milliseconds as in the older Go
// plugin. It does not know about records or where the text goes: Append adds
// the formatted time to a caller's buffer and allocates nothing.
package timefmt

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lestrrat-go/strftime"
)

// Errors returned by Compile, wrapped with the verb and its position.
var (
	// ErrUnknownVerb means a % sequence that no verb matches, such as %Q.
	ErrUnknownVerb = errors.New("timefmt: unknown verb")
	// ErrTrailingPercent means a pattern that ends with a lone % (or %- or %#).
	ErrTrailingPercent = errors.New("timefmt: lone % at the end of the pattern")
)

// segmentKind says how one part of a compiled pattern is formatted.
type segmentKind uint8

const (
	segStrftime segmentKind = iota // a run of lestrrat verbs and literal text
	segUnpadded                    // one lestrrat verb with the '-' or '#' flag
	segMillis                      // %3N
	segNanos                       // %9N, %L
)

// segment is one part of a compiled pattern. Only the field its kind needs is set.
type segment struct {
	kind     segmentKind
	run      *strftime.Strftime // segStrftime
	appender strftime.Appender  // segUnpadded
}

// Formatter is a compiled pattern. It is safe for concurrent use: it is never
// modified after Compile.
type Formatter struct {
	pattern  string
	segments []segment
}

// specs is lestrrat's default specification set with the verbs whose default
// appenders allocate on every call (strconv.Itoa of values >= 100) replaced by
// appending equivalents that give the same bytes, plus %s.
var specs = newSpecs()

func newSpecs() strftime.SpecificationSet {
	ss := strftime.NewSpecificationSet()
	for _, v := range []struct {
		verb byte
		fn   strftime.AppendFunc
	}{
		{'j', appendDayOfYear},
		{'G', appendISOWeekYear},
		{'s', appendUnixSeconds},
	} {
		// Set fails only on an immutable set; NewSpecificationSet's is mutable.
		_ = ss.Set(v.verb, v.fn)
	}
	return ss
}

// Compile parses pattern. An unknown verb or a trailing lone % is an error
// that names the verb and its byte offset; it wraps ErrUnknownVerb or
// ErrTrailingPercent.
func Compile(pattern string) (*Formatter, error) {
	f := &Formatter{pattern: pattern}
	runStart := 0 // start of the pending lestrrat run
	flushRun := func(end int) error {
		if end <= runStart {
			return nil
		}
		run, err := strftime.New(pattern[runStart:end], strftime.WithSpecificationSet(specs))
		if err != nil {
			// Unreachable: every verb of the run was looked up already.
			return fmt.Errorf("timefmt: %w", err)
		}
		f.segments = append(f.segments, segment{kind: segStrftime, run: run})
		return nil
	}
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '%' {
			continue
		}
		if i+1 >= len(pattern) {
			return nil, fmt.Errorf("%w (byte %d)", ErrTrailingPercent, i)
		}
		var (
			seg    segment
			n      int // length of the verb, % included
			single bool
		)
		switch c := pattern[i+1]; {
		case c == 'L':
			seg, n, single = segment{kind: segNanos}, 2, true
		case c == '3' || c == '9':
			if i+2 >= len(pattern) || pattern[i+2] != 'N' {
				return nil, unknownVerb(pattern, i, min(i+3, len(pattern)))
			}
			kind := segMillis
			if c == '9' {
				kind = segNanos
			}
			seg, n, single = segment{kind: kind}, 3, true
		case c == '-' || c == '#':
			if i+2 >= len(pattern) {
				return nil, fmt.Errorf("%w (byte %d)", ErrTrailingPercent, i)
			}
			a, err := specs.Lookup(pattern[i+2])
			if err != nil {
				return nil, unknownVerb(pattern, i, i+3)
			}
			seg, n, single = segment{kind: segUnpadded, appender: a}, 3, true
		default:
			if _, err := specs.Lookup(c); err != nil {
				end := i + 2
				if c >= '0' && c <= '9' && end < len(pattern) {
					end++ // name %6N, not %6
				}
				return nil, unknownVerb(pattern, i, end)
			}
			n = 2 // stays in the lestrrat run
		}
		if single {
			if err := flushRun(i); err != nil {
				return nil, err
			}
			f.segments = append(f.segments, seg)
			runStart = i + n
		}
		i += n - 1
	}
	if err := flushRun(len(pattern)); err != nil {
		return nil, err
	}
	return f, nil
}

// unknownVerb reports pattern[start:end] as an unknown verb.
func unknownVerb(pattern string, start, end int) error {
	return fmt.Errorf("%w %q (byte %d)", ErrUnknownVerb, pattern[start:end], start)
}

// Pattern returns the pattern f was compiled from.
func (f *Formatter) Pattern() string { return f.pattern }

// Append appends the UTC time sec.nsec formatted by f to dst. A nsec of one
// second or more carries into sec, as with time.Unix. It does not allocate
// unless dst must grow.
func (f *Formatter) Append(dst []byte, sec int64, nsec uint32) []byte {
	t := time.Unix(sec, int64(nsec)).UTC()
	for i := range f.segments {
		s := &f.segments[i]
		switch s.kind {
		case segStrftime:
			dst = s.run.FormatBuffer(dst, t)
		case segUnpadded:
			start := len(dst)
			dst = unpad(s.appender.Append(dst, t), start)
		case segMillis:
			dst = appendPadded(dst, uint64(t.Nanosecond()/1e6), 3)
		case segNanos:
			dst = appendPadded(dst, uint64(t.Nanosecond()), 9)
		}
	}
	return dst
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v > 0 || i > len(buf)-width {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[i:]...)
}

// unpad removes the padding from the field dst[start:] in place, exactly as
// lestrrat's no-padding flag does: leading spaces go, a sign stays, leading
// zeros go but one digit always stays. lestrrat formats the field into a
// local array that escapes to the heap on every call; this does not.
func unpad(dst []byte, start int) []byte {
	field := dst[start:]
	i := 0
	for i < len(field) && field[i] == ' ' {
		i++
	}
	out := start
	if i < len(field) && (field[i] == '+' || field[i] == '-') {
		dst[out] = field[i]
		out++
		i++
	}
	j := i
	for j < len(field)-1 && field[j] == '0' {
		j++
	}
	out += copy(dst[out:], field[j:])
	return dst[:out]
}

// appendDayOfYear is lestrrat's %j (001-366) without strconv.Itoa.
func appendDayOfYear(b []byte, t time.Time) []byte {
	return appendPadded(b, uint64(t.YearDay()), 3)
}

// appendISOWeekYear is lestrrat's %G (ISO 8601 week-based year, at least four
// digits, '-' before a negative year) without strconv.Itoa.
func appendISOWeekYear(b []byte, t time.Time) []byte {
	year, _ := t.ISOWeek()
	if year < 0 {
		b = append(b, '-')
		return appendPadded(b, uint64(-int64(year)), 4)
	}
	return appendPadded(b, uint64(year), 4)
}

// appendUnixSeconds is %s, the seconds since the epoch as glibc's strftime
// (and so Fluent Bit's C plugins) print it.
func appendUnixSeconds(b []byte, t time.Time) []byte {
	return strconv.AppendInt(b, t.Unix(), 10)
}
