package kpl

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl/kpltest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestShardMapMD5(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(kpltest.FourShards)
	if err != nil {
		t.Fatal(err)
	}
	// The MD5s are from `printf %s KEY | md5sum`; the shard is given by the first hex digit:
	// 0-3, 4-7, 8-b, c-f.
	tests := []struct {
		key   string
		md5   string
		shard int
	}{
		{"a", "0cc175b9c0f1b6a831c399e269772661", 0},
		{"orders-api-7d9f8b6c5d-x0001", "366062310d8efd95b3081e713abe2f0a", 0},
		{"c", "4a8a08f09d37b73795649038408b5f33", 1},
		{"hello", "5d41402abc4b2a76b9719d911017c592", 1},
		{"user-42", "7631bc07a1cc8fcd56e70fc6b2fb4a43", 1},
		{"b", "92eb5ffee6ae2fec3ad71c777531578f", 2},
		{"ключ", "c3657b66c60a307292aae11f07b04ae7", 3},
		{"kinesis", "d172f15a95c6dec778ba931c14ff15c1", 3},
		{"pod-1", "de16c61dbb0014fbd57222b320cc0f2f", 3},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprintf("%x", md5.Sum([]byte(tc.key))); got != tc.md5 {
				t.Fatalf("md5(%q) = %s, the table says %s", tc.key, got, tc.md5)
			}
			hi, lo := HashKeyOf(tc.key)
			if got := fmt.Sprintf("%016x%016x", hi, lo); got != tc.md5 {
				t.Fatalf("HashKeyOf(%q) = %s, want %s", tc.key, got, tc.md5)
			}
			if got := m.Lookup(tc.key); got != tc.shard {
				t.Fatalf("Lookup(%q) = %d, want %d", tc.key, got, tc.shard)
			}
		})
	}
	if m.Len() != 4 {
		t.Fatalf("Len() = %d", m.Len())
	}
	s := m.Shard(2)
	if s.ID != "shardId-000000000002" || s.ExplicitHashKey() != "170141183460469231731687303715884105728" ||
		s.EndingHashKey != "255211775190703847597530955573826158591" {
		t.Fatalf("Shard(2) = %+v", s)
	}
}

// TestShardMapBoundaries looks up the first and last hash key of every shard, and their
// neighbours.
func TestShardMapBoundaries(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(kpltest.FourShards)
	if err != nil {
		t.Fatal(err)
	}
	const q = uint64(1) << 62 // 2^126 is hi = 2^62
	max := ^uint64(0)
	tests := []struct {
		name string
		h    hashKey
		want int
	}{
		{"zero", hashKey{0, 0}, 0},
		{"end of 0", hashKey{q - 1, max}, 0},
		{"start of 1", hashKey{q, 0}, 1},
		{"end of 1", hashKey{2*q - 1, max}, 1},
		{"start of 2", hashKey{2 * q, 0}, 2},
		{"start of 2 + 1", hashKey{2 * q, 1}, 2},
		{"end of 2", hashKey{3*q - 1, max}, 2},
		{"start of 3", hashKey{3 * q, 0}, 3},
		{"max", hashKey{max, max}, 3},
	}
	for _, tc := range tests {
		if got := m.lookupHash(tc.h); got != tc.want {
			t.Errorf("%s: lookupHash(%x %x) = %d, want %d", tc.name, tc.h.hi, tc.h.lo, got, tc.want)
		}
	}
}

// bigOf is a hash key as a big.Int, from its two halves.
func bigOf(hi, lo uint64) *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return new(big.Int).SetBytes(b[:])
}

// TestShardMapRandom checks Lookup against math/big on a stream resharded into uneven shards,
// listed in no particular order, closed parents included.
func TestShardMapRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	cuts := []*big.Int{big.NewInt(0)}
	for range 8 {
		cuts = append(cuts, bigOf(rng.Uint64(), rng.Uint64()))
	}
	slices.SortFunc(cuts, (*big.Int).Cmp)
	one := big.NewInt(1)
	var shards []types.Shard
	var starts []*big.Int
	for i, c := range cuts {
		end := new(big.Int).Sub(new(big.Int).Lsh(one, 128), one)
		if i+1 < len(cuts) {
			end = new(big.Int).Sub(cuts[i+1], one)
		}
		shards = append(shards, kpltest.Shard(fmt.Sprintf("shardId-%012d", 10+i), c.String(), end.String()))
		starts = append(starts, c)
	}
	// A closed parent covering everything, and the children in reverse order.
	all := []types.Shard{kpltest.Closed(kpltest.Shard("shardId-000000000000", "0", "340282366920938463463374607431768211455"))}
	for i := len(shards) - 1; i >= 0; i-- {
		all = append(all, shards[i])
	}
	m, err := NewShardMap(all)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(shards) {
		t.Fatalf("Len() = %d, want %d", m.Len(), len(shards))
	}
	for i := range shards {
		if got, want := m.Shard(i).ID, aws.ToString(shards[i].ShardId); got != want {
			t.Fatalf("Shard(%d) = %s, want %s", i, got, want)
		}
	}
	for i := range 20000 {
		key := fmt.Sprintf("key-%d-%d", i, rng.Uint32())
		sum := md5.Sum([]byte(key))
		h := new(big.Int).SetBytes(sum[:])
		want := 0
		for j, s := range starts {
			if h.Cmp(s) >= 0 {
				want = j
			}
		}
		if got := m.Lookup(key); got != want {
			t.Fatalf("Lookup(%q) = %d, want %d (hash %s)", key, got, want, h)
		}
	}
}

