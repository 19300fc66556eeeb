package batcher

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// Sending a flush's requests, several at once: queues, requests in flight, answers, resends.

// request is one PutRecords request: its records and their data, in a buffer of its own that no
// other request shares, so that it stays intact while the request is in flight.
type request struct {
	queue     int
	buf       []byte
	spans     []span
	size      int       // data + partition keys of spans
	notBefore time.Time // a resend waits for its backoff
	paced     bool      // it waited for its shards' pacing (counted once)

	// Set when it is started, and by its goroutine.
	sentAt  time.Time
	charges []pace.Charge
	entries []kinesis.Entry
	res     kinesis.PutResult
	err     error
}

// fits reports whether n records of size bytes (data and keys) fit in one request.
func fits(n, size int) bool {
	return n <= limits.MaxRecordsPerRequest && size <= limits.MaxRequestBytes
}

// queue is a sequence of requests of one flush: sealed requests waiting to go, oldest first, and
// the open request being filled. With partition_key, a queue holds the records of a group of
// shards and has at most one request in flight, and a request's records that fail go back to the
// queue's front, so that no record is sent before an earlier record of its key is accepted.
type queue struct {
	open       *request
	ready      []*request
	busy       int   // requests in flight
	gaveUp     bool  // with partition_key: a record was given up, and so is every later one
	shardBytes []int // the open request's bytes per shard of the flush's map, when it has one
}

// mapSeed hashes partition keys to queues when there is no shard map.
var mapSeed = maphash.MakeSeed()

// prepareQueues readies the queues of a flush: one when order does not matter; with
// partition_key, one per shard of the map up to the pool's bound of requests in flight (shards
// share queues beyond), or that bound of queues by hash of the key without a map.
func (b *batcher) prepareQueues() {
	n := 1
	if b.f.ordered {
		n = b.pool.maxInFlight
		if m := b.f.shardMap(); m != nil {
			n = min(n, m.Len())
		}
	}
	if cap(b.queues) < n {
		b.queues = make([]queue, n)
	}
	b.queues = b.queues[:n]
	shards := 0
	if m := b.f.shardMap(); m != nil {
		shards = m.Len()
	}
	for i := range b.queues {
		g := &b.queues[i]
		*g = queue{ready: g.ready[:0], shardBytes: g.shardBytes}
		if cap(g.shardBytes) < shards {
			g.shardBytes = make([]int, shards)
		}
		g.shardBytes = g.shardBytes[:shards]
		clear(g.shardBytes)
	}
	if len(b.perShard) < shards {
		b.perShard = make([]shardTally, shards)
	}
	if cap(b.answers) < b.pool.maxInFlight {
		b.answers = make(chan *request, b.pool.maxInFlight)
	}
}

// queueOf returns the queue of a record whose key goes to shard dest (noShard without a map).
func (b *batcher) queueOf(key string, dest int) int {
	n := len(b.queues)
	switch {
	case n == 1:
		return 0
	case dest != noShard:
		return dest % n
	}
	return int(maphash.String(mapSeed, key) % uint64(n))
}

// open returns queue q's open request, with a buffer.
func (b *batcher) open(q int) *request {
	g := &b.queues[q]
	if g.open == nil {
		g.open = b.newRequest(q)
	}
	return g.open
}

// newRequest returns an empty request of queue q, with a buffer from the pool.
func (b *batcher) newRequest(q int) *request {
	var r *request
	if n := len(b.free); n > 0 {
		r, b.free = b.free[n-1], b.free[:n-1]
	} else {
		r = &request{}
	}
	r.queue, r.buf = q, b.pool.getBuf()
	return r
}

// recycle returns r's buffer to the pool and keeps r for another request.
func (b *batcher) recycle(r *request) {
	b.pool.putBuf(r.buf)
	clear(r.spans) // keep no partition key alive
	*r = request{spans: r.spans[:0], charges: r.charges[:0], entries: r.entries[:0]}
	b.free = append(b.free, r)
}

// seal queues r, no longer open, to be sent after the requests sealed before it.
func (b *batcher) seal(g *queue, r *request) {
	clear(g.shardBytes)
	if len(r.spans) == 0 {
		b.recycle(r)
		return
	}
	g.ready = append(g.ready, r)
}

// packAhead reports whether the flush may pack more before some of its sealed requests go: it packs
// ahead of what it can send (the next request of each queue, and one more), so that encoding
// overlaps the requests in flight, but no further, which bounds the buffers a flush holds.
func (b *batcher) packAhead() bool { return b.queuedRequests() <= len(b.queues)+1 }

