package record

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// decodeAll decodes chunk to its end or first error.
func decodeAll(chunk []byte) ([]Event, error) {
	var d Decoder
	d.Reset(chunk)
	var events []Event
	var ev Event
	for d.Next(&ev) {
		events = append(events, ev)
	}
	return events, d.Err()
}

func TestDecode(t *testing.T) {
	t.Parallel()
	body := mp(nil).map_(1).str("log").str("hello")
	bodyWide := mp(nil).map32(2).str32("log").str16("hello").str8("n").i64(-1)
	tests := []struct {
		name  string
		chunk mp
		want  []Event
	}{
		{name: "empty chunk"},
		{
			name:  "v2 compact fixext8",
			chunk: append(eventV2(nil, evt(1700000000, 123456789)), body...),
			want:  []Event{{Sec: 1700000000, Nsec: 123456789, Body: body}},
		},
		{
			name:  "v2 fluent bit 4 wide headers",
			chunk: append(eventV2Wide(nil, evt(1, 2)), bodyWide...),
			want:  []Event{{Sec: 1, Nsec: 2, Body: bodyWide}},
		},
		{
			name:  "v2 16-bit headers and ext8 time",
			chunk: append(mp(nil).arr16(2).arr16(2).eventTime8(7, 8).map16(0), body...),
			want:  []Event{{Sec: 7, Nsec: 8, Body: body}},
		},
		{
			name:  "v2 ext16 and ext32 time",
			chunk: append(append(mp(nil).arr(2).ext16(0, "\x00\x00\x00\x09\x00\x00\x00\x0a"), body...).arr(2).ext32(0, "\x00\x00\x00\x0b\x00\x00\x00\x0c"), body...),
			want:  []Event{{Sec: 9, Nsec: 10, Body: body}, {Sec: 11, Nsec: 12, Body: body}},
		},
		{
			name: "v2 metadata is skipped",
			chunk: append(mp(nil).arr(2).arr(2).eventTime(5, 0).
				map_(2).str("otlp").map_(1).str("k").arr(2).int(1).str("x").str("n").nil_(), body...),
			want: []Event{{Sec: 5, Body: body}},
		},
		{
			name:  "v2 header with time only",
			chunk: append(mp(nil).arr(2).arr(1).eventTime(5, 6), body...),
			want:  []Event{{Sec: 5, Nsec: 6, Body: body}},
		},
		{
			name:  "v1 ext time",
			chunk: append(eventV1(nil, evt(1600000000, 999999999)), body...),
			want:  []Event{{Sec: 1600000000, Nsec: 999999999, Body: body}},
		},
		{
			name:  "v1 32-bit header",
			chunk: append(mp(nil).arr32(2).eventTime(3, 4), bodyWide...),
			want:  []Event{{Sec: 3, Nsec: 4, Body: bodyWide}},
		},
		{
			name:  "nanoseconds past a second carry",
			chunk: append(eventV1(nil, evt(10, 2500000000)), body...),
			want:  []Event{{Sec: 12, Nsec: 500000000, Body: body}},
		},
		{
			name: "integer times of every width",
			chunk: func() mp {
				w := mp(nil)
				for _, tm := range []mp{
					mp(nil).raw(0x05), mp(nil).raw(0xff), // fixints 5 and -1
					mp(nil).u8(200), mp(nil).u16(60000), mp(nil).u32(1700000000), mp(nil).u64(math.MaxInt64),
					mp(nil).i8(-100), mp(nil).i16(-30000), mp(nil).i32(-2000000000), mp(nil).i64(math.MinInt64),
				} {
					w = append(append(w.arr(2).arr(2), tm...).map_(0), body...)
				}
				return w
			}(),
			want: []Event{
				{Sec: 5, Body: body}, {Sec: -1, Body: body},
				{Sec: 200, Body: body}, {Sec: 60000, Body: body}, {Sec: 1700000000, Body: body}, {Sec: math.MaxInt64, Body: body},
				{Sec: -100, Body: body}, {Sec: -30000, Body: body}, {Sec: -2000000000, Body: body}, {Sec: math.MinInt64, Body: body},
			},
		},
		{
			name: "float times",
			chunk: func() mp {
				w := mp(nil)
				for _, tm := range []mp{
					mp(nil).f64(1700000000.25), mp(nil).f32(2.5), mp(nil).f64(-1.5), mp(nil).f64(0.9999999999), mp(nil).f64(3),
				} {
					w = append(append(w.arr(2), tm...), body...)
				}
				return w
			}(),
			want: []Event{
				{Sec: 1700000000, Nsec: 250000000, Body: body}, {Sec: 2, Nsec: 500000000, Body: body},
				{Sec: -2, Nsec: 500000000, Body: body}, {Sec: 1, Nsec: 0, Body: body}, {Sec: 3, Body: body},
			},
		},
		{
			name:  "mixed formats in one chunk",
			chunk: append(append(eventV1(nil, evt(1, 0)), body...), append(eventV2Wide(nil, evt(2, 0)), bodyWide...)...),
			want:  []Event{{Sec: 1, Body: body}, {Sec: 2, Body: bodyWide}},
		},
		{
			name:  "record that is not a map is decoded",
			chunk: eventV2(nil, evt(1, 0)).str("not a map"),
			want:  []Event{{Sec: 1, Body: mp(nil).str("not a map")}},
		},
		{
			name:  "empty record",
			chunk: eventV2(nil, evt(1, 0)).map_(0),
			want:  []Event{{Sec: 1, Body: mp(nil).map_(0)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeAll(tt.chunk)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("decoded %d events, want %d", len(got), len(tt.want))
			}
			for i := range got {
				checkEvent(t, i, got[i], tt.want[i])
				if len(got[i].Body) != cap(got[i].Body) {
					t.Errorf("event %d: body capacity %d, want %d", i, cap(got[i].Body), len(got[i].Body))
				}
			}
		})
	}
}

