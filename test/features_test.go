package test

// End-to-end tests of the record features: partition_key, compression, KPL
// aggregation (shard-aware with partition_key), simple_aggregation and
// max_record_size up to 10 MiB. Each scenario runs the built library through
// the C host against its own kinesis-mock stream, behind a LimitProxy, reads
// every record back and checks it byte for byte with independent code:
// Go's decompressors, AWS Labs' Node.js deaggregator (test/kpl), and an MD5
// shard map of its own.

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kpl"
)

const (
	featureTag = "kube.var.log.containers.features_default_app.log"
	// randomKeyLen is the length of the random partition key the plugin uses
	// when a record has none.
	randomKeyLen = 16
	// maxKeyChars is Kinesis's limit on a partition key, in characters.
	maxKeyChars = 256
	// maxDecompressed bounds what a test decompresses from one record.
	maxDecompressed = 64 << 20
	deaggTimeout    = time.Minute
)

// featureRun is one host run: one instance, configured with props, sending
// to a new stream of shards shards through a LimitProxy, flushed with each
// chunk in turn from one thread (so that the records reach a stream of one
// shard in their order).
type featureRun struct {
	shards int32
	// maxRecordSize is the stream's maximum record size (raised with
	// UpdateMaxRecordSize when above 1 MiB) and the LimitProxy's per-record
	// limit; 0 is 1 MiB.
	maxRecordSize int
	props         []flbhost.Prop
	chunks        [][]byte
}

type featureResult struct {
	stream string
	res    *flbhost.Result
	recs   []kinesismock.Record // read back, shard by shard, in sequence order
	stats  kinesismock.PutStats
}

