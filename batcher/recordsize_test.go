package batcher

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// TestRecordSizeLimit: Options.RecordSizeLimit replaces MaxRecordSize from the next flush on, for
// plain records, simple_aggregation and KPL aggregates alike; a value <= 0 leaves MaxRecordSize.
func TestRecordSizeLimit(t *testing.T) {
	t.Parallel()
	const (
		small = 1000
		large = 3000
	)
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"plain", Options{}},
		{"simple_aggregation", Options{SimpleAggregation: true}},
		{"aggregation", Options{Aggregation: true}},
		{"aggregation, zstd", Options{Aggregation: true, Compression: compress.Zstd}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var limit atomic.Int64
			f := &fakePutter{t: t}
			o := tt.o
			o.MaxRecordSize = small
			o.RecordSizeLimit = func() int { return int(limit.Load()) }
			p := NewPool(f, o)
			// Records of 2000 random letters and digits: over small, under large, even compressed.
			rng := rand.New(rand.NewPCG(1, 2))
			const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			records := numbered(8, 2000)
			for i := range records {
				for j := 8; j < len(records[i]); j++ {
					records[i][j] = alphabet[rng.IntN(len(alphabet))]
				}
			}
			for _, step := range []struct {
				limit    int64
				accepted int
			}{{0, 0}, {large, 8}, {-1, 0}, {small, 0}, {large, 8}} {
				limit.Store(step.limit)
				before := len(f.sent())
				_, res, err := packAll(t, p, records, nil)
				if err != nil || res.Accepted != step.accepted || res.Skipped != 8-step.accepted {
					t.Fatalf("limit %d: res = %+v, %v; want %d accepted", step.limit, res, err, step.accepted)
				}
				var got [][]byte
				for _, r := range unpack(t, tt.o.Compression, f.sent()[before:]) {
					max := small
					if step.limit > 0 {
						max = int(step.limit)
					}
					if r.entry.Size() > max {
						t.Errorf("limit %d: a Kinesis record of %d bytes", step.limit, r.entry.Size())
					}
					for _, u := range r.users {
						got = append(got, []byte(strings.TrimSuffix(u.data, "\n")))
					}
				}
				if step.accepted > 0 && !bytes.Equal(bytes.Join(got, nil), bytes.Join(records, nil)) {
					t.Errorf("limit %d: the records did not arrive whole and in order", step.limit)
				}
			}
		})
	}
}

// TestSetLimitsAggregates: a flush's aggregates take the limit of the flush, computed from the
// record size limit as NewPool computes it from MaxRecordSize; an aggregate that holds records
// keeps its limit.
func TestSetLimitsAggregates(t *testing.T) {
	t.Parallel()
	var limit atomic.Int64
	p := NewPool(nopPutter{}, Options{Aggregation: true, Compression: compress.Gzip,
		RecordSizeLimit: func() int { return int(limit.Load()) }})
	b := p.newBatcher()
	for _, n := range []int64{0, 2 << 20, 10 << 20, 1 << 20} {
		limit.Store(n)
		b.begin("t", nil, nil)
		want := aggregateLimit(max(int(n), 1<<20), compress.Gzip)
		if got := b.groups[0].agg.MaxSize(); got != want || b.aggMaxSize != want {
			t.Errorf("limit %d: aggregate limit %d (batcher %d), want %d", n, got, b.aggMaxSize, want)
		}
	}
	g := b.groups[0]
	before := g.agg.MaxSize()
	g.agg.Add([]byte("x"), kinesis.NewKeyGen(1).Next())
	limit.Store(3 << 20)
	b.setLimits()
	if g.agg.MaxSize() != before {
		t.Errorf("a non-empty aggregate's limit changed to %d", g.agg.MaxSize())
	}
}
