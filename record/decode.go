package record

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Decoder walks a chunk event by event without copying it. The zero Decoder holds
// an empty chunk. A Decoder is not safe for concurrent use; it can be reused with
// Reset.
//
// It accepts both event layouts, [time, record] (Fluent Bit < 2.1) and
// [[time, metadata], record], with headers of any width. The metadata is skipped.
// time is ext 0 holding big-endian uint32 seconds and nanoseconds, an integer
// (seconds) or a float (seconds and a fraction).
type Decoder struct {
	chunk []byte
	off   int // where the next event starts
	index int // index of the next event
	err   error
}

// Reset makes d read chunk from its start.
func (d *Decoder) Reset(chunk []byte) {
	*d = Decoder{chunk: chunk}
}

// Next decodes the next event into ev; it returns false at the end of the chunk or
// on error (see Err). ev.Body is a complete msgpack value but is not checked to be a
// map: Encoder.Append reports that per event.
func (d *Decoder) Next(ev *Event) bool {
	if d.err != nil || d.off >= len(d.chunk) {
		return false
	}
	sec, nsec, start, err := decodeEventHead(d.chunk, d.off)
	if err == nil {
		var end int
		if end, err = skip(d.chunk, start); err == nil {
			ev.Sec, ev.Nsec = sec, nsec
			d.take(ev, start, end)
			return true
		}
	}
	d.fail(err)
	return false
}

// Err is the decoding error that stopped Next, or nil at a clean end. It is a
// *DecodeError.
func (d *Decoder) Err() error { return d.err }

// Offset is the number of bytes of the chunk consumed by the events decoded so far.
func (d *Decoder) Offset() int { return d.off }

// NextAppend is Next followed by e.Append(dst, ev), reading the record once where it can:
// Next alone walks the record to find its end, and Append walks it again to encode it. It
// returns what they would: ok is false at the end of the chunk or on a decoding error (see
// Err); otherwise ev is the event, and out is dst extended by its encoding or, with an
// encoding error err, dst as it was.
func (d *Decoder) NextAppend(e *Encoder, dst []byte, ev *Event) (out []byte, ok bool, err error) {
	if d.err != nil || d.off >= len(d.chunk) {
		return dst, false, nil
	}
	if e.logKey != "" { // the log key's value is all it reads of a record
		if !d.Next(ev) {
			return dst, false, nil
		}
		out, err = e.Append(dst, ev)
		return out, true, err
	}
	sec, nsec, start, err := decodeEventHead(d.chunk, d.off)
	if err != nil {
		d.fail(err)
		return dst, false, nil
	}
	ev.Sec, ev.Nsec = sec, nsec
	// Encoding the record walks all of it, and stops after it.
	if out, n, err := e.appendRecordPrefix(dst, d.chunk[start:], ev); err == nil {
		d.take(ev, start, start+n)
		if e.newline {
			out = append(out, '\n')
		}
		return out, true, nil
	}
	// A record that cannot be encoded: find its end as Next does, so that a chunk cut or
	// malformed inside it is a decoding error, and let Append judge the record alone.
	end, err := skip(d.chunk, start)
	if err != nil {
		d.fail(err)
		return dst, false, nil
	}
	d.take(ev, start, end)
	out, err = e.Append(dst, ev)
	return out, true, err
}

// take makes chunk[start:end] the body of ev, the event just read, and moves past it.
func (d *Decoder) take(ev *Event, start, end int) {
	ev.Body = d.chunk[start:end:end]
	d.off = end
	d.index++
}

// fail stops the decoder at the event it is reading.
func (d *Decoder) fail(err error) {
	d.err = &DecodeError{Index: d.index, Offset: d.off, Err: err}
}

// decodeEventHead decodes the event starting at b[i] up to its record, and returns the offset
// of the record.
func decodeEventHead(b []byte, i int) (sec int64, nsec uint32, body int, err error) {
	// The heads Fluent Bit writes, [[time, {}], record] with an ext 0 time and no metadata, in
	// compact headers (Fluent Bit 5) or 32-bit ones (Fluent Bit 4), read at once.
	if i >= 0 && i < len(b) {
		switch r := b[i:]; {
		case len(r) >= len(compactHead)+9 && string(r[:len(compactHead)]) == compactHead && r[len(compactHead)+8] == 0x80:
			if sec, nsec, ok := extTime(r[len(compactHead):]); ok {
				return sec, nsec, i + len(compactHead) + 9, nil
			}
		case len(r) >= len(wideHead)+8+len(wideNoMetadata) && string(r[:len(wideHead)]) == wideHead &&
			string(r[len(wideHead)+8:len(wideHead)+8+len(wideNoMetadata)]) == wideNoMetadata:
			if sec, nsec, ok := extTime(r[len(wideHead):]); ok {
				return sec, nsec, i + len(wideHead) + 8 + len(wideNoMetadata), nil
			}
		}
	}
	return decodeEventHeadAny(b, i)
}

