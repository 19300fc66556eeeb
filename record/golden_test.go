package record

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenDir holds the corpus: each chunk as <chunk>.msgpack, and for each option
// set what the encoder makes of it as <chunk>.<options>.golden.
const goldenDir = "testdata/golden"

// A golden file frames the result of each event, so that records without a
// trailing newline, or holding newlines themselves, stay unambiguous:
//
//	--- event <i>: <n> bytes\n<the n bytes of data>\n
//	--- event <i>: error: <Encoder.Append's error>\n
//	--- chunk error: <Decoder.Err>\n
const (
	framePrefix     = "--- event "
	chunkErrorFrame = "--- chunk error: "
)

// goldenChunks are real-shaped Fluent Bit chunks. Each builder writes the same
// bytes every time; TestGolden checks the committed .msgpack files against them.
var goldenChunks = []struct {
	name  string
	build func() []byte
}{
	{"container-fb4", containerFB4},
	{"container-fb5", containerFB5},
	{"unicode", unicodeChunk},
	{"control-chars", controlCharsChunk},
	{"long-string", longStringChunk},
	{"empty-values", emptyValuesChunk},
	{"nested-arrays-of-maps", nestedChunk},
	{"binary-and-scalars", binaryChunk},
	{"legacy-v1-times", legacyChunk},
	{"truncated", truncatedChunk},
	{"record-errors", recordErrorsChunk},
}

// goldenDataKeys is data_keys in the data_keys and combined option sets.
var goldenDataKeys = []string{"log", "stream", "kubernetes", "log.level"}

// goldenOptions are the option sets each chunk is encoded with.
func goldenOptions(t *testing.T) []struct {
	name string
	opts Options
} {
	ms := mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%3NZ")
	ns := mustFormatter(t, "%Y-%m-%dT%H:%M:%S.%9NZ")
	return []struct {
		name string
		opts Options
	}{
		{"default", Options{AppendNewline: true}},
		{"time_key", Options{TimeKey: "@timestamp", TimeFormat: ms, AppendNewline: true}},
		{"log_key", Options{LogKey: "log", AppendNewline: true}},
		{"data_keys", Options{DataKeys: goldenDataKeys, AppendNewline: true}},
		{"replace_dots", Options{ReplaceDots: "_", AppendNewline: true}},
		{"no_newline", Options{}},
		{"combined", Options{DataKeys: goldenDataKeys, ReplaceDots: "_", TimeKey: "@timestamp", TimeFormat: ns}},
	}
}

