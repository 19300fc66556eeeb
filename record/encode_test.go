package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// testSec, testNsec is 2023-11-14T22:13:20.123456789Z.
const (
	testSec  = 1700000000
	testNsec = 123456789
)

// mustFormatter compiles pattern or fails the test.
func mustFormatter(t *testing.T, pattern string) *timefmt.Formatter {
	t.Helper()
	f, err := timefmt.Compile(pattern)
	if err != nil {
		t.Fatalf("timefmt.Compile(%q): %v", pattern, err)
	}
	return f
}

func TestEncode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body mp
		want string
	}{
		{name: "empty map", body: mp(nil).map_(0), want: `{}`},
		{
			name: "keys keep the record's order",
			body: mp(nil).map_(3).str("zeta").int(1).str("alpha").int(2).str("mid").int(3),
			want: `{"zeta":1,"alpha":2,"mid":3}`,
		},
		{
			name: "duplicate keys are kept",
			body: mp(nil).map_(2).str("a").int(1).str("a").int(2),
			want: `{"a":1,"a":2}`,
		},
		{
			name: "escaping",
			body: mp(nil).map_(1).str("s").str("q\"b\\s/ \n\r\t\b\f<>&'\x7f"),
			want: `{"s":"q\"b\\s/ \n\r\t\b\f<>&'` + "\x7f" + `"}`,
		},
		{
			name: "other control characters",
			body: mp(nil).map_(1).str("c").str("\x00\x01\x0b\x0e\x1b\x1f"),
			want: `{"c":"\u0000\u0001\u000b\u000e\u001b\u001f"}`,
		},
		{
			name: "escaping in keys",
			body: mp(nil).map_(1).str("k\"\n\x00").int(0),
			want: `{"k\"\n\u0000":0}`,
		},
		{
			name: "multibyte UTF-8 kept",
			body: mp(nil).map_(1).str("u").str("héllo 日本 🎉 \u2028 \ufffd"),
			want: `{"u":"héllo 日本 🎉 ` + "\u2028" + ` ` + "\ufffd" + `"}`,
		},
		{
			name: "invalid UTF-8 replaced byte by byte",
			body: mp(nil).map_(1).str("bad").str("a\xffb\xc3|\xed\xa0\x80|\xc0\xaf|\xf0\x9f\x8e"),
			want: `{"bad":"a` + "\ufffd" + `b` + "\ufffd|\ufffd\ufffd\ufffd|\ufffd\ufffd|\ufffd\ufffd\ufffd" + `"}`,
		},
		{
			name: "invalid UTF-8 in a key",
			body: mp(nil).map_(1).str("k\xff").int(1),
			want: `{"k` + "\ufffd" + `":1}`,
		},
		{
			name: "bin values and keys are strings",
			body: mp(nil).map_(2).bin("b").bin("x\"\xff\n").bin16("e").bin32(""),
			want: `{"b":"x\"` + "\ufffd" + `\n","e":""}`,
		},
		{
			name: "str widths",
			body: mp(nil).map_(3).str8("a").str8("8").str16("b").str16("16").str32("c").str32(strings.Repeat("x", 40)),
			want: `{"a":"8","b":"16","c":"` + strings.Repeat("x", 40) + `"}`,
		},
		{
			name: "integers",
			body: mp(nil).map_(11).
				str("min").i64(math.MinInt64).str("max").i64(math.MaxInt64).str("umax").u64(math.MaxUint64).
				str("fix").raw(0x7f).str("nfix").raw(0xe0).str("i8").i8(-128).str("i16").i16(-32768).
				str("i32").i32(math.MinInt32).str("u8").u8(255).str("u16").u16(65535).str("u32").u32(math.MaxUint32),
			want: `{"min":-9223372036854775808,"max":9223372036854775807,"umax":18446744073709551615,` +
				`"fix":127,"nfix":-32,"i8":-128,"i16":-32768,"i32":-2147483648,"u8":255,"u16":65535,"u32":4294967295}`,
		},
		{
			name: "float64",
			body: mp(nil).map_(12).
				str("a").f64(0.1).str("b").f64(1e21).str("c").f64(1e20).str("d").f64(1e-7).
				str("e").f64(123456.789).str("f").f64(math.Copysign(0, -1)).str("g").f64(1).
				str("h").f64(5e-324).str("i").f64(math.MaxFloat64).str("j").f64(-2.5e-6).
				str("k").f64(0.000001).str("l").f64(1e100),
			want: `{"a":0.1,"b":1e+21,"c":100000000000000000000,"d":1e-7,"e":123456.789,"f":-0,"g":1,` +
				`"h":5e-324,"i":1.7976931348623157e+308,"j":-0.0000025,"k":0.000001,"l":1e+100}`,
		},
		{
			name: "float NaN and infinities are null",
			body: mp(nil).map_(4).str("nan").f64(math.NaN()).str("inf").f64(math.Inf(1)).
				str("ninf").f64(math.Inf(-1)).str("f32nan").f32(float32(math.NaN())),
			want: `{"nan":null,"inf":null,"ninf":null,"f32nan":null}`,
		},
		{
			name: "float32 is shortest for float32",
			body: mp(nil).map_(4).str("a").f32(0.1).str("b").f32(16777216).str("c").f32(1e21).str("d").f32(-1.5e-7),
			want: `{"a":0.1,"b":16777216,"c":1e+21,"d":-1.5e-7}`,
		},
		{
			name: "nil and bools",
			body: mp(nil).map_(3).str("n").nil_().str("t").bool_(true).str("f").bool_(false),
			want: `{"n":null,"t":true,"f":false}`,
		},
		{
			name: "nested maps and arrays",
			body: mp(nil).map_(2).
				str("a").map_(2).str("b").arr(2).int(1).map_(1).str("c").arr(0).str("d").map_(0).
				str("e").arr(3).arr(1).arr(0).str("x").nil_(),
			want: `{"a":{"b":[1,{"c":[]}],"d":{}},"e":[[[]],"x",null]}`,
		},
		{
			name: "wide container headers",
			body: mp(nil).map32(1).str("k").arr32(2).map16(1).str("m").arr16(1).bool_(true).map32(0),
			want: `{"k":[{"m":[true]},{}]}`,
		},
		{
			name: "non-string keys",
			body: mp(nil).map_(9).
				int(5).str("five").int(-3).int(0).u64(math.MaxUint64).int(0).nil_().int(0).bool_(true).int(0).
				f64(1.5).int(0).f64(math.NaN()).int(0).ext(1, "x").int(0).arr(2).int(1).str("x").int(0),
			want: `{"5":"five","-3":0,"18446744073709551615":0,"null":0,"true":0,"1.5":0,"null":0,"null":0,"[1,\"x\"]":0}`,
		},
		{
			name: "map as a key",
			body: mp(nil).map_(1).map_(1).str("a").str("b\\").int(1),
			want: `{"{\"a\":\"b\\\\\"}":1}`,
		},
		{
			name: "map key holding nested maps with string keys",
			body: mp(nil).map_(1).map_(1).str("a").map_(1).str("b").arr(1).int(1).int(2),
			want: `{"{\"a\":{\"b\":[1]}}":2}`,
		},
		{
			name: "ext values are null",
			body: mp(nil).map_(8).
				str("t").eventTime(1, 2).str("t8").eventTime8(1, 2).str("f1").ext(1, "a").str("f2").ext(-1, "ab").
				str("f16").ext(2, strings.Repeat("z", 16)).str("e8").ext8(3, "abc").str("e16").ext16(4, "").
				str("e32").ext32(5, "hello"),
			want: `{"t":null,"t8":null,"f1":null,"f2":null,"f16":null,"e8":null,"e16":null,"e32":null}`,
		},
		{
			name: "time_key without a format is off",
			body: mp(nil).map_(1).str("time").str("kept"),
			want: `{"time":"kept"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, newline := range []bool{false, true} {
				enc := NewEncoder(Options{AppendNewline: newline, TimeKey: "time"})
				got, err := enc.Append(nil, &Event{Sec: testSec, Nsec: testNsec, Body: tt.body})
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				want := tt.want
				if newline {
					want += "\n"
				}
				if string(got) != want {
					t.Errorf("newline %v\n got %s\nwant %s", newline, got, want)
				}
				if !json.Valid(bytes.TrimSuffix(got, []byte("\n"))) {
					t.Errorf("invalid JSON: %s", got)
				}
			}
		})
	}
}

func TestEncodeTimeKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeKey string
		format  string
		body    mp
		want    string
	}{
		{
			name:    "added last",
			timeKey: "time",
			format:  "%Y-%m-%dT%H:%M:%S",
			body:    mp(nil).map_(2).str("log").str("x").str("n").int(1),
			want:    `{"log":"x","n":1,"time":"2023-11-14T22:13:20"}`,
		},
		{
			name:    "empty record",
			timeKey: "time",
			format:  "%Y-%m-%dT%H:%M:%S",
			body:    mp(nil).map_(0),
			want:    `{"time":"2023-11-14T22:13:20"}`,
		},
		{
			name:    "replaces the record's first field",
			timeKey: "time",
			format:  "%Y-%m-%dT%H:%M:%S",
			body:    mp(nil).map_(2).str("time").str("old").str("log").str("x"),
			want:    `{"log":"x","time":"2023-11-14T22:13:20"}`,
		},
		{
			name:    "replaces middle and last fields, bin and nested values",
			timeKey: "ts",
			format:  "%Y",
			body: mp(nil).map_(4).str("a").int(1).bin("ts").map_(1).str("x").arr(2).int(1).int(2).
				str("b").int(2).str("ts").nil_(),
			want: `{"a":1,"b":2,"ts":"2023"}`,
		},
		{
			name:    "only the time field",
			timeKey: "time",
			format:  "%Y",
			body:    mp(nil).map_(1).str("time").int(5),
			want:    `{"time":"2023"}`,
		},
		{
			name:    "nested field of that name kept",
			timeKey: "time",
			format:  "%Y",
			body:    mp(nil).map_(1).str("k").map_(1).str("time").int(5),
			want:    `{"k":{"time":5},"time":"2023"}`,
		},
		{
			name:    "key and formatted time are escaped",
			timeKey: "t\"\n",
			format:  "%Y\"\\",
			body:    mp(nil).map_(1).str("a").int(1),
			want:    `{"a":1,"t\"\n":"2023\"\\"}`,
		},
		{
			name:    "nanoseconds",
			timeKey: "@timestamp",
			format:  "%Y-%m-%dT%H:%M:%S.%9NZ",
			body:    mp(nil).map_(0),
			want:    `{"@timestamp":"2023-11-14T22:13:20.123456789Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustFormatter(t, tt.format)
			enc := NewEncoder(Options{TimeKey: tt.timeKey, TimeFormat: f, AppendNewline: true})
			got, err := enc.Append(nil, &Event{Sec: testSec, Nsec: testNsec, Body: tt.body})
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got) != tt.want+"\n" {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
}

func TestEncodeLogKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		logKey  string
		body    mp
		want    string
		wantErr error
	}{
		{
			name:   "string sent raw",
			logKey: "log",
			body:   mp(nil).map_(2).str("stream").str("stdout").str("log").str("say \"hi\"\\\n\x01\xff"),
			want:   "say \"hi\"\\\n\x01\xff",
		},
		{
			name:   "bin sent raw",
			logKey: "log",
			body:   mp(nil).map_(1).str("log").bin("\x00\x01raw"),
			want:   "\x00\x01raw",
		},
		{
			name:   "empty string",
			logKey: "log",
			body:   mp(nil).map_(1).str("log").str(""),
			want:   "",
		},
		{
			name:   "map as JSON",
			logKey: "kubernetes",
			body: mp(nil).map_(2).str("log").str("x").
				str("kubernetes").map_(2).str("pod").str("p\"1").str("labels").map_(1).str("app").str("web"),
			want: `{"pod":"p\"1","labels":{"app":"web"}}`,
		},
		{
			name:   "array as JSON",
			logKey: "a",
			body:   mp(nil).map_(1).str("a").arr(3).int(1).str("b").nil_(),
			want:   `[1,"b",null]`,
		},
		{
			name:   "number",
			logKey: "n",
			body:   mp(nil).map_(1).str("n").f64(2.5),
			want:   `2.5`,
		},
		{
			name:   "nil and NaN are null",
			logKey: "n",
			body:   mp(nil).map_(2).str("n").nil_().str("m").f64(math.NaN()),
			want:   `null`,
		},
		{
			name:   "bool",
			logKey: "b",
			body:   mp(nil).map_(1).str("b").bool_(true),
			want:   `true`,
		},
		{
			name:   "after non-string keys and nested values",
			logKey: "log",
			body: mp(nil).map_(4).int(1).arr(2).map_(1).str("log").str("nested").int(2).
				nil_().str("x").ext8(1, "abc").int(3).str("log").str("top"),
			want: "top",
		},
		{
			name:   "bin key",
			logKey: "log",
			body:   mp(nil).map_(1).bin("log").str("v"),
			want:   "v",
		},
		{
			name:   "first of duplicate keys",
			logKey: "log",
			body:   mp(nil).map_(2).str("log").str("first").str("log").str("second"),
			want:   "first",
		},
		{
			name:   "time_key is ignored",
			logKey: "log",
			body:   mp(nil).map_(1).str("log").str("x"),
			want:   "x",
		},
		{
			name:    "missing",
			logKey:  "log",
			body:    mp(nil).map_(2).str("message").str("x").str("k").map_(1).str("log").str("nested"),
			wantErr: ErrMissingLogKey,
		},
		{
			name:    "empty record",
			logKey:  "log",
			body:    mp(nil).map_(0),
			wantErr: ErrMissingLogKey,
		},
		{
			name:    "record not a map",
			logKey:  "log",
			body:    mp(nil).str("log"),
			wantErr: ErrNotMap,
		},
	}
	f, err := timefmt.Compile("%Y")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, newline := range []bool{false, true} {
				enc := NewEncoder(Options{LogKey: tt.logKey, TimeKey: "time", TimeFormat: f, AppendNewline: newline})
				got, err := enc.Append([]byte("prefix"), &Event{Sec: testSec, Body: tt.body})
				if tt.wantErr != nil {
					if err != tt.wantErr || string(got) != "prefix" {
						t.Errorf("got %q, %v; want %q, %v", got, err, "prefix", tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				want := "prefix" + tt.want
				if newline {
					want += "\n"
				}
				if string(got) != want {
					t.Errorf("newline %v\n got %q\nwant %q", newline, got, want)
				}
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	nested := func(depth int) mp {
		w := mp(nil).map_(1).str("a")
		for range depth {
			w = w.arr(1)
		}
		return w.nil_()
	}
	deepKey := func(depth int) mp {
		w := mp(nil).map_(1)
		for range depth {
			w = w.arr(1)
		}
		return w.nil_().int(1)
	}
	tests := []struct {
		name string
		body mp
		is   error
		msg  string
	}{
		{name: "string record", body: mp(nil).str("x"), is: ErrNotMap, msg: "record: record is not a map"},
		{name: "array record", body: mp(nil).arr(1).map_(0), is: ErrNotMap},
		{name: "nil record", body: mp(nil).nil_(), is: ErrNotMap},
		{name: "int record", body: mp(nil).int(1), is: ErrNotMap},
		{name: "bin record", body: mp(nil).bin("{}"), is: ErrNotMap},
		{name: "empty body", body: mp(nil), is: ErrTruncated, msg: "record: body offset 0: truncated"},
		{name: "truncated pair", body: mp(nil).map_(2).str("a").int(1).str("b"), is: ErrTruncated},
		{name: "truncated string", body: mp(nil).map_(1).str("a").raw(0xa5, 'x'), is: ErrTruncated},
		{name: "truncated nested", body: mp(nil).map_(1).str("a").arr(3).int(1), is: ErrTruncated},
		{name: "truncated ext", body: mp(nil).map_(1).str("a").raw(0xd7, 0), is: ErrTruncated},
		{name: "truncated float", body: mp(nil).map_(1).str("a").raw(0xcb, 0, 0), is: ErrTruncated},
		{
			name: "invalid byte", body: mp(nil).map_(2).str("a").int(1).str("b").raw(0xc1),
			is: ErrMalformed, msg: "record: body offset 6: malformed msgpack: byte 0xc1",
		},
		{name: "invalid byte as key", body: mp(nil).map_(1).raw(0xc1).int(1), is: ErrMalformed},
		{
			name: "trailing bytes", body: mp(nil).map_(0).raw(0xc0, 0xc0),
			is: ErrMalformed, msg: "record: body offset 1: malformed msgpack: 2 bytes after the record",
		},
		{name: "too deep", body: nested(1000), is: ErrTooDeep, msg: "record: nested more than 1000 levels deep"},
		{name: "too deep in a key", body: deepKey(1000), is: ErrTooDeep},
		{
			name: "array key inside a map key", body: mp(nil).map_(1).map_(1).arr(1).int(1).nil_().nil_(),
			is: ErrNestedKey, msg: "record: array or map key inside an array or map key",
		},
		{
			name: "map key deep inside an array key",
			body: mp(nil).map_(1).arr(1).arr(1).map_(1).str("a").map_(1).map_(0).int(1).int(2),
			is:   ErrNestedKey,
		},
		{name: "40 levels of map keys", body: nestedKeys(40), is: ErrNestedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, o := range []Options{{}, {AppendNewline: true}, {LogKey: "b"}} {
				if o.LogKey != "" && !errors.Is(tt.is, ErrNotMap) && !errors.Is(tt.is, ErrTruncated) {
					continue // log_key does not read past its key
				}
				dst := []byte("prefix")
				got, err := NewEncoder(o).Append(dst, &Event{Body: tt.body})
				if !errors.Is(err, tt.is) {
					t.Errorf("options %+v: error %v, want %v", o, err, tt.is)
				}
				if tt.msg != "" && o.LogKey == "" && (err == nil || err.Error() != tt.msg) {
					t.Errorf("error %q, want %q", err, tt.msg)
				}
				if string(got) != "prefix" {
					t.Errorf("options %+v: dst %q after an error, want %q", o, got, "prefix")
				}
			}
		})
	}

	// One level less than the limit is fine.
	for _, body := range []mp{nested(999), deepKey(999)} {
		got, err := NewEncoder(Options{}).Append(nil, &Event{Body: body})
		if err != nil || !json.Valid(got) {
			t.Errorf("999 levels: %v", err)
		}
	}
}

// nestedKeys returns a record whose key is a map whose key is a map, levels deep.
func nestedKeys(levels int) mp {
	w := mp(nil)
	for range levels + 1 {
		w = w.map_(1)
	}
	w = w.str("\"")
	for range levels + 1 {
		w = w.nil_()
	}
	return w
}

// TestAppendFloatMatchesEncodingJSON checks random floats of both sizes against
// encoding/json's formatting.
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		bits := rng.Uint64()
		f64 := math.Float64frombits(bits)
		f32 := math.Float32frombits(uint32(bits))
		if !math.IsNaN(f64) && !math.IsInf(f64, 0) {
			want, _ := json.Marshal(f64)
			if got := appendFloat(nil, f64, 64); !bytes.Equal(got, want) {
				t.Fatalf("float64 %v: got %s, want %s", f64, got, want)
			}
		}
		if !math.IsNaN(float64(f32)) && !math.IsInf(float64(f32), 0) {
			want, _ := json.Marshal(f32)
			if got := appendFloat(nil, float64(f32), 32); !bytes.Equal(got, want) {
				t.Fatalf("float32 %v: got %s, want %s", f32, got, want)
			}
		}
	}
}

// TestAppendEscapedMatchesEncodingJSON checks random byte strings against
// encoding/json, which escapes the same way apart from HTML characters (off here),
// U+2028/U+2029 (which it escapes for JavaScript and we keep, not in the alphabet)
// and the U+FFFD that replaces invalid UTF-8 (which it writes as an escape).
func TestAppendEscapedMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "Z", " ", "/", "\"", "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "日", "🎉", "\ufffd", "\xff", "\xc3", "\xed\xa0\x80", "\xf0\x9f", "\xe2\x80"}
	var buf bytes.Buffer
	je := json.NewEncoder(&buf)
	je.SetEscapeHTML(false)
	for range 50000 {
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := sb.String()
		buf.Reset()
		if err := je.Encode(s); err != nil {
			t.Fatal(err)
		}
		// encoding/json writes U+FFFD for invalid UTF-8 as an escape, we write it as is.
		want := bytes.ReplaceAll(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte(`\ufffd`), []byte("\ufffd"))
		got := appendString(nil, []byte(s))
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
		if needsEscape([]byte(s)) != (string(got) != `"`+s+`"`) {
			t.Fatalf("%q: needsEscape is %v", s, needsEscape([]byte(s)))
		}
	}
}