// limitBacklog waits, while the flush may not pack ahead, for some of its sealed requests to go.
func (b *batcher) limitBacklog(ctx context.Context) {
	for !b.packAhead() && !b.f.stop {
		at, wake := b.pump(ctx)
		if b.packAhead() {
			return
		}
		if !b.wait(ctx, at, wake) {
			return
		}
	}
}

// drain sends everything sealed, and handles answers, until every record is answered or given up.
func (b *batcher) drain(ctx context.Context) {
	for {
		at, wake := b.pump(ctx)
		if b.f.inflight == 0 && b.queuedRequests() == 0 {
			return
		}
		if !b.wait(ctx, at, wake) && b.f.inflight == 0 {
			b.giveUpQueued() // nothing can wake the flush: give up rather than hang
			return
		}
	}
}

func (b *batcher) queuedRequests() int {
	n := 0
	for i := range b.queues {
		n += len(b.queues[i].ready)
	}
	return n
}

// wait blocks until something may let the flush go on: an answer (which it handles), the time at
// (when not zero), wake closed (a slot freed), or ctx done (the flush stops sending). It reports
// false when there was nothing to wait for.
func (b *batcher) wait(ctx context.Context, at time.Time, wake <-chan struct{}) bool {
	var timer <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		timer = t.C
	}
	done := ctx.Done()
	if b.f.stop {
		done = nil // already stopped: only answers matter
	}
	if timer == nil && wake == nil && b.f.inflight == 0 && done == nil {
		return false
	}
	select {
	case r := <-b.answers:
		b.answer(ctx, r)
	case <-timer:
	case <-wake:
	case <-done:
		b.stopWith(kinesis.Classify(ctx.Err()), ctx.Err())
	}
	return true
}

// pump handles the answers that arrived, then starts every sealed request that may go now, queue
// by queue. It returns when it can start nothing more, with what may change that: the time at
// which a backoff or a shard's pacing ends (zero if none), and wake, closed when the pool frees a
// slot (nil when slots were not what was missing).
func (b *batcher) pump(ctx context.Context) (at time.Time, wake <-chan struct{}) {
	for len(b.answers) > 0 {
		b.answer(ctx, <-b.answers)
	}
	if err := ctx.Err(); err != nil && !b.f.stop { // a cancelled flush sends nothing more
		b.stopWith(kinesis.Classify(err), err)
	}
	if b.f.stop {
		b.giveUpQueued()
		return time.Time{}, nil
	}
	now := time.Now()
	if b.f.probing && now.After(b.f.probeEnd) {
		// The retry window after a failed request is over: leave the rest to Fluent Bit's retry.
		b.stopWith(kinesis.ClassRetryable, nil)
		b.giveUpQueued()
		return time.Time{}, nil
	}
	later := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	n := len(b.queues)
	b.nextPump++
	for i := range n {
		g := &b.queues[(b.nextPump+i)%n]
		for len(g.ready) > 0 {
			if b.f.probing && b.f.inflight > 0 {
				return at, nil // the answer ends or prolongs the probing
			}
			if b.f.probing && b.f.probeAt.After(now) {
				return b.f.probeAt, nil // the next probe waits the failed one's backoff
			}
			if b.f.ordered && g.busy > 0 {
				break
			}
			j := -1
			for k, r := range g.ready {
				if !r.notBefore.After(now) {
					j = k
					break
				}
				later(r.notBefore)
				if b.f.ordered {
					break // the queue's head waits, and everything after it
				}
			}
			if j < 0 {
				break
			}
			r := g.ready[j]
			ok, when, w := b.pool.sched.TryStart(b.f.shardMap(), b.chargesOf(r), now)
			if !ok {
				if w != nil {
					return at, w // no slot: nothing else can start
				}
				if !r.paced {
					r.paced = true
					b.f.stats.RequestsPaced++
				}
				later(when)
				break // this queue waits for its shards; others may go
			}
			g.ready = append(g.ready[:j], g.ready[j+1:]...)
			b.start(ctx, r, now)
		}
	}
	return at, nil
}

