package record

import (
	"bytes"
	"fmt"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// Encoder turns events into the bytes sent to Kinesis. It holds only its options,
// so one Encoder is safe for concurrent use.
//
// The JSON of a record keeps the map's key order. Strings are escaped per RFC 8259
// ('"', '\' and control characters; '/' and non-ASCII kept), each byte of invalid
// UTF-8 becomes U+FFFD, bin is a string, integers are exact, floats are the shortest
// text that parses back to the same float32 or float64 (as encoding/json writes
// them: 1e+21, 1e-7, -0), NaN, infinities, nil and every ext (timestamps included)
// are null. A map key that is not a str or bin is its JSON text in quotes (5 -> "5",
// [1,"a"] -> "[1,\"a\"]"), except that an array or map key inside such a key is
// ErrNestedKey.
//
// The options apply in this order: data_keys picks top-level fields by their
// names in the record; replace_dots rewrites the names of every map key left; a
// field whose name, so rewritten, is the time key's (rewritten too) is dropped, and
// the time is added last. See Options.
type Encoder struct {
	dataKeys    []string           // top-level names to keep; nil: all
	dots        string             // replace_dots, JSON-escaped; "": off
	timeKeyText []byte             // `"<time_key>"` as written: escaped, dots replaced
	timeKeyJSON []byte             // timeKeyText + ':'
	timeFormat  *timefmt.Formatter // nil: no time_key
	logKey      string
	newline     bool
}

// NewEncoder returns an encoder for o.
func NewEncoder(o Options) *Encoder {
	e := &Encoder{logKey: o.LogKey, newline: o.AppendNewline}
	if o.ReplaceDots != "" {
		e.dots = string(appendEscaped(nil, []byte(o.ReplaceDots)))
	}
	if o.LogKey == "" {
		for _, k := range o.DataKeys {
			if k != "" {
				e.dataKeys = append(e.dataKeys, k)
			}
		}
	}
	if o.TimeKey != "" && o.TimeFormat != nil && o.LogKey == "" {
		e.timeFormat = o.TimeFormat
		e.timeKeyText = appendKeyString(nil, []byte(o.TimeKey), e.dots)
		e.timeKeyJSON = append(append([]byte(nil), e.timeKeyText...), ':')
	}
	return e
}

// Append appends ev's encoding to dst and returns the extended buffer. On error it
// returns dst as it was given (same length), and the caller can count the record and
// go on with the next event: every error concerns that record only. They are
// ErrNotMap, ErrMissingLogKey, ErrTooDeep, ErrNestedKey, and, for a body that is not
// valid msgpack (a Decoder never returns one), errors wrapping ErrTruncated or
// ErrMalformed.
func (e *Encoder) Append(dst []byte, ev *Event) ([]byte, error) {
	start := len(dst)
	var err error
	if e.logKey != "" {
		dst, err = e.appendLogKey(dst, ev.Body)
	} else {
		dst, err = e.appendRecord(dst, ev)
	}
	if err != nil {
		return dst[:start], err
	}
	if e.newline {
		dst = append(dst, '\n')
	}
	return dst, nil
}

// appendRecord appends the JSON object of the record map, with the time key last.
func (e *Encoder) appendRecord(dst []byte, ev *Event) ([]byte, error) {
	dst, j, err := e.appendRecordPrefix(dst, ev.Body, ev)
	if err == nil && j != len(ev.Body) {
		err = bodyError(j, fmt.Errorf("%w: %d bytes after the record", ErrMalformed, len(ev.Body)-j))
	}
	return dst, err
}

// appendRecordPrefix is appendRecord for the record map at the start of b, which may go on
// after it: it returns the offset in b after the map. ev gives the time.
func (e *Encoder) appendRecordPrefix(dst, b []byte, ev *Event) ([]byte, int, error) {
	h, j, err := readHeader(b, 0)
	if err != nil {
		return dst, j, bodyError(j, err)
	}
	if h.kind != kindMap {
		return dst, j, ErrNotMap
	}
	dst = append(dst, '{')
	first := true
	for k := 0; k < h.n; k++ {
		var kh header
		var kj int
		if start, end, ok := strAt(b, j); ok { // the commonest key
			kh, kj = header{kind: kindStr, n: end - start}, start
		} else if kh, kj, err = readHeader(b, j); err != nil {
			return dst, kj, bodyError(kj, err)
		}
		if e.dataKeys != nil && !e.keep(b, kh, kj) {
			if j, err = skipHeader(b, kh, kj); err == nil {
				j, err = skip(b, j)
			}
			if err != nil {
				return dst, j, bodyError(j, err)
			}
			continue
		}
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		keyStart := len(dst)
		if dst, j, err = appendKeyHeader(dst, b, kh, kj, 1, e.dots, false); err != nil {
			return dst, j, bodyError(j, err)
		}
		if e.timeFormat != nil && bytes.Equal(dst[keyStart:], e.timeKeyText) {
			// The formatted time replaces the record's own field. Comparing the
			// key as written catches every key JSON would read as the same name:
			// a bin, a number, a name that replace_dots made equal.
			dst = dst[:mark]
			if j, err = skip(b, j); err != nil {
				return dst, j, bodyError(j, err)
			}
			continue
		}
		first = false
		dst = append(dst, ':')
		if dst, j, err = appendValue(dst, b, j, 1, e.dots, false); err != nil {
			return dst, j, bodyError(j, err)
		}
	}
	if e.timeFormat != nil {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, e.timeKeyJSON...)
		dst = e.appendTime(dst, ev)
	}
	return append(dst, '}'), j, nil
}