// run runs r and reads the stream back. It fails the test unless Init
// succeeded; it reports (without stopping) flushes that did not return
// FLB_OK, requests beyond Kinesis's limits, and partition keys that are not
// 1 to 256 characters.
func (r featureRun) run(t *testing.T) featureResult {
	t.Helper()
	stream := newStream(t, "s", max(r.shards, 1))
	if r.maxRecordSize > kinesismock.DefaultMaxRecordSize {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := mock.SetMaxRecordSize(ctx, stream, int32(r.maxRecordSize>>10))
		cancel()
		if err != nil {
			t.Fatalf("kinesis-mock cannot raise the stream's record size: %v", err)
		}
	}
	proxy, err := mock.NewLimitProxy(r.maxRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	ins := flbhost.Instance{
		{"region", kinesismock.Region},
		{"stream", stream},
		{"endpoint", proxy.URL},
	}
	m := flbhost.Manifest{Instances: []flbhost.Instance{append(ins, r.props...)}}
	for _, c := range r.chunks {
		m.Jobs = append(m.Jobs, flbhost.Job{Tag: featureTag, Chunk: c})
	}
	res := runHost(t, m, pluginEnv(t, false))
	if len(res.Inits) != 1 || res.Inits[0].RC != flbhost.FLBOK {
		t.Fatalf("init with %q: %+v, want rc=%d:\n%s", r.props, res.Inits, flbhost.FLBOK,
			strings.Join(instanceLines(res.Stderr, 0), "\n"))
	}
	for j, f := range res.Flushes {
		if f.RC != flbhost.FLBOK {
			t.Errorf("flush %d (%d bytes): rc=%d, want FLB_OK (%d)", j, len(m.Jobs[j].Chunk), f.RC, flbhost.FLBOK)
		}
	}
	for _, v := range proxy.Violations() {
		t.Errorf("request beyond Kinesis limits: %s", v)
	}
	st := proxy.Stats()
	t.Logf("PutRecords: %d requests, %d records, at most %d records and %d bytes in one", st.Requests, st.Records, st.MaxRecords, st.MaxBytes)
	recs := readStream(t, stream)
	for i, rec := range recs {
		if n := utf8.RuneCountInString(rec.PartitionKey); n < 1 || n > maxKeyChars {
			t.Errorf("Kinesis record %d: partition key of %d characters, want 1 to %d", i, n, maxKeyChars)
		}
	}
	return featureResult{stream: stream, res: res, recs: recs, stats: st}
}

// keyed is a record as a consumer gets it: its data and partition key, and
// where it was read from.
type keyed struct {
	data  string
	key   string
	shard string
	from  int // index of the Kinesis record it came from
}

// want is what the plugin must deliver for one record: its data, and its
// partition key ("" for a random one of randomKeyLen characters).
type want struct {
	data string
	key  string
}

func wantsOf(evs []chunk.Event, key func(chunk.Map) string) []want {
	out := make([]want, len(evs))
	for i, ev := range evs {
		out[i] = want{data: string(chunk.AppendJSON(nil, ev.Record)) + "\n"}
		if key != nil {
			out[i].key = key(ev.Record)
		}
	}
	return out
}

// checkKeyed checks that got holds exactly the data of wants (byte for byte,
// each once; wants' data must be distinct), each with its partition key;
// when keys is false only the data are checked.
func checkKeyed(t *testing.T, stream string, got []keyed, wants []want, keys bool) {
	t.Helper()
	ms := multiset{}
	byData := make(map[string]want, len(wants))
	for _, w := range wants {
		ms[w.data]++
		byData[w.data] = w
	}
	datas := make([]string, len(got))
	for i, g := range got {
		datas[i] = g.data
	}
	compareRecords(t, stream, toRecords(datas), ms)
	if !keys {
		return
	}
	bad := 0
	for _, g := range got {
		w, ok := byData[g.data]
		if !ok {
			continue // reported by compareRecords
		}
		var problem string
		switch {
		case w.key == "" && utf8.RuneCountInString(g.key) != randomKeyLen:
			problem = fmt.Sprintf("partition key %q (%d characters), want a random key of %d characters",
				g.key, utf8.RuneCountInString(g.key), randomKeyLen)
		case w.key != "" && g.key != w.key:
			problem = fmt.Sprintf("partition key %q, want %q", textdiff.Clip(g.key, 400), textdiff.Clip(w.key, 400))
		}
		if problem == "" {
			continue
		}
		if bad++; bad <= 5 {
			t.Errorf("record %q (Kinesis record %d, %s): %s", textdiff.Clip(g.data, 400), g.from, g.shard, problem)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records have the wrong partition key", bad, len(got))
	}
}

// checkSequence checks that got is want, in order, byte for byte.
func checkSequence(t *testing.T, stream string, got, want []string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			ms := multiset{}
			for _, w := range want {
				ms[w]++
			}
			t.Errorf("stream %s: record %d of %d (of %d expected) differs: %s", stream, i, len(got), len(want), textdiff.FirstDiff(want[i], got[i]))
			t.Logf("the same records in any order:")
			compareRecords(t, stream, toRecords(got), ms)
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("stream %s: %d records, want %d (the first %d match)", stream, len(got), len(want), min(len(got), len(want)))
		if len(got) > len(want) {
			t.Errorf("first extra record: %q", textdiff.Clip(got[len(want)], 400))
		} else {
			t.Errorf("first missing record: %q", textdiff.Clip(want[len(got)], 400))
		}
	}
}

// plainRecords are the Kinesis records as they are, data decompressed with
// kind ("" or "none": as is).
func plainRecords(t *testing.T, recs []kinesismock.Record, kind string) []keyed {
	t.Helper()
	out := make([]keyed, 0, len(recs))
	for i, r := range recs {
		data, err := decompress(kind, r.Data)
		if err != nil {
			t.Fatalf("Kinesis record %d (%s, %d bytes): %v; data starts %q", i, r.ShardID, len(r.Data), err, textdiff.Clip(string(r.Data[:min(len(r.Data), 64)]), 400))
		}
		out = append(out, keyed{data: string(data), key: r.PartitionKey, shard: r.ShardID, from: i})
	}
	return out
}

// deaggregate decompresses each Kinesis record with kind and deaggregates it
// with the Node.js deaggregator: the user records, in order. A record that is
// not an aggregate is one user record with the Kinesis record's key. It
// returns, too, how many user records each Kinesis record held that was an
// aggregate.
func deaggregate(t *testing.T, recs []kinesismock.Record, kind string) (users []keyed, perAggregate map[int]int) {
	t.Helper()
	datas := make([][]byte, len(recs))
	for i, r := range recs {
		d, err := decompress(kind, r.Data)
		if err != nil {
			t.Fatalf("Kinesis record %d (%s, %d bytes): %v", i, r.ShardID, len(r.Data), err)
		}
		datas[i] = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), deaggTimeout)
	defer cancel()
	got, err := kpl.Deaggregate(ctx, ".", datas)
	if err != nil {
		t.Fatalf("the Node.js deaggregator (aws-kinesis-agg) rejects the stream's records: %v", err)
	}
	perAggregate = map[int]int{}
	seen := make([]bool, len(recs))
	ehks := 0
	for _, u := range got {
		if u.Record < 0 || u.Record >= len(recs) {
			t.Fatalf("deaggregator: user record of Kinesis record %d of %d", u.Record, len(recs))
		}
		seen[u.Record] = true
		r := recs[u.Record]
		k := keyed{data: string(u.Data), key: r.PartitionKey, shard: r.ShardID, from: u.Record}
		if u.Aggregated {
			perAggregate[u.Record]++
			if u.PartitionKey == nil {
				t.Errorf("Kinesis record %d, user record %d: no partition key", u.Record, u.SubSequence)
			} else {
				k.key = *u.PartitionKey
			}
			if u.ExplicitHashKey != nil {
				ehks++
			}
		}
		users = append(users, k)
	}
	for i, ok := range seen {
		if !ok && bytes.HasPrefix(datas[i], kpl.Magic) {
			t.Errorf("Kinesis record %d (%d bytes) is an aggregate without user records", i, len(datas[i]))
		}
	}
	t.Logf("%d Kinesis records: %d aggregates, %d user records (%d with an explicit hash key)", len(recs), len(perAggregate), len(users), ehks)
	return users, perAggregate
}

