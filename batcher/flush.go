package batcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/shards"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/ledger"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// noShard is requests.NoShard: the shard of a record sent without an explicit hash key, and the
// destination of a record when the flush has no shard map.
const noShard = requests.NoShard

// batcher packs one flush's records into Kinesis records, and commits each to a queue of its
// requests.Queues, which sends them, several at once, and resends those Kinesis did not accept.
// It belongs to one flush at a time; its buffers are reused from flush to flush. A Kinesis record
// carries one event, or several when aggregated: it is accepted, failed, resent (the same bytes)
// or rejected as a unit, and so are its events (requests.Events, indexes into b.events).
//
// With partition_key, a key's records always go to one queue (by shard with a shard map, or by
// hash of the key), which has at most one request in flight, so that they reach their shard in
// order. Everything happens on the flush's own goroutine, answers included (see requests.Queues).
type batcher struct {
	pool *Pool
	dec  record.Decoder
	enc  *record.Encoder
	keys *kinesis.KeyGen

	comp    *compress.Compressor
	raw     []byte             // one encoded record, when it is not encoded straight into a request
	scratch []byte             // a finished aggregate, before it is compressed into a request
	keyBuf  []byte             // the partition key field's value, before it is interned
	keyStrs map[string]keyInfo // interned partition keys, see recordKey
	keysMap *kpl.ShardMap      // the map keyStrs' shards belong to
	keysG   int                // and their number of queues
	one     [1]int             // the event list of a record that carries one event
	rr      int                // spreads random keys over the shards, see randomKey

	joined    []byte // simple_aggregation: the records joined so far
	joinedEvs []int  // and their events

	groups  []*aggGroup // aggregation: the aggregates being built, see prepareGroups
	ngroups int         // the groups in use this flush

	queues *requests.Queues // this flush's requests
	events []int            // per flush: the event indexes of the records committed (requests.Events)

	// Reused from flush to flush: the events given up, rejected or not encodable.
	unsent   []int // records given up: not delivered, left to the next flush of the chunk
	rejected []int // records in requests Kinesis refused as invalid
	invalid  []int // records the encoder refused

	f flushState // the flush in progress

	recordLimits // of the flush in progress, see setLimits
}

// keyInfo is an interned partition key: its shard in the flush's map, and its queue.
type keyInfo struct {
	key   string
	dest  int
	queue int
}

// flushState is what one flush knows of itself. begin resets it by assignment.
type flushState struct {
	tag      string
	res      Result
	earlier  ledger.Bitset // events delivered by an earlier flush of this chunk (the ledger's)
	shards   *shards.View  // the shard map, nil without one
	ordered  bool          // partition_key: a key's records go to one queue, in order
	remember ledger.Bitset // set by end when the ledger must remember the chunk

	sent         requests.Outcome // what became of the records sent, set by end
	firstInvalid error
	largest      int // the largest record skipped as oversize

	stats Stats // the flush's share of the pool's totals
}

// shardMap is the flush's shard map, nil without one.
func (f *flushState) shardMap() *kpl.ShardMap {
	if f.shards == nil {
		return nil
	}
	return f.shards.Map
}

// begin starts a flush of a chunk with this tag; earlier holds the events an earlier flush of the
// same chunk delivered, which are not sent again, and shards is the pool's shard map (nil when
// there is none).
func (b *batcher) begin(tag string, earlier ledger.Bitset, view *shards.View) {
	b.setLimits()
	b.f = flushState{tag: tag, earlier: earlier, shards: view, ordered: !b.pool.keyPath.IsZero()}
	b.events = b.events[:0]
	b.joined, b.joinedEvs = b.joined[:0], b.joinedEvs[:0]
	b.unsent, b.rejected, b.invalid = b.unsent[:0], b.rejected[:0], b.invalid[:0]
	b.queues.Begin(b.f.ordered, b.f.shardMap())
	b.prepareGroups()
}