// TestDecodeEncodeDoesNotAllocate holds the hot path to zero allocations per event,
// with every option: container logs, the same with dotted label and annotation keys,
// and a record with a float key (whose text replace_dots rewrites).
func TestDecodeEncodeDoesNotAllocate(t *testing.T) {
	chunks := map[string][]byte{
		"container logs":  containerLogChunk(100),
		"dotted keys":     containerFB4(),
		"float key":       eventV2(nil, evt(1, 2)).map_(2).f64(1.5).str("x").str("a.b").map_(1).f32(0.25).nil_(),
		"legacy and more": legacyChunk(),
	}
	format := mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%3NZ")
	options := []Options{
		{AppendNewline: true},
		{LogKey: "log", AppendNewline: true},
		{TimeKey: "time", TimeFormat: format, AppendNewline: true},
		{DataKeys: []string{"log", "stream", "kubernetes"}, AppendNewline: true},
		{ReplaceDots: "_", AppendNewline: true},
		{ReplaceDots: "\"\\", AppendNewline: true},
		{LogKey: "kubernetes", ReplaceDots: "_"},
		{DataKeys: []string{"log", "kubernetes", "a.b"}, ReplaceDots: "__", TimeKey: "time.stamp", TimeFormat: format},
	}
	for name, chunk := range chunks {
		for _, o := range options {
			enc := NewEncoder(o)
			var d Decoder
			var ev Event
			dst := make([]byte, 0, 1<<16)
			allocs := testing.AllocsPerRun(10, func() {
				d.Reset(chunk)
				for d.Next(&ev) {
					var err error
					if dst, err = enc.Append(dst[:0], &ev); err != nil && err != ErrMissingLogKey {
						t.Fatal(err)
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%s, options %+v: %v allocations per chunk, want 0", name, o, allocs)
			}
		}
	}
}

func TestPlainASCII(t *testing.T) {
	t.Parallel()
	slow := func(w [8]byte) bool {
		for _, c := range w {
			if c >= 0x80 || !noEscape[c] {
				return false
			}
		}
		return true
	}
	check := func(w [8]byte) {
		if got := plainASCII(binary.LittleEndian.Uint64(w[:])); got != slow(w) {
			t.Fatalf("% x: plainASCII %v, want %v", w, got, !got)
		}
	}
	// Every byte value at every position among plain bytes, and next to a bad one.
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', ' ', '~', 0x7f, '"', 0x00, 0xff} {
				w := [8]byte{}
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 1000000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64()&0x7f7f7f7f7f7f7f7f|0x2020202020202020*uint64(rng.IntN(2)))
		check(w)
	}
}

// TestPlainRun checks plainRun against a byte-by-byte scan, for strings cut from a larger
// buffer (so that bytes beyond their length are readable, as in a chunk) and for strings at the
// end of their array, with one bad byte at each position, before, inside and after the string.
func TestPlainRun(t *testing.T) {
	t.Parallel()
	plain := func(c byte) bool { return c < 0x80 && noEscape[c] }
	for _, bad := range []byte{'"', '\\', 0x00, 0x1f, 0x80, 0xff, '\n'} {
		for n := range 40 {
			for pos := -1; pos <= n; pos++ { // pos -1: no bad byte in s; n: the byte after s
				for _, tail := range []int{0, 1, 7, 8, 20} { // readable bytes after s
					buf := bytes.Repeat([]byte{'a'}, 3+n+tail)
					if pos >= 0 && 3+pos < len(buf) {
						buf[3+pos] = bad
					}
					s := buf[3 : 3+n]
					got := plainRun(s)
					want := 0
					for want < n && plain(s[want]) {
						want++
					}
					// plainRun may stop short of the first bad byte, never past it, and says
					// len(s) only when all of s is plain.
					if got > want || (got == n && want != n) {
						t.Fatalf("bad %#x at %d of %d (+%d readable): plainRun %d, first bad byte at %d", bad, pos, n, tail, got, want)
					}
					if want == n && tail >= 8 && got != n {
						t.Fatalf("plain %d bytes with %d readable after: plainRun %d, want %d", n, tail, got, n)
					}
				}
			}
		}
	}
}

// TestPlainBlocks checks plainBlocks (assembly on amd64) with every byte value at every position
// of strings of up to 80 bytes, at several offsets, with 0 to 16 bytes of capacity after them (so
// that 16 bytes from the last block on are readable or not) and a byte that is not plain among
// them. It must stop at the first byte that is not plain ASCII (on other architectures: at the
// start of its block), read the last 1 to 15 bytes only when 16 can be read, and never report a
// byte past the string.
func TestPlainBlocks(t *testing.T) {
	t.Parallel()
	plain := func(c byte) bool { return c < 0x80 && noEscape[c] }
	for _, off := range []int{0, 7, 15} {
		for _, extra := range []int{0, 1, 2, 15, 16} {
			for n := 0; n <= 80; n++ {
				buf := make([]byte, off+n+extra)
				for pos := -1; pos < n; pos++ {
					for c := range 256 {
						if pos < 0 && c > 0 {
							break
						}
						for i := range buf {
							buf[i] = 'a' + byte(i%26)
						}
						if extra > 0 { // the last byte of the capacity
							buf[len(buf)-1] = '"'
						}
						s := buf[off : off+n]
						if pos >= 0 {
							s[pos] = byte(c)
						}
						got := plainBlocks(s)
						scanned := n / 16 * 16 // what plainBlocks reads exactly
						if plainBlocksExact && n > scanned && cap(s)-scanned >= 16 {
							scanned = n
						}
						bad := n
						if pos >= 0 && !plain(byte(c)) {
							bad = pos
						}
						want := scanned
						switch {
						case bad >= scanned:
						case plainBlocksExact:
							want = bad
						default:
							want = bad / 16 * 16
						}
						if got != want {
							t.Fatalf("offset %d, %d bytes (capacity %d), %#x at %d: %d, want %d", off, n, cap(s), c, pos, got, want)
						}
					}
				}
			}
		}
	}
}

// TestAppendStringShort checks appendString's two-word path against escaping byte by byte, for
// strings of up to 20 bytes with one byte that needs escaping (or none) at each position, read
// from a larger buffer or from one of their own size, appended to a dst with and without room.
func TestAppendStringShort(t *testing.T) {
	t.Parallel()
	for _, bad := range []byte{'"', '\\', 0x00, 0x1f, 0xc3, 0xff, 'z'} {
		for n := range 21 {
			for pos := -1; pos <= n; pos++ { // pos n: the byte after the string
				src := bytes.Repeat([]byte{'k'}, n+16)
				for i := range n {
					src[i] = byte('A' + i)
				}
				if pos >= 0 {
					src[pos] = bad
				}
				want := `"` + string(appendEscaped(nil, src[:n])) + `"`
				for _, s := range [][]byte{src[:n], bytes.Clone(src[:n])} {
					for _, room := range []int{0, 17, 18, 64} {
						dst := append(make([]byte, 0, 3+room), "pre"...)
						got := appendString(dst, s)
						if string(got) != "pre"+want {
							t.Fatalf("%q (cap %d), room %d: %q, want %q", s, cap(s), room, got, "pre"+want)
						}
					}
				}
			}
		}
	}
}
