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

// direct reports whether records are encoded straight into their request: plain, uncompressed,
// with random keys (a partition key decides the queue only once the record is read).
func (b *batcher) direct() bool {
	return b.pool.packing == packPlain && b.pool.compression == compress.None && b.pool.keyPath.IsZero()
}

// recordKey returns the partition key the partition_key field gives the record body, with its
// shard and queue: the zero keyInfo when partition_key is not set (the packing picks a random
// key), a random key when the field is missing or unusable (counted). Keys are interned per
// batcher: records usually share a few keys (a pod, a host), and a key must stay valid until its
// record's request and resends are done, which a string does; a new key costs one allocation and
// one hash, a known one a map lookup.
func (b *batcher) recordKey(body []byte) keyInfo {
	if b.pool.keyPath.IsZero() {
		return keyInfo{}
	}
	k, ok := b.pool.keyPath.Append(b.keyBuf[:0], body)
	if !ok {
		b.f.stats.RandomKeyFallback++
		return b.randomKeyInfo()
	}
	b.keyBuf = k
	if m := b.f.shardMap(); m != b.keysMap || b.queues.Len() != b.keysG {
		clear(b.keyStrs) // the shards and queues of the keys have changed
		b.keysMap, b.keysG = m, b.queues.Len()
	}
	if ki, ok := b.keyStrs[string(k)]; ok {
		return ki
	}
	return b.internKey(string(k))
}

// internKey returns the keyInfo of key, interned.
func (b *batcher) internKey(key string) keyInfo {
	if ki, ok := b.keyStrs[key]; ok && b.keysMap == b.f.shardMap() && b.keysG == b.queues.Len() {
		return ki
	}
	if len(b.keyStrs) >= maxInternedKeys {
		clear(b.keyStrs)
	}
	ki := keyInfo{key: key, dest: noShard}
	if m := b.f.shardMap(); m != nil {
		ki.dest = m.Lookup(key)
	}
	ki.queue = b.queues.Of(key, ki.dest)
	b.keyStrs[key] = ki
	return ki
}

// randomKey returns a random partition key, and its shard in the flush's map (noShard without a
// map). With a map, the keys go to the shards in turn (see shards.View.RandomKey).
func (b *batcher) randomKey() (string, int) {
	if v := b.f.shards; v != nil {
		if key, shard, ok := v.RandomKey(b.rr + 1); ok {
			b.rr++
			return key, shard
		}
	}
	return b.keys.Next(), noShard
}

// randomKeyInfo is randomKey with the key's queue: any will do, as a random key needs no order.
func (b *batcher) randomKeyInfo() keyInfo {
	key, dest := b.randomKey()
	q := b.rr % b.queues.Len()
	if dest != noShard {
		q = dest % b.queues.Len()
	}
	return keyInfo{key: key, dest: dest, queue: q}
}

// place adds the encoded record of event idx, data (not in a request), with its partition key
// (the zero keyInfo for a random one), as the packing says.
func (b *batcher) place(ctx context.Context, idx int, data []byte, k keyInfo) {
	switch b.pool.packing {
	case packSimple:
		b.addJoined(ctx, idx, data)
	case packKPL:
		b.addUser(ctx, idx, data, k)
	default:
		if k.key == "" {
			k = b.randomKeyInfo()
		}
		b.one[0] = idx
		b.appendRecord(ctx, k.queue, data, k.key, noShard, k.dest, b.one[:])
	}
}

// appendRecord compresses data (not in a request) into the open request of queue q as one Kinesis
// record carrying the events evs, with partition key key, and commits it (for shard and dest, see
// commit).
func (b *batcher) appendRecord(ctx context.Context, q int, data []byte, key string, shard, dest int, evs []int) {
	buf := b.queues.Buf(q)
	start := len(*buf)
	out, err := b.comp.Append(*buf, data)
	if err != nil {
		*buf = (*buf)[:start]
		for _, i := range evs {
			b.skipInvalid(i, err)
		}
		return
	}
	*buf = out
	b.commit(ctx, q, start, key, shard, dest, evs)
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
	key, dest := b.randomKey()
	b.appendRecord(ctx, 0, b.joined, key, noShard, dest, b.joinedEvs)
	b.joined, b.joinedEvs = b.joined[:0], b.joinedEvs[:0]
}

