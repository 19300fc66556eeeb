package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustKeyPath(t testing.TB, s string) KeyPath {
	t.Helper()
	p, err := ParseKeyPath(s)
	if err != nil {
		t.Fatalf("ParseKeyPath(%q): %v", s, err)
	}
	return p
}

func TestParseKeyPath(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in    string
		names []string
		str   string
	}{
		{"log", []string{"log"}, "log"},
		{"kubernetes->pod_name", []string{"kubernetes", "pod_name"}, "kubernetes->pod_name"},
		{" kubernetes -> labels ->\tapp ", []string{"kubernetes", "labels", "app"}, "kubernetes->labels->app"},
		{"pod name->a.b", []string{"pod name", "a.b"}, "pod name->a.b"},
		{"a-b->c>d->-", []string{"a-b", "c>d", "-"}, "a-b->c>d->-"},
		{"a->b->c->d->e->f", []string{"a", "b", "c", "d", "e", "f"}, "a->b->c->d->e->f"},
		{"日本->ключ", []string{"日本", "ключ"}, "日本->ключ"},
		{"a-->b", []string{"a-", "b"}, "a-->b"},
		{"a->>b", []string{"a", ">b"}, "a->>b"},
	}
	for _, tt := range valid {
		p, err := ParseKeyPath(tt.in)
		if err != nil {
			t.Errorf("ParseKeyPath(%q): %v", tt.in, err)
			continue
		}
		if strings.Join(p.names, "|") != strings.Join(tt.names, "|") || len(p.names) != len(tt.names) {
			t.Errorf("ParseKeyPath(%q) names %q, want %q", tt.in, p.names, tt.names)
		}
		if p.String() != tt.str || p.IsZero() {
			t.Errorf("ParseKeyPath(%q): String %q IsZero %v, want %q false", tt.in, p.String(), p.IsZero(), tt.str)
		}
		again, err := ParseKeyPath(p.String())
		if err != nil || again.String() != p.String() {
			t.Errorf("ParseKeyPath(%q) = %q, %v: not canonical", p.String(), again.String(), err)
		}
	}

	invalid := []struct{ in, want string }{
		{"", "record: malformed key path: key 1 of 1 is empty"},
		{"  \t", "record: malformed key path: key 1 of 1 is empty"},
		{"a->", "record: malformed key path: key 2 of 2 is empty"},
		{"->b", "record: malformed key path: key 1 of 2 is empty"},
		{"a->->b", "record: malformed key path: key 2 of 3 is empty"},
		{"a-> ->b", "record: malformed key path: key 2 of 3 is empty"},
		{"->", "record: malformed key path: key 1 of 2 is empty"},
		{"a->b->", "record: malformed key path: key 3 of 3 is empty"},
	}
	for _, tt := range invalid {
		p, err := ParseKeyPath(tt.in)
		if err == nil {
			t.Errorf("ParseKeyPath(%q) = %q, want an error", tt.in, p)
			continue
		}
		if err.Error() != tt.want || !errors.Is(err, ErrKeyPath) {
			t.Errorf("ParseKeyPath(%q) error %q (wraps ErrKeyPath: %v), want %q", tt.in, err, errors.Is(err, ErrKeyPath), tt.want)
		}
		if !p.IsZero() {
			t.Errorf("ParseKeyPath(%q) returned %q with its error", tt.in, p)
		}
	}

	var zero KeyPath
	if !zero.IsZero() || zero.String() != "" {
		t.Errorf("zero KeyPath: IsZero %v, String %q", zero.IsZero(), zero.String())
	}
}

// keyCase is one lookup: path in body gives want, or nothing when !ok.
type keyCase struct {
	name string
	path string
	body mp
	want string
	ok   bool
}

// one is a record of one field, key, holding the value v writes.
func one(key string, v func(mp) mp) mp { return v(mp(nil).map_(1).str(key)) }

