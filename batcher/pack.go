package batcher

import (
	"context"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// What makes a Kinesis record of the encoded records: partition keys, compression and the two
// kinds of aggregation. Every Kinesis record ends in commit, with the events it carries.

// packing is how records become Kinesis records.
type packing uint8

const (
	packPlain  packing = iota // one record per Kinesis record
	packSimple                // simple_aggregation: records joined by newlines
	packKPL                   // aggregation: KPL aggregated records
)

// maxInternedKeys bounds a batcher's table of partition keys: past it the table starts again
// empty (the strings still in use stay valid: they are ordinary strings).
const maxInternedKeys = 4096

// direct reports whether records are encoded straight into the arena: plain and uncompressed.
func (b *batcher) direct() bool {
	return b.pool.packing == packPlain && b.pool.compression == compress.None
}

// recordKey returns the partition key the partition_key field gives the record body: "" when
// partition_key is not set (the packing picks a random key), a new random key when the field is
// missing or unusable (counted). Keys are interned per batcher: records usually share a few keys
// (a pod, a host), and a key must stay valid until its record's request and resends are done,
// which a string does; a new key costs one allocation, a known one a map lookup.
func (b *batcher) recordKey(body []byte) string {
	if b.pool.keyPath.IsZero() {
		return ""
	}
	k, ok := b.pool.keyPath.Append(b.keyBuf[:0], body)
	if !ok {
		b.f.stats.RandomKeyFallback++
		return b.keys.Next()
	}
	b.keyBuf = k
	if s, ok := b.keyStrs[string(k)]; ok {
		return s
	}
	if len(b.keyStrs) >= maxInternedKeys {
		clear(b.keyStrs)
	}
	s := string(k)
	b.keyStrs[s] = s
	return s
}

// place adds the encoded record of event idx, data (not in the arena), with its partition key
// ("" for a random one), as the packing says.
func (b *batcher) place(ctx context.Context, idx int, data []byte, key string) {
	switch b.pool.packing {
	case packSimple:
		b.addJoined(ctx, idx, data)
	case packKPL:
		b.addUser(ctx, idx, data, key)
	default:
		b.one[0] = idx
		b.appendRecord(ctx, data, key, noShard, b.one[:])
	}
}

// appendRecord compresses data (not in the arena) into the arena as one Kinesis record carrying the
// events evs, and commits it (for shard, see commit); key "" means a random one.
func (b *batcher) appendRecord(ctx context.Context, data []byte, key string, shard int, evs []int) {
	if key == "" {
		key = b.keys.Next()
	}
	start := len(b.arena)
	out, err := b.comp.Append(b.arena, data)
	if err != nil {
		b.arena = b.arena[:start]
		for _, i := range evs {
			b.skipInvalid(i, err)
		}
		return
	}
	b.arena = out
	b.commit(ctx, start, key, shard, evs)
}

// addJoined adds a record to the simple_aggregation record being joined, sending that one first
// when the record would make it too large. Each record ends with a newline: the encoder's when
// append_newline is on, one added here otherwise, so that consumers can always split them.
//
// The size is checked before compressing, with the compressed size's upper bound (exact without
// compression): the joined record is compressed once, and always fits. A record too large alone
// by that bound is sent alone at once: commit checks its actual compressed size, and skips it if
// it is too large.
func (b *batcher) addJoined(ctx context.Context, idx int, data []byte) {
	n := len(data)
	if !b.pool.recordOpts.AppendNewline {
		n++
	}
	if len(b.joinedEvs) > 0 && !b.joinedFits(len(b.joined)+n) {
		b.finishJoined(ctx)
	}
	b.joined = append(b.joined, data...)
	if !b.pool.recordOpts.AppendNewline {
		b.joined = append(b.joined, '\n')
	}
	b.joinedEvs = append(b.joinedEvs, idx)
	if !b.joinedFits(len(b.joined)) {
		b.finishJoined(ctx)
	}
}

// joinedFits reports whether n bytes of joined records surely fit one Kinesis record once
// compressed, with a random key.
func (b *batcher) joinedFits(n int) bool {
	return b.pool.compression.Bound(n)+kinesis.KeyLen <= b.maxRecordSize
}

// finishJoined sends the joined records, if any, as one Kinesis record with a random key.
func (b *batcher) finishJoined(ctx context.Context) {
	if len(b.joinedEvs) == 0 {
		return
	}
	b.appendRecord(ctx, b.joined, "", noShard, b.joinedEvs)
	b.joined, b.joinedEvs = b.joined[:0], b.joinedEvs[:0]
}

// aggGroup is one KPL aggregate being built: one per shard when aggregation is shard-aware.
type aggGroup struct {
	agg   *kpl.Aggregator
	evs   []int  // the events of its user records
	key   string // the random key its user records share, when they have none of their own
	shard int    // its shard in b.f.shardMap, whose explicit hash key it is sent with, or noShard
}

// aggregateLimit is the size limit of an aggregate before compression such that, compressed, it
// fits maxSize: maxSize less what compressing maxSize bytes may add at worst (which is at least
// what compressing fewer bytes may add).
func aggregateLimit(maxSize int, kind compress.Kind) int {
	return maxSize - (kind.Bound(maxSize) - maxSize)
}

// prepareGroups readies the groups of a flush: one per shard of b.f.shardMap, or one. They are
// empty: every flush finishes its aggregates.
func (b *batcher) prepareGroups() {
	if b.pool.packing != packKPL {
		return
	}
	n := 1
	if b.f.shardMap != nil {
		n = b.f.shardMap.Len()
	}
	for len(b.groups) < n {
		b.groups = append(b.groups, &aggGroup{agg: kpl.NewAggregator(b.aggMaxSize)})
	}
	for i := range n {
		b.groups[i].shard = noShard
		if b.f.shardMap != nil {
			b.groups[i].shard = i
		}
	}
	b.ngroups = n
}

// addUser adds a user record to the aggregate of its shard (or the only one), finishing that
// aggregate first when it is full. key "" means the record has no key of its own: it takes the
// aggregate's random key, shared by all its user records, since a consumer such as the KCL drops
// the user records whose keys do not hash to the aggregate's shard. A record too large to be
// aggregated alone is sent as a plain record (or skipped as oversize).
func (b *batcher) addUser(ctx context.Context, idx int, data []byte, key string) {
	g := b.groups[0]
	if b.f.shardMap != nil && key != "" {
		g = b.groups[b.f.shardMap.Lookup(key)]
	}
	shared := key == ""
	if shared {
		if g.key == "" {
			g.key = b.keys.Next()
		}
		key = g.key
	}
	switch g.agg.Add(data, key) {
	case kpl.Added:
		g.evs = append(g.evs, idx)
		return
	case kpl.AggregateFull:
		b.finishGroup(ctx, g)
		if shared {
			g.key = b.keys.Next()
			key = g.key
		}
		if g.agg.Add(data, key) == kpl.Added {
			g.evs = append(g.evs, idx)
			return
		}
	}
	b.one[0] = idx
	b.appendRecord(ctx, data, key, noShard, b.one[:])
}

// finishGroup sends g's aggregate, if any, as one Kinesis record carrying all its events (an
// aggregate of one user record is sent as that plain record, which is smaller, as the KPL does),
// and empties it.
func (b *batcher) finishGroup(ctx context.Context, g *aggGroup) {
	switch g.agg.Len() {
	case 0:
	case 1:
		data, key, _ := g.agg.Single()
		b.appendRecord(ctx, data, key, noShard, g.evs)
	default:
		key := g.agg.PartitionKey()
		if b.pool.compression == compress.None {
			start := len(b.arena)
			b.arena = g.agg.Finish(b.arena)
			b.commit(ctx, start, key, g.shard, g.evs)
		} else {
			b.scratch = g.agg.Finish(b.scratch[:0])
			b.appendRecord(ctx, b.scratch, key, g.shard, g.evs)
		}
	}
	g.agg.Reset()
	g.evs, g.key = g.evs[:0], ""
}

// finishPending sends the aggregates still being built, at the end of a flush.
func (b *batcher) finishPending(ctx context.Context) {
	b.finishJoined(ctx)
	for _, g := range b.groups[:b.ngroups] {
		b.finishGroup(ctx, g)
	}
}
