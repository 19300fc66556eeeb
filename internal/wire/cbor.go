package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// cborContentType is the media type of Kinesis's CBOR protocol (the AWS SDK for Java's default
// for Kinesis): the awsJson1_1 operations and members, with the bodies in CBOR (RFC 8949) and
// blobs as byte strings instead of base64 text.
const cborContentType = "application/x-amz-cbor-1.1"

// isCBOR reports whether a Content-Type header names cborContentType.
func isCBOR(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), cborContentType)
}

// CBOR major types, in the high 3 bits of an item's initial byte.
const (
	cborUint   = 0 << 5
	cborNegInt = 1 << 5
	cborBytes  = 2 << 5
	cborText   = 3 << 5
	cborArray  = 4 << 5
	cborMap    = 5 << 5
	cborTag    = 6 << 5
	cborSimple = 7 << 5 // false, true, null, undefined, floats, break
)

// Initial bytes with a meaning of their own.
const (
	cborNull      = cborSimple | 22
	cborUndefined = cborSimple | 23
	cborBreak     = 0xff // ends an item of indefinite length
	cborIndef     = 31   // the additional information of an item of indefinite length
)

// cborHeadLen is the length of the head of an item whose argument is n.
func cborHeadLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

// appendCBORHead appends the head of an item of major type major and argument n, in its
// shortest form.
func appendCBORHead(dst []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(dst, major|byte(n))
	case n <= math.MaxUint8:
		return append(dst, major|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, major|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, major|27), n)
}

// cborTextLen is the length of appendCBORText(nil, s).
func cborTextLen(s string) int {
	n := len(s)
	if !utf8.ValidString(s) {
		n = validUTF8Len(s)
	}
	return cborHeadLen(uint64(n)) + n
}

// appendCBORText appends s as a CBOR text string, each byte of invalid UTF-8 replaced by U+FFFD
// as the JSON writer replaces it (appendJSONString), so that Kinesis sees the same partition key,
// and routes the record to the same shard, whatever the protocol.
func appendCBORText(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(appendCBORHead(dst, cborText, uint64(len(s))), s...)
	}
	dst = appendCBORHead(dst, cborText, uint64(validUTF8Len(s)))
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, string(utf8.RuneError)...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// validUTF8Len is the length of s with each byte of invalid UTF-8 replaced by U+FFFD.
func validUTF8Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			n += len(string(utf8.RuneError))
		} else {
			n += size
		}
		i += size
	}
	return n
}

// errMalformedCBOR is what the CBOR reader returns for a body that is not the CBOR it reads.
var errMalformedCBOR = errors.New("malformed PutRecords response (CBOR)")

// maxCBORDepth bounds the nesting of the items skip reads, and maxCBORTags the tags in a row
// before an item: a PutRecords response nests 3 deep, with no tags.
const (
	maxCBORDepth = 64
	maxCBORTags  = 8
)

// cborReader reads CBOR items from b at i, in place: just what a PutRecords response needs.
type cborReader struct {
	b        []byte // may be reused after: results hold copies (intern, strings.Clone)
	i        int
	interned []*string
	scratch  []byte // an indefinite-length string, its chunks joined
}

func (r *cborReader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", errMalformedCBOR, fmt.Sprintf(format, args...), r.i)
}

// peek returns the initial byte of the next item, or false at the end of b.
func (r *cborReader) peek() (byte, bool) {
	if r.i < len(r.b) {
		return r.b[r.i], true
	}
	return 0, false
}

// head reads the head of an item: its major type, and its argument, or indef for an item of
// indefinite length (strings, arrays and maps only: the caller checks).
func (r *cborReader) head() (major byte, arg uint64, indef bool, err error) {
	if r.i >= len(r.b) {
		return 0, 0, false, r.errorf("unexpected end")
	}
	ib := r.b[r.i]
	major, info := ib&0xe0, ib&0x1f
	var n int
	switch {
	case info < 24:
		r.i++
		return major, uint64(info), false, nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	case info == cborIndef:
		switch major {
		case cborBytes, cborText, cborArray, cborMap:
			r.i++
			return major, 0, true, nil
		}
		return 0, 0, false, r.errorf("unexpected initial byte 0x%02x", ib)
	default:
		return 0, 0, false, r.errorf("reserved initial byte 0x%02x", ib)
	}
	if len(r.b)-r.i-1 < n {
		return 0, 0, false, r.errorf("unexpected end")
	}
	p := r.b[r.i+1 : r.i+1+n]
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	r.i += 1 + n
	return major, arg, false, nil
}

// skipTags reads the tags before the next item: tags (dates, big numbers...) never change how
// the members this reader keeps are read.
func (r *cborReader) skipTags() error {
	for range maxCBORTags + 1 {
		ib, ok := r.peek()
		if !ok || ib&0xe0 != cborTag {
			return nil
		}
		if _, _, _, err := r.head(); err != nil {
			return err
		}
	}
	return r.errorf("more than %d tags in a row", maxCBORTags)
}

// null reads a null or undefined item if there is one, and reports whether it did.
func (r *cborReader) null() bool {
	if ib, ok := r.peek(); ok && (ib == cborNull || ib == cborUndefined) {
		r.i++
		return true
	}
	return false
}

// count returns a definite length read from a head, checked against what is left of b: each
// element takes at least per bytes.
func (r *cborReader) count(arg uint64, per int) (int, error) {
	if arg > uint64(len(r.b)-r.i)/uint64(per) {
		return 0, r.errorf("length %d beyond the end", arg)
	}
	return int(arg), nil
}

