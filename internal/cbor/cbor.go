// Package cbor owns the CBOR (RFC 8949) primitives the plugin's wire format is built from: the
// heads of items, text strings, and a Reader that walks items in place, without allocating, for
// readers that keep only a few members of a document and skip the rest.
//
// It knows nothing of Kinesis: which members a PutRecords request or response has, its media
// type, and what a malformed answer means are package wire's. It is not a general codec (no
// floats or big numbers to write, no values decoded into interfaces): smithy-go's encoding/cbor
// is that, and the tests use it as the reference.
package cbor

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"
)

// Major types, in the high 3 bits of an item's initial byte.
const (
	MajorUint   = 0 << 5
	MajorNegInt = 1 << 5
	MajorBytes  = 2 << 5
	MajorText   = 3 << 5
	MajorArray  = 4 << 5
	MajorMap    = 5 << 5
	MajorTag    = 6 << 5
	MajorSimple = 7 << 5 // false, true, null, undefined, floats, break
)

// Initial bytes with a meaning of their own.
const (
	Null      = MajorSimple | 22
	Undefined = MajorSimple | 23
	Break     = 0xff // ends an item of indefinite length
	indef     = 31   // the additional information of an item of indefinite length
)

// HeadLen is the length of the head of an item whose argument is n.
func HeadLen(n uint64) int {
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

// AppendHead appends the head of an item of major type major and argument n, in its shortest
// form.
func AppendHead(dst []byte, major byte, n uint64) []byte {
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

// TextLen is the length of AppendText(nil, s).
func TextLen(s string) int {
	n := len(s)
	if !utf8.ValidString(s) {
		n = validUTF8Len(s)
	}
	return HeadLen(uint64(n)) + n
}

// AppendText appends s as a text string, each byte of invalid UTF-8 replaced by U+FFFD: a text
// string must be valid UTF-8, and U+FFFD is what encoding/json and smithy-go's JSON writer put
// in its place.
func AppendText(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(AppendHead(dst, MajorText, uint64(len(s))), s...)
	}
	dst = AppendHead(dst, MajorText, uint64(validUTF8Len(s)))
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

// MaxDepth bounds the nesting of the items Skip reads, and MaxTags the tags in a row before an
// item, so that a hostile document cannot exhaust the stack or loop long: the documents read here
// nest a few levels deep, with no tags.
const (
	MaxDepth = 64
	MaxTags  = 8
)

// A SyntaxError is what a Reader returns for bytes that are not the CBOR it reads: what is wrong
// and where. The caller wraps it with what it was reading.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset) }

// A Reader reads CBOR items from a byte slice, in place: strings of definite length alias it, so
// a caller that keeps one past the slice's reuse copies it.
type Reader struct {
	b       []byte
	i       int
	scratch []byte // an indefinite-length string, its chunks joined
}

// NewReader returns a Reader at the start of b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Done reports whether the whole of b has been read.
func (r *Reader) Done() bool { return r.i == len(r.b) }

// Errorf returns a *SyntaxError at the reader's offset.
func (r *Reader) Errorf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: r.i}
}

// Peek returns the initial byte of the next item, or false at the end of b.
func (r *Reader) Peek() (byte, bool) {
	if r.i < len(r.b) {
		return r.b[r.i], true
	}
	return 0, false
}

