package record

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// encodeCase is one record encoded with one set of options.
type encodeCase struct {
	name string
	opts Options
	body mp
	want string
}

// runEncodeCases encodes each case's body at testSec.testNsec and compares the
// output byte for byte; every output that is not a raw log_key string must be a
// valid JSON object, and one with a time key must hold its name once.
func runEncodeCases(t *testing.T, tests []encodeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NewEncoder(tt.opts).Append([]byte("prefix"), &Event{Sec: testSec, Nsec: testNsec, Body: tt.body})
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got) != "prefix"+tt.want {
				t.Errorf("\n got %s\nwant %s", got[len("prefix"):], tt.want)
			}
			if tt.opts.LogKey == "" {
				checkObject(t, got[len("prefix"):], tt.opts.TimeKey != "" && tt.opts.TimeFormat != nil)
			}
		})
	}
}

// checkObject fails unless js is a JSON object, whose last key, when timeKey is
// set, is there once.
func checkObject(t *testing.T, js []byte, timeKey bool) {
	t.Helper()
	keys, err := topLevelKeys(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if !timeKey {
		return
	}
	if len(keys) == 0 {
		t.Fatalf("%s: no time key", js)
	}
	for _, k := range keys[:len(keys)-1] {
		if k == keys[len(keys)-1] {
			t.Errorf("%s: time key %q twice", js, k)
		}
	}
}

// topLevelKeys returns the keys of the JSON object js in order, read by
// encoding/json's tokenizer.
func topLevelKeys(js []byte) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(js)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the object")
	}
	return keys, nil
}

func TestEncodeDataKeys(t *testing.T) {
	t.Parallel()
	f := mustFormatter(t, "%Y")
	container := mp(nil).map_(3).str("stream").str("stdout").str("log").str("line").
		str("kubernetes").map_(1).str("pod_name").str("p")
	runEncodeCases(t, []encodeCase{
		{
			name: "record order, not the configured order",
			opts: Options{DataKeys: []string{"log", "stream"}},
			body: container,
			want: `{"stream":"stdout","log":"line"}`,
		},
		{
			name: "nested value kept whole",
			opts: Options{DataKeys: []string{"kubernetes"}},
			body: container,
			want: `{"kubernetes":{"pod_name":"p"}}`,
		},
		{
			name: "no field named",
			opts: Options{DataKeys: []string{"missing"}},
			body: container,
			want: `{}`,
		},
		{
			name: "empty record",
			opts: Options{DataKeys: []string{"log"}},
			body: mp(nil).map_(0),
			want: `{}`,
		},
		{
			name: "every occurrence of a repeated key",
			opts: Options{DataKeys: []string{"a"}},
			body: mp(nil).map_(3).str("a").int(1).str("b").int(2).str("a").int(3),
			want: `{"a":1,"a":3}`,
		},
		{
			name: "bin key matches",
			opts: Options{DataKeys: []string{"log"}},
			body: mp(nil).map_(2).bin("log").str("x").str("other").int(1),
			want: `{"log":"x"}`,
		},
		{
			name: "keys that are not str or bin never match",
			opts: Options{DataKeys: []string{"5", "null", "true", "1.5"}},
			body: mp(nil).map_(5).int(5).int(1).nil_().int(2).bool_(true).int(3).f64(1.5).int(4).str("5").int(5),
			want: `{"5":5}`,
		},
		{
			name: "only top-level keys",
			opts: Options{DataKeys: []string{"log"}},
			body: mp(nil).map_(1).str("k").map_(1).str("log").str("nested"),
			want: `{}`,
		},
		{
			name: "names match byte for byte",
			opts: Options{DataKeys: []string{"Log", " log", "log ", "lo"}},
			body: mp(nil).map_(1).str("log").str("x"),
			want: `{}`,
		},
		{
			name: "empty names are ignored",
			opts: Options{DataKeys: []string{"", "b"}},
			body: mp(nil).map_(3).str("").int(0).str("a").int(1).str("b").int(2),
			want: `{"b":2}`,
		},
		{
			name: "only empty names keep every key",
			opts: Options{DataKeys: []string{""}},
			body: mp(nil).map_(2).str("a").int(1).str("b").int(2),
			want: `{"a":1,"b":2}`,
		},
		{
			name: "non-ASCII and escaped names",
			opts: Options{DataKeys: []string{"日本", "q\"\n"}},
			body: mp(nil).map_(3).str("日本").str("語").str("x").int(1).str("q\"\n").int(2),
			want: `{"日本":"語","q\"\n":2}`,
		},
		{
			name: "skipped values of every kind",
			opts: Options{DataKeys: []string{"keep"}},
			body: mp(nil).map32(6).
				str("a").arr32(2).map_(1).str("x").ext(3, "abcd").bin32("\x00\xff").
				str("b").str32(strings.Repeat("z", 300)).
				int(7).map_(1).arr(1).int(1).nil_().
				str("keep").f64(2.5).
				str("c").eventTime(1, 2).
				str("d").map16(0),
			want: `{"keep":2.5}`,
		},
		{
			name: "time key added when not named",
			opts: Options{DataKeys: []string{"log"}, TimeKey: "time", TimeFormat: f},
			body: mp(nil).map_(2).str("log").str("x").str("stream").str("stdout"),
			want: `{"log":"x","time":"2023"}`,
		},
		{
			name: "time key replaces a named field of that name",
			opts: Options{DataKeys: []string{"time", "log"}, TimeKey: "time", TimeFormat: f},
			body: mp(nil).map_(3).str("time").str("old").str("log").str("x").str("stream").str("stdout"),
			want: `{"log":"x","time":"2023"}`,
		},
		{
			name: "time key alone when nothing is kept",
			opts: Options{DataKeys: []string{"missing"}, TimeKey: "time", TimeFormat: f},
			body: mp(nil).map_(1).str("time").str("old"),
			want: `{"time":"2023"}`,
		},
		{
			name: "names before replace_dots",
			opts: Options{DataKeys: []string{"a.b", "c_d"}, ReplaceDots: "_"},
			body: mp(nil).map_(3).str("a.b").int(1).str("c.d").int(2).str("c_d").int(3),
			want: `{"a_b":1,"c_d":3}`,
		},
	})
}

