package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
	"github.com/tinylib/msgp/msgp"
)

// FuzzEncode feeds arbitrary bytes to the decoder as a chunk, and to the encoder as a
// record body. Nothing may panic; every record that encodes must be valid JSON and,
// when msgp can read the record as plain data, mean the same as what msgp reads.
// data_keys must give the named fields of the plain JSON, replace_dots the plain
// JSON with its keys rewritten, and time_key must never leave its name twice.
func FuzzEncode(f *testing.F) {
	chunk, _ := truncationChunk()
	f.Add([]byte(chunk))
	f.Add(containerLogChunk(2))
	f.Add([]byte(eventV2(nil, evt(1, 2)).map_(3).str("a").f32(0.1).int(5).bin("\xff\"").str("t").arr(2).ext(0, "12345678").f64(math.NaN())))
	f.Add([]byte(mp(nil).map_(2).str("log").str("x\n\x00é").map_(1).int(1).nil_().arr(1).map_(0)))
	f.Add([]byte(mp(nil).map_(1).str("time").str("old")))
	f.Add([]byte(mp(nil).map_(5).str("a.b").map_(1).str("c.d").arr(1).map_(1).str("e.f").int(1).
		str("a_b").int(2).f64(1.5).int(3).str("log").str("l.og").bin("a").arr(1).map_(1).str("x.y").nil_()))
	f.Add([]byte(mp(nil).map_(3).bin("time").int(1).str("a.b").int(2).bin("a.b").int(3)))
	f.Add(containerFB5())

	format, err := timefmt.Compile("%Y-%m-%dT%H:%M:%S.%3N")
	if err != nil {
		f.Fatal(err)
	}
	e := fuzzEncoders{
		plain:      NewEncoder(Options{AppendNewline: true}),
		withTime:   NewEncoder(Options{TimeKey: "time", TimeFormat: format}),
		withLogKey: NewEncoder(Options{LogKey: "log"}),
		dataKeys:   NewEncoder(Options{DataKeys: fuzzDataKeys}),
		dots:       NewEncoder(Options{ReplaceDots: "_"}),
		oddDots:    NewEncoder(Options{ReplaceDots: oddDots}),
		combined:   NewEncoder(Options{DataKeys: fuzzDataKeys, ReplaceDots: "_", TimeKey: "a.b", TimeFormat: format}),
		logKeyDots: NewEncoder(Options{LogKey: "log", ReplaceDots: "_"}),
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		d.Reset(data)
		var ev Event
		for d.Next(&ev) {
			e.check(t, &ev, true)
		}
		if err := d.Err(); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("decoder error %v is not a *DecodeError", err)
			}
		}
		e.check(t, &Event{Sec: 1, Body: data}, false)
	})
}

// fuzzDataKeys are the data_keys of the fuzz target: names a fuzzer finds quickly,
// one with a dot.
var fuzzDataKeys = []string{"log", "a", "time", "a.b"}

// oddDots is a replace_dots value that needs escaping, with non-ASCII.
const oddDots = "\"·\x01\\"

type fuzzEncoders struct {
	plain, withTime, withLogKey *Encoder
	dataKeys, dots, oddDots     *Encoder
	combined, logKeyDots        *Encoder
}