func TestKeyPathAppendTypes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 70000) // str32 and bin32 sizes
	tests := []keyCase{
		// str and bin values of every width.
		{"fixstr", "k", one("k", func(w mp) mp { return w.str("pod-1") }), "pod-1", true},
		{"str8", "k", one("k", func(w mp) mp { return w.str8("pod-1") }), "pod-1", true},
		{"str16", "k", one("k", func(w mp) mp { return w.str16("pod-1") }), "pod-1", true},
		{"str32", "k", one("k", func(w mp) mp { return w.str32("pod-1") }), "pod-1", true},
		{"bin8", "k", one("k", func(w mp) mp { return w.bin8("pod-1") }), "pod-1", true},
		{"bin16", "k", one("k", func(w mp) mp { return w.bin16("pod-1") }), "pod-1", true},
		{"bin32", "k", one("k", func(w mp) mp { return w.bin32("pod-1") }), "pod-1", true},
		{"long str32 cut", "k", one("k", func(w mp) mp { return w.str(long) }), long[:256], true},
		{"long bin32 cut", "k", one("k", func(w mp) mp { return w.bin(long) }), long[:256], true},
		{"str with spaces and controls kept", "k", one("k", func(w mp) mp { return w.str(" a\"\\\n\x00 ") }), " a\"\\\n\x00 ", true},
		{"str of one space", "k", one("k", func(w mp) mp { return w.str(" ") }), " ", true},

		// Integers of every width, at their extremes.
		{"positive fixint", "k", one("k", func(w mp) mp { return w.raw(0x7f) }), "127", true},
		{"zero", "k", one("k", func(w mp) mp { return w.raw(0x00) }), "0", true},
		{"negative fixint", "k", one("k", func(w mp) mp { return w.raw(0xe0) }), "-32", true},
		{"int8", "k", one("k", func(w mp) mp { return w.i8(math.MinInt8) }), "-128", true},
		{"int8 positive", "k", one("k", func(w mp) mp { return w.i8(5) }), "5", true},
		{"int16", "k", one("k", func(w mp) mp { return w.i16(math.MinInt16) }), "-32768", true},
		{"int32", "k", one("k", func(w mp) mp { return w.i32(math.MinInt32) }), "-2147483648", true},
		{"int64 min", "k", one("k", func(w mp) mp { return w.i64(math.MinInt64) }), "-9223372036854775808", true},
		{"int64 max", "k", one("k", func(w mp) mp { return w.i64(math.MaxInt64) }), "9223372036854775807", true},
		{"uint8", "k", one("k", func(w mp) mp { return w.u8(math.MaxUint8) }), "255", true},
		{"uint16", "k", one("k", func(w mp) mp { return w.u16(math.MaxUint16) }), "65535", true},
		{"uint32", "k", one("k", func(w mp) mp { return w.u32(math.MaxUint32) }), "4294967295", true},
		{"uint64 max", "k", one("k", func(w mp) mp { return w.u64(math.MaxUint64) }), "18446744073709551615", true},
		{"uint64 zero", "k", one("k", func(w mp) mp { return w.u64(0) }), "0", true},

		// Floats as the JSON encoder writes them.
		{"float64", "k", one("k", func(w mp) mp { return w.f64(1.5) }), "1.5", true},
		{"float64 integral", "k", one("k", func(w mp) mp { return w.f64(42) }), "42", true},
		{"float64 small", "k", one("k", func(w mp) mp { return w.f64(1e-7) }), "1e-7", true},
		{"float64 large", "k", one("k", func(w mp) mp { return w.f64(1e21) }), "1e+21", true},
		{"float64 negative zero", "k", one("k", func(w mp) mp { return w.f64(math.Copysign(0, -1)) }), "-0", true},
		{"float64 max", "k", one("k", func(w mp) mp { return w.f64(math.MaxFloat64) }), "1.7976931348623157e+308", true},
		{"float64 smallest", "k", one("k", func(w mp) mp { return w.f64(-5e-324) }), "-5e-324", true},
		{"float32 shortest", "k", one("k", func(w mp) mp { return w.f32(0.1) }), "0.1", true},
		{"float32 large", "k", one("k", func(w mp) mp { return w.f32(3e38) }), "3e+38", true},
		{"float64 NaN", "k", one("k", func(w mp) mp { return w.f64(math.NaN()) }), "", false},
		{"float64 +Inf", "k", one("k", func(w mp) mp { return w.f64(math.Inf(1)) }), "", false},
		{"float64 -Inf", "k", one("k", func(w mp) mp { return w.f64(math.Inf(-1)) }), "", false},
		{"float32 NaN", "k", one("k", func(w mp) mp { return w.f32(float32(math.NaN())) }), "", false},
		{"float32 +Inf", "k", one("k", func(w mp) mp { return w.f32(float32(math.Inf(1))) }), "", false},

		// Values that are not text: no key.
		{"empty fixstr", "k", one("k", func(w mp) mp { return w.str("") }), "", false},
		{"empty str8", "k", one("k", func(w mp) mp { return w.str8("") }), "", false},
		{"empty str32", "k", one("k", func(w mp) mp { return w.str32("") }), "", false},
		{"empty bin8", "k", one("k", func(w mp) mp { return w.bin8("") }), "", false},
		{"empty bin32", "k", one("k", func(w mp) mp { return w.bin32("") }), "", false},
		{"true", "k", one("k", func(w mp) mp { return w.bool_(true) }), "", false},
		{"false", "k", one("k", func(w mp) mp { return w.bool_(false) }), "", false},
		{"nil", "k", one("k", func(w mp) mp { return w.nil_() }), "", false},
		{"array", "k", one("k", func(w mp) mp { return w.arr(1).str("a") }), "", false},
		{"empty array", "k", one("k", func(w mp) mp { return w.arr(0) }), "", false},
		{"map", "k", one("k", func(w mp) mp { return w.map_(1).str("a").str("b") }), "", false},
		{"empty map", "k", one("k", func(w mp) mp { return w.map_(0) }), "", false},
		{"timestamp ext", "k", one("k", func(w mp) mp { return w.eventTime(1, 2) }), "", false},
		{"fixext1", "k", one("k", func(w mp) mp { return w.ext(5, "a") }), "", false},
		{"ext8", "k", one("k", func(w mp) mp { return w.ext8(5, "abc") }), "", false},
		{"ext32", "k", one("k", func(w mp) mp { return w.ext32(-1, "") }), "", false},
	}
	runKeyCases(t, tests)
}