func TestDecodeBodyAliasesChunk(t *testing.T) {
	t.Parallel()
	chunk := eventV2(nil, evt(1, 0)).map_(1).str("k").str("v")
	var d Decoder
	d.Reset(chunk)
	var ev Event
	if !d.Next(&ev) {
		t.Fatalf("no event: %v", d.Err())
	}
	if &chunk[len(chunk)-len(ev.Body)] != &ev.Body[0] {
		t.Error("body is a copy, want a subslice of the chunk")
	}
	if d.Next(&ev) || d.Err() != nil {
		t.Errorf("want a clean end, got err %v", d.Err())
	}
	if d.Offset() != len(chunk) {
		t.Errorf("offset %d, want %d", d.Offset(), len(chunk))
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	good := append(eventV2(nil, evt(1, 0)), mp(nil).map_(1).str("a").int(1)...)
	tests := []struct {
		name   string
		chunk  mp
		events int // decoded before the error
		is     error
		msg    string
	}{
		{
			name:  "event is a map",
			chunk: mp(nil).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: event is a map, want an array of 2",
		},
		{
			name:  "event is an array of 3",
			chunk: mp(nil).arr(3).eventTime(1, 0).map_(0).nil_(),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: event is an array of 3, want 2",
		},
		{
			name:  "time is a string",
			chunk: mp(nil).arr(2).str("now").map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time is a str, want ext 0, an integer or a float",
		},
		{
			name:  "time in header is nil",
			chunk: mp(nil).arr(2).arr(2).nil_().map_(0).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time is a nil, want ext 0, an integer or a float",
		},
		{
			name:  "time is ext 1",
			chunk: mp(nil).arr(2).ext(1, "12345678").map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time is ext 1 of 8 bytes, want ext 0 of 8 bytes",
		},
		{
			name:  "time is ext 0 of 4 bytes",
			chunk: mp(nil).arr(2).ext(0, "1234").map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time is ext 0 of 4 bytes, want ext 0 of 8 bytes",
		},
		{
			name:  "time beyond int64",
			chunk: mp(nil).arr(2).u64(math.MaxUint64).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time 18446744073709551615 out of range",
		},
		{
			name:  "time is NaN",
			chunk: mp(nil).arr(2).f64(math.NaN()).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time NaN out of range",
		},
		{
			name:  "time is +Inf float32",
			chunk: mp(nil).arr(2).f32(float32(math.Inf(1))).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time +Inf out of range",
		},
		{
			name:  "time is 2^63",
			chunk: mp(nil).arr(2).f64(1 << 63).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: time 9.223372036854776e+18 out of range",
		},
		{
			name:  "empty header array",
			chunk: mp(nil).arr(2).arr(0).map_(0),
			is:    ErrBadEvent,
			msg:   "record: event 0 at offset 0: bad event: event header is an empty array",
		},
		{
			name:  "invalid byte 0xc1 in record",
			chunk: eventV2(nil, evt(1, 0)).map_(1).str("a").raw(0xc1),
			is:    ErrMalformed,
			msg:   "record: event 0 at offset 0: malformed msgpack: byte 0xc1",
		},
		{
			name:   "error in the third event",
			chunk:  append(append(append(mp(nil), good...), good...), 0x91, 0xc0),
			events: 2,
			is:     ErrBadEvent,
			msg:    "record: event 2 at offset 34: bad event: event is an array of 1, want 2",
		},
		{
			name:   "truncated second event",
			chunk:  append(append(mp(nil), good...), good[:len(good)-1]...),
			events: 1,
			is:     ErrTruncated,
			msg:    "record: event 1 at offset 17: truncated",
		},
		{
			name:  "array32 announcing 4 billion events",
			chunk: mp(nil).raw(0xdd, 0xff, 0xff, 0xff, 0xff, 0x00),
			is:    ErrTruncated,
			msg:   "record: event 0 at offset 0: truncated",
		},
		{
			name:  "record map32 announcing 4 billion pairs",
			chunk: eventV1(nil, evt(1, 0)).raw(0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0),
			is:    ErrTruncated,
			msg:   "record: event 0 at offset 0: truncated",
		},
		{
			name:  "str32 longer than the chunk",
			chunk: eventV1(nil, evt(1, 0)).map_(1).raw(0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'),
			is:    ErrTruncated,
			msg:   "record: event 0 at offset 0: truncated",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeAll(tt.chunk)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %q", err, tt.is)
			}
			if err.Error() != tt.msg {
				t.Errorf("error\n got %q\nwant %q", err, tt.msg)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Index != tt.events {
				t.Errorf("error %#v, want a *DecodeError for event %d", err, tt.events)
			}
			if len(got) != tt.events {
				t.Errorf("decoded %d events before the error, want %d", len(got), tt.events)
			}
		})
	}
	if len(good) != 17 {
		t.Fatalf("offsets in the messages above assume a 17-byte event, got %d", len(good))
	}
}

func TestDecodeStopsAfterError(t *testing.T) {
	t.Parallel()
	var d Decoder
	d.Reset(mp(nil).raw(0xc1).arr(2).eventTime(1, 0).map_(0))
	var ev Event
	if d.Next(&ev) || d.Next(&ev) || d.Err() == nil {
		t.Fatalf("want no events and an error, got err %v", d.Err())
	}

	// Reset clears the error.
	d.Reset(eventV1(nil, evt(1, 0)).map_(0))
	if !d.Next(&ev) || d.Next(&ev) || d.Err() != nil {
		t.Fatalf("want one event and a clean end after Reset, got err %v", d.Err())
	}
}

func checkEvent(t *testing.T, i int, got, want Event) {
	t.Helper()
	if got.Sec != want.Sec || got.Nsec != want.Nsec || !bytes.Equal(got.Body, want.Body) {
		t.Errorf("event %d\n got %d.%09d % x\nwant %d.%09d % x", i, got.Sec, got.Nsec, got.Body, want.Sec, want.Nsec, want.Body)
	}
}

// truncationChunk has events of every layout and many value types, so that a cut at
// any offset lands in every kind of header and payload.
func truncationChunk() (chunk mp, ends []int) {
	bodies := []mp{
		mp(nil).map_(3).str("log").str("line one").str("n").int(-5).str("f").f64(1.5),
		mp(nil).map32(2).str32("nested").map16(1).str8("a").arr32(3).u64(math.MaxUint64).bin16("xy").nil_().
			str16("e").ext(7, "abcd"),
		mp(nil).map_(2).bin("b").bool_(true).i32(-7).f32(2.5),
		mp(nil).str("not a map"),
	}
	heads := []func(mp) mp{
		func(w mp) mp { return eventV2(w, evt(1, 2)) },
		func(w mp) mp { return eventV2Wide(w, func(w mp) mp { return w.eventTime8(3, 4) }) },
		func(w mp) mp { return eventV1(w, func(w mp) mp { return w.i64(-9) }) },
		func(w mp) mp { return eventV1(w, func(w mp) mp { return w.f64(12.5) }) },
		func(w mp) mp {
			return w.arr(2).arr(2).u32(6).map_(1).str("m").arr(1).str("v")
		},
	}
	for i, head := range heads {
		chunk = append(head(chunk), bodies[i%len(bodies)]...)
		ends = append(ends, len(chunk))
	}
	return chunk, ends
}

func TestDecodeTruncatedAtEveryOffset(t *testing.T) {
	t.Parallel()
	chunk, ends := truncationChunk()
	full, err := decodeAll(chunk)
	if err != nil || len(full) != len(ends) {
		t.Fatalf("full chunk: %d events, error %v; want %d events", len(full), err, len(ends))
	}

	for cut := 0; cut < len(chunk); cut++ {
		// A copy with no spare capacity, so reading past the cut cannot go unnoticed.
		prefix := bytes.Clone(chunk[:cut])
		got, err := decodeAll(prefix)

		complete := 0
		for complete < len(ends) && ends[complete] <= cut {
			complete++
		}
		if len(got) != complete {
			t.Fatalf("cut at %d: decoded %d events, want %d", cut, len(got), complete)
		}
		for i := range got {
			checkEvent(t, i, got[i], full[i])
		}
		atBoundary := cut == 0 || (complete > 0 && ends[complete-1] == cut)
		if atBoundary {
			if err != nil {
				t.Errorf("cut at %d, an event boundary: %v", cut, err)
			}
			continue
		}
		var de *DecodeError
		if !errors.Is(err, ErrTruncated) || !errors.As(err, &de) || de.Index != complete {
			t.Errorf("cut at %d: error %v, want truncated at event %d", cut, err, complete)
		}
	}
}

func TestDecodeGarbageNeverPanics(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	chunk, _ := truncationChunk()
	enc := NewEncoder(Options{AppendNewline: true})
	for range 20000 {
		var b []byte
		switch rng.IntN(2) {
		case 0: // random bytes
			b = make([]byte, rng.IntN(64))
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
		case 1: // a valid chunk with a few bytes flipped
			b = bytes.Clone(chunk)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
		}
		events, _ := decodeAll(b)
		for i := range events {
			_, _ = enc.Append(nil, &events[i])
		}
	}
	// Nesting far beyond any stack: a million arrays, complete or cut.
	deep := eventV1(nil, evt(1, 0))
	for range 1000000 {
		deep = append(deep, 0x91)
	}
	for _, b := range [][]byte{deep, append(bytes.Clone(deep), 0xc0)} {
		events, _ := decodeAll(b)
		for i := range events {
			_, _ = enc.Append(nil, &events[i])
		}
	}
}

// TestDecodeEventHeadFastPath: decodeEventHead, which reads the heads Fluent Bit writes at once,
// must agree with decodeEventHeadAny, which reads every head the format allows, on those heads
// (compact and wide, times at the edges of the nanosecond range), on each of them with any one
// byte of the head replaced by every value, and on every truncation.
func TestDecodeEventHeadFastPath(t *testing.T) {
	t.Parallel()
	var heads [][]byte
	for _, tm := range [][2]uint32{{0, 0}, {1_764_000_000, 999_999_999}, {math.MaxUint32, 1_000_000_000}, {7, math.MaxUint32}} {
		body := mp(nil).map_(1).str("log").str("x")
		heads = append(heads,
			append(eventV2(nil, evt(tm[0], tm[1])), body...),
			append(eventV2Wide(nil, evt(tm[0], tm[1])), body...),
		)
	}
	check := func(b []byte, i int) {
		t.Helper()
		s1, n1, j1, err1 := decodeEventHead(b, i)
		s2, n2, j2, err2 := decodeEventHeadAny(b, i)
		if s1 != s2 || n1 != n2 || j1 != j2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("% x at %d: fast %d.%09d body at %d (%v), general %d.%09d body at %d (%v)", b, i, s1, n1, j1, err1, s2, n2, j2, err2)
		}
	}
	for _, h := range heads {
		for _, lead := range []int{0, 3} { // the event at the chunk's start or further in
			b := append(make([]byte, lead), h...)
			check(b, lead)
			for cut := lead; cut < len(b); cut++ {
				check(b[:cut], lead)
			}
			for pos := lead; pos < lead+26 && pos < len(b); pos++ {
				for v := range 256 {
					m := append([]byte(nil), b...)
					m[pos] = byte(v)
					check(m, lead)
				}
			}
		}
	}
}
