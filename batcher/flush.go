package batcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// span locates one Kinesis record to send in a buffer (the arena or the retry arena). A Kinesis
// record carries one event, or several when aggregated: it is accepted, failed, resent (the same
// bytes) or rejected as a unit, and so are its events.
type span struct {
	off, n  int
	key     string
	shard   int // the shard of b.f.shardMap whose explicit hash key it is sent with, or noShard
	ev, nev int // its events' indexes are b.events[ev : ev+nev]
}

// noShard is the shard of a record sent without an explicit hash key: routed by its partition key.
const noShard = -1

func (s span) size() int { return s.n + len(s.key) } // kinesis.Entry.Size

// batcher packs one flush's records into requests, sends them, and resends those Kinesis did not
// accept. It belongs to one flush at a time; its buffers are reused from flush to flush.
//
// The first pass encodes the records into one arena. The entries of a request are sliced out of it
// only when the request is sent, so that growing the arena (which may move it) never leaves an
// entry pointing to the old array; after the request the arena is reused from its start. Records
// Kinesis did not accept are copied, with their partition keys, to the retry arena; each later pass
// sends the retry arena's records again and compacts those that fail again to its front.
type batcher struct {
	pool *Pool
	dec  record.Decoder
	enc  *record.Encoder
	keys *kinesis.KeyGen

	comp    *compress.Compressor
	raw     []byte            // one encoded record, when it is not encoded straight into the arena
	scratch []byte            // a finished aggregate, before it is compressed into the arena
	keyBuf  []byte            // the partition key field's value, before it is interned
	keyStrs map[string]string // interned partition keys, see recordKey
	one     [1]int            // the event list of a record that carries one event

	joined    []byte // simple_aggregation: the records joined so far
	joinedEvs []int  // and their events

	groups        []*aggGroup   // aggregation: one per shard of shardMap (one when it is nil)
	ngroups       int           // the groups in use this flush
	shardMap      *kpl.ShardMap // this flush's shard map, nil when aggregation is not shard-aware
	shardsChanged bool          // this flush found shardMap out of date, see checkShard

	arena   []byte          // the pending request's data, then possibly one record being added
	spans   []span          // the pending request's records
	events  []int           // per flush: the event indexes of the records committed, see span
	pending int             // the pending request's size (data + partition keys)
	entries []kinesis.Entry // scratch for the request being sent

	retryArena []byte // data of the records to send again, in event order
	retry      []span // those records

	// Reused from flush to flush: the events given up, rejected or not encodable.
	unsent   []int // records given up because the flush stopped (f.stop)
	rejected []int // records in requests Kinesis refused as invalid
	invalid  []int // records the encoder refused

	f flushState // the flush in progress

	recordLimits // of the flush in progress, see setLimits
}

// flushState is what one flush knows of itself. begin resets it by assignment.
type flushState struct {
	tag           string
	res           Result
	earlier       Bitset        // events delivered by an earlier flush of this chunk (the ledger's)
	shardMap      *kpl.ShardMap // nil when aggregation is not shard-aware
	shardsChanged bool          // the flush found shardMap out of date, see checkShard

	attempt   int                // the pass being sent: 1 for the first
	halted    bool               // a request of this pass failed as a whole: the pass sends nothing more
	stop      bool               // the policy refused a resend: the flush sends nothing more
	stopClass kinesis.ErrorClass // why
	stopErr   error              // the error that made it stop, if any
	remember  Bitset             // set by end when the ledger must remember the chunk

	firstSent, firstFailed int // records of the first pass, and those it did not deliver
	codes                  codeTally
	firstErr               error // the first request error
	rejectErr              error // the first request error of class rejected
	rejectShape            string
	firstInvalid           error
	largest                int // the largest record skipped as oversize

	stats Stats // the flush's share of the pool's totals
}

// begin starts a flush of a chunk with this tag; earlier holds the events an earlier flush of the
// same chunk delivered, which are not sent again, and shardMap is the flush's shard map (nil when
// aggregation is not shard-aware).
func (b *batcher) begin(tag string, earlier Bitset, shardMap *kpl.ShardMap) {
	b.setLimits()
	b.f = flushState{tag: tag, earlier: earlier, shardMap: shardMap, attempt: 1}
	b.arena, b.spans, b.pending, b.events = b.arena[:0], b.spans[:0], 0, b.events[:0]
	b.joined, b.joinedEvs = b.joined[:0], b.joinedEvs[:0]
	b.retryArena, b.retry = b.retryArena[:0], b.retry[:0]
	b.unsent, b.rejected, b.invalid = b.unsent[:0], b.rejected[:0], b.invalid[:0]
	b.prepareGroups()
}

