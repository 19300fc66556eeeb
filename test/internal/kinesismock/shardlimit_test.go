package kinesismock

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// twoRanges splits the hash key space in two shards.
func twoRanges() []ShardRange {
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	top := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	return []ShardRange{
		{ID: "shardId-0", Start: big.NewInt(0), End: new(big.Int).Sub(half, big.NewInt(1))},
		{ID: "shardId-1", Start: half, End: top},
	}
}

// keyIn returns a partition key whose MD5 falls in r.
func keyIn(t *testing.T, r ShardRange, n int) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("key-%d-%d", n, i)
		if r.Contains(HashKey(k)) {
			return k
		}
	}
	t.Fatalf("no key in %s", r.ID)
	return ""
}

func TestShardProxyDecide(t *testing.T) {
	t.Parallel()
	ranges := twoRanges()
	k0, k1 := keyIn(t, ranges[0], 0), keyIn(t, ranges[1], 1)
	type rec struct {
		key, hash string
		size      int
	}
	req := func(recs ...rec) *putRecordsIn {
		in := &putRecordsIn{StreamName: "s"}
		for _, r := range recs {
			in.Records = append(in.Records, struct {
				Data            string
				PartitionKey    string
				ExplicitHashKey string `json:",omitempty"`
			}{base64.StdEncoding.EncodeToString(make([]byte, r.size)), r.key, r.hash})
		}
		return in
	}
	many := func(n int, r rec) []rec {
		rs := make([]rec, n)
		for i := range rs {
			rs[i] = r
		}
		return rs
	}
	codes := func(out putRecordsOut) string {
		var b strings.Builder
		for _, r := range out.Records {
			switch {
			case r.ErrorCode == "":
				b.WriteByte('a')
			case r.ErrorCode == "ProvisionedThroughputExceededException":
				b.WriteByte('t')
			default:
				b.WriteByte('?')
			}
		}
		return b.String()
	}
	t0 := time.Unix(1000, 0)
	p := &ShardProxy{limits: ShardLimits{RecordsPerSecond: 4, BytesPerSecond: 100, Store: true},
		shards: map[string][]ShardRange{"s": ranges}, buckets: map[string]*tokenBucket{}}
	steps := []struct {
		name string
		at   time.Duration
		in   *putRecordsIn
		want string
	}{
		{"a second's worth of records, then throttled", 0, req(many(6, rec{key: k0, size: 1})...), "aaaatt"},
		{"the other shard has its own budget", 0, req(rec{key: k1, size: 1}, rec{key: k0, size: 1}), "at"},
		{"refilled at the rate", 500 * time.Millisecond, req(many(3, rec{key: k0, size: 1})...), "aat"},
		{"bytes: once throttled, later records too", 2 * time.Second, req(rec{key: k0, size: 60}, rec{key: k0, size: 60}, rec{key: k0, size: 1}), "att"},
		{"explicit hash key wins over the key", 10 * time.Second,
			req(append(many(4, rec{key: k0, hash: ranges[1].Start.String(), size: 1}), rec{key: k1, size: 1})...), "aaaat"},
	}
	for _, st := range steps {
		out, _, _, _, err := p.decide(st.in, ranges, t0.Add(st.at))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := codes(out); got != st.want {
			t.Errorf("%s: %s, want %s", st.name, got, st.want)
		}
	}
	s := p.Stats()
	if s.Requests != len(steps) || s.ThrottledRequests != len(steps) || s.Accepted+s.Throttled != s.Records {
		t.Errorf("stats %+v", s)
	}
	recs := p.Records("s")
	if len(recs) != s.Accepted || recs[0].ShardID != "shardId-0" || recs[len(recs)-1].ShardID != "shardId-1" {
		t.Errorf("%d records stored, want %d sorted by shard", len(recs), s.Accepted)
	}
}