// decompress undoes compression kind, after checking its magic bytes.
func decompress(kind string, b []byte) ([]byte, error) {
	var r io.Reader
	switch kind {
	case "", "none":
		return b, nil
	case "gzip":
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			return nil, fmt.Errorf("not gzip: no 1f 8b magic")
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(false)
		r = zr
	case "zlib":
		if len(b) < 2 || b[0]&0x0f != 8 || (uint16(b[0])<<8|uint16(b[1]))%31 != 0 {
			return nil, fmt.Errorf("not zlib: bad CMF/FLG header")
		}
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
		r = zr
	case "zstd":
		if !bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			return nil, fmt.Errorf("not zstd: no 28 b5 2f fd magic")
		}
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxDecompressed), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		out, err := d.DecodeAll(b, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unknown compression %q", kind)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("%s: more than %d bytes decompressed", kind, maxDecompressed)
	}
	return out, nil
}

// splitLines splits newline-joined records (simple_aggregation) into records
// that each keep their newline; the data must end with one.
func splitLines(t *testing.T, i int, data string) []string {
	t.Helper()
	if !strings.HasSuffix(data, "\n") {
		t.Errorf("Kinesis record %d (%d bytes) does not end with a newline: ...%q", i, len(data), data[max(0, len(data)-60):])
	}
	lines := strings.SplitAfter(data, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// podName is the record's kubernetes->pod_name.
func podName(m chunk.Map) string {
	for _, f := range m {
		if f.Key == "kubernetes" {
			for _, g := range f.Value.(chunk.Map) {
				if g.Key == "pod_name" {
					return g.Value.(string)
				}
			}
		}
	}
	return ""
}

// withField returns evs with the field added to each record (a copy).
func withField(evs []chunk.Event, key string, value func(i int) any) []chunk.Event {
	out := make([]chunk.Event, len(evs))
	for i, ev := range evs {
		ev.Record = append(append(chunk.Map(nil), ev.Record...), chunk.Field{Key: key, Value: value(i)})
		out[i] = ev
	}
	return out
}

// mapOf is the record of the key-value pairs kv, in order.
func mapOf(kv ...any) chunk.Map {
	m := make(chunk.Map, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m = append(m, chunk.Field{Key: kv[i].(string), Value: kv[i+1]})
	}
	return m
}

// sizedRecord is a record whose JSON and newline are exactly size bytes.
func sizedRecord(source string, seq, size int) chunk.Event {
	m := mapOf("source", source, "seq", int64(seq), "payload", "")
	pad := size - len(chunk.AppendJSON(nil, m)) - 1
	m[2].Value = strings.Repeat("0123456789abcdef", pad/16+1)[:pad]
	return chunk.Event{Sec: 1_764_000_000, Nsec: uint32(seq), Record: m}
}

// TestFeaturePartitionKey sets partition_key to a nested field and sends one
// record per kind of value: each record's Kinesis partition key is the
// field's value as text (strings and bin as they are, integers in decimal,
// floats as in the JSON), cut to 256 characters on a character boundary; a
// missing or empty field, or one that is not a scalar, gets a random key of
// 16 characters, a different one per record. The data is unchanged.
func TestFeaturePartitionKey(t *testing.T) {
	t.Parallel()
	kube := func(pod any) chunk.Map { return mapOf("namespace_name", "default", "pod_name", pod) }
	float64Raw := binary.BigEndian.AppendUint64([]byte{0xcb}, math.Float64bits(1.5))
	float32Raw := binary.BigEndian.AppendUint32([]byte{0xca}, math.Float32bits(0.25))
	tests := []struct {
		name    string
		kube    any    // the value of "kubernetes", of a type package chunk writes
		raw     []byte // or: the msgpack of pod_name (floats, bin), in kubernetes
		rawJSON string // and its JSON
		want    string // the key; "" for a random one
	}{
		{name: "string", kube: kube("web-7d9f8c6b5-x2kq4"), want: "web-7d9f8c6b5-x2kq4"},
		{name: "string with spaces and slashes", kube: kube("ns/pod name:1"), want: "ns/pod name:1"},
		{name: "unicode", kube: kube("pod-ключ-键-é"), want: "pod-ключ-键-é"},
		{name: "int", kube: kube(int64(12345)), want: "12345"},
		{name: "negative int", kube: kube(int64(-42)), want: "-42"},
		{name: "uint64 beyond int64", kube: kube(uint64(1<<63 + 5)), want: "9223372036854775813"},
		{name: "float64", raw: float64Raw, rawJSON: "1.5", want: "1.5"},
		{name: "float32", raw: float32Raw, rawJSON: "0.25", want: "0.25"},
		{name: "bin", raw: append([]byte{0xc4, 7}, "bin-pod"...), rawJSON: `"bin-pod"`, want: "bin-pod"},
		{name: "256 characters", kube: kube(strings.Repeat("ключ", 64)), want: strings.Repeat("ключ", 64)},
		{name: "300 ASCII characters", kube: kube(strings.Repeat("abcdefghij", 30)), want: strings.Repeat("abcdefghij", 30)[:256]},
		{name: "300 two-byte characters", kube: kube(strings.Repeat("é", 300)), want: strings.Repeat("é", 256)},
		{name: "cut before a three-byte character", kube: kube(strings.Repeat("a", 255) + "日本語"), want: strings.Repeat("a", 255) + "日"},
		{name: "field missing", kube: mapOf("namespace_name", "default")},
		{name: "parent not a map", kube: "not-a-map"},
		{name: "parent nil", kube: nil},
		{name: "empty string", kube: kube("")},
		{name: "empty bin", raw: []byte{0xc4, 0}, rawJSON: `""`},
		{name: "nil", kube: kube(nil)},
		{name: "bool", kube: kube(true)},
		{name: "map", kube: kube(mapOf("name", "web"))},
		{name: "array", kube: kube([]any{"web", int64(1)})},
	}
	// Distinct pods spread over the shards.
	const pods = 40
	for i := range pods {
		pod := fmt.Sprintf("web-%02d-5c7b9", i)
		tests = append(tests, struct {
			name    string
			kube    any
			raw     []byte
			rawJSON string
			want    string
		}{name: "pod " + pod, kube: kube(pod), want: pod})
	}

	// Each case twice, in both chunks, so that random keys can be compared.
	var wants []want
	var chunks [][]byte
	for round, f := range []chunk.Format{chunk.V2Wide, chunk.Legacy} {
		var c []byte
		for i, tc := range tests {
			seq := round*len(tests) + i
			w := chunk.V2Compact // the body: any valid msgpack
			body := append([]byte{0x83}, w.AppendString(nil, "seq")...)
			body = w.AppendValue(body, int64(seq))
			body = w.AppendString(body, "case")
			body = w.AppendValue(body, tc.name)
			body = w.AppendString(body, "kubernetes")
			var js []byte
			if tc.raw != nil {
				body = append(body, 0x82)
				body = w.AppendString(body, "namespace_name")
				body = w.AppendString(body, "default")
				body = w.AppendString(body, "pod_name")
				body = append(body, tc.raw...)
				js = chunk.AppendJSON(nil, mapOf("seq", int64(seq), "case", tc.name))
				js = append(js[:len(js)-1], `,"kubernetes":{"namespace_name":"default","pod_name":`+tc.rawJSON+"}}"...)
			} else {
				body = w.AppendValue(body, tc.kube)
				js = chunk.AppendJSON(nil, mapOf("seq", int64(seq), "case", tc.name, "kubernetes", tc.kube))
			}
			c = chunk.AppendEventBody(c, f, 1_764_000_000, uint32(seq), body)
			wants = append(wants, want{data: string(js) + "\n", key: tc.want})
		}
		chunks = append(chunks, c)
	}

	r := featureRun{
		shards: 4,
		// Spaces around the names are ignored.
		props:  []flbhost.Prop{{"partition_key", "kubernetes -> pod_name"}},
		chunks: chunks,
	}.run(t)

	got := plainRecords(t, r.recs, "")
	checkKeyed(t, r.stream, got, wants, true)

	// Random keys differ from record to record.
	byData := map[string]want{}
	for _, w := range wants {
		byData[w.data] = w
	}
	random := map[string]int{}
	n := 0
	for _, g := range got {
		if w, ok := byData[g.data]; ok && w.key == "" {
			random[g.key]++
			n++
		}
	}
	if n > 0 && len(random) < n/2 {
		t.Errorf("%d records without a key field got only %d distinct random keys: %v", n, len(random), random)
	}
	shards := map[string]int{}
	for _, rec := range r.recs {
		shards[rec.ShardID]++
	}
	if len(shards) != 4 {
		t.Errorf("records per shard %v: %d distinct keys should reach all 4 shards", shards, pods)
	}
}

// TestFeatureCompression sends records with each compression: every Kinesis
// record's data is the compressed form (checked by its magic bytes) of
// exactly what is sent without compression, and decompresses to it byte for
// byte. A 3 MiB record that compresses to a few KiB fits under the default
// 1 MiB limit: the limit applies to the compressed size. With aggregation or
// simple_aggregation, the packed record is what is compressed.
func TestFeatureCompression(t *testing.T) {
	t.Parallel()
	const (
		plain  = "plain"
		kplAgg = "kpl"
		simple = "simple"
	)
	tests := []struct {
		name        string
		compression string
		props       []flbhost.Prop
		pack        string
		keys        bool // check the user records' keys: kubernetes->pod_name
		big         bool // add a 3 MiB record that compresses well
	}{
		{"none", "none", nil, plain, false, false},
		{"gzip", "gzip", nil, plain, false, true},
		{"zlib", "zlib", nil, plain, false, true},
		{"zstd", "zstd", nil, plain, false, true},
		{"gzip aggregation", "gzip", []flbhost.Prop{{"aggregation", "true"}, {"partition_key", "kubernetes->pod_name"}}, kplAgg, true, false},
		{"zstd aggregation without partition_key", "zstd", []flbhost.Prop{{"aggregation", "true"}}, kplAgg, false, false},
		{"zlib simple_aggregation", "zlib", []flbhost.Prop{{"simple_aggregation", "true"}}, simple, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			evs := [][]chunk.Event{
				chunk.LogEvents("a", 0, 60, 0),
				chunk.LogEvents("b", 60, 60, 0),
			}
			if tc.big {
				evs = append(evs, chunk.LogEvents("big", 0, 1, 3<<20))
			}
			var chunks [][]byte
			var wants []want
			for i, e := range evs {
				chunks = append(chunks, chunk.Build([]chunk.Format{chunk.V2Compact, chunk.Legacy, chunk.V2Wide}[i%3], e))
				wants = append(wants, wantsOf(e, podName)...)
			}
			props := append([]flbhost.Prop{{"compression", tc.compression}}, tc.props...)
			r := featureRun{shards: 1, props: props, chunks: chunks}.run(t)

			switch tc.pack {
			case plain:
				checkKeyed(t, r.stream, plainRecords(t, r.recs, tc.compression), wants, false)
			case kplAgg:
				users, perAgg := deaggregate(t, r.recs, tc.compression)
				checkKeyed(t, r.stream, users, wants, tc.keys)
				if len(perAgg) == 0 {
					t.Errorf("no Kinesis record is a KPL aggregate after decompression")
				}
			case simple:
				var got, want []string
				for i, k := range plainRecords(t, r.recs, tc.compression) {
					got = append(got, splitLines(t, i, k.data)...)
				}
				for _, w := range wants {
					want = append(want, w.data)
				}
				checkSequence(t, r.stream, got, want)
				if len(r.recs) > len(chunks) {
					t.Errorf("%d Kinesis records for %d small chunks, want one per chunk", len(r.recs), len(chunks))
				}
			}
		})
	}
}

// TestFeatureAggregation sends KPL aggregated records and reads them back
// with AWS Labs' Node.js deaggregator (aws-kinesis-agg, which checks the
// magic, the protobuf and the MD5), independent of the plugin's code: every
// user record's data, byte for byte, and its own partition key. It replaces
// the unit test that ran that deaggregator from kinesis/ (DESIGN: the unit
// tests must not need test/), and covers what it covered: unicode and
// 256-character keys, a single record, aggregates filled to the limit, and
// one aggregate with a hundred distinct keys in a scrambled order, whose
// user records get the wrong keys if the key table is built in any order but
// insertion (e.g. by ranging over a map).
func TestFeatureAggregation(t *testing.T) {
	t.Parallel()
	pk := func(m chunk.Map) string {
		for _, f := range m {
			if f.Key == "pk" {
				switch v := f.Value.(type) {
				case string:
					if n := utf8.RuneCountInString(v); n > maxKeyChars {
						return string([]rune(v)[:maxKeyChars])
					}
					return v
				case int64:
					return strconv.FormatInt(v, 10)
				}
			}
		}
		return ""
	}
	unicodeKeys := []any{"ключ", "键", strings.Repeat("é", 256), strings.Repeat("é", 300), int64(7)}
	tests := []struct {
		name   string
		props  []flbhost.Prop
		chunks [][]chunk.Event
		keys   bool // check each user record's key (else: one random key per aggregate)
		// minDistinctKeys: some aggregate must hold user records of at least
		// this many distinct keys.
		minDistinctKeys int
		minAggregates   int
	}{
		{
			name:  "random key",
			props: []flbhost.Prop{{"aggregation", "true"}},
			chunks: [][]chunk.Event{
				chunk.LogEvents("random", 0, 200, 0),
				chunk.LogEvents("single", 0, 1, 0), // alone: an aggregate of one, or a plain record
			},
			minAggregates: 1,
		},
		{
			name:  "key table",
			props: []flbhost.Prop{{"aggregation", "true"}, {"partition_key", "pk"}},
			chunks: [][]chunk.Event{
				withField(chunk.LogEvents("table", 0, 300, 0), "pk", func(i int) any { return fmt.Sprintf("pod-%03d", (i*37)%100) }),
				withField(chunk.LogEvents("unicode", 0, 3*len(unicodeKeys), 0), "pk", func(i int) any { return unicodeKeys[i%len(unicodeKeys)] }),
				// Without the field: random keys.
				chunk.LogEvents("no-pk", 0, 5, 0),
			},
			keys:            true,
			minDistinctKeys: 100,
			minAggregates:   1,
		},
		{
			name:  "filled to the limit",
			props: []flbhost.Prop{{"aggregation", "true"}, {"partition_key", "pk"}},
			chunks: [][]chunk.Event{
				withField(chunk.LogEvents("full", 0, 24, 120_000), "pk", func(i int) any { return []string{"alpha", "beta", "gamma"}[i%3] }),
				withField(chunk.LogEvents("full-small", 0, 100, 0), "pk", func(i int) any { return fmt.Sprintf("k%d", i%7) }),
			},
			keys:          true,
			minAggregates: 3, // 24 records of 120 KB cannot go in fewer than 3 aggregates of 1 MiB
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var chunks [][]byte
			var wants []want
			for i, evs := range tc.chunks {
				chunks = append(chunks, chunk.Build([]chunk.Format{chunk.V2Compact, chunk.V2Wide, chunk.Legacy}[i%3], evs))
				wants = append(wants, wantsOf(evs, pk)...)
			}
			r := featureRun{shards: 1, props: tc.props, chunks: chunks}.run(t)
			users, perAgg := deaggregate(t, r.recs, "")
			checkKeyed(t, r.stream, users, wants, tc.keys)

			if len(perAgg) < tc.minAggregates {
				t.Errorf("%d Kinesis records are KPL aggregates, want at least %d", len(perAgg), tc.minAggregates)
			}
			if len(r.recs) > len(wants)/2 {
				t.Errorf("%d Kinesis records for %d user records: not aggregated", len(r.recs), len(wants))
			}
			keysOf := map[int]map[string]bool{}
			for _, u := range users {
				if keysOf[u.from] == nil {
					keysOf[u.from] = map[string]bool{}
				}
				keysOf[u.from][u.key] = true
			}
			most := 0
			for _, ks := range keysOf {
				most = max(most, len(ks))
			}
			if most < tc.minDistinctKeys {
				t.Errorf("at most %d distinct keys in one aggregate, want an aggregate of at least %d: the key table is not exercised", most, tc.minDistinctKeys)
			}
			if !tc.keys {
				// All the user records of an aggregate share one random key,
				// which is the Kinesis record's.
				for from, ks := range keysOf {
					if len(ks) != 1 {
						t.Errorf("Kinesis record %d: its user records have %d keys, want one random key", from, len(ks))
						continue
					}
					for k := range ks {
						if utf8.RuneCountInString(k) != randomKeyLen || k != r.recs[from].PartitionKey {
							t.Errorf("Kinesis record %d: user records' key %q, Kinesis record's key %q: want the same random key of %d characters",
								from, k, r.recs[from].PartitionKey, randomKeyLen)
						}
					}
				}
			}
		})
	}
}

