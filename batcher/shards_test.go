package batcher

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// Tests of refreshing the shard map when Kinesis reveals that the stream's shards changed.

// splitShards returns the map of fourShards after shardId-0 was split in halves, shardId-4 and
// shardId-5 (shardId-0 is listed, closed).
func splitShards(t testing.TB) *kpl.ShardMap {
	t.Helper()
	four := fourShards(t)
	eighth := new(big.Int).Lsh(big.NewInt(1), 125)
	shard := func(id string, start, end *big.Int, closed bool) types.Shard {
		s := types.Shard{
			ShardId:      aws.String(id),
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(start.String()), EndingHashKey: aws.String(end.String())},
		}
		if closed {
			s.SequenceNumberRange = &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("2")}
		}
		return s
	}
	one := big.NewInt(1)
	shards := []types.Shard{
		shard("shardId-0", big.NewInt(0), new(big.Int).Sub(new(big.Int).Lsh(eighth, 1), one), true),
		shard("shardId-4", big.NewInt(0), new(big.Int).Sub(eighth, one), false),
		shard("shardId-5", eighth, new(big.Int).Sub(new(big.Int).Lsh(eighth, 1), one), false),
	}
	for i := 1; i < four.Len(); i++ {
		s := four.Shard(i)
		start, _ := new(big.Int).SetString(s.StartingHashKey, 10)
		end, _ := new(big.Int).SetString(s.EndingHashKey, 10)
		shards = append(shards, shard(s.ID, start, end, false))
	}
	m, err := kpl.NewShardMap(shards)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// shardIDOf returns the ID of the shard of m that holds the decimal hash key h, as Kinesis routes a
// record sent with the explicit hash key h.
func shardIDOf(t testing.TB, m *kpl.ShardMap, h string) string {
	t.Helper()
	key, ok := new(big.Int).SetString(h, 10)
	if !ok {
		t.Fatalf("explicit hash key %q is not a decimal integer", h)
	}
	for i := range m.Len() {
		end, _ := new(big.Int).SetString(m.Shard(i).EndingHashKey, 10)
		if key.Cmp(end) <= 0 {
			return m.Shard(i).ID
		}
	}
	t.Fatalf("explicit hash key %q beyond the last shard", h)
	return ""
}

