package record

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and maps the encoder follows, so a hostile
// body cannot exhaust the stack. encoding/json refuses more than 10000 levels.
const maxDepth = 1000

// appendValue appends the JSON text of the msgpack value at b[i] and returns the
// offset after the value. depth counts the arrays and maps around the value. dots,
// when not empty, is the JSON-escaped text that replaces each '.' in map keys
// (replace_dots). inKey is true inside a map key that is an array or map.
func appendValue(dst, b []byte, i, depth int, dots string, inKey bool) ([]byte, int, error) {
	// The commonest values first, without building a header: strings, as every width writes
	// them, and integers, in one switch: a call to strAt (not inlined) and a second switch
	// cost more (BenchmarkRecordPath).
	if i < len(b) {
		var n uint64
		j := -1
		switch c := b[i]; {
		case c-0xa0 < 0x20: // fixstr
			n, j = uint64(c&0x1f), i+1
		case c == 0xdb && len(b)-i >= 5: // str 32, as Fluent Bit 4 writes strings
			n, j = uint64(binary.BigEndian.Uint32(b[i+1:])), i+5
		case c == 0xd9 && len(b)-i >= 2: // str 8
			n, j = uint64(b[i+1]), i+2
		case c < 10: // one-digit positive fixint
			return append(dst, '0'+c), i + 1, nil
		case c == 0xd3 && len(b)-i >= 9: // int 64, as Fluent Bit 4 writes integers
			return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(b[i+1:])), 10), i + 9, nil
		}
		if j >= 0 && n <= uint64(len(b)-j) {
			end := j + int(n)
			return appendString(dst, b[j:end]), end, nil
		}
	}
	h, j, err := readHeader(b, i)
	if err != nil {
		return dst, j, err
	}
	return appendValueHeader(dst, b, h, j, depth, dots, inKey)
}

// appendValueHeader is appendValue for a value whose header h has been read; j is
// the offset after the header.
func appendValueHeader(dst, b []byte, h header, j, depth int, dots string, inKey bool) ([]byte, int, error) {
	var err error
	switch h.kind {
	case kindNil:
		dst = append(dst, "null"...)
	case kindBool:
		if h.v != 0 {
			dst = append(dst, "true"...)
		} else {
			dst = append(dst, "false"...)
		}
	case kindInt:
		dst = strconv.AppendInt(dst, int64(h.v), 10)
	case kindUint:
		dst = strconv.AppendUint(dst, h.v, 10)
	case kindFloat32:
		dst = appendFloat(dst, float64(math.Float32frombits(uint32(h.v))), 32)
	case kindFloat64:
		dst = appendFloat(dst, math.Float64frombits(h.v), 64)
	case kindStr, kindBin:
		dst = appendString(dst, b[j:j+h.n])
		j += h.n
	case kindExt:
		// Timestamps (ext 0) and every other extension: JSON has no equivalent.
		dst = append(dst, "null"...)
		j += h.n
	case kindArray:
		if depth >= maxDepth {
			return dst, j, ErrTooDeep
		}
		dst = append(dst, '[')
		for k := 0; k < h.n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			if dst, j, err = appendValue(dst, b, j, depth+1, dots, inKey); err != nil {
				return dst, j, err
			}
		}
		dst = append(dst, ']')
	case kindMap:
		if depth >= maxDepth {
			return dst, j, ErrTooDeep
		}
		dst = append(dst, '{')
		for k := 0; k < h.n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			if dst, j, err = appendKey(dst, b, j, depth+1, dots, inKey); err != nil {
				return dst, j, err
			}
			dst = append(dst, ':')
			if dst, j, err = appendValue(dst, b, j, depth+1, dots, inKey); err != nil {
				return dst, j, err
			}
		}
		dst = append(dst, '}')
	}
	return dst, j, nil
}

// appendKey appends the map key at b[i] as a JSON string.
func appendKey(dst, b []byte, i, depth int, dots string, inKey bool) ([]byte, int, error) {
	if dots == "" { // the commonest key: a string
		if j, end, ok := strAt(b, i); ok {
			return appendString(dst, b[j:end]), end, nil
		}
	}
	h, j, err := readHeader(b, i)
	if err != nil {
		return dst, j, err
	}
	return appendKeyHeader(dst, b, h, j, depth, dots, inKey)
}

// appendKeyHeader is appendKey for a key whose header h has been read. A key that is
// not a str or bin becomes its JSON text in quotes: 5 -> "5", nil -> "null",
// [1,"a"] -> "[1,\"a\"]". With dots set, each '.' of the key's text (the string, or
// that JSON text) becomes dots: 1.5 -> "1_5".
func appendKeyHeader(dst, b []byte, h header, j, depth int, dots string, inKey bool) ([]byte, int, error) {
	switch h.kind {
	case kindStr, kindBin:
		if dots == "" { // the common case, without a call
			return appendString(dst, b[j:j+h.n]), j + h.n, nil
		}
		return appendKeyString(dst, b[j:j+h.n], dots), j + h.n, nil
	case kindArray, kindMap:
		// Each level of such keys in keys would escape the escapes of the level
		// inside it, doubling the backslashes: 40 bytes of msgpack could make
		// gigabytes of JSON. One level is enough for any real data.
		if inKey {
			return dst, j, ErrNestedKey
		}
		// The JSON text of a container holds quotes that must be escaped. Such keys
		// do not occur in real logs, so a scratch buffer is fine here. Its own map
		// keys are left alone: the dots of the whole text are replaced below.
		scratch, j, err := appendValueHeader(nil, b, h, j, depth, "", true)
		if err != nil {
			return dst, j, err
		}
		return appendKeyString(dst, scratch, dots), j, nil
	}
	// Numbers, bools, nil and ext: their JSON text needs no escaping.
	start := len(dst)
	dst = append(dst, '"')
	dst, j, err := appendValueHeader(dst, b, h, j, depth, "", inKey)
	dst = append(dst, '"')
	if dots != "" && bytes.IndexByte(dst[start:], '.') >= 0 {
		// Only a float has a dot; its text is at most 25 bytes, so this copy stays
		// on the stack.
		var buf [32]byte
		text := append(buf[:0], dst[start+1:len(dst)-1]...)
		dst = appendKeyString(dst[:start], text, dots)
	}
	return dst, j, err
}

