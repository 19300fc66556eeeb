package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"google.golang.org/protobuf/encoding/protowire"
)

// userRecord is one user record of an aggregate, as added or as decoded.
type userRecord struct {
	Key  string
	Data []byte
}

// aggregated is an aggregate decoded by decodeAggregate.
type aggregated struct {
	Keys    []string // partition_key_table
	EHKs    []string // explicit_hash_key_table
	Records []userRecord
}

// decodeAggregate decodes a KPL aggregated record strictly with protowire: magic, MD5, only the
// known fields, required fields present, indexes within the tables.
func decodeAggregate(b []byte) (aggregated, error) {
	var out aggregated
	if len(b) < aggOverhead || !bytes.Equal(b[:4], aggMagic[:]) {
		return out, errors.New("no magic")
	}
	pb := b[4 : len(b)-md5.Size]
	if sum := md5.Sum(pb); !bytes.Equal(sum[:], b[len(b)-md5.Size:]) {
		return out, errors.New("bad md5")
	}
	type rawRecord struct {
		keyIdx uint64
		data   []byte
	}
	var raws []rawRecord
	for len(pb) > 0 {
		num, typ, n := protowire.ConsumeTag(pb)
		if n < 0 {
			return out, protowire.ParseError(n)
		}
		pb = pb[n:]
		if typ != protowire.BytesType {
			return out, fmt.Errorf("field %d has wire type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(pb)
		if n < 0 {
			return out, protowire.ParseError(n)
		}
		pb = pb[n:]
		switch num {
		case 1:
			out.Keys = append(out.Keys, string(v))
		case 2:
			out.EHKs = append(out.EHKs, string(v))
		case 3:
			var r rawRecord
			var haveKey, haveData bool
			for len(v) > 0 {
				num, typ, n := protowire.ConsumeTag(v)
				if n < 0 {
					return out, protowire.ParseError(n)
				}
				v = v[n:]
				switch {
				case num == 1 && typ == protowire.VarintType:
					r.keyIdx, n = protowire.ConsumeVarint(v)
					haveKey = true
				case num == 3 && typ == protowire.BytesType:
					var d []byte
					d, n = protowire.ConsumeBytes(v)
					r.data = append([]byte{}, d...)
					haveData = true
				default:
					return out, fmt.Errorf("record field %d wire type %d", num, typ)
				}
				if n < 0 {
					return out, protowire.ParseError(n)
				}
				v = v[n:]
			}
			if !haveKey || !haveData {
				return out, errors.New("record without a required field")
			}
			raws = append(raws, r)
		default:
			return out, fmt.Errorf("unknown field %d", num)
		}
	}
	for _, r := range raws {
		if r.keyIdx >= uint64(len(out.Keys)) {
			return out, fmt.Errorf("key index %d outside a table of %d", r.keyIdx, len(out.Keys))
		}
		out.Records = append(out.Records, userRecord{Key: out.Keys[r.keyIdx], Data: r.data})
	}
	return out, nil
}

// referenceAggregate encodes recs the plain way: whole messages built bottom-up, the table
// deduplicated by a scan in insertion order. It is what Finish must produce, byte for byte.
func referenceAggregate(recs []userRecord) []byte {
	var keys []string
	indexOf := func(k string) int {
		for i, have := range keys {
			if have == k {
				return i
			}
		}
		keys = append(keys, k)
		return len(keys) - 1
	}
	var body []byte
	for _, r := range recs {
		var msg []byte
		msg = protowire.AppendTag(msg, 1, protowire.VarintType)
		msg = protowire.AppendVarint(msg, uint64(indexOf(r.Key)))
		msg = protowire.AppendTag(msg, 3, protowire.BytesType)
		msg = protowire.AppendBytes(msg, r.Data)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, msg)
	}
	var pb []byte
	for _, k := range keys {
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, k)
	}
	pb = append(pb, body...)
	sum := md5.Sum(pb)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, pb...)
	return append(out, sum[:]...)
}

// referenceSize is the Kinesis size of the aggregate of recs: its data plus the first key.
func referenceSize(recs []userRecord) int {
	return len(referenceAggregate(recs)) + len(recs[0].Key)
}