func TestKeyPathAppendLookup(t *testing.T) {
	t.Parallel()
	// k8s is a container log record: its kubernetes map comes after a string, and
	// pod_name after a nested map.
	k8s := mp(nil).map_(3).
		str("log").str("hello\n").
		str("kubernetes").map_(3).
		str("labels").map_(2).str("app").str("orders").str("tier").str("web").
		str("pod_name").str("orders-7d9f").
		str("host").str("ip-10-0-1-23").
		str("stream").str("stdout")
	tests := []keyCase{
		{"top level", "log", k8s, "hello\n", true},
		{"top level after a map", "stream", k8s, "stdout", true},
		{"nested", "kubernetes->pod_name", k8s, "orders-7d9f", true},
		{"nested after a map", "kubernetes->host", k8s, "ip-10-0-1-23", true},
		{"three levels", "kubernetes->labels->tier", k8s, "web", true},
		{"spaces around names", "  kubernetes -> labels->\tapp ", k8s, "orders", true},
		{"missing at the top", "pod_name", k8s, "", false},
		{"missing nested", "kubernetes->namespace", k8s, "", false},
		{"missing at the third level", "kubernetes->labels->env", k8s, "", false},
		{"path longer than the record", "kubernetes->pod_name->x", k8s, "", false},
		{"intermediate is a string", "log->x", k8s, "", false},
		{"final value is a map", "kubernetes", k8s, "", false},
		{"names are case-sensitive", "Kubernetes->pod_name", k8s, "", false},
		{"name is not a prefix", "kube", k8s, "", false},

		// Keys of every str width, and bin keys.
		{"str8 key", "key", mp(nil).map_(1).str8("key").str("v"), "v", true},
		{"str16 key", "key", mp(nil).map_(1).str16("key").str("v"), "v", true},
		{"str32 key", "key", mp(nil).map_(1).str32("key").str("v"), "v", true},
		{"bin8 key", "key", mp(nil).map_(1).bin8("key").str("v"), "v", true},
		{"bin32 key", "key", mp(nil).map_(1).bin32("key").str("v"), "v", true},
		{"str32 nested keys", "a->b", mp(nil).map_(1).str32("a").map_(1).str32("b").str32("v"), "v", true},
		{"key with a space", "pod name", mp(nil).map_(1).str("pod name").str("v"), "v", true},
		{"key of 40 bytes", strings.Repeat("k", 40), mp(nil).map_(1).str(strings.Repeat("k", 40)).str("v"), "v", true},
		{"non-ASCII key", "日本->ключ", mp(nil).map_(1).str("日本").map_(1).str("ключ").str("v"), "v", true},

		// Map headers of every width.
		{"map16", "a->b", mp(nil).map16(2).str("x").int(1).str("a").map16(1).str("b").str("v"), "v", true},
		{"map32", "a->b", mp(nil).map32(2).str("x").int(1).str("a").map32(1).str("b").str("v"), "v", true},
		{"map16 of 20 pairs", "k19", manyPairs(20), "v19", true},

		// Keys that are not names are stepped over.
		{"int key is not a name", "5", mp(nil).map_(2).int(5).str("int").str("5").str("str"), "str", true},
		{"nil key stepped over", "k", mp(nil).map_(2).nil_().str("x").str("k").str("v"), "v", true},
		{"map key stepped over", "k", mp(nil).map_(2).map_(1).str("k").str("x").int(0).str("k").str("v"), "v", true},
		{"array key stepped over", "k", mp(nil).map_(2).arr(2).str("k").str("k").int(0).str("k").str("v"), "v", true},
		{"only an array key", "k", mp(nil).map_(1).arr(1).str("k").str("v"), "", false},
		{"value after arrays of maps", "k", mp(nil).map_(2).
			str("a").arr(2).map_(1).str("k").str("no").arr16(1).map32(1).str("k").str("no").
			str("k").str("yes"), "yes", true},
		{"value after ext and bin", "k", mp(nil).map_(3).str("t").eventTime(1, 2).str("b").bin("\x00\xff").str("k").i16(-300), "-300", true},

		// The first key of a name wins.
		{"first of two wins", "k", mp(nil).map_(2).str("k").str("first").str("k").str("second"), "first", true},
		{"first wins across str and bin", "k", mp(nil).map_(2).bin("k").str("bin").str32("k").str("str"), "bin", true},
		{"first even when empty", "k", mp(nil).map_(2).str("k").str("").str("k").str("second"), "", false},
		{"first even when not a map", "k->x", mp(nil).map_(2).str("k").int(1).str("k").map_(1).str("x").str("v"), "", false},
		{"first nested wins", "a->k", mp(nil).map_(1).str("a").map_(2).str("k").int(1).str("k").int(2), "1", true},

		// Records that are not maps, or not msgpack.
		{"record is an array", "k", mp(nil).arr(2).str("k").str("v"), "", false},
		{"record is a string", "k", mp(nil).str("k"), "", false},
		{"empty body", "k", mp(nil), "", false},
		{"empty map", "k", mp(nil).map_(0), "", false},
		{"cut in a key", "k", mp(nil).map_(1).raw(0xa3, 'k'), "", false},
		{"cut in the value", "k", mp(nil).map_(1).str("k").raw(0xa5, 'a', 'b'), "", false},
		{"cut while stepping over", "k", mp(nil).map_(2).str("a").raw(0xdd, 0, 0, 0, 9).str("k").str("v"), "", false},
		{"0xc1 before the key", "k", mp(nil).map_(2).str("a").raw(0xc1).str("k").str("v"), "", false},
		{"announces more pairs than bytes", "k", mp(nil).map32(1 << 30).str("a"), "", false},
		// The lookup reads only up to the value it finds.
		{"found before a malformed tail", "k", mp(nil).map_(2).str("k").str("v").raw(0xc1), "v", true},
		{"found with bytes after the record", "k", mp(nil).map_(1).str("k").str("v").raw(0xc1, 0xc1), "v", true},
	}
	runKeyCases(t, tests)
}

