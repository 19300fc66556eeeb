package record

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxPartitionKeyChars is the longest partition key Kinesis accepts, in Unicode
// characters: "Partition keys are Unicode strings with a maximum length limit of 256
// characters for each key" (PutRecordsRequestEntry, Kinesis API reference).
const MaxPartitionKeyChars = 256

// KeyPathSeparator joins the key names of a KeyPath: kubernetes->pod_name.
const KeyPathSeparator = "->"

// ErrKeyPath is wrapped by the error ParseKeyPath returns for a path with an empty
// key name: "", "a->", "->b", "a->->b", "a-> ->b".
var ErrKeyPath = errors.New("record: malformed key path")

// KeyPath is a compiled partition_key: the names of the keys to follow from the
// record map down to the value that becomes the partition key. The zero KeyPath has
// no names and finds nothing. A KeyPath is immutable, so one is safe for concurrent
// use.
type KeyPath struct {
	names []string // at least one, none empty, once parsed
}

// ParseKeyPath compiles s, key names joined by "->" (kubernetes->pod_name): the
// first names a top-level key, each next one a key of the map found so far. Spaces
// around each name are trimmed; a name inside may hold spaces. A name cannot hold
// "->": there is no escape. An empty name (s blank, or "a->", "->b", "a->->b") is an
// error wrapping ErrKeyPath.
func ParseKeyPath(s string) (KeyPath, error) {
	parts := strings.Split(s, KeyPathSeparator)
	names := make([]string, len(parts))
	for i, part := range parts {
		names[i] = strings.TrimSpace(part)
		if names[i] == "" {
			return KeyPath{}, fmt.Errorf("%w: key %d of %d is empty", ErrKeyPath, i+1, len(parts))
		}
	}
	return KeyPath{names: names}, nil
}

// IsZero reports whether p is the zero KeyPath, which finds nothing.
func (p KeyPath) IsZero() bool { return len(p.names) == 0 }

// String is p's canonical form: its names, trimmed, joined by "->". It is "" for
// the zero KeyPath, and ParseKeyPath(p.String()) is p.
func (p KeyPath) String() string { return strings.Join(p.names, KeyPathSeparator) }

// Append appends the partition key that p selects in body, the raw msgpack record of
// an Event, to dst and reports whether there is one. It does not allocate beyond
// growing dst.
//
// Each name of p matches the first key of the map that is a str or bin of exactly
// those bytes (a key of any str or bin width; later keys of the same name are never
// looked at, as for log_key). Every name but the last must find a map.
//
// The value found gives the key when it is a non-empty str or bin (its bytes), an
// integer of any width (its decimal text), or a finite float (the shortest text that
// reads back as the same float32 or float64, as the JSON encoder writes it: 1.5,
// 1e-7, -0). Everything else finds no key and reports false, with dst as given: a
// missing key at any level, a name that finds something other than a map before the
// last, an empty str or bin, nil, a bool, NaN or an infinity, an array, a map, an
// ext (timestamps included), and a body that is not valid msgpack along the way. The
// caller then uses a random key.
//
// The key is cut after MaxPartitionKeyChars Unicode characters, never inside a
// multi-byte UTF-8 sequence. A byte that is not part of valid UTF-8 counts as one
// character and is written as U+FFFD: the AWS SDK sends it so, and Kinesis hashes
// and counts what it receives, so the bytes appended are those Kinesis sees (the
// key's size in the record size, its MD5 for shard mapping). The key appended is
// always valid UTF-8 of 1 to MaxPartitionKeyChars characters.
func (p KeyPath) Append(dst, body []byte) ([]byte, bool) {
	if len(p.names) == 0 {
		return dst, false
	}
	h, j, err := readHeader(body, 0)
	for _, name := range p.names {
		if err != nil || h.kind != kindMap {
			return dst, false
		}
		if j, err = findKey(body, h.n, j, name); err != nil {
			return dst, false
		}
		h, j, err = readHeader(body, j)
	}
	if err != nil {
		return dst, false
	}
	return appendKeyValue(dst, body, h, j)
}

// errNoKey is findKey's report of a map without the key; the caller only needs to
// know that there is no value.
var errNoKey = errors.New("record: no such key")

// findKey returns the offset of the value of the first key name in the map of n
// pairs whose first key starts at b[j].
func findKey(b []byte, n, j int, name string) (int, error) {
	for ; n > 0; n-- {
		kh, kj, err := readHeader(b, j)
		if err != nil {
			return kj, err
		}
		match := isKey(b, kh, kj, name)
		if j, err = skipHeader(b, kh, kj); err != nil {
			return j, err
		}
		if match {
			return j, nil
		}
		if j, err = skip(b, j); err != nil {
			return j, err
		}
	}
	return j, errNoKey
}

// appendKeyValue appends the partition key text of the value whose header h has been
// read up to b[j]. See KeyPath.Append.
func appendKeyValue(dst, b []byte, h header, j int) ([]byte, bool) {
	switch h.kind {
	case kindStr, kindBin:
		if h.n == 0 {
			return dst, false
		}
		return appendKeyText(dst, b[j:j+h.n]), true
	case kindInt:
		return strconv.AppendInt(dst, int64(h.v), 10), true
	case kindUint:
		return strconv.AppendUint(dst, h.v, 10), true
	case kindFloat32:
		return appendFiniteFloat(dst, float64(math.Float32frombits(uint32(h.v))), 32)
	case kindFloat64:
		return appendFiniteFloat(dst, math.Float64frombits(h.v), 64)
	}
	return dst, false
}

// appendFiniteFloat appends f as the JSON encoder does, or reports false for NaN and
// the infinities, which have no JSON text. The text is at most 24 characters, well
// under MaxPartitionKeyChars.
func appendFiniteFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	return appendFloat(dst, f, bits), true
}

// appendKeyText appends at most MaxPartitionKeyChars characters of s, each byte that
// is not part of valid UTF-8 written as U+FFFD.
func appendKeyText(dst, s []byte) []byte {
	start, i := 0, 0 // s[start:i] is pending, to be copied as is
	for chars := 0; i < len(s) && chars < MaxPartitionKeyChars; chars++ {
		if s[i] < utf8.RuneSelf {
			i++
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
	}
	return append(dst, s[start:i]...)
}
