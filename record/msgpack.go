package record

import (
	"encoding/binary"
	"fmt"
)

// kind is the msgpack type family of a value.
type kind uint8

const (
	kindNil kind = iota
	kindBool
	kindInt  // positive and negative fixint, int8..int64; v holds the int64 bits
	kindUint // uint8..uint64; v holds the value
	kindFloat32
	kindFloat64
	kindStr
	kindBin
	kindArray
	kindMap
	kindExt
)

var kindNames = [...]string{
	kindNil:     "nil",
	kindBool:    "bool",
	kindInt:     "int",
	kindUint:    "uint",
	kindFloat32: "float32",
	kindFloat64: "float64",
	kindStr:     "str",
	kindBin:     "bin",
	kindArray:   "array",
	kindMap:     "map",
	kindExt:     "ext",
}

func (k kind) String() string { return kindNames[k] }

// header is what the first bytes of a msgpack value say about it.
//
// readHeader checks that what header announces can fit in the remaining bytes, so n
// is always a valid length for slicing (str, bin, ext) or a count no larger than the
// bytes left (array, map), even on 32-bit platforms.
type header struct {
	kind kind
	ext  int8   // ext type, for kindExt
	n    int    // payload bytes (str, bin, ext), elements (array) or pairs (map)
	v    uint64 // bool (0 or 1), int (int64 bits), uint, float (IEEE bits)
}

// readHeader reads the header of the value starting at b[i]. It returns the offset
// just after the header: the payload of a str, bin or ext (after its type byte), the
// first element of an array or map, or the next value after a scalar.
//
// It never reads past b: a header or payload cut by the end of b is ErrTruncated.
func readHeader(b []byte, i int) (h header, j int, err error) {
	if i >= len(b) {
		return h, i, ErrTruncated
	}
	c := b[i]
	j = i + 1
	switch {
	case c <= 0x7f:
		return header{kind: kindInt, v: uint64(c)}, j, nil
	case c >= 0xe0:
		return header{kind: kindInt, v: uint64(int64(int8(c)))}, j, nil
	case c <= 0x8f:
		return countHeader(b, j, kindMap, uint64(c&0x0f))
	case c <= 0x9f:
		return countHeader(b, j, kindArray, uint64(c&0x0f))
	case c <= 0xbf:
		return payloadHeader(b, j, kindStr, uint64(c&0x1f))
	}
	switch c {
	case 0xc0:
		return header{kind: kindNil}, j, nil
	case 0xc2:
		return header{kind: kindBool}, j, nil
	case 0xc3:
		return header{kind: kindBool, v: 1}, j, nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		n, j, err := readUint(b, j, 1<<(c-0xc4))
		if err != nil {
			return h, j, err
		}
		return payloadHeader(b, j, kindBin, n)
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		n, j, err := readUint(b, j, 1<<(c-0xc7))
		if err != nil {
			return h, j, err
		}
		return extHeader(b, j, n)
	case 0xca:
		v, j, err := readUint(b, j, 4)
		return header{kind: kindFloat32, v: v}, j, err
	case 0xcb:
		v, j, err := readUint(b, j, 8)
		return header{kind: kindFloat64, v: v}, j, err
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		v, j, err := readUint(b, j, 1<<(c-0xcc))
		return header{kind: kindUint, v: v}, j, err
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8/16/32/64
		size := 1 << (c - 0xd0)
		v, j, err := readUint(b, j, size)
		// Sign-extend from size bytes.
		shift := 64 - 8*uint(size)
		return header{kind: kindInt, v: uint64(int64(v<<shift) >> shift)}, j, err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16
		return extHeader(b, j, 1<<(c-0xd4))
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		n, j, err := readUint(b, j, 1<<(c-0xd9))
		if err != nil {
			return h, j, err
		}
		return payloadHeader(b, j, kindStr, n)
	case 0xdc, 0xdd: // array 16/32
		n, j, err := readUint(b, j, 2<<(c-0xdc))
		if err != nil {
			return h, j, err
		}
		return countHeader(b, j, kindArray, n)
	case 0xde, 0xdf: // map 16/32
		n, j, err := readUint(b, j, 2<<(c-0xde))
		if err != nil {
			return h, j, err
		}
		return countHeader(b, j, kindMap, n)
	}
	// 0xc1 is the only byte msgpack never uses.
	return h, i, invalidByteError(c)
}