// manyPairs is a map of n pairs "k<i>": "v<i>", with a map16 header when n >= 16.
func manyPairs(n int) mp {
	w := mp(nil).map_(n)
	for i := range n {
		w = w.str("k" + strconv.Itoa(i)).str("v" + strconv.Itoa(i))
	}
	return w
}

// TestKeyPathAppendCut checks the cut at MaxPartitionKeyChars characters, and that
// invalid UTF-8 becomes U+FFFD, counted as one character per byte.
func TestKeyPathAppendCut(t *testing.T) {
	t.Parallel()
	a := func(n int) string { return strings.Repeat("a", n) }
	const fffd = "\uFFFD"
	tests := []struct {
		name, in, want string
	}{
		{"255 ASCII", a(255), a(255)},
		{"256 ASCII", a(256), a(256)},
		{"257 ASCII cut", a(257), a(256)},
		{"255 ASCII and a 2-byte rune", a(255) + "é", a(255) + "é"},
		{"256 ASCII and a 2-byte rune", a(256) + "é", a(256)},
		{"255 ASCII and two 3-byte runes", a(255) + "日本", a(255) + "日"},
		{"255 ASCII and two 4-byte runes", a(255) + "😀😁", a(255) + "😀"},
		{"256 2-byte runes", strings.Repeat("é", 256), strings.Repeat("é", 256)},
		{"257 2-byte runes cut", strings.Repeat("é", 257), strings.Repeat("é", 256)},
		{"257 3-byte runes cut", strings.Repeat("日", 257), strings.Repeat("日", 256)},
		{"300 4-byte runes cut", strings.Repeat("😀", 300), strings.Repeat("😀", 256)},
		{"mixed widths cut", strings.Repeat("aé日😀", 65), strings.Repeat("aé日😀", 64)},
		{"one invalid byte", "\xff", fffd},
		{"invalid bytes inside", "a\xffb\xfe", "a" + fffd + "b" + fffd},
		{"truncated sequence", "a\xe6\x97", "a" + fffd + fffd},
		{"overlong encoding", "\xc0\xaf", fffd + fffd},
		{"surrogate", "\xed\xa0\x80", fffd + fffd + fffd},
		{"valid U+FFFD kept", fffd + "x", fffd + "x"},
		{"255 ASCII and invalid bytes", a(255) + "\xff\xfe", a(255) + fffd},
		{"300 invalid bytes", strings.Repeat("\xff", 300), strings.Repeat(fffd, 256)},
		{"255 ASCII and a cut 3-byte rune", a(255) + "\xe6\x97", a(255) + fffd},
	}
	var cases []keyCase
	for _, tt := range tests {
		cases = append(cases,
			keyCase{tt.name, "k", mp(nil).map_(1).str("k").str(tt.in), tt.want, true},
			keyCase{tt.name + " (bin)", "k", mp(nil).map_(1).str("k").bin(tt.in), tt.want, true})
	}
	runKeyCases(t, cases)
}