// chargesOf returns what r takes from its shards' budgets: its records and bytes per shard.
func (b *batcher) chargesOf(r *request) []pace.Charge {
	r.charges = r.charges[:0]
	if b.f.shards == nil {
		return r.charges
	}
	b.touched = b.touched[:0]
	for _, s := range r.spans {
		if s.dest == noShard {
			continue
		}
		t := &b.perShard[s.dest]
		if !t.seen {
			t.seen = true
			b.touched = append(b.touched, s.dest)
		}
		t.records++
		t.bytes += s.size()
	}
	for _, d := range b.touched {
		t := &b.perShard[d]
		r.charges = append(r.charges, pace.Charge{Shard: d, Records: t.records, Bytes: t.bytes})
		*t = shardTally{}
	}
	return r.charges
}

// start sends r on a goroutine of its own, which hands it back on b.answers once answered.
func (b *batcher) start(ctx context.Context, r *request, now time.Time) {
	m := b.f.shardMap()
	entries := r.entries[:0]
	for i := range r.spans {
		s := &r.spans[i]
		// Cap each slice at its end, so that no Putter can append over the next record.
		e := kinesis.Entry{Data: r.buf[s.off : s.off+s.n : s.off+s.n], PartitionKey: s.key}
		if s.shard != noShard {
			e.ExplicitHashKey = m.Shard(s.shard).ExplicitHashKey()
		}
		entries = append(entries, e)
		s.attempt++
		if s.attempt == 1 {
			b.f.firstSent++
		} else {
			b.f.stats.Resent++
		}
		b.f.maxAttempt = max(b.f.maxAttempt, s.attempt)
	}
	r.entries, r.sentAt = entries, now
	b.f.inflight++
	b.queues[r.queue].busy++
	b.f.stats.Requests++
	b.f.stats.RecordsSent += int64(len(r.spans))
	b.f.stats.BytesSent += int64(r.size)
	putter, answers := b.pool.putter, b.answers
	go func() {
		r.res, r.err = putter.PutRecords(ctx, r.entries)
		answers <- r
	}()
}

// answer handles r's answer: every record is accepted, rejected, kept to be sent again, or given
// up.
func (b *batcher) answer(ctx context.Context, r *request) {
	b.pool.sched.Done()
	b.f.inflight--
	b.queues[r.queue].busy--
	clear(r.entries) // keep neither the data nor the keys alive
	now := time.Now()
	res, err := r.res, r.err
	if err == nil && len(res.ErrorCodes) != len(r.spans) {
		err = fmt.Errorf("batcher: %d results for %d records: %w", len(res.ErrorCodes), len(r.spans), kinesis.ErrMalformedResponse)
	}
	if err != nil {
		b.requestFailed(ctx, r, err, now)
		return
	}
	b.f.probing = false
	if res.FailedCount > 0 {
		b.f.stats.RequestsPartial++
	}
	shardIDs := res.ShardIDs
	if len(shardIDs) != len(r.spans) {
		shardIDs = nil // a Putter that does not report shards
	}
	b.touched = b.touched[:0]
	throttled := false
	kept, off, size := 0, 0, 0
	for i, s := range r.spans {
		code := res.ErrorCodes[i]
		if s.dest != noShard && b.f.shards != nil {
			t := &b.perShard[s.dest]
			if !t.seen {
				t.seen = true
				b.touched = append(b.touched, s.dest)
			}
			if code == "" {
				t.records++
				t.bytes += s.size()
			} else if kinesis.IsThrottlingCode(code) {
				t.throttled = true
			}
		}
		if code == "" {
			b.f.res.Accepted += s.nev
			if shardIDs != nil && s.shard != noShard {
				b.checkShard(s.shard, shardIDs[i])
			}
			continue
		}
		b.f.codes.add(code, 1)
		if kinesis.IsThrottlingCode(code) {
			b.f.stats.Throttled++
			throttled = true
		}
		if s.attempt == 1 {
			b.f.firstFailed++
		}
		switch class := kinesis.ClassifyCode(code); {
		case class == kinesis.ClassRejected:
			b.rejected = append(b.rejected, b.eventsOf(s)...)
			continue
		case !b.f.stop && !b.pool.retry.CheckRetry(ctx, class):
			b.stopWith(class, nil)
		}
		// Keep it, moved to the front of the buffer: a record's new place never comes after
		// its old one, so nothing not yet handled is overwritten.
		copy(r.buf[off:], r.buf[s.off:s.off+s.n])
		s.off = off
		off += s.n
		size += s.size()
		r.spans[kept] = s
		kept++
	}
	b.feedback(r, throttled, now)
	clear(r.spans[kept:])
	r.spans, r.buf, r.size = r.spans[:kept], r.buf[:off], size
	if kept == 0 {
		b.recycle(r)
		return
	}
	b.resend(ctx, r, now)
}