// addNext decodes the next event of the chunk and adds it to the flush's records, unless an
// earlier flush of the chunk delivered it; it returns false at the end of the chunk or at a
// decoding error (b.dec.Err). A plain record without compression is encoded straight into the
// arena; otherwise it is encoded into b.raw, then compressed or aggregated (see place). Decoding
// and encoding are one pass over the record (record.Decoder.NextAppend).
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
		start := len(b.arena)
		out, ok, err := b.dec.NextAppend(b.enc, b.arena, ev)
		if !ok {
			return false
		}
		b.f.res.Records++
		if err != nil {
			// b.arena[:start] is intact whatever NextAppend returned: append never writes below len.
			b.arena = b.arena[:start]
			b.skipInvalid(idx, err)
			return true
		}
		b.arena = out
		key := b.recordKey(ev.Body)
		if key == "" {
			key = b.keys.Next()
		}
		b.one[0] = idx
		b.commit(ctx, start, key, noShard, b.one[:])
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
	key := ""
	if b.pool.packing != packSimple { // simple_aggregation gives each Kinesis record a random key
		key = b.recordKey(ev.Body)
	}
	b.place(ctx, idx, raw, key)
	return true
}

// add adds one already encoded record to the flush's records, with a random partition key. Flush
// uses addNext; tests and benchmarks use add to drive the packing without the record package.
func (b *batcher) add(ctx context.Context, data []byte) { b.addKeyed(ctx, data, "") }

// addKeyed is add with a partition key ("" for a random one).
func (b *batcher) addKeyed(ctx context.Context, data []byte, key string) {
	idx := b.f.res.Records
	b.f.res.Records++
	if b.f.earlier.Has(idx) {
		b.f.res.Earlier++
		return
	}
	if b.direct() {
		if key == "" {
			key = b.keys.Next()
		}
		start := len(b.arena)
		b.arena = append(b.arena, data...)
		b.one[0] = idx
		b.commit(ctx, start, key, noShard, b.one[:])
		return
	}
	b.place(ctx, idx, data, key)
}

// commit makes the Kinesis record in b.arena[start:], which carries the events evs, part of the
// pending request, sending the pending request first when the record would break one of its
// limits. It is sent with the explicit hash key of shard (of b.f.shardMap), unless shard is noShard.
// A record larger than the maximum record size is dropped, and its events counted as oversize.
// evs is copied.
func (b *batcher) commit(ctx context.Context, start int, key string, shard int, evs []int) {
	n := len(b.arena) - start
	size := n + len(key) // kinesis.Entry.Size
	if size > b.maxRecordSize {
		b.arena = b.arena[:start]
		b.f.stats.SkippedOversize += int64(len(evs))
		b.f.largest = max(b.f.largest, size)
		return
	}
	if len(b.spans) == limits.MaxRecordsPerRequest || b.pending+size > limits.MaxRequestBytes {
		b.send(ctx)
		// The new record becomes the first of the next request.
		copy(b.arena, b.arena[start:])
		b.arena = b.arena[:n]
		start = 0
	}
	ev := len(b.events)
	b.events = append(b.events, evs...)
	b.spans = append(b.spans, span{off: start, n: n, key: key, shard: shard, ev: ev, nev: len(evs)})
	b.pending += size
}

// eventsOf returns the indexes of the events s carries.
func (b *batcher) eventsOf(s span) []int { return b.events[s.ev : s.ev+s.nev] }

// send sends the first pass's pending request, if any. It leaves the arena alone: the caller
// decides what it keeps.
func (b *batcher) send(ctx context.Context) {
	if len(b.spans) == 0 {
		return
	}
	b.f.firstSent += len(b.spans)
	b.sendRequest(ctx, b.arena, b.spans, b.pending)
	b.spans, b.pending = b.spans[:0], 0
}