// TestShardMapChange: when Kinesis puts an aggregate in another shard than the one its explicit
// hash key was taken from, the shards are listed again at the next flush, which aggregates by the
// new map; the aggregate is not sent again. Shard IDs as expected, or not reported, change nothing
// before the refresh period.
func TestShardMapChange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		reshardAt int  // the flush before which shardId-0 is split, -1 for never
		report    bool // the Putter reports shard IDs
		wantCalls []int32
		wantInfos []int  // info lines about a changed map after each flush
		wantSplit []bool // per flush: aggregates follow the split map
	}{
		{"resharded", 1, true, []int32{1, 1, 2, 2}, []int{0, 1, 1, 1}, []bool{false, false, true, true}},
		{"expected shard IDs", -1, true, []int32{1, 1, 1, 1}, []int{0, 0, 0, 0}, []bool{false, false, false, false}},
		{"shard IDs not reported", 1, false, []int32{1, 1, 1, 1}, []int{0, 0, 0, 0}, []bool{false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			four, split := fourShards(t), splitShards(t)
			stream := four // the shards Kinesis routes by
			lister := &fakeLister{m: four}
			chunk, lines := keyedChunk(300, func(i int) string { return fmt.Sprint("pod-", i%37) }, 50)
			logs := &logSink{}
			sp := &switchPutter{}
			p := NewPool(sp, Options{Aggregation: true, PartitionKey: mustKeyPath(t, "k"), Shards: lister,
				MaxRecordSize: 4 << 10, Logger: slog.New(logs), LogInterval: -1, Record: record.Options{AppendNewline: true}})
			for flush := range tt.wantCalls {
				if flush == tt.reshardAt {
					stream, lister.m = split, split // Flush is synchronous: no race with ListShards
				}
				f := &fakePutter{t: t}
				if tt.report {
					routed := stream
					f.shard = func(_, _ int, e kinesis.Entry) string {
						if e.ExplicitHashKey == "" {
							return routed.Shard(routed.Lookup(e.PartitionKey)).ID
						}
						return shardIDOf(t, routed, e.ExplicitHashKey)
					}
				}
				sp.p.Store(f)
				if res, err := p.Flush(context.Background(), chunk, "t"); err != nil || res != (Result{Records: 300, Accepted: 300}) {
					t.Fatalf("flush %d = %+v, %v", flush, res, err)
				}
				if n := lister.calls.Load(); n != tt.wantCalls[flush] {
					t.Errorf("flush %d: listed %d times, want %d", flush, n, tt.wantCalls[flush])
				}
				infos := countPrefix(logs.all(), "INFO shard map: Kinesis put an aggregate sent to shard")
				if infos != tt.wantInfos[flush] {
					t.Errorf("flush %d: %d info lines about a changed map, want %d: %q", flush, infos, tt.wantInfos[flush], logs.all())
				}

				m := four
				if tt.wantSplit[flush] {
					m = split
				}
				delivered := map[string]int{}
				aggs := 0
				for _, r := range unpack(t, compress.None, f.sent()) {
					for _, u := range r.users {
						delivered[u.data]++
					}
					if !r.agg {
						continue
					}
					aggs++
					shard := -1
					for i := range m.Len() {
						if m.Shard(i).ExplicitHashKey() == r.entry.ExplicitHashKey {
							shard = i
						}
					}
					if shard < 0 {
						t.Fatalf("flush %d: aggregate with explicit hash key %q, not a shard's of the map in use", flush, r.entry.ExplicitHashKey)
					}
					for _, u := range r.users {
						if got := m.Lookup(u.key); got != shard {
							t.Errorf("flush %d: user record of key %q (shard %d) in an aggregate for shard %d", flush, u.key, got, shard)
						}
					}
				}
				if aggs == 0 {
					t.Fatalf("flush %d: no aggregate sent", flush)
				}
				// Accepted in a shard it was not meant for, an aggregate is still not sent again.
				for _, l := range lines {
					if delivered[l] != 1 {
						t.Errorf("flush %d: record %q sent %d times, want once", flush, l, delivered[l])
					}
				}
			}
			if s := p.Stats(); s.Resent != 0 {
				t.Errorf("Resent = %d, want 0", s.Resent)
			}
		})
	}
}

// TestShardMapChangeConcurrent: flushes in parallel, each finding the map out of date, under the
// race detector. Every notice that logs is of the map in use, so there are no more lines than
// listings.
func TestShardMapChangeConcurrent(t *testing.T) {
	t.Parallel()
	lister := &fakeLister{m: fourShards(t)}
	logs := &logSink{}
	f := &fakePutter{t: t, shard: func(int, int, kinesis.Entry) string { return "shardId-elsewhere" }}
	p := NewPool(f, Options{Aggregation: true, PartitionKey: mustKeyPath(t, "k"), Shards: lister,
		MaxRecordSize: 4 << 10, Logger: slog.New(logs), LogInterval: -1})
	chunk, _ := keyedChunk(100, func(i int) string { return fmt.Sprint("pod-", i%11) }, 50)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if res, err := p.Flush(context.Background(), chunk, "t"); err != nil || res.Accepted != 100 {
					t.Errorf("Flush = %+v, %v", res, err)
				}
			}
		})
	}
	wg.Wait()
	calls := int(lister.calls.Load())
	infos := countPrefix(logs.all(), "INFO shard map: Kinesis put")
	if calls < 2 || infos < 1 || infos > calls {
		t.Errorf("listed %d times, %d info lines: want at least 2 listings, and 1 to %d lines", calls, infos, calls)
	}
}
