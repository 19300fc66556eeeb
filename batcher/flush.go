package batcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/shards"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/ledger"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// span locates one Kinesis record to send in its request's buffer. A Kinesis record carries one
// event, or several when aggregated: it is accepted, failed, resent (the same bytes) or rejected as
// a unit, and so are its events.
type span struct {
	off, n  int
	key     string
	shard   int // the shard of the flush's map whose explicit hash key it is sent with, or noShard
	dest    int // the shard of the flush's map it goes to (paced by), or noShard without a map
	ev, nev int // its events' indexes are b.events[ev : ev+nev]
	attempt int // the times it was sent
	// retryEnd is when its resends must have started, counted from the flush's start: set at its
	// first failure, 0 before.
	retryEnd time.Duration
}

// noShard is the shard of a record sent without an explicit hash key (routed by its partition
// key), and the destination of a record when the flush has no shard map.
const noShard = -1

func (s span) size() int { return s.n + len(s.key) } // kinesis.Entry.Size

// batcher packs one flush's records into requests, sends them, several at once, and resends those
// Kinesis did not accept. It belongs to one flush at a time; its buffers are reused from flush to
// flush.
//
// Records are packed into queues (see queue): one for the whole flush when order does not matter,
// one per group of shards (by shard, or by hash of the partition key without a shard map) with
// partition_key, where a group has at most one request in flight so that a key's records reach
// their shard in order. A queue's open request is filled until the next record would break a
// limit, then sealed, and sealed requests go as soon as the pool's scheduler gives them a slot and
// their shards' pacing allows. Each request goroutine only calls the Putter and hands the request
// back on b.answers: everything else, this flush's state included, belongs to the flush's own
// goroutine, which handles answers between records and, at the end, until every request it started
// is answered.
type batcher struct {
	pool *Pool
	dec  record.Decoder
	enc  *record.Encoder
	keys *kinesis.KeyGen

	comp     *compress.Compressor
	raw      []byte             // one encoded record, when it is not encoded straight into a request
	scratch  []byte             // a finished aggregate, before it is compressed into a request
	keyBuf   []byte             // the partition key field's value, before it is interned
	keyStrs  map[string]keyInfo // interned partition keys, see recordKey
	keysMap  *kpl.ShardMap      // the map keyStrs' shards belong to
	keysG    int                // and their number of queues
	one      [1]int             // the event list of a record that carries one event
	rr       int                // spreads random keys over the shards, see randomKey
	nextPump int                // the queue pump looks at first, so that every queue gets its turn

	joined    []byte // simple_aggregation: the records joined so far
	joinedEvs []int  // and their events

	groups  []*aggGroup // aggregation: the aggregates being built, see prepareGroups
	ngroups int         // the groups in use this flush

	queues  []queue // this flush's queues, see prepareQueues
	events  []int   // per flush: the event indexes of the records committed, see span
	answers chan *request
	free    []*request // requests without a buffer, reused

	// Scratch of the charges and feedback of one request, per shard of the flush's map.
	perShard    []shardTally
	touched     []int
	feedbackBuf []pace.Feedback

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

// shardTally adds up a request's records per shard.
type shardTally struct {
	records, bytes int
	throttled      bool
	seen           bool // listed in b.touched
}

// flushState is what one flush knows of itself. begin resets it by assignment.
type flushState struct {
	tag     string
	res     Result
	start   time.Time
	earlier ledger.Bitset // events delivered by an earlier flush of this chunk (the ledger's)
	shards  *shards.View  // the shard map, nil without one
	ordered bool          // partition_key: each queue has at most one request in flight

	inflight      int                // requests started and not yet handled
	probing       bool               // a request failed as a whole: one request at a time until one is answered
	probeEnd      time.Time          // nothing starts after it while probing (the retry window)
	probeAt       time.Time          // no probe starts before it: the last failed request's backoff
	stop          bool               // the policy refused a resend: the flush sends nothing more
	stopClass     kinesis.ErrorClass // why
	stopErr       error              // the error that made it stop, if any
	shardsChanged bool               // the flush found its shard map out of date, see checkShard
	remember      ledger.Bitset      // set by end when the ledger must remember the chunk

	firstSent, firstFailed int // records sent a first time (or given up unsent), and those whose first send failed (or not sent)
	maxAttempt             int // the most times a record was sent
	codes                  codeTally
	firstErr               error // the first request error
	rejectErr              error // the first request error of class rejected
	rejectShape            string
	firstInvalid           error
	largest                int // the largest record skipped as oversize

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
	b.f = flushState{tag: tag, earlier: earlier, shards: view, start: time.Now(), ordered: !b.pool.keyPath.IsZero()}
	b.events = b.events[:0]
	b.joined, b.joinedEvs = b.joined[:0], b.joinedEvs[:0]
	b.unsent, b.rejected, b.invalid = b.unsent[:0], b.rejected[:0], b.invalid[:0]
	b.prepareQueues()
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
		r := b.open(0)
		start := len(r.buf)
		out, ok, err := b.dec.NextAppend(b.enc, r.buf, ev)
		if !ok {
			return false
		}
		b.f.res.Records++
		if err != nil {
			// r.buf[:start] is intact whatever NextAppend returned: append never writes below len.
			r.buf = r.buf[:start]
			b.skipInvalid(idx, err)
			return true
		}
		r.buf = out
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
		r := b.open(0)
		start := len(r.buf)
		r.buf = append(r.buf, data...)
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

// commit makes the Kinesis record in the open request of queue q, from start on, which carries
// the events evs, part of that request; the request is sealed first when the record would make it
// break one of its limits, or, when the flush paces shards, carry more than a second's worth of
// bytes for the record's shard. The record is sent with the explicit hash key of shard (of the
// flush's map), unless shard is noShard; dest is the shard it goes to (noShard when unknown). A
// record larger than the maximum record size is dropped, and its events counted as oversize. evs
// is copied.
func (b *batcher) commit(ctx context.Context, q, start int, key string, shard, dest int, evs []int) {
	g := &b.queues[q]
	r := g.open
	n := len(r.buf) - start
	size := n + len(key) // kinesis.Entry.Size
	if size > b.maxRecordSize {
		r.buf = r.buf[:start]
		b.f.stats.SkippedOversize += int64(len(evs))
		b.f.largest = max(b.f.largest, size)
		return
	}
	if len(r.spans) > 0 && (len(r.spans) == limits.MaxRecordsPerRequest || r.size+size > limits.MaxRequestBytes ||
		(dest != noShard && g.shardBytes[dest]+size > limits.ShardBytesPerSecond)) {
		// The new record becomes the first of the next request.
		next := b.newRequest(q)
		next.buf = append(next.buf, r.buf[start:]...)
		r.buf = r.buf[:start]
		g.open = next
		b.seal(g, r)
		r, start = next, 0
		b.pump(ctx)
		b.limitBacklog(ctx)
	} else if len(b.answers) > 0 {
		b.pump(ctx) // free the answered requests' slots
	}
	if b.f.stop || g.gaveUp {
		r.buf = r.buf[:start]
		b.unsent = append(b.unsent, evs...)
		b.f.codes.add("not sent", 1)
		b.f.firstSent++
		b.f.firstFailed++
		return
	}
	ev := len(b.events)
	b.events = append(b.events, evs...)
	r.spans = append(r.spans, span{off: start, n: n, key: key, shard: shard, dest: dest, ev: ev, nev: len(evs)})
	r.size += size
	if dest != noShard {
		g.shardBytes[dest] += size
	}
}

// eventsOf returns the indexes of the events s carries.
func (b *batcher) eventsOf(s span) []int { return b.events[s.ev : s.ev+s.nev] }

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
	for i := range b.queues {
		g := &b.queues[i]
		if g.open != nil && len(g.open.spans) > 0 {
			r := g.open
			g.open = nil
			b.seal(g, r)
		}
	}
	b.drain(ctx)
	b.releaseQueues()

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
			Attempts:  b.f.maxAttempt,
			Code:      b.f.codes.first(),
			Class:     kinesis.ClassRetryable,
			Err:       b.f.firstErr,
			DecodeErr: decErr,
		}
		if b.f.stop {
			de.Class = b.f.stopClass
			if de.Err == nil {
				de.Err = b.f.stopErr
			}
		}
		err = de
		b.f.remember = b.doneSet()
	case res.Rejected > 0:
		total := res.Records - res.Skipped - res.Earlier
		if b.f.rejectErr != nil {
			err = fmt.Errorf("%w: %d of %d records refused as invalid: %w", ErrRejected, res.Rejected, total, b.f.rejectErr)
		} else {
			err = fmt.Errorf("%w: %d of %d records refused as invalid (%s)", ErrRejected, res.Rejected, total, b.f.codes.first())
		}
	case decErr != nil:
		err = fmt.Errorf("%w: %w", ErrBadChunk, decErr)
	case len(b.invalid) > 0:
		// A record that cannot be encoded never will be: the chunk is undeliverable as a whole,
		// though its other records were sent.
		err = fmt.Errorf("%w: %d of %d records cannot be encoded, first: %w", ErrBadChunk, len(b.invalid), res.Records, b.f.firstInvalid)
	}

	st := &b.f.stats
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