func TestEncodeDataKeysIgnoredWithLogKey(t *testing.T) {
	t.Parallel()
	enc := NewEncoder(Options{LogKey: "log", DataKeys: []string{"stream"}})
	got, err := enc.Append(nil, &Event{Body: mp(nil).map_(2).str("stream").str("stdout").str("log").str("line")})
	if err != nil || string(got) != "line" {
		t.Errorf("got %q, %v; want %q", got, err, "line")
	}
}

// TestEncodeDataKeysCopied checks that the encoder does not keep the caller's slice.
func TestEncodeDataKeysCopied(t *testing.T) {
	t.Parallel()
	keys := []string{"a"}
	enc := NewEncoder(Options{DataKeys: keys})
	keys[0] = "b"
	got, err := enc.Append(nil, &Event{Body: mp(nil).map_(2).str("a").int(1).str("b").int(2)})
	if err != nil || string(got) != `{"a":1}` {
		t.Errorf("got %s, %v; want {\"a\":1}", got, err)
	}
}

func TestEncodeDataKeysErrors(t *testing.T) {
	t.Parallel()
	enc := NewEncoder(Options{DataKeys: []string{"keep"}})
	tests := []struct {
		name string
		body mp
		is   error
	}{
		{"not a map", mp(nil).arr(0), ErrNotMap},
		{"skipped value truncated", mp(nil).map_(2).str("a").arr(2).int(1), ErrTruncated},
		{"skipped key truncated", mp(nil).map_(1).raw(0xa3, 'a'), ErrTruncated},
		{"skipped value malformed", mp(nil).map_(2).str("a").raw(0xc1).str("keep").int(1), ErrMalformed},
		{"trailing bytes", mp(nil).map_(1).str("a").int(1).raw(0xc0), ErrMalformed},
		{"kept value too deep", func() mp {
			w := mp(nil).map_(1).str("keep")
			for range 1000 {
				w = w.arr(1)
			}
			return w.nil_()
		}(), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := enc.Append([]byte("prefix"), &Event{Body: tt.body})
			if !errors.Is(err, tt.is) || string(got) != "prefix" {
				t.Errorf("got %q, %v; want %q, %v", got, err, "prefix", tt.is)
			}
		})
	}
}