// runKeyCases looks each case up after a prefix in dst, and checks the prefix is
// kept, and that what is appended is the key, or nothing.
func runKeyCases(t *testing.T, tests []keyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustKeyPath(t, tt.path)
			got, ok := p.Append([]byte("prefix"), tt.body)
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatalf("Append(%q) overwrote the prefix: %q", tt.path, got)
			}
			got = got[len("prefix"):]
			if ok != tt.ok || string(got) != tt.want {
				t.Fatalf("Append(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
			}
			if !ok && len(got) != 0 {
				t.Fatalf("Append(%q) appended %q and reported no key", tt.path, got)
			}
			if ok {
				checkKey(t, got)
			}
		})
	}
}

// checkKey fails unless key is valid UTF-8 of 1 to MaxPartitionKeyChars characters.
func checkKey(t *testing.T, key []byte) {
	t.Helper()
	if n := utf8.RuneCount(key); !utf8.Valid(key) || n < 1 || n > MaxPartitionKeyChars {
		t.Fatalf("key %q: valid UTF-8 %v, %d characters", key, utf8.Valid(key), n)
	}
}

func TestKeyPathAppendZero(t *testing.T) {
	t.Parallel()
	var p KeyPath
	body := mp(nil).map_(1).str("").str("v")
	if got, ok := p.Append([]byte("x"), body); ok || string(got) != "x" {
		t.Errorf("zero KeyPath: Append = %q, %v; want %q, false", got, ok, "x")
	}
}

