package batcher

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// Tests of partition_key, compression, simple_aggregation and aggregation, and of delivery when a
// Kinesis record carries several events.

// msgMap returns a msgpack map of string keys; values are strings or raw msgpack ([]byte).
func msgMap(kv ...any) []byte {
	b := []byte{0x80 | byte(len(kv)/2)}
	for _, v := range kv {
		switch v := v.(type) {
		case string:
			b = append(b, 0xd9, byte(len(v)))
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

func mustKeyPath(t testing.TB, s string) record.KeyPath {
	t.Helper()
	p, err := record.ParseKeyPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// keyedChunk returns n events {"k": key(i), "msg": "event i ..."} and their JSON lines.
func keyedChunk(n int, key func(i int) string, pad int) ([]byte, []string) {
	var chunk []byte
	var lines []string
	for i := range n {
		msg := fmt.Sprintf("event %d %s", i, strings.Repeat("x", pad))
		chunk = append(chunk, event(uint32(i), 0, strMap("k", key(i), "msg", msg))...)
		lines = append(lines, fmt.Sprintf(`{"k":%q,"msg":%q}`+"\n", key(i), msg))
	}
	return chunk, lines
}

func TestPartitionKeyField(t *testing.T) {
	t.Parallel()
	kube := func(pod string) []byte { return msgMap("pod_name", pod, "ns", "default") }
	chunk := bytes.Join([][]byte{
		event(1, 0, msgMap("kubernetes", kube("web-1"), "msg", "a")),
		event(2, 0, msgMap("msg", "no kubernetes")),
		event(3, 0, msgMap("kubernetes", kube("web-2"), "msg", "b")),
		event(4, 0, msgMap("kubernetes", kube(""), "msg", "empty pod")),
		event(5, 0, msgMap("kubernetes", kube("web-1"), "msg", "c")),
	}, nil)
	logs := &logSink{}
	f := &fakePutter{t: t}
	p := NewPool(f, Options{PartitionKey: mustKeyPath(t, "kubernetes->pod_name"), Logger: slog.New(logs), LogInterval: -1})
	for range 2 {
		res, err := p.Flush(context.Background(), chunk, "app.log")
		if err != nil || res != (Result{Records: 5, Accepted: 5}) {
			t.Fatalf("Flush = %+v, %v", res, err)
		}
	}
	// Records are packed by key: find each by its data, and check its key.
	wantKeys := map[string]string{"a": "web-1", "no kubernetes": "", "b": "web-2", "empty pod": "", "c": "web-1"}
	random := map[string]bool{}
	n := 0
	for _, req := range f.sent() {
		for _, e := range req {
			n++
			var rec struct{ Msg string }
			if err := json.Unmarshal(e.Data, &rec); err != nil {
				t.Fatalf("record %q: %v", e.Data, err)
			}
			want, ok := wantKeys[rec.Msg]
			switch {
			case !ok:
				t.Errorf("unexpected record %q", e.Data)
			case want == "":
				if len(e.PartitionKey) != kinesis.KeyLen || strings.HasPrefix(e.PartitionKey, "web") {
					t.Errorf("record %q: key %q, want a random key", rec.Msg, e.PartitionKey)
				}
				if random[e.PartitionKey] {
					t.Errorf("two fallbacks share the random key %q", e.PartitionKey)
				}
				random[e.PartitionKey] = true
			case e.PartitionKey != want:
				t.Errorf("record %q: key %q, want %q", rec.Msg, e.PartitionKey, want)
			}
		}
	}
	if n != 10 {
		t.Errorf("%d records sent, want 10", n)
	}
	if s := p.Stats(); s.RandomKeyFallback != 4 || !strings.Contains(s.String(), "4 records without a usable partition_key field") {
		t.Errorf("RandomKeyFallback = %d, want 4; summary %q", s.RandomKeyFallback, s.String())
	}
	if n := countPrefix(logs.all(), `DEBUG 2 records without a usable partition_key "kubernetes->pod_name" field`); n != 2 {
		t.Errorf("%d debug lines about fallbacks, want one per flush: %q", n, logs.all())
	}
}

// TestSkipLinesRateLimited: flushes that skip records write one line per interval (loglimit's
// tests cover what the next line says); the totals count every skipped record.
func TestSkipLinesRateLimited(t *testing.T) {
	t.Parallel()
	chunk := bytes.Join([][]byte{
		event(1, 0, msgMap("log", "kept")),
		event(2, 0, msgMap("msg", "no log key")),
	}, nil)
	logs := &logSink{}
	p := NewPool(&fakePutter{t: t}, Options{Record: record.Options{LogKey: "log"}, Logger: slog.New(logs), LogInterval: time.Hour})
	for range 3 {
		if _, err := p.Flush(context.Background(), chunk, "app.log"); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	lines := logs.all()
	if n := countPrefix(lines, `WARN skipped 1 records without log_key "log"`); n != 1 {
		t.Errorf("%d lines about skipped records in one interval, want 1: %q", n, lines)
	}
	if s := p.Stats(); s.SkippedNoLogKey != 3 || s.Accepted != 3 {
		t.Errorf("SkippedNoLogKey = %d, Accepted = %d; want 3 and 3", s.SkippedNoLogKey, s.Accepted)
	}
}

// TestPartitionKeySize: the partition key counts in the record size: a record that fits with a
// random key of 16 characters does not with a longer key from its field.
func TestPartitionKeySize(t *testing.T) {
	t.Parallel()
	const limit = 300
	long := strings.Repeat("k", 100)
	ev := func(key string, dataLen int) ([]byte, int) {
		body := strMap("k", key, "msg", "")
		enc := len(fmt.Sprintf(`{"k":%q,"msg":""}`, key))
		msg := strings.Repeat("m", dataLen-enc)
		return event(1, 0, strMap("k", key, "msg", msg)), len(body)
	}
	fits, _ := ev(long, limit-len(long))   // data + key = limit
	over, _ := ev(long, limit-len(long)+1) // one byte over
	f := &fakePutter{t: t}
	p := NewPool(f, Options{PartitionKey: mustKeyPath(t, "k"), MaxRecordSize: limit})
	res, err := p.Flush(context.Background(), append(fits, over...), "t")
	if err != nil || res != (Result{Records: 2, Accepted: 1, Skipped: 1}) {
		t.Fatalf("Flush = %+v, %v", res, err)
	}
	if got := f.sent()[0][0]; got.Size() != limit || got.PartitionKey != long {
		t.Errorf("sent a record of %d bytes with key %q", got.Size(), got.PartitionKey)
	}
}

func decompress(t *testing.T, kind compress.Kind, b []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch kind {
	case compress.None:
		return b
	case compress.Gzip:
		r, err = gzip.NewReader(bytes.NewReader(b))
	case compress.Zlib:
		r, err = zlib.NewReader(bytes.NewReader(b))
	case compress.Zstd:
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return out
}

// userRec is a user record of an aggregate, or a plain record.
type userRec struct{ key, data string }

// deaggregate decodes a KPL aggregated record strictly (magic, MD5, known fields only, indexes
// within the table), as kinesis/aggregate_test.go does; ok is false for a plain record.
func deaggregate(t *testing.T, b []byte) (recs []userRec, keys []string, ok bool) {
	t.Helper()
	magic := []byte{0xF3, 0x89, 0x9A, 0xC2}
	if !bytes.HasPrefix(b, magic) {
		return nil, nil, false
	}
	if len(b) < 20 {
		t.Fatalf("aggregate of %d bytes", len(b))
	}
	pb := b[4 : len(b)-md5.Size]
	if sum := md5.Sum(pb); !bytes.Equal(sum[:], b[len(b)-md5.Size:]) {
		t.Fatal("aggregate with a bad MD5")
	}
	type raw struct {
		idx  uint64
		data []byte
	}
	var raws []raw
	for len(pb) > 0 {
		num, typ, n := protowire.ConsumeTag(pb)
		if n < 0 || typ != protowire.BytesType {
			t.Fatalf("bad field %d type %d", num, typ)
		}
		v, m := protowire.ConsumeBytes(pb[n:])
		if m < 0 {
			t.Fatal(protowire.ParseError(m))
		}
		pb = pb[n+m:]
		switch num {
		case 1:
			keys = append(keys, string(v))
		case 3:
			var r raw
			var haveIdx, haveData bool
			for len(v) > 0 {
				num, typ, n := protowire.ConsumeTag(v)
				if n < 0 {
					t.Fatal(protowire.ParseError(n))
				}
				v = v[n:]
				switch {
				case num == 1 && typ == protowire.VarintType:
					r.idx, n = protowire.ConsumeVarint(v)
					haveIdx = true
				case num == 3 && typ == protowire.BytesType:
					r.data, n = protowire.ConsumeBytes(v)
					haveData = true
				default:
					t.Fatalf("record field %d type %d", num, typ)
				}
				if n < 0 {
					t.Fatal(protowire.ParseError(n))
				}
				v = v[n:]
			}
			if !haveIdx || !haveData {
				t.Fatal("record without a required field")
			}
			raws = append(raws, r)
		default:
			t.Fatalf("unexpected field %d", num)
		}
	}
	for _, r := range raws {
		if r.idx >= uint64(len(keys)) {
			t.Fatalf("key index %d outside a table of %d", r.idx, len(keys))
		}
		recs = append(recs, userRec{keys[r.idx], string(r.data)})
	}
	return recs, keys, true
}

// sentRecord is a Kinesis record sent, with what it carries.
type sentRecord struct {
	entry kinesis.Entry
	users []userRec // its user records (one for a plain record), after decompression
	agg   bool
}

// unpack decompresses and deaggregates every Kinesis record sent.
func unpack(t *testing.T, kind compress.Kind, reqs [][]kinesis.Entry) []sentRecord {
	t.Helper()
	var out []sentRecord
	for _, req := range reqs {
		for _, e := range req {
			data := decompress(t, kind, e.Data)
			recs, _, agg := deaggregate(t, data)
			if !agg {
				recs = []userRec{{e.PartitionKey, string(data)}}
			} else if e.PartitionKey != recs[0].key {
				t.Errorf("aggregate sent with key %q, its first user record has %q", e.PartitionKey, recs[0].key)
			}
			out = append(out, sentRecord{entry: e, users: recs, agg: agg})
		}
	}
	return out
}

func TestCompressionRoundTrip(t *testing.T) {
	t.Parallel()
	chunk, lines := keyedChunk(300, func(i int) string { return fmt.Sprint("key-", i%7) }, 200)
	for _, kind := range []compress.Kind{compress.Gzip, compress.Zlib, compress.Zstd} {
		for _, mode := range []string{"plain", "simple", "aggregation"} {
			t.Run(kind.String()+"/"+mode, func(t *testing.T) {
				t.Parallel()
				f := &fakePutter{t: t}
				o := Options{Compression: kind, MaxRecordSize: 16 << 10, Record: record.Options{AppendNewline: true},
					Aggregation: mode == "aggregation", SimpleAggregation: mode == "simple"}
				p := NewPool(f, o)
				res, err := p.Flush(context.Background(), chunk, "t")
				if err != nil || res != (Result{Records: 300, Accepted: 300}) {
					t.Fatalf("Flush = %+v, %v", res, err)
				}
				var got []string
				for _, r := range unpack(t, kind, f.sent()) {
					if r.entry.Size() > 16<<10 {
						t.Errorf("record of %d bytes", r.entry.Size())
					}
					for _, u := range r.users {
						if mode == "simple" {
							got = append(got, strings.SplitAfter(strings.TrimSuffix(u.data, "\n"), "\n")...)
							got[len(got)-1] += "\n"
						} else {
							got = append(got, u.data)
						}
					}
				}
				if strings.Join(got, "") != strings.Join(lines, "") {
					t.Errorf("decompressed %d records, want %d; first %q", len(got), len(lines), got[0])
				}
			})
		}
	}
}

// TestCompressedSizeLimit: max_record_size applies to the compressed data plus the key: a record
// larger than the limit that compresses well is sent; one that does not is skipped.
func TestCompressedSizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	compressible := bytes.Repeat([]byte("abcdefgh"), limit/4) // 2 MiB
	random := make([]byte, limit-kinesis.KeyLen-10)           // fits raw, not once compressed
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(random)
	for _, kind := range []compress.Kind{compress.Gzip, compress.Zlib, compress.Zstd} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			f := &fakePutter{t: t}
			p := NewPool(f, Options{Compression: kind, MaxRecordSize: limit})
			_, res, err := packAll(t, p, [][]byte{compressible, random, []byte("small")}, nil)
			if err != nil || res != (Result{Records: 3, Accepted: 2, Skipped: 1}) {
				t.Fatalf("res = %+v, %v", res, err)
			}
			reqs := f.sent()
			if len(reqs) != 1 || len(reqs[0]) != 2 {
				t.Fatalf("sent %v", requestCount(reqs))
			}
			if got := decompress(t, kind, reqs[0][0].Data); !bytes.Equal(got, compressible) {
				t.Errorf("first record decompresses to %d bytes", len(got))
			}
			if got := decompress(t, kind, reqs[0][1].Data); string(got) != "small" {
				t.Errorf("second record decompresses to %q", got)
			}
			if s := p.Stats(); s.SkippedOversize != 1 {
				t.Errorf("SkippedOversize = %d", s.SkippedOversize)
			}
		})
	}
}

func requestCount(reqs [][]kinesis.Entry) []int {
	var n []int
	for _, r := range reqs {
		n = append(n, len(r))
	}
	return n
}

// TestSimpleAggregation: records are joined, each ending with a newline, into Kinesis records
// filled exactly up to the limit with their random key; the next record starts a new one; a
// record too large alone is skipped.
func TestSimpleAggregation(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	const per = (limit - kinesis.KeyLen) / 4 // 4 records of per bytes fill a record exactly
	for _, newline := range []bool{false, true} {
		t.Run(fmt.Sprint("append_newline=", newline), func(t *testing.T) {
			t.Parallel()
			var records [][]byte
			var want []string
			for i := range 9 {
				r := makeRecord(i, per-1)
				if i == 5 {
					r = makeRecord(i, limit) // too large alone
				}
				line := string(r) + "\n"
				if newline {
					r = []byte(line)
				}
				records = append(records, r)
				if i != 5 {
					want = append(want, line)
				}
			}
			f := &fakePutter{t: t}
			p := NewPool(f, Options{SimpleAggregation: true, MaxRecordSize: limit, Record: record.Options{AppendNewline: newline}})
			_, res, err := packAll(t, p, records, nil)
			if err != nil || res != (Result{Records: 9, Accepted: 8, Skipped: 1}) {
				t.Fatalf("res = %+v, %v", res, err)
			}
			var sizes []int
			var got []string
			keys := map[string]bool{}
			for _, req := range f.sent() {
				for _, e := range req {
					sizes = append(sizes, e.Size())
					keys[e.PartitionKey] = true
					got = append(got, strings.SplitAfter(strings.TrimSuffix(string(e.Data), "\n"), "\n")...)
					got[len(got)-1] += "\n"
				}
			}
			// 0-3 fill the first record exactly; 4 alone (5, too large, comes next and is
			// skipped), then 6-8.
			if fmt.Sprint(sizes) != fmt.Sprint([]int{limit, kinesis.KeyLen + per, kinesis.KeyLen + 3*per}) {
				t.Errorf("record sizes %v, want [%d %d %d]", sizes, limit, kinesis.KeyLen+per, kinesis.KeyLen+3*per)
			}
			if len(keys) != 3 {
				t.Errorf("%d distinct keys for 3 records", len(keys))
			}
			if strings.Join(got, "") != strings.Join(want, "") {
				t.Errorf("records joined differ: got %d, want %d", len(got), len(want))
			}
		})
	}
}

// TestAggregation: without partition_key, the user records of an aggregate share one random key,
// aggregates stay within the limit, and deaggregating gives back every record in order.
func TestAggregation(t *testing.T) {
	t.Parallel()
	const limit = 8 << 10
	records := numbered(500, 100, 300, 7000, 20000, 50)
	f := &fakePutter{t: t}
	p := NewPool(f, Options{Aggregation: true, MaxRecordSize: limit})
	_, res, err := packAll(t, p, records, nil)
	// The records of 20000 bytes are too large for the limit: skipped.
	if err != nil || res != (Result{Records: 500, Accepted: 400, Skipped: 100}) {
		t.Fatalf("res = %+v, %v", res, err)
	}
	var got []string
	keys := map[string]bool{}
	aggs := 0
	for _, r := range unpack(t, compress.None, f.sent()) {
		if r.entry.Size() > limit || r.entry.ExplicitHashKey != "" {
			t.Errorf("record of %d bytes, explicit hash key %q", r.entry.Size(), r.entry.ExplicitHashKey)
		}
		if keys[r.entry.PartitionKey] {
			t.Errorf("key %q used by two Kinesis records", r.entry.PartitionKey)
		}
		keys[r.entry.PartitionKey] = true
		if r.agg {
			aggs++
		}
		for _, u := range r.users {
			if u.key != r.entry.PartitionKey {
				t.Errorf("user record with key %q in an aggregate of key %q", u.key, r.entry.PartitionKey)
			}
			got = append(got, u.data)
		}
	}
	var want []string
	for i, r := range records {
		if i%5 != 3 {
			want = append(want, string(r))
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("deaggregated %d records, want %d in order", len(got), len(want))
	}
	if aggs < 50 {
		t.Errorf("%d aggregates: records are not aggregated", aggs)
	}
}

// fakeLister lists shards as scripted.
type fakeLister struct {
	calls atomic.Int32
	err   func(call int) error
	m     *kpl.ShardMap
}

func (l *fakeLister) ListShards(context.Context) (*kpl.ShardMap, error) {
	n := int(l.calls.Add(1)) - 1
	if l.err != nil {
		if err := l.err(n); err != nil {
			return nil, err
		}
	}
	return l.m, nil
}

// fourShards returns the map of a stream of 4 equal shards.
func fourShards(t testing.TB) *kpl.ShardMap { return evenShards(t, 4) }

// TestShardAwareAggregation: with partition_key, every user record of an aggregate is in the shard
// the aggregate's explicit hash key routes it to; the shard map is listed once for several
// flushes.
func TestShardAwareAggregation(t *testing.T) {
	t.Parallel()
	m := fourShards(t)
	lister := &fakeLister{m: m}
	chunk, lines := keyedChunk(2000, func(i int) string { return fmt.Sprint("pod-", i%37) }, 50)
	f := &fakePutter{t: t}
	p := NewPool(f, Options{Aggregation: true, PartitionKey: mustKeyPath(t, "k"), Shards: lister,
		MaxRecordSize: 16 << 10, Record: record.Options{AppendNewline: true}})
	for range 3 {
		if res, err := p.Flush(context.Background(), chunk, "t"); err != nil || res.Accepted != 2000 {
			t.Fatalf("Flush = %+v, %v", res, err)
		}
	}
	if n := lister.calls.Load(); n != 1 {
		t.Errorf("listed shards %d times, want once", n)
	}
	want := map[string]int{}
	for _, l := range lines {
		want[l] += 3
	}
	perShard := map[int]int{}
	for _, r := range unpack(t, compress.None, f.sent()) {
		if !r.agg {
			continue
		}
		shard := -1
		for i := range m.Len() {
			if m.Shard(i).ExplicitHashKey() == r.entry.ExplicitHashKey {
				shard = i
			}
		}
		if shard < 0 {
			t.Fatalf("aggregate with explicit hash key %q, not a shard's", r.entry.ExplicitHashKey)
		}
		for _, u := range r.users {
			if got := m.Lookup(u.key); got != shard {
				t.Errorf("user record of key %q (shard %d) in an aggregate for shard %d", u.key, got, shard)
			}
			if !strings.Contains(u.data, `"k":"`+u.key+`"`) {
				t.Errorf("user record %q has key %q", u.data, u.key)
			}
			want[u.data]--
			perShard[shard]++
		}
	}
	for l, n := range want {
		if n != 0 {
			t.Errorf("record %q: %d deliveries missing", l, n)
		}
	}
	if len(perShard) != 4 {
		t.Errorf("user records per shard %v: all 4 shards should have some", perShard)
	}
}

func TestShardListingFailure(t *testing.T) {
	t.Parallel()
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform kinesis:ListShards"}
	tests := []struct {
		name      string
		err       func(call int) error
		wantCalls int32
		wantWarns int
		wantAware []bool // per flush: aggregates have an explicit hash key
	}{
		{"access denied", func(int) error { return denied }, 1, 1, []bool{false, false, false}},
		{"other error, then success", func(call int) error {
			if call == 0 {
				return errors.New("connection reset")
			}
			return nil
		}, 2, 1, []bool{false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// On a fake clock, so that each flush comes after the retry of a failed listing.
			synctest.Test(t, func(t *testing.T) { shardListingFailure(t, tt.err, tt.wantCalls, tt.wantWarns, tt.wantAware) })
		})
	}
}

// shardListingFailure flushes a chunk once per entry of wantAware, 11 s apart, with a lister that
// fails as listErr says, and checks the listings, the warnings and whether each flush's aggregates
// were shard-aware.
func shardListingFailure(t *testing.T, listErr func(call int) error, wantCalls int32, wantWarns int, wantAware []bool) {
	lister := &fakeLister{m: fourShards(t), err: listErr}
	chunk, _ := keyedChunk(200, func(i int) string { return fmt.Sprint("pod-", i%5) }, 50)
	logs := &logSink{}
	sp := &switchPutter{}
	p := NewPool(sp, Options{Aggregation: true, PartitionKey: mustKeyPath(t, "k"), Shards: lister,
		MaxRecordSize: 4 << 10, Logger: slog.New(logs), LogInterval: -1})
	defer p.Close(context.Background()) // its idle senders end with it
	for i, aware := range wantAware {
		time.Sleep(11 * time.Second) // past the retry after a failed listing (10 s), within the refresh period
		f := &fakePutter{t: t}
		sp.p.Store(f)
		if res, err := p.Flush(context.Background(), chunk, "t"); err != nil || res.Accepted != 200 {
			t.Fatalf("flush %d = %+v, %v", i, res, err)
		}
		for _, r := range unpack(t, compress.None, f.sent()) {
			if r.agg && (r.entry.ExplicitHashKey != "") != aware {
				t.Errorf("flush %d: aggregate with explicit hash key %q, want shard-aware %v", i, r.entry.ExplicitHashKey, aware)
			}
			keys := map[string]bool{}
			for _, u := range r.users {
				keys[u.key] = true
				if !strings.Contains(u.data, `"k":"`+u.key+`"`) {
					t.Errorf("user record %q has key %q", u.data, u.key)
				}
			}
			if r.agg && !aware && len(keys) < 1 {
				t.Errorf("flush %d: an aggregate of no key", i)
			}
		}
	}
	if n := lister.calls.Load(); n != wantCalls {
		t.Errorf("listed %d times, want %d", n, wantCalls)
	}
	if n := countPrefix(logs.all(), "WARN shard map:"); n != wantWarns {
		t.Errorf("%d warnings, want %d: %q", n, wantWarns, logs.all())
	}
}

// switchPutter sends through the fakePutter it holds now.
type switchPutter struct{ p atomic.Pointer[fakePutter] }

func (s *switchPutter) PutRecords(ctx context.Context, e []kinesis.Entry) (kinesis.PutResult, error) {
	return s.p.Load().PutRecords(ctx, e)
}

// TestAggregatePartialFailure: an aggregate that Kinesis refuses is resent as the same bytes; when
// it is never accepted, the ledger marks none of its events, and the next flush of the chunk sends
// only them, aggregated again.
func TestAggregatePartialFailure(t *testing.T) {
	t.Parallel()
	chunk, _ := keyedChunk(100, func(int) string { return "" }, 200)
	var failing atomic.Pointer[string]
	f := &fakePutter{t: t, code: func(req, i int, e kinesis.Entry) string {
		if p := failing.Load(); p != nil && *p == string(e.Data) {
			return kinesis.CodeThroughputExceeded
		}
		if req == 0 && i == 1 { // the second aggregate of the first request: fail it, remember it
			s := string(e.Data)
			failing.CompareAndSwap(nil, &s)
			return kinesis.CodeThroughputExceeded
		}
		return ""
	}}
	p := NewPool(f, Options{Aggregation: true, MaxRecordSize: 4 << 10, Retry: requests.Retry{MaxAttempts: 3, Backoff: fastRetry.Backoff}})
	res, err := p.Flush(context.Background(), chunk, "t")
	var de *DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("Flush = %+v, %v; want a DeliveryError", res, err)
	}
	reqs := f.sent()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want the first and two resends", len(reqs))
	}
	failed := *failing.Load()
	users, _, ok := deaggregate(t, []byte(failed))
	if !ok || len(users) < 2 {
		t.Fatalf("the failed record is not an aggregate of several records")
	}
	for _, r := range reqs[1:] {
		if len(r) != 1 || string(r[0].Data) != failed || r[0].PartitionKey != reqs[0][1].PartitionKey {
			t.Errorf("resend of %d records, not the failed aggregate as it was", len(r))
		}
	}
	if res.Failed != len(users) || res.Accepted != 100-len(users) || de.Failed != len(users) {
		t.Errorf("res = %+v (%d failed), want %d failed: all the aggregate's events", res, de.Failed, len(users))
	}

	// The retry of the chunk sends exactly the failed aggregate's events, which are now accepted.
	failing.Store(new(string))
	before := len(f.sent())
	res, err = p.Flush(context.Background(), chunk, "t")
	if err != nil || res != (Result{Records: 100, Accepted: len(users), Earlier: 100 - len(users)}) {
		t.Fatalf("retry = %+v, %v", res, err)
	}
	var again []string
	for _, r := range unpack(t, compress.None, f.sent()[before:]) {
		for _, u := range r.users {
			again = append(again, u.data)
		}
	}
	var want []string
	for _, u := range users {
		want = append(want, u.data)
	}
	if strings.Join(again, "") != strings.Join(want, "") {
		t.Errorf("the retry sent %d records, want the %d of the failed aggregate", len(again), len(want))
	}
}