// sendRequest sends spans, whose data is in buf, as one request (unless the pass is halted or the flush
// stopped) and disposes of every record according to the answer: accepted, rejected, kept for the
// next pass, or given up.
func (b *batcher) sendRequest(ctx context.Context, buf []byte, spans []span, size int) {
	if err := ctx.Err(); err != nil && !b.f.stop { // a cancelled flush sends nothing more
		b.stopWith(kinesis.Classify(err), err)
	}
	if b.f.halted || b.f.stop {
		if b.f.attempt == 1 {
			b.f.firstFailed += len(spans)
		}
		b.f.codes.add("not sent", len(spans))
		for _, s := range spans {
			b.keepForResend(buf, s)
		}
		return
	}
	entries := b.entries[:0]
	for _, s := range spans {
		// Cap each slice at its end, so that no Putter can append over the next record.
		e := kinesis.Entry{Data: buf[s.off : s.off+s.n : s.off+s.n], PartitionKey: s.key}
		if s.shard != noShard {
			e.ExplicitHashKey = b.f.shardMap.Shard(s.shard).ExplicitHashKey()
		}
		entries = append(entries, e)
	}
	b.entries = entries
	defer clear(entries) // keep neither the data nor the keys alive

	res, err := b.pool.putter.PutRecords(ctx, entries)
	b.f.stats.Requests++
	b.f.stats.RecordsSent += int64(len(spans))
	b.f.stats.BytesSent += int64(size)
	if b.f.attempt > 1 {
		b.f.stats.Resent += int64(len(spans))
	}
	if err == nil && len(res.ErrorCodes) != len(entries) {
		err = fmt.Errorf("batcher: %d results for %d records: %w", len(res.ErrorCodes), len(entries), kinesis.ErrMalformedResponse)
	}
	if err != nil {
		b.requestFailed(ctx, err, buf, spans)
		return
	}
	if res.FailedCount > 0 {
		b.f.stats.RequestsPartial++
	}
	shardIDs := res.ShardIDs
	if len(shardIDs) != len(entries) {
		shardIDs = nil // a Putter that does not report shards
	}
	for i, code := range res.ErrorCodes {
		if code == "" {
			b.f.res.Accepted += spans[i].nev
			if shardIDs != nil && spans[i].shard != noShard {
				b.checkShard(spans[i].shard, shardIDs[i])
			}
			continue
		}
		b.f.codes.add(code, 1)
		if kinesis.IsThrottlingCode(code) {
			b.f.stats.Throttled++
		}
		if b.f.attempt == 1 {
			b.f.firstFailed++
		}
		switch class := kinesis.ClassifyCode(code); {
		case class == kinesis.ClassRejected:
			b.rejected = append(b.rejected, b.eventsOf(spans[i])...)
			continue
		case !b.f.stop && !b.pool.retry.CheckRetry(ctx, class):
			b.stopWith(class, nil)
		}
		b.keepForResend(buf, spans[i])
	}
}

// checkShard checks that Kinesis put a record sent with the explicit hash key of shard i of
// b.f.shardMap in that shard, gotID ("" when not reported). If it did not, the stream's shards have
// changed since the map was listed, and the pool lists them again at its next flush; this flush
// goes on with its map.
//
// The record was accepted, and is not sent again (that would duplicate it). But it is an aggregate
// built for a shard that no longer exists as listed: a consumer that deaggregates with the KCL
// drops its user records whose partition keys fall outside the range of the shard it landed in
// (after a split, those of the other child). The KPL has the same window; listing the shards again
// as soon as one answer reveals the change limits it to the requests in flight during a
// resharding, instead of up to a refresh period of them.
//
// Only the shard ID tells: a resharding never makes Kinesis refuse a record with a valid explicit
// hash key (every hash key is in some open shard), so no error code (InvalidArgumentException,
// ResourceNotFoundException) means the map is out of date.
func (b *batcher) checkShard(i int, gotID string) {
	if b.f.shardsChanged || gotID == "" {
		return
	}
	if want := b.f.shardMap.Shard(i).ID; gotID != want {
		b.f.shardsChanged = true
		b.pool.shardMapChanged(b.f.shardMap, want, gotID)
	}
}

// requestFailed handles a request that failed as a whole. A rejected request's records are given
// up; otherwise the pass stops sending (a failing endpoint is not sent the rest of the chunk
// request after request, each waiting for its timeout) and, if the policy allows, the records
// wait for the next pass.
func (b *batcher) requestFailed(ctx context.Context, err error, buf []byte, spans []span) {
	b.f.stats.RequestErrors++
	if b.f.firstErr == nil {
		b.f.firstErr = err
	}
	code := kinesis.ErrorCode(err)
	b.f.codes.add(code, len(spans))
	if kinesis.IsThrottlingCode(code) {
		b.f.stats.Throttled += int64(len(spans))
	}
	if b.f.attempt == 1 {
		b.f.firstFailed += len(spans)
	}
	class := kinesis.Classify(err)
	if class == kinesis.ClassRejected {
		if b.f.rejectErr == nil {
			b.f.rejectErr, b.f.rejectShape = err, requestShape(b.entries)
		}
		for _, s := range spans {
			b.rejected = append(b.rejected, b.eventsOf(s)...)
		}
		return
	}
	if b.pool.retry.CheckRetry(ctx, class) {
		b.f.halted = true
	} else {
		b.stopWith(class, err)
	}
	for _, s := range spans {
		b.keepForResend(buf, s)
	}
}