// TestGolden encodes every chunk of the corpus with every option set and compares
// the result byte for byte with the golden files. go test ./record/ -run Golden
// -update rewrites them; TestGoldenIndependent then checks what they hold.
func TestGolden(t *testing.T) {
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sets := goldenOptions(t)
	for _, c := range goldenChunks {
		chunk := c.build()
		path := filepath.Join(goldenDir, c.name+".msgpack")
		if *update {
			if err := os.WriteFile(path, chunk, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if stored, err := os.ReadFile(path); err != nil || !bytes.Equal(stored, chunk) {
			t.Errorf("%s: differs from what %s builds (%v): run go test ./record/ -run Golden -update", path, c.name, err)
			continue
		}
		for _, s := range sets {
			got := renderGolden(chunk, NewEncoder(s.opts))
			path := filepath.Join(goldenDir, c.name+"."+s.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v: run go test ./record/ -run Golden -update", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: output differs from the golden file:\n%s", path, firstDifference(got, want))
			}
		}
	}
}

// renderGolden decodes chunk and frames each event's encoding.
func renderGolden(chunk []byte, enc *Encoder) []byte {
	var out []byte
	var d Decoder
	d.Reset(chunk)
	var ev Event
	for i := 0; d.Next(&ev); i++ {
		data, err := enc.Append(nil, &ev)
		if err != nil {
			out = fmt.Appendf(out, "%s%d: error: %v\n", framePrefix, i, err)
			continue
		}
		out = fmt.Appendf(out, "%s%d: %d bytes\n", framePrefix, i, len(data))
		out = append(append(out, data...), '\n')
	}
	if err := d.Err(); err != nil {
		out = fmt.Appendf(out, "%s%v\n", chunkErrorFrame, err)
	}
	return out
}

// firstDifference shows where got and want part.
func firstDifference(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	return fmt.Sprintf("at byte %d:\n got %q\nwant %q", i, got[from:min(len(got), i+60)], want[from:min(len(want), i+60)])
}

// The chunk builders. Fluent Bit 4 writes the event arrays, the metadata map and
// the record's root map with 32-bit headers (it fills in the counts afterwards);
// Fluent Bit 5 writes compact headers throughout.

func fb4Event(w mp, sec, nsec uint32) mp {
	return w.arr32(2).arr32(2).eventTime(sec, nsec).map32(0)
}

func fb5Event(w mp, sec, nsec uint32) mp {
	return w.arr(2).arr(2).eventTime(sec, nsec).map_(0)
}

// kubernetesMeta is what Fluent Bit's kubernetes filter adds, with the dotted label
// and annotation keys real clusters have.
func kubernetesMeta(w mp, pod string) mp {
	return w.str("kubernetes").map_(10).
		str("pod_name").str(pod).
		str("namespace_name").str("shop").
		str("pod_id").str("3f2a9c4e-1b7d-4e8a-9f60-2c5d8e1a7b3c").
		str("labels").map_(4).
		str("app").str("orders-api").
		str("app.kubernetes.io/name").str("orders-api").
		str("app.kubernetes.io/version").str("1.14.2").
		str("pod-template-hash").str("7d9f8b6c5d").
		str("annotations").map_(3).
		str("kubectl.kubernetes.io/restartedAt").str("2024-04-30T08:15:00Z").
		str("prometheus.io/scrape").str("true").
		str("prometheus.io/port").str("8080").
		str("host").str("ip-10-0-1-23.ec2.internal").
		str("container_name").str("orders-api").
		str("docker_id").str("8c1f0e5b9a7d6c4e3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070605040").
		str("container_hash").str("123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-api@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0").
		str("container_image").str("123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-api:1.14.2")
}

func containerFB4() []byte {
	var w mp
	w = fb4Event(w, 1714564800, 123456789).map32(4).
		str("log").str(`{"level":"info","ts":"2024-05-01T12:00:00.123Z","msg":"GET /healthz 200","latency_ms":0.42}` + "\n").
		str("stream").str("stdout").
		str("time").str("2024-05-01T12:00:00.123456789Z")
	w = kubernetesMeta(w, "orders-api-7d9f8b6c5d-x2k4q")
	w = fb4Event(w, 1714564801, 0).map32(4).
		str("log").str("Exception in thread \"main\" java.lang.IllegalStateException: order 100042 not found\n" +
		"\tat com.example.shop.OrderService.load(OrderService.java:87)\n" +
		"\tat com.example.shop.OrderController.get(OrderController.java:42)\n").
		str("stream").str("stderr").
		str("time").str("2024-05-01T12:00:01.000000000Z")
	w = kubernetesMeta(w, "orders-api-7d9f8b6c5d-x2k4q")
	w = fb4Event(w, 1714564801, 999999999).map32(4).
		str("log").str(`C:\Program Files\Shop\bin\orders.exe exited with "code" 3 at /var/log/x` + "\r\n").
		str("stream").str("stdout").
		str("time").str("2024-05-01T12:00:01.999999999Z")
	w = kubernetesMeta(w, "orders-api-7d9f8b6c5d-m9z8w")
	return w
}

func containerFB5() []byte {
	var w mp
	// Metadata is skipped, whatever it holds.
	w = w.arr(2).arr(2).eventTime(1735689600, 1000000).map_(2).
		str("otel.trace_id").str("4bf92f3577b34da6a3ce929d0e0e4736").str("otel.span_id").str("00f067aa0ba902b7").
		map_(6).
		str("@timestamp").str("record's own time, replaced by time_key").
		str("log").str("level=warn msg=\"disk 91% full\" path=/var/lib/docker\n").
		str("log.level").str("warn").
		str("stream").str("stderr").
		str("host.name").str("ip-10-0-1-23").
		str("cloud").map_(2).str("account.id").str("123456789012").str("availability_zone").str("us-east-1a")
	w = fb5Event(w, 1735689601, 500000000).map_(4).
		str("log").str("GET /api/orders?id=7&sort=desc HTTP/1.1 200 512 \"-\" \"curl/8.5.0\"\n").
		str("stream").str("stdout").
		str("time").str("2025-01-01T00:00:01.500000000Z")
	w = kubernetesMeta(w, "web-5c8d7f9b4-abcde")
	return w
}

func unicodeChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).map_(7).
		str("log").str("日本語のログ 中文日志 한국어 로그 Ελληνικά Кириллица\n").
		str("emoji").str("🎉 👍🏽 👨‍👩‍👧 🇯🇵 ❤️ 🏳️‍🌈").
		str("combining").str("e\u0301 n\u0303 A\u030a \u0915\u094d\u0937 Z\u0335\u0321a\u0337\u0322l").
		str("rtl").str("שלום مرحبا \u200fmixed\u200e").
		str("separators").str("line\u2028para\u2029bom\ufeff nbsp\u00a0 zwsp\u200b").
		str("ユーザー.名前").str("山田 太郎").
		str("clé.été").map_(1).str("façade.ü").str("naïve café")
	w = fb5Event(w, 1700000001, 0).map_(3).
		str("log").str("invalid UTF-8: \xff \xc3( \xe2\x82 \xed\xa0\x80 \xf0\x9f\x8e end").
		str("key\xfe.bad").str("value").
		str("overlong").str("\xc0\xaf \xe0\x80\xaf")
	return w
}

