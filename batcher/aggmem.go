package batcher

import "github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"

// Memory of aggregation. A batcher keeps one aggregate per shard of the stream's map when
// aggregation is shard-aware (one otherwise), and an aggregate's buffer grows up to the aggregate
// size limit. Within a flush the aggregates hold that flush's records only, so together they are
// about the chunk's size, whatever the number of shards. Between flushes each would keep the
// largest buffer it ever grew, and on a stream of many shards, with chunks whose records go to a
// few shards at a time, a batcher would end up keeping a full buffer for every shard: 200 shards of
// 1 MiB for each of 8 workers is 1.6 GB. So when a flush ends, the batcher keeps the buffers of its
// aggregates up to keptAggregateBytes, and releases the others (an idle shard's buffer is
// allocated again when a record goes to it).

// minKeptAggregateBytes is the least of keptAggregateBytes: one full aggregate of the default
// limit.
const minKeptAggregateBytes = limits.DefaultMaxRecordSize

// keptAggregateBytes is what a batcher keeps of its aggregates' buffers between flushes: one full
// aggregate (max(aggregate limit, 1 MiB)), enough for aggregation without a shard map to reuse its
// buffer from flush to flush. A pool has a batcher per concurrent flush (workers, or 1), so an
// instance keeps at most workers × keptAggregateBytes, whatever the number of shards.
func (b *batcher) keptAggregateBytes() int { return max(b.aggMaxSize, minKeptAggregateBytes) }

// releaseIdleAggregates is false only in a test that shows what is kept without releaseAggregates.
var releaseIdleAggregates = true

// releaseAggregates releases the aggregates' buffers beyond keptAggregateBytes, once a flush has
// ended (its aggregates are empty).
func (b *batcher) releaseAggregates() {
	if !releaseIdleAggregates {
		return
	}
	budget, kept := b.keptAggregateBytes(), 0
	for _, g := range b.groups {
		n := g.agg.Retained() + cap(g.evs)*8
		if n == 0 {
			continue
		}
		if kept+n <= budget || g.agg.Len() > 0 {
			kept += n
			continue
		}
		g.agg.Release()
		g.evs = nil
	}
}

// retainedAggregateBytes is what the batcher's aggregates hold on to.
func (b *batcher) retainedAggregateBytes() int {
	n := 0
	for _, g := range b.groups {
		n += g.agg.Retained() + cap(g.evs)*8
	}
	return n
}