// Head reads the head of an item: its major type, and its argument, or indefinite for an item of
// indefinite length (strings, arrays and maps only: the caller checks).
func (r *Reader) Head() (major byte, arg uint64, indefinite bool, err error) {
	if r.i >= len(r.b) {
		return 0, 0, false, r.Errorf("unexpected end")
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
	case info == indef:
		switch major {
		case MajorBytes, MajorText, MajorArray, MajorMap:
			r.i++
			return major, 0, true, nil
		}
		return 0, 0, false, r.Errorf("unexpected initial byte 0x%02x", ib)
	default:
		return 0, 0, false, r.Errorf("reserved initial byte 0x%02x", ib)
	}
	if len(r.b)-r.i-1 < n {
		return 0, 0, false, r.Errorf("unexpected end")
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

// SkipTags reads the tags before the next item: tags (dates, big numbers...) never change how
// the members the plugin keeps are read.
func (r *Reader) SkipTags() error {
	for range MaxTags + 1 {
		ib, ok := r.Peek()
		if !ok || ib&0xe0 != MajorTag {
			return nil
		}
		if _, _, _, err := r.Head(); err != nil {
			return err
		}
	}
	return r.Errorf("more than %d tags in a row", MaxTags)
}

// Null reads a null or undefined item if there is one, and reports whether it did.
func (r *Reader) Null() bool {
	if ib, ok := r.Peek(); ok && (ib == Null || ib == Undefined) {
		r.i++
		return true
	}
	return false
}

// count returns a definite length read from a head, checked against what is left of b: each
// element takes at least per bytes.
func (r *Reader) count(arg uint64, per int) (int, error) {
	if arg > uint64(len(r.b)-r.i)/uint64(per) {
		return 0, r.Errorf("length %d beyond the end", arg)
	}
	return int(arg), nil
}

// Text reads a text string (with no tags: map keys have none). A definite-length string is
// returned in place (it aliases b); one of indefinite length, its chunks joined, as a new string.
// Invalid UTF-8 is kept, as the SDK keeps it.
func (r *Reader) Text() (string, error) {
	major, arg, indefinite, err := r.Head()
	if err != nil {
		return "", err
	}
	if major != MajorText {
		return "", r.Errorf("want a text string")
	}
	if !indefinite {
		n, err := r.count(arg, 1)
		if err != nil {
			return "", err
		}
		s := r.b[r.i : r.i+n]
		r.i += n
		return unsafe.String(unsafe.SliceData(s), len(s)), nil
	}
	r.scratch = r.scratch[:0]
	for {
		if ib, ok := r.Peek(); ok && ib == Break {
			r.i++
			return string(r.scratch), nil
		}
		major, arg, indefinite, err := r.Head()
		if err != nil {
			return "", err
		}
		if major != MajorText || indefinite {
			return "", r.Errorf("want a definite text string chunk")
		}
		n, err := r.count(arg, 1)
		if err != nil {
			return "", err
		}
		r.scratch = append(r.scratch, r.b[r.i:r.i+n]...)
		r.i += n
	}
}

// Offset returns the reader's position, for Seek.
func (r *Reader) Offset() int { return r.i }

// Seek moves the reader to a position Offset returned.
func (r *Reader) Seek(off int) { r.i = off }

// ShortText reads a text string of definite length under 256 bytes, with no tags, as Text does
// (in place); for any other item, or at the end, it reads nothing and returns false. It is for
// the fast paths of readers that fall back on Text.
func (r *Reader) ShortText() (string, bool) {
	if r.i >= len(r.b) {
		return "", false
	}
	ib := r.b[r.i]
	start, n := r.i+1, int(ib&0x1f)
	switch {
	case ib >= MajorText && ib < MajorText|24:
	case ib == MajorText|24 && r.i+1 < len(r.b):
		start, n = r.i+2, int(r.b[r.i+1])
	default:
		return "", false
	}
	if n > len(r.b)-start {
		return "", false
	}
	s := r.b[start : start+n]
	r.i = start + n
	return unsafe.String(unsafe.SliceData(s), len(s)), true
}

// TextOrNull reads a text string, or null (or undefined), after its tags.
func (r *Reader) TextOrNull() (s string, null bool, err error) {
	if err := r.SkipTags(); err != nil {
		return "", false, err
	}
	if r.Null() {
		return "", true, nil
	}
	s, err = r.Text()
	return s, false, err
}

// Container reads the head of an array or a map (after its tags) and returns its number of
// elements (entries for a map), or -1 for one of indefinite length; null when it is null.
func (r *Reader) Container(want byte) (n int, null bool, err error) {
	if err := r.SkipTags(); err != nil {
		return 0, false, err
	}
	if r.Null() {
		return 0, true, nil
	}
	major, arg, indefinite, err := r.Head()
	if err != nil {
		return 0, false, err
	}
	if major != want {
		return 0, false, r.Errorf("want major type %d, got %d", want>>5, major>>5)
	}
	if indefinite {
		return -1, false, nil
	}
	per := 1
	if want == MajorMap {
		per = 2
	}
	n, err = r.count(arg, per)
	return n, false, err
}

// More reports whether the container being read has an element left, i of n read: for one of
// indefinite length (n < 0), it reads the break at its end.
func (r *Reader) More(i, n int) (bool, error) {
	if n >= 0 {
		return i < n, nil
	}
	ib, ok := r.Peek()
	if !ok {
		return false, r.Errorf("unexpected end")
	}
	if ib == Break {
		r.i++
		return false, nil
	}
	return true, nil
}

// Object reads a map with text keys (or null), calling member for each key with the reader at
// its value; member must read the value.
func (r *Reader) Object(member func(key string) error) error {
	n, null, err := r.Container(MajorMap)
	if err != nil || null {
		return err
	}
	for i := 0; ; i++ {
		more, err := r.More(i, n)
		if err != nil || !more {
			return err
		}
		key, err := r.Text()
		if err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
	}
}

// Skip reads an item of any type and discards it.
func (r *Reader) Skip() error { return r.skip(0) }

func (r *Reader) skip(depth int) error {
	if depth > MaxDepth {
		return r.Errorf("nested deeper than %d", MaxDepth)
	}
	ib, ok := r.Peek()
	if !ok {
		return r.Errorf("unexpected end")
	}
	if ib&0xe0 == MajorSimple {
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
			return r.Errorf("unexpected initial byte 0x%02x", ib)
		}
		if len(r.b)-r.i-1 < n {
			return r.Errorf("unexpected end")
		}
		r.i += 1 + n
		return nil
	}
	major, arg, indefinite, err := r.Head()
	if err != nil {
		return err
	}
	switch major {
	case MajorUint, MajorNegInt:
		return nil
	case MajorTag:
		return r.skip(depth + 1)
	case MajorBytes, MajorText:
		if !indefinite {
			n, err := r.count(arg, 1)
			r.i += n
			return err
		}
		for {
			if ib, ok := r.Peek(); ok && ib == Break {
				r.i++
				return nil
			}
			m, arg, indefinite, err := r.Head()
			if err != nil {
				return err
			}
			if m != major || indefinite {
				return r.Errorf("want a definite chunk of major type %d", major>>5)
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
	if !indefinite {
		per := 1
		if major == MajorMap {
			per = 2
		}
		if n, err = r.count(arg, per); err != nil {
			return err
		}
	}
	for i := 0; ; i++ {
		more, err := r.More(i, n)
		if err != nil || !more {
			return err
		}
		if major == MajorMap {
			if _, err := r.Text(); err != nil {
				return err
			}
		}
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
}