func controlCharsChunk() []byte {
	var all []byte
	for c := range 0x20 {
		all = append(all, byte(c))
	}
	all = append(all, 0x7f)
	var w mp
	w = fb5Event(w, 1700000000, 1).map_(5).
		str("log").str("\x1b[31mERROR\x1b[0m \x1b[1mbold\x1b[22m\tcol2\r\n").
		str("all").str(string(all)).
		str("quotes").str(`"quoted" 'single' back\slash \\ \" </script> & < >`).
		str("tab\tkey \"q\" \\").str("\b\f\v\a").
		str("nul\x00key").str("a\x00b")
	return w
}

// longLog is a log line of exactly 100 KiB, with escapes spread through it.
func longLog() string {
	var b strings.Builder
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "line %05d: the quick brown fox \"jumps\" over\tthe lazy dog — ünïcödé ✓\n", i)
	}
	return b.String()[:100<<10]
}

func longStringChunk() []byte {
	var w mp
	w = fb4Event(w, 1700000000, 0).map32(3).
		str("log").str32(longLog()).
		str("stream").str("stdout").
		str("medium").str16(strings.Repeat("0123456789abcdef", 64))
	w = fb4Event(w, 1700000000, 1).map32(1).str("log").str("short after long\n")
	return w
}

func emptyValuesChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).map_(0)
	w = fb5Event(w, 1700000000, 1).map_(1).str("log").str("")
	w = fb5Event(w, 1700000000, 2).map_(1).str("").str("")
	w = fb5Event(w, 1700000000, 3).map_(6).
		str("log").map_(0).
		str("a").arr(0).
		str("s").str8("").
		str("b").bin("").
		str("m").map_(1).str("e").map_(1).str("").arr(1).map_(0).
		str("kubernetes").map16(0)
	w = fb4Event(w, 1700000000, 4).map32(1).str("log").arr32(0)
	return w
}

func nestedChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).map_(4).
		str("log").str("trace exported\n").
		str("spans").arr(2).
		map_(2).str("span.id").str("a1").str("attributes").map_(2).
		str("http.method").str("GET").str("http.status_code").int(200).
		map_(2).str("span.id").str("b2").str("events").arr(1).
		map_(2).str("name").str("retry.attempt").str("attributes").arr(2).
		map_(1).str("k.v").int(1).map_(1).str("retry.count").int(3).
		str("matrix").arr(2).arr(2).int(1).int(2).arr(2).int(3).arr(2).int(4).
		map_(1).str("deep.er").map_(1).str("deep.est").arr(2).bool_(true).nil_().
		str("kubernetes").map_(1).str("labels").map_(1).str("app.kubernetes.io/part-of").str("tracing")
	// log_key on a map: sent as JSON, replace_dots applied inside.
	w = fb5Event(w, 1700000000, 1).map_(1).
		str("log").map_(2).str("level.name").str("info").str("fields").arr(1).map_(1).str("a.b").str("c.d")
	return w
}

func binaryChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).map_(9).
		str("log").bin("plain text sent as bin\n").
		str("gzip").bin("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00").
		str("ints").arr(8).int(0).int(-1).int(127).int(-32).u64(math.MaxUint64).i64(math.MinInt64).u8(200).i16(-300).
		str("floats").arr(9).f64(0.1).f64(math.Copysign(0, -1)).f64(1e21).f64(1e-7).f64(math.NaN()).
		f64(math.Inf(1)).f64(math.Inf(-1)).f32(0.1).f64(123456.789).
		str("nil").nil_().
		str("bools").arr(2).bool_(true).bool_(false).
		str("ext").ext(5, "abcd").
		str("event_time").eventTime(1700000000, 5).
		str("stream").bin("stdout")
	// Keys that are not strings are their JSON text in quotes.
	w = fb5Event(w, 1700000000, 1).map_(6).
		int(42).str("int key").
		f64(1.5).str("float key").
		nil_().str("nil key").
		bool_(true).str("bool key").
		arr(2).int(1).str("a.b").str("array key").
		str("log").str("non-string keys above")
	return w
}

func legacyChunk() []byte {
	var w mp
	// Fluent Bit < 2.1: [time, record]; time an integer, a float or ext 0.
	w = w.arr(2).int(1700000000).map_(1).str("log").str("integer time")
	w = w.arr(2).f64(1714564800.25).map_(1).str("log").str("float time")
	w = w.arr(2).int(-1).map_(1).str("log").str("one second before 1970")
	w = w.arr(2).f64(-0.25).map_(1).str("log").str("a quarter second before 1970")
	w = w.arr(2).eventTime8(0, 999999999).map_(1).str("log").str("ext8 time, 999999999 ns")
	return w
}

func truncatedChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).map_(2).str("log").str("first\n").str("stream").str("stdout")
	w = fb4Event(w, 1700000001, 0).map32(2).str("log").str("second\n").str("stream").str("stdout")
	w = fb5Event(w, 1700000002, 0).map_(2).str("log").str("third, cut short\n").str("stream").str("stdout")
	return w[:len(w)-10]
}

func recordErrorsChunk() []byte {
	var w mp
	w = fb5Event(w, 1700000000, 0).str("a record that is not a map")
	w = fb5Event(w, 1700000000, 1).arr(1).map_(1).str("log").str("array record")
	w = fb5Event(w, 1700000000, 2).map_(1).str("message").str("no log key")
	deep := fb5Event(w, 1700000000, 3).map_(2).str("log").str("too deep").str("d")
	for range 1000 {
		deep = deep.arr(1)
	}
	w = deep.nil_()
	w = fb5Event(w, 1700000000, 4).map_(2).str("log").str("nested key").map_(1).map_(1).arr(0).int(1).int(2).str("v")
	w = fb5Event(w, 1700000000, 5).map_(1).str("log").str("fine after the errors\n")
	return w
}