// TestFeatureShardAwareAggregation aggregates with partition_key to a stream
// of 4 shards: every user record must be read back from the shard that its
// own partition key maps to (the MD5 of the key, a 128-bit big-endian
// integer, within the shard's hash key range, computed here independently
// of the plugin), so that consumers (the KCL) do not drop it; and its data
// and key are intact.
func TestFeatureShardAwareAggregation(t *testing.T) {
	t.Parallel()
	const keys = 48
	key := func(i int) any { return fmt.Sprintf("tenant-%02d/pod-%d", (i*13)%keys, i%3) }
	evs := [][]chunk.Event{
		withField(chunk.LogEvents("shard-a", 0, 150, 0), "pk", key),
		withField(chunk.LogEvents("shard-b", 150, 100, 200), "pk", func(i int) any { return key(i + 150) }),
		chunk.LogEvents("shard-random", 0, 12, 0), // no pk: random keys, each to its own shard
	}
	var chunks [][]byte
	var wants []want
	for i, e := range evs {
		chunks = append(chunks, chunk.Build([]chunk.Format{chunk.V2Wide, chunk.V2Compact, chunk.Legacy}[i], e))
		wants = append(wants, wantsOf(e, func(m chunk.Map) string {
			for _, f := range m {
				if f.Key == "pk" {
					return f.Value.(string)
				}
			}
			return ""
		})...)
	}
	r := featureRun{
		shards: 4,
		props:  []flbhost.Prop{{"aggregation", "true"}, {"partition_key", "pk"}},
		chunks: chunks,
	}.run(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	ranges, err := mock.ShardRanges(ctx, r.stream)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 4 {
		t.Fatalf("%d open shards, want 4: %v", len(ranges), ranges)
	}

	users, perAgg := deaggregate(t, r.recs, "")
	checkKeyed(t, r.stream, users, wants, true)

	wrong := 0
	perShard := map[string]int{}
	for _, u := range users {
		perShard[u.shard]++
		if want := kinesismock.ShardOf(ranges, kinesismock.HashKey(u.key)); want != u.shard {
			if wrong++; wrong <= 5 {
				t.Errorf("user record %q with key %q (Kinesis record %d, key %q) read from %s, but its key maps to %s",
					textdiff.Clip(u.data, 400), u.key, u.from, r.recs[u.from].PartitionKey, u.shard, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d user records are in a shard their key does not map to: a KCL consumer drops them", wrong, len(users))
	}
	if len(perShard) != 4 {
		t.Errorf("user records per shard %v: %d keys should reach all 4 shards", perShard, keys)
	}
	multi := 0
	for _, n := range perAgg {
		if n > 1 {
			multi++
		}
	}
	if multi == 0 || len(r.recs) > len(wants)/4 {
		t.Errorf("%d Kinesis records for %d user records, %d aggregates of more than one: not aggregated", len(r.recs), len(wants), multi)
	}
}

// TestFeatureSimpleAggregation joins records with newlines into Kinesis
// records of at most max_record_size (data and key), as the C plugin: split
// on newlines, the stream holds every record, byte for byte, in order; each
// Kinesis record ends with a newline (no record is cut); small chunks take
// one Kinesis record each, and a chunk of 1.8 MB takes two.
func TestFeatureSimpleAggregation(t *testing.T) {
	t.Parallel()
	evs := [][]chunk.Event{
		chunk.LogEvents("simple-a", 0, 200, 0),
		chunk.LogEvents("simple-big", 0, 30, 60_000), // 1.8 MB: two Kinesis records
		chunk.LogEvents("simple-c", 0, 100, 0),
	}
	var chunks [][]byte
	var want []string
	for i, e := range evs {
		chunks = append(chunks, chunk.Build([]chunk.Format{chunk.V2Compact, chunk.V2Wide, chunk.Legacy}[i], e))
		for _, w := range wantsOf(e, nil) {
			want = append(want, w.data)
		}
	}
	r := featureRun{shards: 1, props: []flbhost.Prop{{"simple_aggregation", "true"}}, chunks: chunks}.run(t)

	var got []string
	for i, rec := range r.recs {
		if n := len(rec.Data) + len(rec.PartitionKey); n > kinesismock.DefaultMaxRecordSize {
			t.Errorf("Kinesis record %d: %d bytes with its key, more than 1 MiB", i, n)
		}
		got = append(got, splitLines(t, i, string(rec.Data))...)
	}
	checkSequence(t, r.stream, got, want)
	if len(r.recs) > 4 {
		t.Errorf("%d Kinesis records, want 4 (one per small chunk, two for the 1.8 MB one): records are not packed", len(r.recs))
	}
}

// TestFeatureMaxRecordSize sends, with max_record_size at its default (1M)
// and at 10M (the stream's limit raised with UpdateMaxRecordSize), a record
// of exactly the limit (1M) or of 5 MiB (10M), which is delivered byte for
// byte, and a record one byte over the limit, which is skipped: the flush
// returns FLB_OK, a warn line gives its size and tag, the exit summary counts
// it, and the chunk's other records are delivered.
func TestFeatureMaxRecordSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limit    int
		props    []flbhost.Prop
		bigData  int // data of the record that fits
		overData int // data of the record over the limit
	}{
		// The random key is 16 characters: data + key is exactly 1 MiB.
		{"1M default", 1 << 20, nil, 1<<20 - randomKeyLen, 1<<20 + 1},
		{"10M", 10 << 20, []flbhost.Prop{{"max_record_size", "10M"}}, 5 << 20, 10<<20 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.ReplaceAll(tc.name, " ", "-")
			evs := []chunk.Event{
				sizedRecord(src+"-small", 0, 200),
				sizedRecord(src+"-over", 1, tc.overData),
				sizedRecord(src+"-big", 2, tc.bigData),
				sizedRecord(src+"-small", 3, 300),
			}
			over := string(chunk.AppendJSON(nil, evs[1].Record)) + "\n"
			if len(over) != tc.overData {
				t.Fatalf("test bug: oversize record of %d bytes, want %d", len(over), tc.overData)
			}
			wantMS := multiset{}
			wantMS.addRecords([]chunk.Event{evs[0], evs[2], evs[3]})

			r := featureRun{
				shards:        1,
				maxRecordSize: tc.limit,
				props:         tc.props,
				chunks:        [][]byte{chunk.Build(chunk.V2Compact, evs)},
			}.run(t)
			compareRecords(t, r.stream, r.recs, wantMS)

			// A warn line gives the skipped record's size: its data, or its
			// data and key.
			lines := instanceLines(r.res.Stderr, 0)
			number := regexp.MustCompile(`\d+`)
			var warned []string
			for _, line := range lines {
				if !strings.Contains(line, "[ warn]") && !strings.Contains(line, "[warn]") {
					continue
				}
				// The message only: not the timestamp's digits.
				msg := line[strings.Index(line, "[output:"):]
				msg = msg[strings.Index(msg, "] ")+2:]
				for _, n := range number.FindAllString(msg, -1) {
					if v, err := strconv.Atoi(n); err == nil && v >= tc.overData && v <= tc.overData+maxKeyChars*4 {
						warned = append(warned, line)
						break
					}
				}
			}
			switch {
			case len(warned) == 0:
				t.Errorf("no warn line gives the size of the skipped record (%d bytes of data); the instance's log:\n%s",
					tc.overData, strings.Join(lines, "\n"))
			case !strings.Contains(strings.Join(warned, "\n"), featureTag):
				t.Errorf("the warn line about the skipped record does not give its tag %q: %q", featureTag, warned)
			}
			var exit []string
			for _, line := range lines {
				if strings.Contains(strings.ToLower(line), "exit") {
					exit = append(exit, line)
				}
			}
			if !regexp.MustCompile(`\b1 oversize\b`).MatchString(strings.Join(exit, "\n")) {
				t.Errorf("the exit summary does not count 1 oversize record: %q", exit)
			}
		})
	}
}

// TestFeatureNodeDeaggregatorSelfCheck shows that the checks above can fail:
// the Node.js deaggregator, given aggregates built here by hand, gives each
// user record the key its index picks from the table (so a table in the
// wrong order, as a map would give, is seen), and rejects a bad MD5.
func TestFeatureNodeDeaggregatorSelfCheck(t *testing.T) {
	t.Parallel()
	type rec struct {
		idx  byte
		data string
	}
	recs := []rec{{0, "1"}, {1, "2"}, {0, "3"}}
	build := func(table []string) []byte {
		var pb []byte
		for _, k := range table {
			pb = append(append(pb, 0x0a, byte(len(k))), k...) // partition_key_table
		}
		for _, r := range recs {
			msg := append([]byte{0x08, r.idx, 0x1a, byte(len(r.data))}, r.data...)
			pb = append(append(pb, 0x1a, byte(len(msg))), msg...) // records
		}
		sum := md5.Sum(pb)
		return append(append(append([]byte(nil), kpl.Magic...), pb...), sum[:]...)
	}
	good := build([]string{"zebra", "apple"})
	swapped := build([]string{"apple", "zebra"})
	badMD5 := append([]byte(nil), good...)
	badMD5[len(badMD5)-1] ^= 0xff

	ctx, cancel := context.WithTimeout(context.Background(), deaggTimeout)
	defer cancel()
	got, err := kpl.Deaggregate(ctx, ".", [][]byte{good, swapped, []byte("plain\n")})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"zebra", "apple", "zebra", "apple", "zebra", "apple"}
	if len(got) != 7 {
		t.Fatalf("%d user records, want 7: %+v", len(got), got)
	}
	for i, u := range got[:6] {
		if !u.Aggregated || u.PartitionKey == nil || *u.PartitionKey != wantKeys[i] || string(u.Data) != recs[i%3].data {
			t.Errorf("user record %d: %+v, want key %q and data %q", i, u, wantKeys[i], recs[i%3].data)
		}
	}
	if u := got[6]; u.Aggregated || string(u.Data) != "plain\n" {
		t.Errorf("a record without the magic: %+v, want it as it is, not aggregated", u)
	}
	if _, err := kpl.Deaggregate(ctx, ".", [][]byte{badMD5}); err == nil {
		t.Errorf("an aggregate with a bad MD5 was accepted")
	}
}