// finishChecked checks that the aggregate's predicted size is exact and returns its bytes.
func finishChecked(t *testing.T, a *Aggregator) []byte {
	t.Helper()
	out := a.Finish(nil)
	if got := len(out) + len(a.PartitionKey()); got != a.Size() {
		t.Fatalf("Size() = %d, but the finished record is %d bytes + a key of %d = %d",
			a.Size(), len(out), len(a.PartitionKey()), got)
	}
	if a.Size() > a.MaxSize() {
		t.Fatalf("Size() = %d > MaxSize() = %d", a.Size(), a.MaxSize())
	}
	return out
}

func TestAggregateRoundTrip(t *testing.T) {
	t.Parallel()
	many := make([]userRecord, 0, 40)
	for i := range 40 {
		// 20 keys, each used twice, interleaved: the table crosses aggLinearKeys.
		many = append(many, userRecord{Key: fmt.Sprintf("key-%02d", i%20), Data: []byte(fmt.Sprintf("record %d\n", i))})
	}
	tests := []struct {
		name string
		recs []userRecord
	}{
		{"one record", []userRecord{{"a", []byte("hello\n")}}},
		{"empty data", []userRecord{{"k", nil}, {"k", []byte{}}}},
		{"one key", []userRecord{{"pod", []byte("1")}, {"pod", []byte("2")}, {"pod", []byte("3")}}},
		{"keys in insertion order", []userRecord{
			{"zebra", []byte("1")}, {"apple", []byte("2")}, {"zebra", []byte("3")},
			{"mango", []byte("4")}, {"apple", []byte("5")},
		}},
		{"binary data", []userRecord{{"k", allBytes()}, {"k2", bytes.Repeat([]byte{0xF3, 0x89, 0x9A, 0xC2}, 40)}}},
		{"unicode keys", []userRecord{{"ключ", []byte("x")}, {"键", []byte("y")}, {strings.Repeat("é", limits.MaxPartitionKeyLen), []byte("z")}}},
		{"varint boundaries", []userRecord{
			{"a", make([]byte, 127)}, {"a", make([]byte, 128)}, {"b", make([]byte, 16383)}, {"b", make([]byte, 16384)},
		}},
		{"more keys than the scan", many},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := NewAggregator(0)
			for _, r := range tc.recs {
				if res := a.Add(r.Data, r.Key); res != Added {
					t.Fatalf("Add(%d bytes, %q) = %v", len(r.Data), r.Key, res)
				}
			}
			if a.Len() != len(tc.recs) || a.PartitionKey() != tc.recs[0].Key {
				t.Fatalf("Len() = %d, PartitionKey() = %q; want %d, %q", a.Len(), a.PartitionKey(), len(tc.recs), tc.recs[0].Key)
			}
			out := finishChecked(t, a)
			if want := referenceAggregate(tc.recs); !bytes.Equal(out, want) {
				t.Fatalf("Finish differs from the reference encoding:\ngot  %x\nwant %x", out, want)
			}
			got, err := decodeAggregate(out)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkRecords(t, got.Records, tc.recs)
			if len(got.EHKs) != 0 {
				t.Errorf("explicit hash key table = %q, want none", got.EHKs)
			}
			var order []string
			for _, r := range tc.recs {
				if !slices.Contains(order, r.Key) {
					order = append(order, r.Key)
				}
			}
			if !slices.Equal(got.Keys, order) {
				t.Errorf("key table = %q, want insertion order %q", got.Keys, order)
			}
		})
	}
}

func checkRecords(t *testing.T, got, want []userRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d user records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("user record %d = (%q, %q), want (%q, %q)", i, got[i].Key, clip(got[i].Data), want[i].Key, clip(want[i].Data))
		}
	}
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// randomRecord returns a user record whose sizes spread over the varint boundaries, and whose key
// comes from a small or a large set of keys, ASCII or not, 1 to 256 characters.
func randomRecord(rng *rand.Rand, keys []string) userRecord {
	var n int
	switch rng.IntN(10) {
	case 0:
		n = 0
	case 1, 2, 3:
		n = rng.IntN(200)
	case 4, 5, 6:
		n = 100 + rng.IntN(20000)
	case 7:
		n = 16380 + rng.IntN(10)
	default:
		n = rng.IntN(120000)
	}
	off := rng.IntN(len(randomPool) - n + 1)
	return userRecord{Key: keys[rng.IntN(len(keys))], Data: randomPool[off : off+n : off+n]}
}