// stopWith makes the flush send nothing more, because of an error of class (err, when known).
func (b *batcher) stopWith(class kinesis.ErrorClass, err error) {
	if !b.f.stop {
		b.f.stop, b.f.stopClass, b.f.stopErr = true, class, err
	}
}

// keepForResend keeps a record that was not delivered for the next pass, copying it to the retry arena, or
// gives it up when the flush will send nothing more.
//
// During a resend, buf is the retry arena itself and b.retry, b.retryArena were truncated before
// the pass: each record is then moved towards the front (memmove), never over a record not yet
// handled, because a record's new place never comes after its old one.
func (b *batcher) keepForResend(buf []byte, s span) {
	old := s.off
	if b.f.stop {
		b.unsent = append(b.unsent, b.eventsOf(s)...)
		return
	}
	s.off = len(b.retryArena)
	b.retry = append(b.retry, s)
	b.retryArena = append(b.retryArena, buf[old:old+s.n]...)
}

// resend sends the records that failed again, in passes packed under the request limits, with the
// policy's backoff before each pass, until all are delivered or the policy says stop.
func (b *batcher) resend(ctx context.Context) {
	pol := &b.pool.retry
	windowEnd := time.Now().Add(pol.Window)
	for len(b.retry) > 0 && !b.f.stop && b.f.attempt < pol.MaxAttempts {
		if !b.wait(ctx, pol.Backoff(b.f.attempt+1), windowEnd) {
			return
		}
		b.f.attempt++
		b.f.halted = false
		src, buf := b.retry, b.retryArena
		b.retry, b.retryArena = src[:0], buf[:0] // refilled in place by keepForResend, see there
		for i := 0; i < len(src); {
			j, size := i, 0
			for j < len(src) && j-i < limits.MaxRecordsPerRequest && size+src[j].size() <= limits.MaxRequestBytes {
				size += src[j].size()
				j++
			}
			b.sendRequest(ctx, buf, src[i:j], size)
			i = j
		}
	}
}

// wait sleeps d before a pass, and reports whether the pass may go: not when the sleep would end
// after the retry window or the context's deadline, nor when the context ends first.
func (b *batcher) wait(ctx context.Context, d time.Duration, windowEnd time.Time) bool {
	if err := ctx.Err(); err != nil {
		b.stopWith(kinesis.ClassCanceled, err)
		return false
	}
	end := time.Now().Add(d)
	if end.After(windowEnd) {
		return false
	}
	if deadline, ok := ctx.Deadline(); ok && !end.Before(deadline) {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		b.stopWith(kinesis.Classify(ctx.Err()), ctx.Err())
		return false
	case <-t.C:
		return true
	}
}

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

// end sends what is pending, resends what failed, logs the flush's summary, adds it to the pool's
// totals and returns the flush's result (see Pool.Flush for the error). When the chunk is to be
// flushed again, it sets b.f.remember to the events not to send again.
func (b *batcher) end(ctx context.Context, decErr error) (Result, error) {
	b.finishPending(ctx)
	b.send(ctx)
	b.arena = b.arena[:0]
	b.resend(ctx)
	b.f.res.Failed = len(b.unsent)
	for _, s := range b.retry {
		b.f.res.Failed += s.nev
	}
	b.f.res.Rejected = len(b.rejected)
	b.f.res.Skipped = int(b.f.stats.SkippedOversize+b.f.stats.SkippedNoLogKey) + len(b.invalid)
	res := b.f.res

	var err error
	switch {
	case res.Failed > 0:
		de := &DeliveryError{
			Failed:    res.Failed,
			Total:     res.Records - res.Skipped - res.Earlier,
			Attempts:  b.f.attempt,
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
	clear(b.retry[:cap(b.retry)])            // nor partition keys
	return res, err
}

// doneSet returns the set of events that need not be sent again: all but those not delivered,
// rejected or not encodable (the latter two are tried again, and fail the chunk again, on the next
// flush: a rejection is not expected to change, but if it does the record is delivered). It
// returns nil when the set is empty: a chunk of which nothing was delivered (an outage) is not
// worth an entry, which could push a useful one out of the ledger.
func (b *batcher) doneSet() Bitset {
	if b.f.res.Failed+b.f.res.Rejected+len(b.invalid) == b.f.res.Records {
		return nil
	}
	done := fullBitset(b.f.res.Records)
	for _, s := range b.retry {
		for _, i := range b.eventsOf(s) {
			done.clear(i)
		}
	}
	for _, lists := range [][]int{b.unsent, b.rejected, b.invalid} {
		for _, i := range lists {
			done.clear(i)
		}
	}
	return done
}