// addNext decodes the next event of the chunk and adds it to the flush's records, unless an
// earlier flush of the chunk delivered it; it returns false at the end of the chunk or at a
// decoding error (b.dec.Err). A plain record without compression or partition key is encoded
// straight into its request; otherwise it is encoded into b.raw, then compressed, aggregated or
// copied into its request (see place). Decoding and encoding are one pass over the record
// (record.Decoder.NextAppend).
func (b *batcher) addNext(ctx context.Context, ev *record.Event) bool {
	idx := b.f.res.Records
	if b.f.earlier.Has(idx) {
		if !b.dec.Next(ev) {
			return false
		}
		b.f.res.Records++
		b.f.res.Earlier++
		return true
	}
	if b.direct() {
		buf := b.queues.Buf(0)
		start := len(*buf)
		out, ok, err := b.dec.NextAppend(b.enc, *buf, ev)
		if !ok {
			return false
		}
		b.f.res.Records++
		if err != nil {
			// (*buf)[:start] is intact whatever NextAppend returned: append never writes below len.
			*buf = (*buf)[:start]
			b.skipInvalid(idx, err)
			return true
		}
		*buf = out
		key, dest := b.randomKey()
		b.one[0] = idx
		b.commit(ctx, 0, start, key, noShard, dest, b.one[:])
		return true
	}
	raw, ok, err := b.dec.NextAppend(b.enc, b.raw[:0], ev)
	if !ok {
		return false
	}
	b.f.res.Records++
	if err != nil {
		b.skipInvalid(idx, err)
		return true
	}
	b.raw = raw
	var k keyInfo
	if b.pool.packing != packSimple { // simple_aggregation gives each Kinesis record a random key
		k = b.recordKey(ev.Body)
	}
	b.place(ctx, idx, raw, k)
	return true
}

// add adds one already encoded record to the flush's records, with a random partition key. Flush
// uses addNext; tests and benchmarks use add to drive the packing without the record package.
func (b *batcher) add(ctx context.Context, data []byte) { b.addKeyed(ctx, data, "") }

// addKeyed is add with a partition key ("" for a random one), as if read from the partition_key
// field.
func (b *batcher) addKeyed(ctx context.Context, data []byte, key string) {
	idx := b.f.res.Records
	b.f.res.Records++
	if b.f.earlier.Has(idx) {
		b.f.res.Earlier++
		return
	}
	if b.direct() {
		k, dest := b.randomKey()
		buf := b.queues.Buf(0)
		start := len(*buf)
		*buf = append(*buf, data...)
		b.one[0] = idx
		b.commit(ctx, 0, start, k, noShard, dest, b.one[:])
		return
	}
	var k keyInfo
	if key != "" {
		k = b.internKey(key)
	} else if !b.pool.keyPath.IsZero() {
		k = b.randomKeyInfo()
	}
	b.place(ctx, idx, data, k)
}

// commit makes the Kinesis record in the open buffer of queue q (requests.Queues.Buf), from
// start on, which carries the events evs, and commits it to the queue (see requests.Queues.Commit).
// The record is sent with the explicit hash key of shard (of the flush's map), unless shard is
// noShard; dest is the shard it goes to (noShard when unknown). A record larger than the maximum
// record size is dropped, and its events counted as oversize. evs is copied.
func (b *batcher) commit(ctx context.Context, q, start int, key string, shard, dest int, evs []int) {
	buf := b.queues.Buf(q)
	size := len(*buf) - start + len(key) // kinesis.Entry.Size
	if size > b.maxRecordSize {
		*buf = (*buf)[:start]
		b.f.stats.SkippedOversize += int64(len(evs))
		b.f.largest = max(b.f.largest, size)
		return
	}
	ev := len(b.events)
	b.events = append(b.events, evs...)
	b.queues.Commit(ctx, q, start, requests.Record{Key: key, Shard: shard, Dest: dest, Events: requests.Events{First: ev, N: len(evs)}})
}

// eventsOf returns the indexes of the events e.
func (b *batcher) eventsOf(e requests.Events) []int { return b.events[e.First : e.First+e.N] }

// skipInvalid counts a record the encoder rejected: every encoder error concerns that record
// only (record.ErrMissingLogKey, ErrNotMap, ErrTooDeep, ErrNestedKey, a malformed body).
func (b *batcher) skipInvalid(idx int, err error) {
	if errors.Is(err, record.ErrMissingLogKey) {
		b.f.stats.SkippedNoLogKey++
		return
	}
	b.invalid = append(b.invalid, idx)
	if b.f.firstInvalid == nil {
		b.f.firstInvalid = err
	}
}