// checkShard checks that Kinesis put a record sent with the explicit hash key of shard i of
// the flush's map in that shard, gotID ("" when not reported). If it did not, the stream's shards have
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
	if want := b.f.shardMap().Shard(i).ID; gotID != want {
		b.f.shardsChanged = true
		b.pool.shards.Changed(b.f.shardMap(), want, gotID)
	}
}

// feedback tells the scheduler what the answer to r said of each shard (b.touched, b.perShard).
func (b *batcher) feedback(r *request, throttled bool, now time.Time) {
	fb := b.feedbackBuf[:0]
	for _, d := range b.touched {
		t := &b.perShard[d]
		fb = append(fb, pace.Feedback{Shard: d, Records: t.records, Bytes: t.bytes, Throttled: t.throttled})
		*t = shardTally{}
	}
	b.feedbackBuf = fb
	if b.pool.sched.Feedback(b.f.shardMap(), fb, throttled, r.sentAt, now) {
		b.f.stats.RateCuts++
	}
}

// requestFailed handles a request that failed as a whole. A rejected request's records are given
// up; otherwise, if the policy allows, the records are kept to be sent again, and the flush sends
// one request at a time until one is answered (a failing endpoint is not sent the rest of the
// chunk, each request waiting for its timeout), for at most the retry window.
func (b *batcher) requestFailed(ctx context.Context, r *request, err error, now time.Time) {
	b.f.stats.RequestErrors++
	if b.f.firstErr == nil {
		b.f.firstErr = err
	}
	code := kinesis.ErrorCode(err)
	b.f.codes.add(code, len(r.spans))
	throttled := kinesis.IsThrottlingCode(code)
	if throttled {
		b.f.stats.Throttled += int64(len(r.spans))
	}
	for _, s := range r.spans {
		if s.attempt == 1 {
			b.f.firstFailed++
		}
	}
	if throttled {
		b.touched = b.touched[:0]
		for _, s := range r.spans {
			if s.dest == noShard || b.f.shards == nil {
				continue
			}
			if t := &b.perShard[s.dest]; !t.seen {
				t.seen, t.throttled = true, true
				b.touched = append(b.touched, s.dest)
			}
		}
		b.feedback(r, true, now)
	}
	class := kinesis.Classify(err)
	if class == kinesis.ClassRejected {
		if b.f.rejectErr == nil {
			b.f.rejectErr, b.f.rejectShape = err, requestShape(r.spans)
		}
		for _, s := range r.spans {
			b.rejected = append(b.rejected, b.eventsOf(s)...)
		}
		b.recycle(r)
		return
	}
	if b.pool.retry.CheckRetry(ctx, class) {
		if !b.f.probing {
			b.f.probing, b.f.probeEnd = true, now.Add(b.pool.retry.Window)
		}
	} else {
		b.stopWith(class, err)
	}
	attempt := 0
	for _, s := range r.spans {
		attempt = max(attempt, s.attempt)
	}
	if b.f.probeAt = b.resend(ctx, r, now); b.f.probeAt.IsZero() {
		// The records were given up; the endpoint still gets its backoff before the next probe.
		b.f.probeAt = now.Add(b.pool.retry.Backoff(attempt + 1))
	}
}

// stopWith makes the flush send nothing more, because of an error of class (err, when known).
func (b *batcher) stopWith(class kinesis.ErrorClass, err error) {
	if !b.f.stop {
		b.f.stop, b.f.stopClass, b.f.stopErr = true, class, err
	}
}