// appendKeyString appends the key s as a quoted JSON string, with each '.' replaced
// by dots (already escaped) when dots is not empty. A '.' is never part of a
// multi-byte UTF-8 sequence, so escaping the pieces between dots one by one gives
// the same text as escaping s whole.
func appendKeyString(dst, s []byte, dots string) []byte {
	if dots == "" {
		return appendString(dst, s)
	}
	dst = append(dst, '"')
	for {
		i := bytes.IndexByte(s, '.')
		if i < 0 {
			break
		}
		dst = appendEscaped(dst, s[:i])
		dst = append(dst, dots...)
		s = s[i+1:]
	}
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendFloat appends f as encoding/json does: the shortest text that parses back to
// the same float of that bit size, in exponent form below 1e-6 and from 1e21 on.
// JSON has no NaN or infinities: they become null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendString appends s as a quoted JSON string.
func appendString(dst, s []byte) []byte {
	// Most keys and many values are short plain ASCII: check and copy them as two words, with
	// no loop and no call. s is usually a piece of a chunk (readable up to its capacity), and
	// dst has room: the bytes written past the string's end are beyond len(dst), overwritten
	// by whatever comes next.
	if n, l := len(s), len(dst); n <= 16 && cap(s) >= 16 && cap(dst)-l >= 18 {
		w := s[:16]
		x0, x1 := binary.LittleEndian.Uint64(w), binary.LittleEndian.Uint64(w[8:])
		if notPlain(padFrom(x0, n))|notPlain(padFrom(x1, n-8)) == 0 {
			d := dst[l : l+18]
			d[0] = '"'
			binary.LittleEndian.PutUint64(d[1:], x0)
			binary.LittleEndian.PutUint64(d[9:], x1)
			d[n+1] = '"'
			return dst[:l+n+2]
		}
	}
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// noEscape[c] is true for the ASCII bytes that appear unchanged inside a JSON string.
var noEscape = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendEscaped appends s escaped per RFC 8259: '"', '\' and control characters are
// escaped, '/' and valid non-ASCII are kept, and each byte that is not part of valid
// UTF-8 becomes U+FFFD (as encoding/json does).
func appendEscaped(dst, s []byte) []byte {
	i := plainRun(s)
	if i == len(s) { // most strings of a log record
		return append(dst, s...)
	}
	start := 0 // s[start:i] is pending, to be copied as is
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if noEscape[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
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
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			i += plainRun(s[i:])
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
		i += plainRun(s[i:])
	}
	return append(dst, s[start:]...)
}

// plainRun returns how many bytes at the start of s are plain ASCII (see plainASCII), or a
// little less: it reads 16 (plainBlocks), then 8 bytes at a time, and returns len(s) only if all
// are plain.
func plainRun(s []byte) int {
	i := plainBlocks(s)
	if plainBlocksExact && (i == len(s) || cap(s)-i >= 16) {
		return i // a byte that is not plain, or the end: plainBlocks read every byte before it
	}
	for ; len(s)-i >= 8; i += 8 {
		if !plainASCII(binary.LittleEndian.Uint64(s[i:])) {
			return i
		}
	}
	n := len(s) - i
	if n == 0 {
		return i
	}
	// A tail of 1 to 7 bytes. s is usually a piece of a chunk, with the rest of the chunk
	// beyond its length: read 8 bytes and replace those past the end by 'a'.
	if cap(s)-i >= 8 {
		if plainASCII(padFrom(binary.LittleEndian.Uint64(s[i:i+8]), n)) {
			return len(s)
		}
	}
	return i
}

// padFrom returns the word x (8 bytes, little-endian) with its bytes from index n on replaced by
// 'a', plain ASCII: all of them for n <= 0, none for n >= 8.
func padFrom(x uint64, n int) uint64 {
	const pad = 0x6161616161616161
	keep := uint64(1)<<(8*uint(max(n, 0))) - 1 // a shift by 64 or more is 0: all ones
	return x&keep | pad&^keep
}

// plainASCII reports whether the 8 bytes of x are all ASCII that needs no escaping:
// none is below 0x20, '"', '\' or 0x80 and up.
func plainASCII(x uint64) bool { return notPlain(x) == 0 }

// notPlain is zero if and only if the 8 bytes of x are plain ASCII (see plainASCII). A
// subtraction below borrows only when one of the bytes it looks for is present, so the
// test is exact. The results of two words can be ORed; their bytes cannot.
func notPlain(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return (x | (x - ones*0x20) | ((x ^ ones*'"') - ones) | ((x ^ ones*'\\') - ones)) & highs
}

// needsEscape reports whether appendEscaped would change s.
func needsEscape(s []byte) bool {
	ascii := true
	for _, c := range s {
		if c >= utf8.RuneSelf {
			ascii = false
		} else if !noEscape[c] {
			return true
		}
	}
	return !ascii && !utf8.Valid(s)
}