// end sends what is pending, waits until every request is answered and every record accepted or
// given up, logs the flush's summary, adds it to the pool's totals and returns the flush's result
// (see Pool.Flush for the error). When the chunk is to be flushed again, it sets b.f.remember to
// the events not to send again.
func (b *batcher) end(ctx context.Context, decErr error) (Result, error) {
	b.finishPending(ctx)
	sent := b.queues.Finish(ctx)
	for _, e := range sent.GivenUp {
		b.unsent = append(b.unsent, b.eventsOf(e)...)
	}
	for _, e := range sent.Rejected {
		b.rejected = append(b.rejected, b.eventsOf(e)...)
	}
	b.f.sent = sent

	b.f.res.Accepted = sent.Accepted
	b.f.res.Failed = len(b.unsent)
	b.f.res.Rejected = len(b.rejected)
	b.f.res.Skipped = int(b.f.stats.SkippedOversize+b.f.stats.SkippedNoLogKey) + len(b.invalid)
	res := b.f.res

	var err error
	switch {
	case res.Failed > 0:
		de := &DeliveryError{
			Failed:    res.Failed,
			Total:     res.Records - res.Skipped - res.Earlier,
			Attempts:  sent.MaxAttempt,
			Code:      sent.Codes.First(),
			Class:     kinesis.ClassRetryable,
			Err:       sent.FirstErr,
			DecodeErr: decErr,
		}
		if sent.Stopped {
			de.Class = sent.StopClass
			if de.Err == nil {
				de.Err = sent.StopErr
			}
		}
		err = de
		b.f.remember = b.doneSet()
	case res.Rejected > 0:
		total := res.Records - res.Skipped - res.Earlier
		if sent.RejectErr != nil {
			err = fmt.Errorf("%w: %d of %d records refused as invalid: %w", ErrRejected, res.Rejected, total, sent.RejectErr)
		} else {
			err = fmt.Errorf("%w: %d of %d records refused as invalid (%s)", ErrRejected, res.Rejected, total, sent.Codes.First())
		}
	case decErr != nil:
		err = fmt.Errorf("%w: %w", ErrBadChunk, decErr)
	case len(b.invalid) > 0:
		// A record that cannot be encoded never will be: the chunk is undeliverable as a whole,
		// though its other records were sent.
		err = fmt.Errorf("%w: %d of %d records cannot be encoded, first: %w", ErrBadChunk, len(b.invalid), res.Records, b.f.firstInvalid)
	}

	st := &b.f.stats
	c := &sent.Counts
	st.Requests, st.RequestErrors, st.RequestsPartial = c.Requests, c.RequestErrors, c.RequestsPartial
	st.RecordsSent, st.BytesSent, st.Throttled, st.Resent = c.RecordsSent, c.BytesSent, c.Throttled, c.Resent
	st.RequestsPaced, st.RateCuts = c.RequestsPaced, c.RateCuts
	st.Flushes = 1
	if res.Failed > 0 {
		st.NotDelivered = 1
	}
	st.Records, st.Accepted, st.Failed = int64(res.Records), int64(res.Accepted), int64(res.Failed)
	st.Rejected, st.SkippedInvalid, st.SkippedEarlier = int64(res.Rejected), int64(len(b.invalid)), int64(res.Earlier)
	b.pool.addStats(*st)

	b.logSkips()
	b.logFailures(res, err)
	b.f = flushState{remember: b.f.remember} // keep no tag, error or shard map alive
	return res, err
}

// doneSet returns the set of events that need not be sent again: all but those not delivered,
// rejected or not encodable (the latter two are tried again, and fail the chunk again, on the next
// flush: a rejection is not expected to change, but if it does the record is delivered). It
// returns nil when the set is empty: a chunk of which nothing was delivered (an outage) is not
// worth an entry, which could push a useful one out of the ledger.
func (b *batcher) doneSet() ledger.Bitset {
	if b.f.res.Failed+b.f.res.Rejected+len(b.invalid) == b.f.res.Records {
		return nil
	}
	done := ledger.Full(b.f.res.Records)
	for _, lists := range [][]int{b.unsent, b.rejected, b.invalid} {
		for _, i := range lists {
			done.Clear(i)
		}
	}
	return done
}