// randomPool is random bytes that records slice their data from (Add copies it).
var randomPool = func() []byte {
	b := make([]byte, 512<<10)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}()

func randomKeys(rng *rand.Rand, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		var b strings.Builder
		chars := 1 + rng.IntN(limits.MaxPartitionKeyLen)
		if rng.IntN(4) > 0 {
			chars = 1 + rng.IntN(40)
		}
		for range chars {
			switch rng.IntN(3) {
			case 0:
				b.WriteRune(rune('a' + rng.IntN(26)))
			case 1:
				b.WriteRune(rune(0x400 + rng.IntN(64))) // 2 bytes in UTF-8
			default:
				b.WriteRune(rune(0x4E00 + rng.IntN(1000))) // 3 bytes
			}
		}
		keys[i] = b.String()
	}
	return keys
}

// refSizer follows the size of an aggregate by encoding each record and key the plain way (the
// reference encoding, piece by piece), so that checking each Add costs the record's size only.
type refSizer struct {
	keys  []string
	pbLen int
}

// with returns the Kinesis size (data plus first key) of the aggregate with r added.
func (s *refSizer) with(r userRecord) (size, pbGrowth int) {
	idx := -1
	for i, k := range s.keys {
		if k == r.Key {
			idx = i
			break
		}
	}
	if idx < 0 {
		idx = len(s.keys)
		pbGrowth += len(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), r.Key))
	}
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, uint64(idx))
	msg = protowire.AppendTag(msg, 3, protowire.BytesType)
	msg = protowire.AppendBytes(msg, r.Data)
	pbGrowth += len(protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), msg))
	first := r.Key
	if len(s.keys) > 0 {
		first = s.keys[0]
	}
	return 4 + s.pbLen + pbGrowth + md5.Size + len(first), pbGrowth
}

func (s *refSizer) add(r userRecord) {
	_, g := s.with(r)
	if !slices.Contains(s.keys, r.Key) {
		s.keys = append(s.keys, r.Key)
	}
	s.pbLen += g
}

// TestAggregateSizeAccounting adds random records to aggregators with random limits and checks
// every decision of Add against the size of the reference encoding, and every finished aggregate
// against the reference encoding, byte for byte.
func TestAggregateSizeAccounting(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	a := NewAggregator(0)
	var cur []userRecord
	var ref refSizer
	aggregates, full, tooLarge := 0, 0, 0
	check := func() {
		if len(cur) == 0 {
			return
		}
		out := finishChecked(t, a)
		if want := referenceAggregate(cur); !bytes.Equal(out, want) {
			t.Fatalf("aggregate %d (%d records) differs from the reference encoding", aggregates, len(cur))
		}
		aggregates++
		a.Reset()
		cur, ref = cur[:0], refSizer{}
	}
	for round := range 24 {
		check()
		maxSize := 1000 + rng.IntN(limits.DefaultMaxRecordSize)
		if round%3 == 0 {
			maxSize = limits.DefaultMaxRecordSize
		}
		a = NewAggregator(maxSize)
		keys := randomKeys(rng, 1+rng.IntN([]int{1, 5, 50, 500}[round%4]))
		for range 150 {
			r := randomRecord(rng, keys)
			res := a.Add(r.Data, r.Key)
			alone, _ := (&refSizer{}).with(r)
			if got := AggregatedSize(len(r.Data), r.Key); got != alone {
				t.Fatalf("AggregatedSize(%d, %d-byte key) = %d, want %d", len(r.Data), len(r.Key), got, alone)
			}
			with, _ := ref.with(r)
			switch res {
			case Added:
				if with > maxSize {
					t.Fatalf("Added a record making the aggregate %d bytes > %d", with, maxSize)
				}
				cur = append(cur, r)
				ref.add(r)
				if a.Size() != with {
					t.Fatalf("Size() = %d after Add, want %d", a.Size(), with)
				}
			case AggregateFull:
				full++
				if with <= maxSize || alone > maxSize || len(cur) == 0 {
					t.Fatalf("AggregateFull with the record %d bytes, alone %d, limit %d, %d records", with, alone, maxSize, len(cur))
				}
				check()
				if res := a.Add(r.Data, r.Key); res != Added {
					t.Fatalf("Add after Reset = %v, want Added", res)
				}
				cur = append(cur, r)
				ref.add(r)
			case TooLargeToAggregate:
				tooLarge++
				if alone <= maxSize {
					t.Fatalf("TooLargeToAggregate, but alone it makes %d bytes <= %d", alone, maxSize)
				}
			}
		}
	}
	check()
	t.Logf("%d aggregates, %d full, %d too large", aggregates, full, tooLarge)
	if aggregates < 100 || full < 50 || tooLarge < 5 {
		t.Fatalf("%d aggregates, %d full, %d too large: the random mixes miss cases", aggregates, full, tooLarge)
	}
}