func TestEncodeReplaceDots(t *testing.T) {
	t.Parallel()
	f := mustFormatter(t, "%Y")
	under := Options{ReplaceDots: "_"}
	runEncodeCases(t, []encodeCase{
		{
			name: "top-level keys, values untouched",
			opts: under,
			body: mp(nil).map_(2).str("a.b.c").str("x.y").str("plain").str("1.5"),
			want: `{"a_b_c":"x.y","plain":"1.5"}`,
		},
		{
			name: "nested maps and arrays of maps",
			opts: under,
			body: mp(nil).map_(1).str("kubernetes").map_(2).
				str("labels").map_(2).str("app.kubernetes.io/name").str("web").str("pod-template-hash").str("7d9f").
				str("containers").arr(2).map_(1).str("image.tag").str("1.2.3").arr(1).map_(1).str("a.b").map_(0),
			want: `{"kubernetes":{"labels":{"app_kubernetes_io/name":"web","pod-template-hash":"7d9f"},` +
				`"containers":[{"image_tag":"1.2.3"},[{"a_b":{}}]]}}`,
		},
		{
			name: "leading, trailing and repeated dots",
			opts: under,
			body: mp(nil).map_(3).str(".a.").int(1).str("..").int(2).str(".").int(3),
			want: `{"_a_":1,"__":2,"_":3}`,
		},
		{
			name: "longer replacement",
			opts: Options{ReplaceDots: "__dot__"},
			body: mp(nil).map_(1).str("a.b").int(1),
			want: `{"a__dot__b":1}`,
		},
		{
			name: "replacement with a dot",
			opts: Options{ReplaceDots: "[.]"},
			body: mp(nil).map_(1).str("a.b").int(1),
			want: `{"a[.]b":1}`,
		},
		{
			name: "replacement escaped as JSON",
			opts: Options{ReplaceDots: "\"\\\n\x01"},
			body: mp(nil).map_(1).str("a.b").int(1),
			want: `{"a\"\\\n\u0001b":1}`,
		},
		{
			name: "non-ASCII replacement kept",
			opts: Options{ReplaceDots: "·"},
			body: mp(nil).map_(1).str("a.b").int(1),
			want: `{"a·b":1}`,
		},
		{
			name: "invalid UTF-8 replacement is U+FFFD on its own",
			opts: Options{ReplaceDots: "\xc3"},
			body: mp(nil).map_(1).str("a.\xa9").int(1),
			want: `{"a` + "\ufffd\ufffd" + `":1}`,
		},
		{
			name: "escaping and invalid UTF-8 around dots",
			opts: under,
			body: mp(nil).map_(2).str("q\".\n").int(1).str("\xe6\x97.\x97").int(2),
			want: `{"q\"_\n":1,"` + "\ufffd\ufffd_\ufffd" + `":2}`,
		},
		{
			name: "multi-byte UTF-8 around dots",
			opts: under,
			body: mp(nil).map_(1).str("日本.語.🎉").int(1),
			want: `{"日本_語_🎉":1}`,
		},
		{
			name: "bin keys",
			opts: under,
			body: mp(nil).map_(1).bin("a.b").bin("c.d"),
			want: `{"a_b":"c.d"}`,
		},
		{
			name: "keys that are not strings, by their JSON text",
			opts: under,
			body: mp(nil).map_(6).f64(1.5).int(1).f32(0.25).int(2).f64(0.000001).int(3).f64(1e21).int(4).
				f64(-2.5e-7).int(5).int(7).int(6),
			want: `{"1_5":1,"0_25":2,"0_000001":3,"1e+21":4,"-2_5e-7":5,"7":6}`,
		},
		{
			name: "map key: its whole JSON text",
			opts: under,
			body: mp(nil).map_(1).map_(1).str("a.b").arr(2).str("c.d").f64(0.5).int(1),
			want: `{"{\"a_b\":[\"c_d\",0_5]}":1}`,
		},
		{
			name: "time key name rewritten, fields it would repeat dropped",
			opts: Options{ReplaceDots: "_", TimeKey: "event.time", TimeFormat: f},
			body: mp(nil).map_(4).str("event.time").str("old1").str("log").str("x").str("event_time").str("old2").
				str("event").map_(1).str("time").int(1),
			want: `{"log":"x","event":{"time":1},"event_time":"2023"}`,
		},
		{
			name: "time key without a dot replaces a field that gets its name",
			opts: Options{ReplaceDots: "_", TimeKey: "@time_stamp", TimeFormat: f},
			body: mp(nil).map_(2).str("@time.stamp").str("old").str("log").str("x"),
			want: `{"log":"x","@time_stamp":"2023"}`,
		},
		{
			name: "time key with an escaped replacement",
			opts: Options{ReplaceDots: "\"", TimeKey: "a.b", TimeFormat: f},
			body: mp(nil).map_(2).str("a\"b").int(1).str("a.b").int(2),
			want: `{"a\"b":"2023"}`,
		},
	})
}

func TestEncodeReplaceDotsLogKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body mp
		want string
	}{
		{
			name: "log_key matches the name before replacement",
			body: mp(nil).map_(2).str("log_x").str("no").str("log.x").str("a.b"),
			want: "a.b",
		},
		{
			name: "map value: its keys rewritten",
			body: mp(nil).map_(1).str("log.x").map_(1).str("k.1").arr(1).map_(1).str("k.2").str("v.3"),
			want: `{"k_1":[{"k_2":"v.3"}]}`,
		},
	}
	enc := NewEncoder(Options{LogKey: "log.x", ReplaceDots: "_"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := enc.Append(nil, &Event{Body: tt.body})
			if err != nil || string(got) != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestEncodeTimeKeyMatchesOutputName checks that the time key replaces every field
// that JSON would read under its name, not only str keys spelt the same.
func TestEncodeTimeKeyMatchesOutputName(t *testing.T) {
	t.Parallel()
	f := mustFormatter(t, "%Y")
	runEncodeCases(t, []encodeCase{
		{
			name: "number key",
			opts: Options{TimeKey: "5", TimeFormat: f},
			body: mp(nil).map_(2).int(5).str("old").str("log").str("x"),
			want: `{"log":"x","5":"2023"}`,
		},
		{
			name: "nil key",
			opts: Options{TimeKey: "null", TimeFormat: f},
			body: mp(nil).map_(1).nil_().int(1),
			want: `{"null":"2023"}`,
		},
		{
			name: "invalid UTF-8 that reads as the same name",
			opts: Options{TimeKey: "t\ufffd", TimeFormat: f},
			body: mp(nil).map_(2).str("t\xff").int(1).str("t\ufffd").int(2),
			want: `{"t` + "\ufffd" + `":"2023"}`,
		},
		{
			name: "similar names kept",
			opts: Options{TimeKey: "time", TimeFormat: f},
			body: mp(nil).map_(3).str("Time").int(1).str("time ").int(2).str("tim").int(3),
			want: `{"Time":1,"time ":2,"tim":3,"time":"2023"}`,
		},
	})
}

// TestEncodeTimeKeyEdges checks time_key against strings computed by hand (and with
// date -u -d @seconds): before 1970, at 0 and 999999999 nanoseconds, the last
// second an ext 0 timestamp can hold.
func TestEncodeTimeKeyEdges(t *testing.T) {
	t.Parallel()
	ms := mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%3NZ")
	ns := mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%9N")
	tests := []struct {
		sec    int64
		nsec   uint32
		ms, ns string
	}{
		{0, 0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000000000"},
		{0, 999999999, "1970-01-01T00:00:00.999Z", "1970-01-01T00:00:00.999999999"},
		{-1, 0, "1969-12-31T23:59:59.000Z", "1969-12-31T23:59:59.000000000"},
		{-1, 999999999, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999999999"},
		{-86401, 1, "1969-12-30T23:59:59.000Z", "1969-12-30T23:59:59.000000001"},
		{-31536000, 0, "1969-01-01T00:00:00.000Z", "1969-01-01T00:00:00.000000000"},
		{-62135596800, 0, "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000000000"},
		{951825600, 5000000, "2000-02-29T12:00:00.005Z", "2000-02-29T12:00:00.005000000"},
		{testSec, testNsec, "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123456789"},
		{4294967295, 999999999, "2106-02-07T06:28:15.999Z", "2106-02-07T06:28:15.999999999"},
	}
	body := mp(nil).map_(1).str("log").str("x")
	for _, tt := range tests {
		for _, c := range []struct {
			f    Options
			want string
		}{
			{Options{TimeKey: "time", TimeFormat: ms}, tt.ms},
			{Options{TimeKey: "time", TimeFormat: ns}, tt.ns},
		} {
			got, err := NewEncoder(c.f).Append(nil, &Event{Sec: tt.sec, Nsec: tt.nsec, Body: body})
			want := `{"log":"x","time":"` + c.want + `"}`
			if err != nil || string(got) != want {
				t.Errorf("%d.%09d: got %s, %v; want %s", tt.sec, tt.nsec, got, err, want)
			}
		}
	}
}

// TestDecodeEncodeTimeKey runs event times of every encoding through the decoder and
// the encoder, against hand-computed strings.
func TestDecodeEncodeTimeKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		time func(mp) mp
		want string
	}{
		{"ext 0, zero", func(w mp) mp { return w.eventTime(0, 0) }, "1970-01-01T00:00:00.000Z"},
		{"ext 0, 999999999 ns", func(w mp) mp { return w.eventTime(1700000000, 999999999) }, "2023-11-14T22:13:20.999Z"},
		{"ext 0, last second", func(w mp) mp { return w.eventTime(4294967295, 999999999) }, "2106-02-07T06:28:15.999Z"},
		{"int, before 1970", func(w mp) mp { return w.int(-1) }, "1969-12-31T23:59:59.000Z"},
		{"int64, year 1", func(w mp) mp { return w.i64(-62135596800) }, "0001-01-01T00:00:00.000Z"},
		{"float, before 1970", func(w mp) mp { return w.f64(-0.25) }, "1969-12-31T23:59:59.750Z"},
		{"float, a day before 1970", func(w mp) mp { return w.f64(-86400.5) }, "1969-12-30T23:59:59.500Z"},
		{"float, after 1970", func(w mp) mp { return w.f64(1.5) }, "1970-01-01T00:00:01.500Z"},
		{"float32", func(w mp) mp { return w.f32(-2.5) }, "1969-12-31T23:59:57.500Z"},
	}
	enc := NewEncoder(Options{TimeKey: "@timestamp", TimeFormat: mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%3NZ")})
	for _, tt := range tests {
		for _, head := range []func(mp, func(mp) mp) mp{eventV1, eventV2, eventV2Wide} {
			chunk := head(nil, tt.time).map_(0)
			var d Decoder
			d.Reset(chunk)
			var ev Event
			if !d.Next(&ev) {
				t.Fatalf("%s: no event: %v", tt.name, d.Err())
			}
			got, err := enc.Append(nil, &ev)
			want := `{"@timestamp":"` + tt.want + `"}`
			if err != nil || string(got) != want {
				t.Errorf("%s: got %s, %v; want %s", tt.name, got, err, want)
			}
		}
	}
}

// TestTruncatedChunkEncodesEventsBefore checks that a chunk that ends inside an
// event gives the events before it, encoded, and an error that says where.
func TestTruncatedChunkEncodesEventsBefore(t *testing.T) {
	t.Parallel()
	var chunk mp
	chunk = eventV2(chunk, evt(1, 0)).map_(1).str("n").int(1)
	chunk = eventV2Wide(chunk, evt(2, 0)).map_(1).str("n").int(2)
	second := len(chunk)
	chunk = eventV2(chunk, evt(3, 0)).map_(1).str("n").str("cut here")
	chunk = chunk[:len(chunk)-3]

	enc := NewEncoder(Options{AppendNewline: true})
	var d Decoder
	d.Reset(chunk)
	var ev Event
	var out []byte
	for d.Next(&ev) {
		var err error
		if out, err = enc.Append(out, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if string(out) != "{\"n\":1}\n{\"n\":2}\n" {
		t.Errorf("encoded %q before the error", out)
	}
	want := "record: event 2 at offset " + strconv.Itoa(second) + ": truncated"
	if err := d.Err(); err == nil || err.Error() != want || !errors.Is(err, ErrTruncated) {
		t.Errorf("error %v, want %s", err, want)
	}
	if d.Offset() != second {
		t.Errorf("Offset %d, want %d", d.Offset(), second)
	}
}