// aggGroup is one KPL aggregate being built: one per shard when aggregation is shard-aware, one
// per queue with partition_key but no shard map, one otherwise.
type aggGroup struct {
	agg   *kpl.Aggregator
	evs   []int  // the events of its user records
	key   string // the random key its user records share, when they have none of their own
	shard int    // its shard in the flush's map, whose explicit hash key it is sent with, or noShard
	dest  int    // the shard it goes to: shard, or that of key; noShard when unknown
	queue int    // the queue its aggregates are sent in
}

// aggregateLimit is the size limit of an aggregate before compression such that, compressed, it
// fits maxSize: maxSize less what compressing maxSize bytes may add at worst (which is at least
// what compressing fewer bytes may add).
func aggregateLimit(maxSize int, kind compress.Kind) int {
	return maxSize - (kind.Bound(maxSize) - maxSize)
}

// shardAware reports whether the flush aggregates by shard: with partition_key and a shard map.
func (b *batcher) shardAware() bool { return b.f.shards != nil && b.f.ordered }

// prepareGroups readies the aggregates of a flush: one per shard of the flush's map when
// shard-aware; one per queue with partition_key and no map (a key's records stay in one queue);
// else one. They are empty: every flush finishes its aggregates.
func (b *batcher) prepareGroups() {
	if b.pool.packing != packKPL {
		return
	}
	n := 1
	switch {
	case b.shardAware():
		n = b.f.shardMap().Len()
	case b.f.ordered:
		n = b.queues.Len()
	}
	for len(b.groups) < n {
		b.groups = append(b.groups, &aggGroup{agg: kpl.NewAggregator(b.aggMaxSize)})
	}
	for i := range n {
		g := b.groups[i]
		g.shard, g.dest, g.queue = noShard, noShard, 0
		switch {
		case b.shardAware():
			g.shard, g.dest, g.queue = i, i, i%b.queues.Len()
		case b.f.ordered:
			g.queue = i
		}
	}
	b.ngroups = n
}

// addUser adds a user record to the aggregate of its shard (or queue, or the only one), finishing
// that aggregate first when it is full. A record without a key of its own (k.key "") takes the
// aggregate's random key, shared by all its user records, since a consumer such as the KCL drops
// the user records whose keys do not hash to the aggregate's shard. A record too large to be
// aggregated alone is sent as a plain record (or skipped as oversize), after its aggregate with
// partition_key, so that its key's records stay in order.
func (b *batcher) addUser(ctx context.Context, idx int, data []byte, k keyInfo) {
	g := b.groups[0]
	switch {
	case b.shardAware():
		g = b.groups[k.dest]
	case b.f.ordered:
		g = b.groups[k.queue]
	}
	key := k.key
	shared := key == ""
	if shared {
		if g.key == "" {
			g.key, g.dest = b.randomKey()
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
			g.key, g.dest = b.randomKey()
			key = g.key
		}
		if g.agg.Add(data, key) == kpl.Added {
			g.evs = append(g.evs, idx)
			return
		}
	}
	dest, q := k.dest, k.queue
	if shared {
		dest, q = g.dest, g.queue
	}
	if b.f.ordered {
		b.finishGroup(ctx, g)
	}
	b.one[0] = idx
	b.appendRecord(ctx, q, data, key, noShard, dest, b.one[:])
}

// finishGroup sends g's aggregate, if any, as one Kinesis record carrying all its events (an
// aggregate of one user record is sent as that plain record, which is smaller, as the KPL does),
// and empties it.
func (b *batcher) finishGroup(ctx context.Context, g *aggGroup) {
	switch g.agg.Len() {
	case 0:
	case 1:
		data, key, _ := g.agg.Single()
		b.appendRecord(ctx, g.queue, data, key, noShard, g.dest, g.evs)
	default:
		key := g.agg.PartitionKey()
		if b.pool.compression == compress.None {
			buf := b.queues.Buf(g.queue)
			start := len(*buf)
			*buf = g.agg.Finish(*buf)
			b.commit(ctx, g.queue, start, key, g.shard, g.dest, g.evs)
		} else {
			b.scratch = g.agg.Finish(b.scratch[:0])
			b.appendRecord(ctx, g.queue, b.scratch, key, g.shard, g.dest, g.evs)
		}
	}
	g.agg.Reset()
	g.evs, g.key = g.evs[:0], ""
	if g.shard == noShard {
		g.dest = noShard
	}
}

// finishPending sends the aggregates still being built, at the end of a flush.
func (b *batcher) finishPending(ctx context.Context) {
	b.finishJoined(ctx)
	for _, g := range b.groups[:b.ngroups] {
		b.finishGroup(ctx, g)
	}
}