// decodeEventHeadAny is decodeEventHead for every head the format allows: any headers, a time
// of any type, metadata or none, and the legacy [time, record].
func decodeEventHeadAny(b []byte, i int) (sec int64, nsec uint32, body int, err error) {
	h, j, err := readHeader(b, i)
	if err != nil {
		return 0, 0, 0, err
	}
	if h.kind != kindArray {
		return 0, 0, 0, fmt.Errorf("%w: event is a %v, want an array of 2", ErrBadEvent, h.kind)
	}
	if h.n != 2 {
		return 0, 0, 0, fmt.Errorf("%w: event is an array of %d, want 2", ErrBadEvent, h.n)
	}
	if h, j, err = readHeader(b, j); err != nil {
		return 0, 0, 0, err
	}
	if h.kind == kindArray { // [time, metadata]
		if h.n == 0 {
			return 0, 0, 0, fmt.Errorf("%w: event header is an empty array", ErrBadEvent)
		}
		metadata := h.n - 1
		if sec, nsec, j, err = readTime(b, j); err != nil {
			return 0, 0, 0, err
		}
		for ; metadata > 0; metadata-- {
			if j, err = skip(b, j); err != nil {
				return 0, 0, 0, err
			}
		}
	} else if sec, nsec, j, err = timeFromHeader(b, h, j); err != nil {
		return 0, 0, 0, err
	}
	return sec, nsec, j, nil
}

// The start of an event in Fluent Bit's v2 format up to its ext 0 time (8 bytes follow), and the
// empty metadata map after the time, as Fluent Bit 5 (compact) and 4 (wide) write them.
const (
	compactHead    = "\x92\x92\xd7\x00"                                 // fixarray 2, fixarray 2, fixext 8 type 0
	wideHead       = "\xdd\x00\x00\x00\x02\xdd\x00\x00\x00\x02\xd7\x00" // array32 2, array32 2, fixext 8 type 0
	wideNoMetadata = "\xdf\x00\x00\x00\x00"                             // map32 0 (compact: fixmap 0, 0x80)
)

// extTime decodes the 8 bytes of an ext 0 time, and reports false for nanoseconds of a second or
// more, which timeFromHeader carries.
func extTime(b []byte) (sec int64, nsec uint32, ok bool) {
	nsec = binary.BigEndian.Uint32(b[4:8])
	return int64(binary.BigEndian.Uint32(b[:4])), nsec, nsec < 1e9
}

// readTime reads the event time at b[i].
func readTime(b []byte, i int) (sec int64, nsec uint32, next int, err error) {
	h, j, err := readHeader(b, i)
	if err != nil {
		return 0, 0, j, err
	}
	return timeFromHeader(b, h, j)
}

// timeFromHeader decodes an event time whose header h has been read.
func timeFromHeader(b []byte, h header, j int) (sec int64, nsec uint32, next int, err error) {
	switch h.kind {
	case kindExt:
		if h.ext != 0 || h.n != 8 {
			return 0, 0, j, fmt.Errorf("%w: time is ext %d of %d bytes, want ext 0 of 8 bytes", ErrBadEvent, h.ext, h.n)
		}
		sec = int64(binary.BigEndian.Uint32(b[j:]))
		nsec = binary.BigEndian.Uint32(b[j+4:])
		if nsec >= 1e9 { // not produced by Fluent Bit; carry rather than fail the chunk
			sec += int64(nsec / 1e9)
			nsec %= 1e9
		}
		return sec, nsec, j + 8, nil
	case kindInt:
		return int64(h.v), 0, j, nil
	case kindUint:
		if h.v > math.MaxInt64 {
			return 0, 0, j, fmt.Errorf("%w: time %d out of range", ErrBadEvent, h.v)
		}
		return int64(h.v), 0, j, nil
	case kindFloat32, kindFloat64:
		f := math.Float64frombits(h.v)
		if h.kind == kindFloat32 {
			f = float64(math.Float32frombits(uint32(h.v)))
		}
		// -2^63 <= f < 2^63, false for NaN.
		if !(f >= -(1<<63) && f < 1<<63) {
			return 0, 0, j, fmt.Errorf("%w: time %v out of range", ErrBadEvent, f)
		}
		whole := math.Floor(f)
		sec = int64(whole)
		nsec = uint32(math.Round((f - whole) * 1e9))
		if nsec >= 1e9 {
			sec++
			nsec -= 1e9
		}
		return sec, nsec, j, nil
	}
	return 0, 0, j, fmt.Errorf("%w: time is a %v, want ext 0, an integer or a float", ErrBadEvent, h.kind)
}