// resend queues r, whose records all failed, to be sent again after the policy's backoff, or
// gives up those the policy does not let go again: after their last attempt, or when their retry
// window (from their first failure), or ctx's deadline, would end before the backoff does. With partition_key, r goes
// back to its queue's front (joined with the next request when both fit in one), and a record
// given up gives up every later record of its queue; otherwise it goes to the back. It returns
// when the resend may go, zero when nothing is to be resent.
func (b *batcher) resend(ctx context.Context, r *request, now time.Time) time.Time {
	pol := &b.pool.retry
	g := &b.queues[r.queue]
	if b.f.stop || g.gaveUp {
		b.giveUp(r)
		return time.Time{}
	}
	since := now.Sub(b.f.start)
	attempt := 0 // the most sends of a record that may go again
	for i := range r.spans {
		s := &r.spans[i]
		if s.retryEnd == 0 {
			s.retryEnd = since + pol.Window
		}
		if s.attempt < pol.MaxAttempts {
			attempt = max(attempt, s.attempt)
		}
	}
	var wait time.Duration
	if attempt > 0 {
		wait = pol.Backoff(attempt + 1)
	}
	deadline, hasDeadline := ctx.Deadline()
	late := hasDeadline && !now.Add(wait).Before(deadline) // the flush would end before the resend
	last := func(s span) bool { return s.attempt >= pol.MaxAttempts || since+wait > s.retryEnd || late }
	if b.f.ordered {
		for _, s := range r.spans {
			if last(s) {
				// Nothing of the queue goes after a record given up: the chunk's retry sends
				// them in order.
				b.giveUp(r)
				b.giveUpQueue(g)
				return time.Time{}
			}
		}
	}
	kept, off, size := 0, 0, 0
	for _, s := range r.spans {
		if last(s) {
			b.unsent = append(b.unsent, b.eventsOf(s)...)
			continue
		}
		copy(r.buf[off:], r.buf[s.off:s.off+s.n])
		s.off = off
		off += s.n
		size += s.size()
		r.spans[kept] = s
		kept++
	}
	clear(r.spans[kept:])
	r.spans, r.buf, r.size = r.spans[:kept], r.buf[:off], size
	if kept == 0 {
		b.recycle(r)
		return time.Time{}
	}
	r.notBefore = now.Add(wait)
	at := r.notBefore
	if b.f.ordered {
		if len(g.ready) > 0 && b.join(r, g.ready[0]) {
			g.ready[0] = r
		} else {
			g.ready = append(g.ready, nil)
			copy(g.ready[1:], g.ready)
			g.ready[0] = r
		}
		return at
	}
	if last := len(g.ready) - 1; last >= 0 && !g.ready[last].notBefore.IsZero() && b.join(g.ready[last], r) {
		g.ready[last].notBefore = maxTime(g.ready[last].notBefore, at)
		return at
	}
	g.ready = append(g.ready, r)
	return at
}

// join appends next's records to r when they fit in one request, recycles next, and reports
// whether it did.
func (b *batcher) join(r, next *request) bool {
	if !fits(len(r.spans)+len(next.spans), r.size+next.size) {
		return false
	}
	base := len(r.buf)
	r.buf = append(r.buf, next.buf...)
	for _, s := range next.spans {
		s.off += base
		r.spans = append(r.spans, s)
	}
	r.size += next.size
	if next.paced {
		r.paced = true
	}
	b.recycle(next)
	return true
}

// giveUp gives up r's records: they are not delivered by this flush.
func (b *batcher) giveUp(r *request) {
	for _, s := range r.spans {
		b.unsent = append(b.unsent, b.eventsOf(s)...)
		if s.attempt == 0 {
			b.f.codes.add("not sent", 1)
			b.f.firstSent++
			b.f.firstFailed++
		}
	}
	b.recycle(r)
}

// giveUpQueue gives up every record g holds and every record committed to it from now on.
func (b *batcher) giveUpQueue(g *queue) {
	g.gaveUp = true
	for _, r := range g.ready {
		b.giveUp(r)
	}
	g.ready = g.ready[:0]
	if r := g.open; r != nil {
		for _, s := range r.spans {
			b.unsent = append(b.unsent, b.eventsOf(s)...)
			b.f.codes.add("not sent", 1)
			b.f.firstSent++
			b.f.firstFailed++
		}
		// The buffer stays: commit may be adding a record to it.
		clear(r.spans)
		r.spans, r.size = r.spans[:0], 0
		clear(g.shardBytes)
	}
}

// giveUpQueued gives up the records of every sealed request not started.
func (b *batcher) giveUpQueued() {
	for i := range b.queues {
		g := &b.queues[i]
		for _, r := range g.ready {
			b.giveUp(r)
		}
		g.ready = g.ready[:0]
	}
}

// releaseQueues returns the queues' open requests, empty at the end of a flush, to the pool.
func (b *batcher) releaseQueues() {
	for i := range b.queues {
		g := &b.queues[i]
		if g.open != nil {
			b.recycle(g.open)
			g.open = nil
		}
		clear(g.ready[:cap(g.ready)])
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
