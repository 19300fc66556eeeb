package record

import (
	"encoding/binary"
	"math"
)

// mp builds msgpack by hand, so tests control every header width. Methods without a
// size suffix write the most compact form; the suffixed ones force that width.
type mp []byte

func (w mp) raw(b ...byte) mp { return append(w, b...) }

func (w mp) be16(v uint16) mp { return binary.BigEndian.AppendUint16(w, v) }
func (w mp) be32(v uint32) mp { return binary.BigEndian.AppendUint32(w, v) }
func (w mp) be64(v uint64) mp { return binary.BigEndian.AppendUint64(w, v) }

func (w mp) nil_() mp { return append(w, 0xc0) }

func (w mp) bool_(v bool) mp {
	if v {
		return append(w, 0xc3)
	}
	return append(w, 0xc2)
}

// arr writes an array header of n elements.
func (w mp) arr(n int) mp {
	switch {
	case n < 16:
		return append(w, 0x90|byte(n))
	case n < 1<<16:
		return w.arr16(n)
	}
	return w.arr32(n)
}
func (w mp) arr16(n int) mp { return append(w, 0xdc).be16(uint16(n)) }
func (w mp) arr32(n int) mp { return append(w, 0xdd).be32(uint32(n)) }

// map_ writes a map header of n pairs.
func (w mp) map_(n int) mp {
	switch {
	case n < 16:
		return append(w, 0x80|byte(n))
	case n < 1<<16:
		return w.map16(n)
	}
	return w.map32(n)
}
func (w mp) map16(n int) mp { return append(w, 0xde).be16(uint16(n)) }
func (w mp) map32(n int) mp { return append(w, 0xdf).be32(uint32(n)) }

func (w mp) str(s string) mp {
	switch {
	case len(s) < 32:
		return append(append(w, 0xa0|byte(len(s))), s...)
	case len(s) < 1<<8:
		return w.str8(s)
	case len(s) < 1<<16:
		return w.str16(s)
	}
	return w.str32(s)
}
func (w mp) str8(s string) mp  { return append(append(w, 0xd9, byte(len(s))), s...) }
func (w mp) str16(s string) mp { return append(w.raw(0xda).be16(uint16(len(s))), s...) }
func (w mp) str32(s string) mp { return append(w.raw(0xdb).be32(uint32(len(s))), s...) }

func (w mp) bin(s string) mp {
	switch {
	case len(s) < 1<<8:
		return w.bin8(s)
	case len(s) < 1<<16:
		return w.bin16(s)
	}
	return w.bin32(s)
}
func (w mp) bin8(s string) mp  { return append(append(w, 0xc4, byte(len(s))), s...) }
func (w mp) bin16(s string) mp { return append(w.raw(0xc5).be16(uint16(len(s))), s...) }
func (w mp) bin32(s string) mp { return append(w.raw(0xc6).be32(uint32(len(s))), s...) }

// int writes v in the most compact signed or unsigned form, as msgpack writers do.
func (w mp) int(v int64) mp {
	switch {
	case v >= 0:
		return w.uint(uint64(v))
	case v >= -32:
		return append(w, byte(int8(v)))
	case v >= math.MinInt8:
		return w.i8(int8(v))
	case v >= math.MinInt16:
		return w.i16(int16(v))
	case v >= math.MinInt32:
		return w.i32(int32(v))
	}
	return w.i64(v)
}
func (w mp) i8(v int8) mp   { return append(w, 0xd0, byte(v)) }
func (w mp) i16(v int16) mp { return append(w, 0xd1).be16(uint16(v)) }
func (w mp) i32(v int32) mp { return append(w, 0xd2).be32(uint32(v)) }
func (w mp) i64(v int64) mp { return append(w, 0xd3).be64(uint64(v)) }

func (w mp) uint(v uint64) mp {
	switch {
	case v < 128:
		return append(w, byte(v))
	case v <= math.MaxUint8:
		return w.u8(uint8(v))
	case v <= math.MaxUint16:
		return w.u16(uint16(v))
	case v <= math.MaxUint32:
		return w.u32(uint32(v))
	}
	return w.u64(v)
}
func (w mp) u8(v uint8) mp   { return append(w, 0xcc, v) }
func (w mp) u16(v uint16) mp { return append(w, 0xcd).be16(v) }
func (w mp) u32(v uint32) mp { return append(w, 0xce).be32(v) }
func (w mp) u64(v uint64) mp { return append(w, 0xcf).be64(v) }

func (w mp) f32(v float32) mp { return append(w, 0xca).be32(math.Float32bits(v)) }
func (w mp) f64(v float64) mp { return append(w, 0xcb).be64(math.Float64bits(v)) }

// ext writes an extension, as fixext when the size allows it.
func (w mp) ext(typ int8, data string) mp {
	switch len(data) {
	case 1, 2, 4, 8, 16:
		var c byte
		switch len(data) {
		case 1:
			c = 0xd4
		case 2:
			c = 0xd5
		case 4:
			c = 0xd6
		case 8:
			c = 0xd7
		case 16:
			c = 0xd8
		}
		return append(append(w, c, byte(typ)), data...)
	}
	return w.ext8(typ, data)
}
func (w mp) ext8(typ int8, data string) mp {
	return append(append(w, 0xc7, byte(len(data)), byte(typ)), data...)
}
func (w mp) ext16(typ int8, data string) mp {
	return append(append(w.raw(0xc8).be16(uint16(len(data))), byte(typ)), data...)
}
func (w mp) ext32(typ int8, data string) mp {
	return append(append(w.raw(0xc9).be32(uint32(len(data))), byte(typ)), data...)
}

// eventTime writes Fluent Bit's EventTime (ext 0, fixext8).
func (w mp) eventTime(sec, nsec uint32) mp { return w.raw(0xd7, 0x00).be32(sec).be32(nsec) }

// eventTime8 writes EventTime in the ext8 form.
func (w mp) eventTime8(sec, nsec uint32) mp { return w.raw(0xc7, 8, 0x00).be32(sec).be32(nsec) }

// eventV2 starts a Fluent Bit >= 2.1 event, [[time, {}], record], with compact
// headers; the caller appends the time via t and then the record.
func eventV2(w mp, t func(mp) mp) mp { return t(w.arr(2).arr(2)).map_(0) }

// eventV2Wide is eventV2 with the 32-bit headers Fluent Bit 4 writes.
func eventV2Wide(w mp, t func(mp) mp) mp { return t(w.arr32(2).arr32(2)).map32(0) }

// eventV1 starts a Fluent Bit < 2.1 event, [time, record].
func eventV1(w mp, t func(mp) mp) mp { return t(w.arr(2)) }

func evt(sec, nsec uint32) func(mp) mp {
	return func(w mp) mp { return w.eventTime(sec, nsec) }
}