// strAt reads the header of a str of any width at b[i] and returns where its bytes start and
// end. ok is false for any other value and for a str cut by the end of b: readHeader tells
// those apart. It is the commonest value of a record, read without building a header.
func strAt(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) {
		return 0, 0, false
	}
	var n uint64
	switch c := b[i]; {
	case c-0xa0 < 0x20: // fixstr
		n, start = uint64(c&0x1f), i+1
	case c == 0xd9 && len(b)-i >= 2:
		n, start = uint64(b[i+1]), i+2
	case c == 0xda && len(b)-i >= 3:
		n, start = uint64(binary.BigEndian.Uint16(b[i+1:])), i+3
	case c == 0xdb && len(b)-i >= 5:
		n, start = uint64(binary.BigEndian.Uint32(b[i+1:])), i+5
	default:
		return 0, 0, false
	}
	if n > uint64(len(b)-start) {
		return 0, 0, false
	}
	return start, start + int(n), true
}

// readUint reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes at b[j].
func readUint(b []byte, j, size int) (uint64, int, error) {
	if len(b)-j < size {
		return 0, len(b), ErrTruncated
	}
	switch size {
	case 1:
		return uint64(b[j]), j + 1, nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b[j:])), j + 2, nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b[j:])), j + 4, nil
	}
	return binary.BigEndian.Uint64(b[j:]), j + 8, nil
}

// payloadHeader checks that n payload bytes follow b[j].
func payloadHeader(b []byte, j int, k kind, n uint64) (header, int, error) {
	if n > uint64(len(b)-j) {
		return header{}, len(b), ErrTruncated
	}
	return header{kind: k, n: int(n)}, j, nil
}

// extHeader reads the type byte at b[j] and checks that n payload bytes follow it.
func extHeader(b []byte, j int, n uint64) (header, int, error) {
	if j >= len(b) {
		return header{}, len(b), ErrTruncated
	}
	h, j, err := payloadHeader(b, j+1, kindExt, n)
	h.ext = int8(b[j-1])
	return h, j, err
}

// countHeader checks that the n elements (array) or pairs (map) announced at b[j] can
// fit in what is left, each element taking at least one byte.
func countHeader(b []byte, j int, k kind, n uint64) (header, int, error) {
	left := uint64(len(b) - j)
	if k == kindMap {
		left /= 2
	}
	if n > left {
		return header{}, len(b), ErrTruncated
	}
	return header{kind: k, n: int(n)}, j, nil
}

// skip returns the offset just after the value starting at b[i]. It walks nested
// arrays and maps iteratively, so no input can exhaust the stack.
func skip(b []byte, i int) (int, error) {
	for pending := 1; pending > 0; pending-- {
		// The commonest values first, without a header: short strings, small integers,
		// nil and booleans, small maps.
		if _, end, ok := strAt(b, i); ok {
			i = end
			continue
		}
		if i < len(b) {
			switch c := b[i]; {
			case c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
				i++
				continue
			case c == 0xd3 && len(b)-i >= 9: // int 64, as Fluent Bit 4 writes integers
				i += 9
				continue
			case c < 0x90 || c == 0xdf && len(b)-i >= 5: // fixmap, map 32
				n, j := uint64(c&0x0f), i+1
				if c == 0xdf {
					n, j = uint64(binary.BigEndian.Uint32(b[i+1:])), i+5
				}
				// Every value still pending takes at least one byte: fail early instead of
				// counting through millions of announced elements.
				if left := len(b) - j - (pending - 1); left < 0 || 2*n > uint64(left) {
					return len(b), ErrTruncated
				}
				pending += 2 * int(n)
				i = j
				continue
			}
		}
		h, j, err := readHeader(b, i)
		if err != nil {
			return j, err
		}
		switch h.kind {
		case kindStr, kindBin, kindExt:
			j += h.n
		case kindArray, kindMap:
			n := h.n
			if h.kind == kindMap {
				n *= 2 // cannot overflow: countHeader bounds pairs by half the bytes left
			}
			// Every value still pending takes at least one byte: fail early instead of
			// counting through millions of announced elements.
			if n > len(b)-j-(pending-1) {
				return len(b), ErrTruncated
			}
			pending += n
		}
		i = j
	}
	return i, nil
}

// invalidByteError describes the only undefined msgpack first byte, 0xc1.
func invalidByteError(c byte) error {
	return fmt.Errorf("%w: byte 0x%02x", ErrMalformed, c)
}