// TestKeyPathAppendDoesNotAllocate looks keys up in a chunk of container logs the way
// the plugin does per record: into a buffer it reuses.
func TestKeyPathAppendDoesNotAllocate(t *testing.T) {
	chunk := containerLogChunk(50)
	var bodies [][]byte
	var d Decoder
	var ev Event
	for d.Reset(chunk); d.Next(&ev); {
		bodies = append(bodies, ev.Body)
	}
	if d.Err() != nil || len(bodies) != 50 {
		t.Fatalf("%d events, error %v", len(bodies), d.Err())
	}
	floatBody := one("k", func(w mp) mp { return w.f64(1.2345678e-9) })
	for _, tt := range []struct {
		path   string
		bodies [][]byte
		ok     bool
	}{
		{"kubernetes->pod_name", bodies, true},
		{"kubernetes->labels->app", bodies, true},
		{"kubernetes->missing", bodies, false},
		{"stream", bodies, true},
		{"k", [][]byte{floatBody}, true},
	} {
		p := mustKeyPath(t, tt.path)
		buf := make([]byte, 0, 1024)
		allocs := testing.AllocsPerRun(20, func() {
			for _, b := range tt.bodies {
				var ok bool
				if buf, ok = p.Append(buf[:0], b); ok != tt.ok {
					t.Fatalf("%s: ok %v", tt.path, ok)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run of %d lookups, want 0", tt.path, allocs, len(tt.bodies))
		}
	}
}

func BenchmarkKeyPathAppend(b *testing.B) {
	chunk := containerLogChunk(benchRecords)
	var bodies [][]byte
	var d Decoder
	var ev Event
	for d.Reset(chunk); d.Next(&ev); {
		bodies = append(bodies, ev.Body)
	}
	for _, path := range []string{"stream", "kubernetes->pod_name", "kubernetes->missing"} {
		b.Run("path="+path, func(b *testing.B) {
			p := mustKeyPath(b, path)
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				for _, body := range bodies {
					buf, _ = p.Append(buf[:0], body)
				}
			}
		})
	}
}

// FuzzKeyPath looks a path up in arbitrary bytes. Nothing may panic; a key found must
// be valid UTF-8 of 1 to 256 characters; when the body is complete msgpack, the
// result must be what an independent reading of it (refDecode, written from the
// msgpack spec) says, with floats written by encoding/json and the cut and U+FFFD by
// []rune.
func FuzzKeyPath(f *testing.F) {
	f.Add("kubernetes->pod_name", containerLogChunk(1))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.f32(0.1) })))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.f64(math.NaN()) })))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.i64(math.MinInt64) })))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.u64(math.MaxUint64) })))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.str(strings.Repeat("a", 255) + "日本") })))
	f.Add("k", []byte(one("k", func(w mp) mp { return w.bin("\xff\xfe\xe6\x97") })))
	f.Add("a->b", []byte(mp(nil).map_(2).str("a").int(1).str("a").map_(1).str("b").str("v")))
	f.Add("a -> b", []byte(mp(nil).map32(1).bin("a").map16(1).str32("b").bool_(true)))
	f.Add("a->", []byte(mp(nil).map_(0)))
	f.Add("5", []byte(mp(nil).map_(2).int(5).str("x").arr(1).map_(1).str("5").str("y")))

	f.Fuzz(func(t *testing.T, path string, body []byte) {
		p, err := ParseKeyPath(path)
		parts := strings.Split(path, "->")
		empty := false
		for _, part := range parts {
			empty = empty || strings.TrimSpace(part) == ""
		}
		if (err != nil) != empty {
			t.Fatalf("ParseKeyPath(%q) error %v, but an empty name: %v", path, err, empty)
		}
		if err != nil {
			return
		}
		if len(p.names) != len(parts) {
			t.Fatalf("ParseKeyPath(%q): %d names for %d parts", path, len(p.names), len(parts))
		}
		if again, err := ParseKeyPath(p.String()); err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("ParseKeyPath(%q) = %q, but ParseKeyPath(%q) = %q, %v", path, p.names, p.String(), again.names, err)
		}

		prefix := []byte("pre")
		out, ok := p.Append(prefix, body)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("path %q body % x: prefix overwritten: %q", path, body, out)
		}
		key := out[len(prefix):]
		if !ok && len(key) != 0 {
			t.Fatalf("path %q body % x: no key, but %q appended", path, body, key)
		}
		if ok {
			checkKey(t, key)
		}

		v, _, err := refDecode(body, 0)
		if err != nil {
			return // not complete msgpack, or too deep for the reference
		}
		want, wantOK := refKey(v, p.names)
		if ok != wantOK || string(key) != want {
			t.Fatalf("path %q body % x: got %q, %v; the reference says %q, %v", path, body, key, ok, want, wantOK)
		}
	})
}