func (e *fuzzEncoders) check(t *testing.T, ev *Event, fromDecoder bool) {
	t.Helper()
	allowed := func(err error) bool {
		if errors.Is(err, ErrNotMap) || errors.Is(err, ErrTooDeep) || errors.Is(err, ErrMissingLogKey) ||
			errors.Is(err, ErrNestedKey) {
			return true
		}
		// The decoder has checked that the body is complete, valid msgp.
		return !fromDecoder && (errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed))
	}
	// encode runs enc; it returns nil on an allowed error.
	encode := func(name string, enc *Encoder) []byte {
		prefix := []byte("p")
		out, err := enc.Append(prefix, ev)
		if err != nil {
			if !allowed(err) || !bytes.Equal(out, prefix) {
				t.Fatalf("body % x: %s: unexpected error %v, dst %q", ev.Body, name, err, out)
			}
			return nil
		}
		return out[len(prefix):]
	}

	var js []byte // the plain JSON, nil when the record does not encode
	if out := encode("plain", e.plain); out != nil {
		if len(out) == 0 || out[len(out)-1] != '\n' {
			t.Fatalf("body % x: no newline at the end of %q", ev.Body, out)
		}
		js = out[:len(out)-1]
		if !json.Valid(js) {
			t.Fatalf("body % x: invalid JSON %q", ev.Body, js)
		}
		compareWithMsgp(t, ev.Body, js)
	}

	if out := encode("time_key", e.withTime); out != nil {
		fields := checkTimeKey(t, ev.Body, "time_key", out, "time")
		if js != nil {
			want := joinFields(keepFields(t, js, func(k string) bool { return k != "time" }))
			sameReencoded(t, ev.Body, "time_key", joinFields(fields), want, nil)
		}
	}

	encode("log_key", e.withLogKey)

	if out := encode("data_keys", e.dataKeys); out != nil {
		fields, err := jsonFields(out)
		if err != nil {
			t.Fatalf("body % x: data_keys: %v", ev.Body, err)
		}
		for _, fl := range fields {
			if !slices.Contains(fuzzDataKeys, fl.key) {
				t.Fatalf("body % x: data_keys: key %q in %q", ev.Body, fl.key, out)
			}
		}
		if js != nil {
			want := joinFields(keepFields(t, js, func(k string) bool { return slices.Contains(fuzzDataKeys, k) }))
			sameReencoded(t, ev.Body, "data_keys", out, want, nil)
		}
	} else if js != nil {
		t.Fatalf("body % x: data_keys fails on a record that encodes", ev.Body)
	}

	for _, c := range []struct {
		name string
		enc  *Encoder
		dots string
	}{{"replace_dots", e.dots, "_"}, {"odd replace_dots", e.oddDots, oddDots}} {
		out := encode(c.name, c.enc)
		if out == nil {
			if js != nil {
				t.Fatalf("body % x: %s fails on a record that encodes", ev.Body, c.name)
			}
			continue
		}
		noDotInKeys(t, ev.Body, c.name, out)
		if js != nil {
			rename := func(k string) string { return strings.ReplaceAll(k, ".", validUTF8(c.dots)) }
			want, err := reencodeJSON(js, rename)
			if err != nil {
				t.Fatalf("body % x: %s: %v", ev.Body, c.name, err)
			}
			sameReencoded(t, ev.Body, c.name, out, []byte(want), nil)
		}
	}

	if out := encode("combined", e.combined); out != nil {
		noDotInKeys(t, ev.Body, "combined", out)
		fields := checkTimeKey(t, ev.Body, "combined", out, "a_b")
		if js != nil {
			rename := func(k string) string { return strings.ReplaceAll(k, ".", "_") }
			want := joinFields(keepFields(t, js, func(k string) bool {
				return slices.Contains(fuzzDataKeys, k) && rename(k) != "a_b"
			}))
			sameReencoded(t, ev.Body, "combined", joinFields(fields), want, rename)
		}
	} else if js != nil {
		t.Fatalf("body % x: combined fails on a record that encodes", ev.Body)
	}

	if out := encode("log_key with replace_dots", e.logKeyDots); out != nil && json.Valid(out) {
		noDotInKeys(t, ev.Body, "log_key with replace_dots", out)
	}
}

// checkTimeKey checks that out is a JSON object whose last key is timeKey, there
// once, and returns the other fields.
func checkTimeKey(t *testing.T, body []byte, name string, out []byte, timeKey string) []jsonField {
	t.Helper()
	fields, err := jsonFields(out)
	if err != nil {
		t.Fatalf("body % x: %s: %v", body, name, err)
	}
	if len(fields) == 0 || fields[len(fields)-1].key != timeKey {
		t.Fatalf("body % x: %s: %q is not last in %q", body, name, timeKey, out)
	}
	fields = fields[:len(fields)-1]
	for _, fl := range fields {
		if fl.key == timeKey {
			t.Fatalf("body % x: %s: %q twice in %q", body, name, timeKey, out)
		}
	}
	return fields
}

// keepFields returns the top-level fields of the JSON object js whose key keep
// accepts.
func keepFields(t *testing.T, js []byte, keep func(string) bool) []jsonField {
	t.Helper()
	fields, err := jsonFields(js)
	if err != nil {
		t.Fatalf("%q: %v", js, err)
	}
	var kept []jsonField
	for _, fl := range fields {
		if keep(fl.key) {
			kept = append(kept, fl)
		}
	}
	return kept
}

// joinFields writes fields as a JSON object.
func joinFields(fields []jsonField) []byte {
	out := []byte{'{'}
	for i, fl := range fields {
		if i > 0 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(fl.key)
		out = append(append(append(out, key...), ':'), fl.value...)
	}
	return append(out, '}')
}