// text reads a text string (with no tags: map keys have none). A definite-length string is
// returned in place (it aliases b); one of indefinite length, its chunks joined, as a new string.
// Invalid UTF-8 is kept, as the SDK keeps it.
func (r *cborReader) text() (string, error) {
	major, arg, indef, err := r.head()
	if err != nil {
		return "", err
	}
	if major != cborText {
		return "", r.errorf("want a text string")
	}
	if !indef {
		n, err := r.count(arg, 1)
		if err != nil {
			return "", err
		}
		s := r.b[r.i : r.i+n]
		r.i += n
		return unsafeString(s), nil
	}
	r.scratch = r.scratch[:0]
	for {
		if ib, ok := r.peek(); ok && ib == cborBreak {
			r.i++
			return string(r.scratch), nil
		}
		major, arg, indef, err := r.head()
		if err != nil {
			return "", err
		}
		if major != cborText || indef {
			return "", r.errorf("want a definite text string chunk")
		}
		n, err := r.count(arg, 1)
		if err != nil {
			return "", err
		}
		r.scratch = append(r.scratch, r.b[r.i:r.i+n]...)
		r.i += n
	}
}

// textOrNull reads a text string, or null (or undefined).
func (r *cborReader) textOrNull() (s string, null bool, err error) {
	if err := r.skipTags(); err != nil {
		return "", false, err
	}
	if r.null() {
		return "", true, nil
	}
	s, err = r.text()
	return s, false, err
}

// container reads the head of an array or a map (after its tags) and returns its number of
// elements (entries for a map), or -1 for one of indefinite length; null when it is null.
func (r *cborReader) container(want byte) (n int, null bool, err error) {
	if err := r.skipTags(); err != nil {
		return 0, false, err
	}
	if r.null() {
		return 0, true, nil
	}
	major, arg, indef, err := r.head()
	if err != nil {
		return 0, false, err
	}
	if major != want {
		return 0, false, r.errorf("want major type %d, got %d", want>>5, major>>5)
	}
	if indef {
		return -1, false, nil
	}
	per := 1
	if want == cborMap {
		per = 2
	}
	n, err = r.count(arg, per)
	return n, false, err
}

// more reports whether the container being read has an element left, i of n read: for one of
// indefinite length (n < 0), it reads the break at its end.
func (r *cborReader) more(i, n int) (bool, error) {
	if n >= 0 {
		return i < n, nil
	}
	ib, ok := r.peek()
	if !ok {
		return false, r.errorf("unexpected end")
	}
	if ib == cborBreak {
		r.i++
		return false, nil
	}
	return true, nil
}

// object reads a map with text keys (or null), calling member for each key with the reader at
// its value; member must read the value.
func (r *cborReader) object(member func(key string) error) error {
	n, null, err := r.container(cborMap)
	if err != nil || null {
		return err
	}
	for i := 0; ; i++ {
		more, err := r.more(i, n)
		if err != nil || !more {
			return err
		}
		key, err := r.text()
		if err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
	}
}

// skip reads an item of any type and discards it.
func (r *cborReader) skip(depth int) error {
	if depth > maxCBORDepth {
		return r.errorf("nested deeper than %d", maxCBORDepth)
	}
	ib, ok := r.peek()
	if !ok {
		return r.errorf("unexpected end")
	}
	if ib&0xe0 == cborSimple {
		// false, true, null, undefined, and floats; not the simple values no one assigned.
		n := 0
		switch ib & 0x1f {
		case 20, 21, 22, 23:
		case 25: // float16
			n = 2
		case 26: // float32
			n = 4
		case 27: // float64
			n = 8
		default:
			return r.errorf("unexpected initial byte 0x%02x", ib)
		}
		if len(r.b)-r.i-1 < n {
			return r.errorf("unexpected end")
		}
		r.i += 1 + n
		return nil
	}
	major, arg, indef, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case cborUint, cborNegInt:
		return nil
	case cborTag:
		return r.skip(depth + 1)
	case cborBytes, cborText:
		if !indef {
			n, err := r.count(arg, 1)
			r.i += n
			return err
		}
		for {
			if ib, ok := r.peek(); ok && ib == cborBreak {
				r.i++
				return nil
			}
			m, arg, indef, err := r.head()
			if err != nil {
				return err
			}
			if m != major || indef {
				return r.errorf("want a definite chunk of major type %d", major>>5)
			}
			n, err := r.count(arg, 1)
			if err != nil {
				return err
			}
			r.i += n
		}
	}
	// An array, or a map (with text keys, as every member name is).
	n := -1
	if !indef {
		per := 1
		if major == cborMap {
			per = 2
		}
		if n, err = r.count(arg, per); err != nil {
			return err
		}
	}
	for i := 0; ; i++ {
		more, err := r.more(i, n)
		if err != nil || !more {
			return err
		}
		if major == cborMap {
			if _, err := r.text(); err != nil {
				return err
			}
		}
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
}

// unsafeString returns b as a string without copying: b must not change while it is used.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// intern returns a pointer to a copy of s, shared with the earlier calls for the same s: a
// response names a few shards and error codes, each for many records.
func (r *cborReader) intern(s string) *string {
	for _, p := range r.interned {
		if *p == s {
			return p
		}
	}
	p := cloneString(s)
	if len(r.interned) < maxInterned {
		r.interned = append(r.interned, p)
	}
	return p
}
