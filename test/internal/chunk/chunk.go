// Package chunk builds Fluent Bit chunks (concatenated msgpack events) in the
// encodings Fluent Bit 4 and 5 write, and the exact JSON the plugin must send
// for each record. It is test support only, written independently of the
// plugin's record package so that the end-to-end tests compare the plugin's
// output with bytes it did not produce.
package chunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Format is how a chunk is written.
type Format int

const (
	// V2Wide is [[time, metadata], record] with 32-bit array, map and string
	// headers and 64-bit integers, as Fluent Bit 4 writes.
	V2Wide Format = iota
	// V2Compact is [[time, metadata], record] with the smallest headers
	// (fixarray, fixmap, fixstr, str8...), as Fluent Bit 5 writes.
	V2Compact
	// Legacy is [time, record] with an integer time (Fluent Bit < 2.1),
	// compact headers.
	Legacy
)

func (f Format) String() string {
	switch f {
	case V2Wide:
		return "v2-wide"
	case V2Compact:
		return "v2-compact"
	case Legacy:
		return "legacy"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Field is one key of a record map.
type Field struct {
	Key   string
	Value any // string, int64, uint64, bool, nil, Map or []any of these
}

// Map is a msgpack map with string keys, in order.
type Map []Field

// Event is one Fluent Bit event.
type Event struct {
	Sec    uint32
	Nsec   uint32
	Record Map
}

// Build returns the chunk holding evs in format f.
func Build(f Format, evs []Event) []byte {
	var b []byte
	for i := range evs {
		b = AppendEvent(b, f, evs[i])
	}
	return b
}

// AppendEvent appends one event in format f.
func AppendEvent(dst []byte, f Format, ev Event) []byte {
	return AppendEventBody(dst, f, ev.Sec, ev.Nsec, f.AppendValue(nil, ev.Record))
}

// AppendEventBody appends an event whose record is the msgpack object body,
// which may be anything (the tests use it to send records that are not maps).
func AppendEventBody(dst []byte, f Format, sec, nsec uint32, body []byte) []byte {
	dst = f.appendArrayHeader(dst, 2)
	if f == Legacy {
		dst = f.appendUint(dst, uint64(sec))
	} else {
		dst = f.appendArrayHeader(dst, 2)
		dst = AppendEventTime(dst, sec, nsec)
		dst = f.appendMapHeader(dst, 0) // metadata
	}
	return append(dst, body...)
}

// AppendEventTime appends Fluent Bit's EventTime: ext type 0 as fixext8,
// big-endian uint32 seconds then uint32 nanoseconds.
func AppendEventTime(dst []byte, sec, nsec uint32) []byte {
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, sec)
	return binary.BigEndian.AppendUint32(dst, nsec)
}

// AppendValue appends v as msgpack in format f's header widths.
func (f Format) AppendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0)
	case bool:
		if v {
			return append(dst, 0xc3)
		}
		return append(dst, 0xc2)
	case string:
		return f.AppendString(dst, v)
	case int:
		return f.appendInt(dst, int64(v))
	case int64:
		return f.appendInt(dst, v)
	case uint64:
		return f.appendUint(dst, v)
	case Map:
		dst = f.appendMapHeader(dst, len(v))
		for _, fl := range v {
			dst = f.AppendString(dst, fl.Key)
			dst = f.AppendValue(dst, fl.Value)
		}
		return dst
	case []any:
		dst = f.appendArrayHeader(dst, len(v))
		for _, e := range v {
			dst = f.AppendValue(dst, e)
		}
		return dst
	}
	panic(fmt.Sprintf("chunk: unsupported value type %T", v))
}

// AppendString appends s as a msgpack str.
func (f Format) AppendString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case f == V2Wide:
		dst = append(dst, 0xdb)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0xdb)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, s...)
}

func (f Format) appendArrayHeader(dst []byte, n int) []byte {
	switch {
	case f == V2Wide:
		return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

func (f Format) appendMapHeader(dst []byte, n int) []byte {
	switch {
	case f == V2Wide:
		return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
}

func (f Format) appendInt(dst []byte, v int64) []byte {
	if v >= 0 && f != V2Wide {
		return f.appendUint(dst, uint64(v))
	}
	switch {
	case f == V2Wide:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
	case v >= -32:
		return append(dst, byte(int8(v)))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(int8(v)))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(int16(v)))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

func (f Format) appendUint(dst []byte, v uint64) []byte {
	switch {
	case f == V2Wide && v <= math.MaxInt64:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), v)
	case f == V2Wide:
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
	case v < 128:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// AppendJSON appends the JSON the plugin must send for m (without the
// trailing newline): keys in order, strings escaped per RFC 8259 with only
// '"', '\' and control characters escaped ("\n", "\r", "\t", "\b", "\f" in
// short form, the others as \u00xx), '/' and non-ASCII as is, and each byte
// of invalid UTF-8 replaced by U+FFFD.
func AppendJSON(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		return appendJSONString(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case Map:
		dst = append(dst, '{')
		for i, fl := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, fl.Key)
			dst = append(dst, ':')
			dst = AppendJSON(dst, fl.Value)
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, e)
		}
		return append(dst, ']')
	}
	panic(fmt.Sprintf("chunk: unsupported value type %T", v))
}

func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
		i++
	}
	return append(dst, '"')
}