// sameReencoded compares got with want, both written again by encoding/json; want's
// keys are renamed first.
func sameReencoded(t *testing.T, body []byte, name string, got, want []byte, rename func(string) string) {
	t.Helper()
	g, err := reencodeJSON(got, nil)
	if err != nil {
		t.Fatalf("body % x: %s: %q: %v", body, name, got, err)
	}
	w, err := reencodeJSON(want, rename)
	if err != nil {
		t.Fatalf("body % x: %s: %q: %v", body, name, want, err)
	}
	if g != w {
		t.Fatalf("body % x: %s:\n got %s\nwant %s", body, name, g, w)
	}
}

// noDotInKeys fails when a key of the JSON value out, at any depth, has a '.'.
func noDotInKeys(t *testing.T, body []byte, name string, out []byte) {
	t.Helper()
	var bad string
	if _, err := reencodeJSON(out, func(k string) string {
		if strings.Contains(k, ".") {
			bad = k
		}
		return k
	}); err != nil {
		t.Fatalf("body % x: %s: invalid JSON %q: %v", body, name, out, err)
	}
	if bad != "" {
		t.Fatalf("body % x: %s: key %q in %q", body, name, bad, out)
	}
}

// compareWithMsgp checks that js means what msgp reads from body, when msgp reads it
// as data JSON can hold: string keys only, keys distinct after invalid UTF-8 is
// replaced.
func compareWithMsgp(t *testing.T, body, js []byte) {
	t.Helper()
	want, rest, err := msgp.ReadIntfBytes(body)
	if err != nil || len(rest) != 0 || !representable(want) {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var got any
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body % x: %q: %v", body, js, err)
	}
	if msg := sameValue(want, got); msg != "" {
		t.Fatalf("body % x: JSON %s: %s", body, js, msg)
	}
}

// validUTF8 replaces each byte of invalid UTF-8 by U+FFFD, as the encoder does.
func validUTF8(s string) string { return string([]rune(s)) }

func representable(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		seen := make(map[string]bool, len(v))
		for k, e := range v {
			k = validUTF8(k)
			if seen[k] || !representable(e) {
				return false
			}
			seen[k] = true
		}
	case []any:
		for _, e := range v {
			if !representable(e) {
				return false
			}
		}
	}
	return true
}

// sameValue compares a value read by msgp with one read from our JSON by
// encoding/json (with UseNumber); it returns what differs, or "".
func sameValue(want, got any) string {
	mismatch := func() string {
		w, _ := json.Marshal(got)
		return "msgp read " + strconv.Quote(describe(want)) + ", JSON holds " + string(w)
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return mismatch()
		}
	case bool:
		if g, ok := got.(bool); !ok || g != w {
			return mismatch()
		}
	case int64:
		if g, ok := got.(json.Number); !ok || string(g) != strconv.FormatInt(w, 10) {
			return mismatch()
		}
	case uint64:
		if g, ok := got.(json.Number); !ok || string(g) != strconv.FormatUint(w, 10) {
			return mismatch()
		}
	case float64:
		if math.IsNaN(w) || math.IsInf(w, 0) {
			if got != nil {
				return mismatch()
			}
			break
		}
		g, ok := got.(json.Number)
		if !ok {
			return mismatch()
		}
		f, err := strconv.ParseFloat(string(g), 64)
		if err != nil || math.Float64bits(f) != math.Float64bits(w) {
			return mismatch()
		}
	case float32:
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			if got != nil {
				return mismatch()
			}
			break
		}
		g, ok := got.(json.Number)
		if !ok {
			return mismatch()
		}
		f, err := strconv.ParseFloat(string(g), 32)
		if err != nil || math.Float32bits(float32(f)) != math.Float32bits(w) {
			return mismatch()
		}
	case string:
		if g, ok := got.(string); !ok || g != validUTF8(w) {
			return mismatch()
		}
	case []byte:
		if g, ok := got.(string); !ok || g != validUTF8(string(w)) {
			return mismatch()
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return mismatch()
		}
		for i := range w {
			if msg := sameValue(w[i], g[i]); msg != "" {
				return "[" + strconv.Itoa(i) + "]: " + msg
			}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return mismatch()
		}
		for k, v := range w {
			gv, ok := g[validUTF8(k)]
			if !ok {
				return "missing key " + strconv.Quote(k)
			}
			if msg := sameValue(v, gv); msg != "" {
				return strconv.Quote(k) + ": " + msg
			}
		}
	case time.Time, complex64, complex128, msgp.Extension:
		// Extensions: msgp knows some ext types, we write null for all.
		if got != nil {
			return mismatch()
		}
	default:
		return "unexpected msgp type " + describe(want)
	}
	return ""
}

func describe(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