func TestNewShardMapErrors(t *testing.T) {
	t.Parallel()
	const (
		half   = "170141183460469231731687303715884105728" // 2^127
		half1  = "170141183460469231731687303715884105727"
		max    = "340282366920938463463374607431768211455"
		tooBig = "340282366920938463463374607431768211456"
	)
	tests := []struct {
		name   string
		shards []types.Shard
		want   string
	}{
		{"none", nil, "no open shard"},
		{"only closed", []types.Shard{kpltest.Closed(kpltest.Shard("s0", "0", max))}, "no open shard"},
		{"gap", []types.Shard{kpltest.Shard("s0", "0", "100"), kpltest.Shard("s1", "102", max)}, `"s1" starting at 102 leaves a gap`},
		{"overlap", []types.Shard{kpltest.Shard("s0", "0", half), kpltest.Shard("s1", half1, max)}, `"s1" starting at 170141183460469231731687303715884105727 overlaps`},
		{"duplicate", []types.Shard{kpltest.Shard("s0", "0", max), kpltest.Shard("s1", "0", max)}, "overlaps"},
		{"short of the top", []types.Shard{kpltest.Shard("s0", "0", half1)}, "below 2^128-1"},
		{"not from zero", []types.Shard{kpltest.Shard("s0", "1", max)}, "leaves a gap"},
		{"beyond 2^128-1", []types.Shard{kpltest.Shard("s0", "0", tooBig)}, "not an integer from 0 to 2^128-1"},
		{"negative", []types.Shard{kpltest.Shard("s0", "-1", max)}, "not an integer"},
		{"not a number", []types.Shard{kpltest.Shard("s0", "0x0", max)}, "not an integer"},
		{"empty range", []types.Shard{kpltest.Shard("s0", "0", half), kpltest.Shard("s1", max, half)}, "is empty"},
		{"no range", []types.Shard{{ShardId: aws.String("s0")}}, "without an ID or a hash key range"},
		{"no id", []types.Shard{kpltest.Shard("", "0", max)}, "without an ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewShardMap(tc.shards)
			if !errors.Is(err, ErrShardMap) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewShardMap = %v, %v; want ErrShardMap with %q", m, err, tc.want)
			}
		})
	}
}

func TestNewShardMapCanonical(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap([]types.Shard{
		kpltest.Shard("s1", "0170141183460469231731687303715884105728", "340282366920938463463374607431768211455"),
		kpltest.Shard("s0", "000", "170141183460469231731687303715884105727"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Shard(0); s.ID != "s0" || s.StartingHashKey != "0" || s.ExplicitHashKey() != "0" {
		t.Fatalf("Shard(0) = %+v", s)
	}
	if s := m.Shard(1); s.ID != "s1" || s.ExplicitHashKey() != "170141183460469231731687303715884105728" {
		t.Fatalf("Shard(1) = %+v", s)
	}
}

// TestExplicitHashKeyInRange: a record sent with a shard's ExplicitHashKey lands in that shard.
func TestExplicitHashKeyInRange(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(kpltest.FourShards)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Len() {
		h, _, err := parseHashKey(m.Shard(i).ExplicitHashKey())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.lookupHash(h); got != i {
			t.Errorf("shard %d's ExplicitHashKey %s maps to shard %d", i, m.Shard(i).ExplicitHashKey(), got)
		}
	}
}

func TestShardMapLookupAllocs(t *testing.T) {
	m, err := NewShardMap(kpltest.FourShards)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "orders-api-7d9f8b6c5d-x0001", strings.Repeat("键", limits.MaxPartitionKeyLen)}
	n := 0
	if allocs := testing.AllocsPerRun(100, func() {
		for _, k := range keys {
			n += m.Lookup(k)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per %d lookups, want 0", allocs, len(keys))
	}
}

func BenchmarkShardMapLookup(b *testing.B) {
	shards := make([]types.Shard, 0, 64)
	step := new(big.Int).Lsh(big.NewInt(1), 122) // 64 equal shards
	for i := range 64 {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		shards = append(shards, kpltest.Shard(fmt.Sprintf("shardId-%012d", i), start.String(), end.String()))
	}
	m, err := NewShardMap(shards)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("orders-api-7d9f8b6c5d-x%04d", i)
	}
	size := 0
	for _, k := range keys {
		size += len(k)
	}
	b.Run("shards=64/keys=1000", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size)) // partition key bytes hashed
		n := 0
		for b.Loop() {
			for _, k := range keys {
				n += m.Lookup(k)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/lookup")
	})
}