// TestAggregateLimitBoundary: a record that brings the aggregate to exactly the limit is added;
// one byte more is not.
func TestAggregateLimitBoundary(t *testing.T) {
	t.Parallel()
	first := userRecord{"key", []byte("first")}
	base := referenceSize([]userRecord{first})
	for _, extra := range []int{0, 1, 200, 70000} {
		// The size of an aggregate with a second record of n bytes, for the n that reaches the limit.
		second := userRecord{"other-key", make([]byte, extra)}
		limit := referenceSize([]userRecord{first, second})

		a := NewAggregator(limit)
		if res := a.Add(first.Data, first.Key); res != Added {
			t.Fatalf("Add(first) = %v", res)
		}
		if a.Size() != base {
			t.Fatalf("Size() = %d, want %d", a.Size(), base)
		}
		if res := a.Add(second.Data, second.Key); res != Added || a.Size() != limit {
			t.Fatalf("limit %d: Add = %v, Size() = %d; want Added at the limit", limit, res, a.Size())
		}

		a = NewAggregator(limit - 1)
		a.Add(first.Data, first.Key)
		if res := a.Add(second.Data, second.Key); res != AggregateFull {
			t.Fatalf("limit %d: Add = %v, want AggregateFull", limit-1, res)
		}
		if a.Len() != 1 || a.Size() != base {
			t.Fatalf("a refused Add changed the aggregate: Len() = %d, Size() = %d", a.Len(), a.Size())
		}
	}

	alone := AggregatedSize(100, "k")
	a := NewAggregator(alone - 1)
	if res := a.Add(make([]byte, 100), "k"); res != TooLargeToAggregate {
		t.Fatalf("Add to an empty aggregate too small = %v, want TooLargeToAggregate", res)
	}
	if res := a.Add(make([]byte, 10), "k"); res != Added {
		t.Fatalf("Add(small) = %v", res)
	}
	if res := a.Add(make([]byte, 100), "k"); res != TooLargeToAggregate {
		t.Fatalf("Add to a non-empty aggregate of a record too large alone = %v, want TooLargeToAggregate", res)
	}
	if got := a.Finish(nil); a.Len() != 1 || len(got)+1 != a.Size() {
		t.Fatalf("Len() = %d, %d bytes", a.Len(), len(got))
	}
}

func TestAggregateSingle(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0)
	if _, _, ok := a.Single(); ok {
		t.Fatal("Single() of an empty aggregate is ok")
	}
	for _, data := range [][]byte{[]byte("only record\n"), nil, allBytes()} {
		a.Add(data, "key-1")
		got, key, ok := a.Single()
		if !ok || key != "key-1" || !bytes.Equal(got, data) {
			t.Fatalf("Single() = %q, %q, %v; want %q, key-1", got, key, ok, data)
		}
		if cap(got) != len(got) {
			t.Fatalf("Single() data has room to append over the aggregate: cap %d, len %d", cap(got), len(got))
		}
		a.Add([]byte("second"), "key-2")
		if _, _, ok := a.Single(); ok {
			t.Fatal("Single() of two records is ok")
		}
		a.Reset()
	}
}