// keep reports whether data_keys names the top-level key with header h, read up to
// b[j]. Only str and bin keys have names; the few configured names are scanned in
// order, which for a handful of keys beats any map, and does not allocate.
func (e *Encoder) keep(b []byte, h header, j int) bool {
	if h.kind != kindStr && h.kind != kindBin {
		return false
	}
	name := b[j : j+h.n]
	for _, k := range e.dataKeys {
		if string(name) == k {
			return true
		}
	}
	return false
}

// appendTime appends the event's formatted time as a JSON string. A format made of
// plain text needs no escaping; one with quotes or control characters gets it.
func (e *Encoder) appendTime(dst []byte, ev *Event) []byte {
	dst = append(dst, '"')
	start := len(dst)
	dst = e.timeFormat.Append(dst, ev.Sec, ev.Nsec)
	if needsEscape(dst[start:]) {
		text := append([]byte(nil), dst[start:]...)
		dst = appendEscaped(dst[:start], text)
	}
	return append(dst, '"')
}

// appendLogKey appends the value of the top-level key e.logKey: a str or bin as is,
// anything else as JSON. The first key of that name wins.
func (e *Encoder) appendLogKey(dst, b []byte) ([]byte, error) {
	h, j, err := readHeader(b, 0)
	if err != nil {
		return dst, bodyError(j, err)
	}
	if h.kind != kindMap {
		return dst, ErrNotMap
	}
	for k := 0; k < h.n; k++ {
		kh, kj, err := readHeader(b, j)
		if err != nil {
			return dst, bodyError(kj, err)
		}
		match := isKey(b, kh, kj, e.logKey)
		if j, err = skipHeader(b, kh, kj); err != nil {
			return dst, bodyError(j, err)
		}
		if !match {
			if j, err = skip(b, j); err != nil {
				return dst, bodyError(j, err)
			}
			continue
		}
		vh, vj, err := readHeader(b, j)
		if err != nil {
			return dst, bodyError(vj, err)
		}
		if vh.kind == kindStr || vh.kind == kindBin {
			return append(dst, b[vj:vj+vh.n]...), nil
		}
		if dst, j, err = appendValueHeader(dst, b, vh, vj, 0, e.dots, false); err != nil {
			return dst, bodyError(j, err)
		}
		return dst, nil
	}
	return dst, ErrMissingLogKey
}

// isKey reports whether the map key with header h, read up to b[j], is the str or
// bin name.
func isKey(b []byte, h header, j int, name string) bool {
	return (h.kind == kindStr || h.kind == kindBin) && string(b[j:j+h.n]) == name
}

// skipHeader returns the offset after a value whose header h has been read up to
// b[j].
func skipHeader(b []byte, h header, j int) (int, error) {
	switch h.kind {
	case kindStr, kindBin, kindExt:
		return j + h.n, nil
	case kindArray, kindMap:
		n := h.n
		if h.kind == kindMap {
			n *= 2
		}
		var err error
		for ; n > 0; n-- {
			if j, err = skip(b, j); err != nil {
				return j, err
			}
		}
	}
	return j, nil
}

// bodyError locates a malformed-body error.
func bodyError(off int, err error) error {
	if err == ErrTooDeep || err == ErrNestedKey {
		return err
	}
	return fmt.Errorf("record: body offset %d: %w", off, err)
}
