package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
	"github.com/tinylib/msgp/msgp"
)

// FuzzEncode feeds arbitrary bytes to the decoder as a chunk, and to the encoder as a
// record body. Nothing may panic; every record that encodes must be valid JSON and,
// when msgp can read the record as plain data, mean the same as what msgp reads.
func FuzzEncode(f *testing.F) {
	chunk, _ := truncationChunk()
	f.Add([]byte(chunk))
	f.Add(containerLogChunk(2))
	f.Add([]byte(eventV2(nil, evt(1, 2)).map_(3).str("a").f32(0.1).int(5).bin("\xff\"").str("t").arr(2).ext(0, "12345678").f64(math.NaN())))
	f.Add([]byte(mp(nil).map_(2).str("log").str("x\n\x00é").map_(1).int(1).nil_().arr(1).map_(0)))
	f.Add([]byte(mp(nil).map_(1).str("time").str("old")))

	format, err := timefmt.Compile("%Y-%m-%dT%H:%M:%S.%3N")
	if err != nil {
		f.Fatal(err)
	}
	plain := NewEncoder(Options{AppendNewline: true})
	withTime := NewEncoder(Options{TimeKey: "time", TimeFormat: format})
	withLogKey := NewEncoder(Options{LogKey: "log"})

	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		d.Reset(data)
		var ev Event
		for d.Next(&ev) {
			checkEncoding(t, plain, withTime, withLogKey, &ev, true)
		}
		if err := d.Err(); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("decoder error %v is not a *DecodeError", err)
			}
		}
		checkEncoding(t, plain, withTime, withLogKey, &Event{Sec: 1, Body: data}, false)
	})
}

func checkEncoding(t *testing.T, plain, withTime, withLogKey *Encoder, ev *Event, fromDecoder bool) {
	t.Helper()
	allowed := func(err error) bool {
		if errors.Is(err, ErrNotMap) || errors.Is(err, ErrTooDeep) || errors.Is(err, ErrMissingLogKey) ||
			errors.Is(err, ErrNestedKey) {
			return true
		}
		// The decoder has checked that the body is complete, valid msgpack.
		return !fromDecoder && (errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed))
	}
	prefix := []byte("p")

	out, err := plain.Append(prefix, ev)
	if err != nil {
		if !allowed(err) || !bytes.Equal(out, prefix) {
			t.Fatalf("body % x: unexpected error %v, dst %q", ev.Body, err, out)
		}
	} else {
		js := out[len(prefix):]
		if len(js) == 0 || js[len(js)-1] != '\n' {
			t.Fatalf("body % x: no newline at the end of %q", ev.Body, js)
		}
		js = js[:len(js)-1]
		if !json.Valid(js) {
			t.Fatalf("body % x: invalid JSON %q", ev.Body, js)
		}
		compareWithMsgp(t, ev.Body, js)
	}

	if out, err := withTime.Append(nil, ev); err != nil {
		if !allowed(err) {
			t.Fatalf("body % x: time_key: unexpected error %v", ev.Body, err)
		}
	} else {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("body % x: time_key: invalid JSON object %q: %v", ev.Body, out, err)
		}
		if _, ok := m["time"]; !ok || !bytes.HasSuffix(out, []byte(`"}`)) {
			t.Fatalf("body % x: time_key: no time last in %q", ev.Body, out)
		}
	}

	if _, err := withLogKey.Append(nil, ev); err != nil && !allowed(err) {
		t.Fatalf("body % x: log_key: unexpected error %v", ev.Body, err)
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