func TestAggregateEmpty(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0)
	if a.MaxSize() != limits.DefaultMaxRecordSize {
		t.Errorf("MaxSize() = %d, want %d", a.MaxSize(), limits.DefaultMaxRecordSize)
	}
	if got := a.Finish([]byte("x")); string(got) != "x" || a.Size() != 0 || a.PartitionKey() != "" || a.Len() != 0 {
		t.Fatalf("empty aggregate: Finish = %q, Size() = %d, PartitionKey() = %q", got, a.Size(), a.PartitionKey())
	}
}

// TestAggregateReset fills the aggregator with different key sets in turn: a table left from the
// previous aggregate (or its map) must not leak into the next one.
func TestAggregateReset(t *testing.T) {
	t.Parallel()
	a := NewAggregator(0)
	for round, n := range []int{50, 3, 5000, 2, 20, 1} {
		var recs []userRecord
		for i := range 2 * n {
			recs = append(recs, userRecord{fmt.Sprintf("r%d-k%d", round, (i*7)%n), []byte(fmt.Sprint(round, i))})
		}
		for _, r := range recs {
			if res := a.Add(r.Data, r.Key); res != Added {
				t.Fatalf("round %d: Add = %v", round, res)
			}
		}
		out := finishChecked(t, a)
		if !bytes.Equal(out, referenceAggregate(recs)) {
			t.Fatalf("round %d: differs from the reference encoding", round)
		}
		got, err := decodeAggregate(out)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, got.Records, recs)
		if len(got.Keys) != n {
			t.Fatalf("round %d: %d keys in the table, want %d", round, len(got.Keys), n)
		}
		a.Reset()
	}
}

// TestAggregateAllocs: in steady state, adding and finishing allocate nothing, whatever the
// number of distinct keys.
func TestAggregateAllocs(t *testing.T) {
	for _, nkeys := range []int{1, 5, 100} {
		t.Run(fmt.Sprintf("keys=%d", nkeys), func(t *testing.T) {
			keys := make([]string, nkeys)
			for i := range keys {
				keys[i] = fmt.Sprintf("pod-%03d", i)
			}
			data := []byte(`{"log":"2024-05-01T12:00:00.000Z INFO processed order","stream":"stdout"}` + "\n")
			a := NewAggregator(0)
			dst := make([]byte, 0, 1<<20)
			run := func() {
				for i := range 1000 {
					if a.Add(data, keys[i%nkeys]) != Added {
						t.Fatal("not added")
					}
				}
				dst = a.Finish(dst[:0])
				a.Reset()
			}
			run()
			if n := testing.AllocsPerRun(20, run); n != 0 {
				t.Fatalf("%v allocations per 1000 records, want 0", n)
			}
		})
	}
}

func BenchmarkAggregate(b *testing.B) {
	data := []byte(`{"log":"2024-05-01T12:00:07.007Z INFO  [http-nio-8080-exec-7] c.e.shop.OrderController - Processed order 100007 for customer \"5049\" in 7 ms\n","stream":"stderr","time":"2024-05-01T12:00:07.000055433Z","kubernetes":{"pod_name":"orders-api-7d9f8b6c5d-x0007","namespace_name":"shop","pod_id":"3f2a9c4e-1b7d-4e8a-9f60-2c5d8e1a7b3c","labels":{"app":"orders-api","pod-template-hash":"7d9f8b6c5d"},"host":"ip-10-0-1-23.ec2.internal","container_name":"orders-api"}}` + "\n")
	const records = 1000
	for _, nkeys := range []int{1, 37, records} {
		keys := make([]string, nkeys)
		for i := range keys {
			keys[i] = fmt.Sprintf("orders-api-7d9f8b6c5d-x%04d", i)
		}
		b.Run(fmt.Sprintf("records=%d/keys=%d", records, nkeys), func(b *testing.B) {
			a := NewAggregator(0)
			dst := make([]byte, 0, 1<<20)
			run := func() {
				for i := range records {
					if a.Add(data, keys[i%nkeys]) != Added {
						b.Fatal("not added")
					}
				}
				dst = a.Finish(dst[:0])
				a.Reset()
			}
			run() // grow the buffers
			b.ReportAllocs()
			b.SetBytes(int64(records * len(data)))
			for b.Loop() {
				run()
			}
		})
	}
}

// allBytes is every byte value once.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}