// The reference reading of msgpack: a value is one of these types.
type (
	refStr  string
	refBin  string
	refMap  []refPair // in the record's order, repeated keys kept
	refArr  []any
	refExt  struct{}
	refPair struct{ k, v any }
)

var errRef = errors.New("not complete msgpack")

// refDecode reads the msgpack value at b[0:] into the types above, plus nil, bool,
// int64, uint64, float32 and float64, and returns the bytes after it. It follows at
// most 100 levels of nesting.
func refDecode(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 || depth > 100 {
		return nil, nil, errRef
	}
	c, b := b[0], b[1:]
	// take returns the next n bytes as an unsigned integer of that size.
	take := func(n int) (uint64, bool) {
		if len(b) < n {
			return 0, false
		}
		var v uint64
		for _, x := range b[:n] {
			v = v<<8 | uint64(x)
		}
		b = b[n:]
		return v, true
	}
	payload := func(n uint64) (string, bool) {
		if uint64(len(b)) < n {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	var (
		n  uint64
		ok = true
	)
	switch {
	case c <= 0x7f:
		return int64(c), b, nil
	case c >= 0xe0:
		return int64(int8(c)), b, nil
	case c&0xf0 == 0x80:
		return refMapOf(b, uint64(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return refArrOf(b, uint64(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		s, ok := payload(uint64(c & 0x1f))
		return refStr(s), b, okErr(ok)
	}
	switch c {
	case 0xc0:
		return nil, b, nil
	case 0xc2:
		return false, b, nil
	case 0xc3:
		return true, b, nil
	case 0xc4, 0xc5, 0xc6:
		if n, ok = take(1 << (c - 0xc4)); ok {
			var s string
			s, ok = payload(n)
			return refBin(s), b, okErr(ok)
		}
	case 0xd9, 0xda, 0xdb:
		if n, ok = take(1 << (c - 0xd9)); ok {
			var s string
			s, ok = payload(n)
			return refStr(s), b, okErr(ok)
		}
	case 0xc7, 0xc8, 0xc9:
		if n, ok = take(1 << (c - 0xc7)); ok {
			_, ok = payload(n + 1)
			return refExt{}, b, okErr(ok)
		}
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		_, ok = payload(1 + 1<<(c-0xd4))
		return refExt{}, b, okErr(ok)
	case 0xca:
		n, ok = take(4)
		return math.Float32frombits(uint32(n)), b, okErr(ok)
	case 0xcb:
		n, ok = take(8)
		return math.Float64frombits(n), b, okErr(ok)
	case 0xcc, 0xcd, 0xce, 0xcf:
		n, ok = take(1 << (c - 0xcc))
		return n, b, okErr(ok)
	case 0xd0:
		n, ok = take(1)
		return int64(int8(n)), b, okErr(ok)
	case 0xd1:
		n, ok = take(2)
		return int64(int16(n)), b, okErr(ok)
	case 0xd2:
		n, ok = take(4)
		return int64(int32(n)), b, okErr(ok)
	case 0xd3:
		n, ok = take(8)
		return int64(n), b, okErr(ok)
	case 0xdc, 0xdd:
		if n, ok = take(2 << (c - 0xdc)); ok {
			return refArrOf(b, n, depth)
		}
	case 0xde, 0xdf:
		if n, ok = take(2 << (c - 0xde)); ok {
			return refMapOf(b, n, depth)
		}
	}
	return nil, nil, errRef // 0xc1, or cut short
}

func okErr(ok bool) error {
	if ok {
		return nil
	}
	return errRef
}

func refArrOf(b []byte, n uint64, depth int) (any, []byte, error) {
	if n > uint64(len(b)) {
		return nil, nil, errRef
	}
	a := refArr{}
	for ; n > 0; n-- {
		v, rest, err := refDecode(b, depth+1)
		if err != nil {
			return nil, nil, err
		}
		a, b = append(a, v), rest
	}
	return a, b, nil
}

func refMapOf(b []byte, n uint64, depth int) (any, []byte, error) {
	if n > uint64(len(b)) {
		return nil, nil, errRef
	}
	m := refMap{}
	for ; n > 0; n-- {
		k, rest, err := refDecode(b, depth+1)
		if err != nil {
			return nil, nil, err
		}
		v, rest, err := refDecode(rest, depth+1)
		if err != nil {
			return nil, nil, err
		}
		m, b = append(m, refPair{k, v}), rest
	}
	return m, b, nil
}

// refKey is the partition key the rules of KeyPath.Append give for the value v.
func refKey(v any, names []string) (string, bool) {
	for _, name := range names {
		m, ok := v.(refMap)
		if !ok {
			return "", false
		}
		found := false
		for _, pair := range m {
			if k, isStr := pair.k.(refStr); isStr && string(k) == name {
				v, found = pair.v, true
				break
			}
			if k, isBin := pair.k.(refBin); isBin && string(k) == name {
				v, found = pair.v, true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	var text string
	switch v := v.(type) {
	case refStr:
		text = string(v)
	case refBin:
		text = string(v)
	case int64:
		text = strconv.FormatInt(v, 10)
	case uint64:
		text = strconv.FormatUint(v, 10)
	case float32, float64:
		js, err := json.Marshal(v)
		if err != nil {
			return "", false // NaN and infinities
		}
		text = string(js)
	default:
		return "", false
	}
	if text == "" {
		return "", false
	}
	r := []rune(text)
	return string(r[:min(len(r), MaxPartitionKeyChars)]), true
}

// TestRefDecode checks the reference reading on a few values, so that the fuzz
// target's oracle is itself tested.
func TestRefDecode(t *testing.T) {
	t.Parallel()
	body := mp(nil).map32(3).str8("a").i16(-2).bin16("b").arr16(2).u32(7).f32(0.5).
		str("m").map16(1).nil_().ext8(3, "xyz")
	v, rest, err := refDecode(body, 0)
	if err != nil || len(rest) != 0 {
		t.Fatalf("refDecode: %v, %d bytes left", err, len(rest))
	}
	want := refMap{
		{refStr("a"), int64(-2)},
		{refBin("b"), refArr{uint64(7), float32(0.5)}},
		{refStr("m"), refMap{{nil, refExt{}}}},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("refDecode = %#v, want %#v", v, want)
	}
	for i := range len(body) {
		if _, _, err := refDecode(body[:i], 0); err == nil {
			t.Errorf("refDecode of the first %d of %d bytes succeeded", i, len(body))
		}
	}
	if _, _, err := refDecode(binary.BigEndian.AppendUint16([]byte{0xc1}, 0), 0); err == nil {
		t.Error("refDecode(0xc1) succeeded")
	}
}
