package requests

import (
	"context"
	"fmt"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// What an answer does to a request's records: each is accepted, rejected, kept to be sent again
// (alone, in place in its request's buffer), or given up.

// answer handles r's answer: every record is accepted, rejected, kept to be sent again, or given
// up.
func (q *Queues) answer(ctx context.Context, r *request) {
	q.f.inflight-- // its goroutine freed its slot of the scheduler (start)
	q.queues[r.queue].busy--
	clear(r.entries) // keep neither the data nor the keys alive
	now := time.Now()
	res, err := r.res, r.err
	if err == nil && len(res.ErrorCodes) != len(r.spans) {
		err = fmt.Errorf("batcher: %d results for %d records: %w", len(res.ErrorCodes), len(r.spans), kinesis.ErrMalformedResponse)
	}
	if err != nil {
		q.requestFailed(ctx, r, err, now)
		return
	}
	out := &q.f.out
	q.f.probing = false
	if res.FailedCount > 0 {
		out.RequestsPartial++
	}
	shardIDs := res.ShardIDs
	if len(shardIDs) != len(r.spans) {
		shardIDs = nil // a Putter that does not report shards
	}
	q.touched = q.touched[:0]
	throttled := false
	var c compactor
	for i, s := range r.spans {
		code := res.ErrorCodes[i]
		if s.dest != NoShard && q.f.m != nil {
			t := &q.perShard[s.dest]
			if !t.seen {
				t.seen = true
				q.touched = append(q.touched, s.dest)
			}
			if code == "" {
				t.records++
				t.bytes += s.size()
			} else if kinesis.IsThrottlingCode(code) {
				t.throttled = true
			}
		}
		if code == "" {
			out.Accepted += s.events.N
			if shardIDs != nil && s.shard != NoShard {
				q.checkShard(s.shard, shardIDs[i])
			}
			continue
		}
		out.Codes.add(code, 1)
		if kinesis.IsThrottlingCode(code) {
			out.Throttled++
			throttled = true
		}
		if s.attempt == 1 {
			out.FirstFailed++
		}
		switch class := kinesis.ClassifyCode(code); {
		case class == kinesis.ClassRejected:
			q.rejected = append(q.rejected, s.events)
			continue
		case !out.Stopped && !q.c.Retry.CheckRetry(ctx, class):
			q.stopWith(class, nil)
		}
		c.keep(r, s)
	}
	q.feedback(r, throttled, now)
	if !c.done(r) {
		q.recycle(r)
		return
	}
	q.resend(ctx, r, now)
}

// compactor makes a request hold only some of its records, in place, in order.
type compactor struct{ kept, off, size int }

// keep keeps s, the next record of r to keep, moved to the front of r's buffer: a record's new
// place never comes after its old one, so nothing not yet handled is overwritten.
func (c *compactor) keep(r *request, s span) {
	copy(r.buf[c.off:], r.buf[s.off:s.off+s.n])
	s.off = c.off
	c.off += s.n
	c.size += s.size()
	r.spans[c.kept] = s
	c.kept++
}

// done cuts r to the records kept, and reports whether there are any.
func (c *compactor) done(r *request) bool {
	clear(r.spans[c.kept:])
	r.spans, r.buf, r.size = r.spans[:c.kept], r.buf[:c.off], c.size
	return c.kept > 0
}

// checkShard checks that Kinesis put a record sent with the explicit hash key of shard i of
// the flush's map in that shard, gotID ("" when not reported). If it did not, the stream's shards have
// changed since the map was listed, and Config.Resharded is told (the pool lists them again at its
// next flush); this flush goes on with its map.
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
func (q *Queues) checkShard(i int, gotID string) {
	if q.f.shardsChanged || gotID == "" {
		return
	}
	if want := q.f.m.Shard(i).ID; gotID != want {
		q.f.shardsChanged = true
		q.c.Resharded(q.f.m, want, gotID)
	}
}

// feedback tells the scheduler what the answer to r said of each shard (q.touched, q.perShard).
func (q *Queues) feedback(r *request, throttled bool, now time.Time) {
	fb := q.feedbackBuf[:0]
	for _, d := range q.touched {
		t := &q.perShard[d]
		fb = append(fb, pace.Feedback{Shard: d, Records: t.records, Bytes: t.bytes, Throttled: t.throttled})
		*t = shardTally{}
	}
	q.feedbackBuf = fb
	if q.c.Scheduler.Feedback(q.f.m, fb, throttled, r.sentAt, now) {
		q.f.out.RateCuts++
	}
}

// requestFailed handles a request that failed as a whole. A rejected request's records are given
// up; otherwise, if the policy allows, the records are kept to be sent again, and the flush sends
// one request at a time until one is answered (a failing endpoint is not sent the rest of the
// chunk, each request waiting for its timeout), for at most the retry window.
func (q *Queues) requestFailed(ctx context.Context, r *request, err error, now time.Time) {
	out := &q.f.out
	out.RequestErrors++
	if out.FirstErr == nil {
		out.FirstErr = err
	}
	code := kinesis.ErrorCode(err)
	out.Codes.add(code, len(r.spans))
	throttled := kinesis.IsThrottlingCode(code)
	if throttled {
		out.Throttled += int64(len(r.spans))
	}
	for _, s := range r.spans {
		if s.attempt == 1 {
			out.FirstFailed++
		}
	}
	if throttled {
		q.touched = q.touched[:0]
		for _, s := range r.spans {
			if s.dest == NoShard || q.f.m == nil {
				continue
			}
			if t := &q.perShard[s.dest]; !t.seen {
				t.seen, t.throttled = true, true
				q.touched = append(q.touched, s.dest)
			}
		}
		q.feedback(r, true, now)
	}
	class := kinesis.Classify(err)
	if class == kinesis.ClassRejected {
		if out.RejectErr == nil {
			out.RejectErr, out.RejectShape = err, requestShape(r.spans)
		}
		for _, s := range r.spans {
			q.rejected = append(q.rejected, s.events)
		}
		q.recycle(r)
		return
	}
	if q.c.Retry.CheckRetry(ctx, class) {
		if !q.f.probing {
			q.f.probing, q.f.probeEnd = true, now.Add(q.c.Retry.Window)
		}
	} else {
		q.stopWith(class, err)
	}
	attempt := 0
	for _, s := range r.spans {
		attempt = max(attempt, s.attempt)
	}
	if q.f.probeAt = q.resend(ctx, r, now); q.f.probeAt.IsZero() {
		// The records were given up; the endpoint still gets its backoff before the next probe.
		q.f.probeAt = now.Add(q.c.Retry.Backoff(attempt + 1))
	}
}

// requestShape describes a request without its data: records, bytes, the largest record and the
// partition keys' lengths.
func requestShape(spans []span) string {
	size, largest, minKey, maxKey := 0, 0, 0, 0
	for i, s := range spans {
		size += s.size()
		largest = max(largest, s.size())
		if k := len(s.key); i == 0 || k < minKey {
			minKey = k
		}
		maxKey = max(maxKey, len(s.key))
	}
	return fmt.Sprintf("%d records, %d bytes, largest record %d bytes, partition keys of %d to %d bytes",
		len(spans), size, largest, minKey, maxKey)
}

// stopWith makes the flush send nothing more, because of an error of class (err, when known).
func (q *Queues) stopWith(class kinesis.ErrorClass, err error) {
	if out := &q.f.out; !out.Stopped {
		out.Stopped, out.StopClass, out.StopErr = true, class, err
	}
}

// resend queues r, whose records all failed, to be sent again after the policy's backoff, or
// gives up those the policy does not let go again: after their last attempt, or when their retry
// window (from their first failure), or ctx's deadline, would end before the backoff does. With partition_key, r goes
// back to its queue's front (joined with the next request when both fit in one), and a record
// given up gives up every later record of its queue; otherwise it goes to the back. It returns
// when the resend may go, zero when nothing is to be resent.
func (q *Queues) resend(ctx context.Context, r *request, now time.Time) time.Time {
	pol := &q.c.Retry
	g := &q.queues[r.queue]
	if q.f.out.Stopped || g.gaveUp {
		q.giveUp(r)
		return time.Time{}
	}
	since := now.Sub(q.f.start)
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
	if q.f.ordered {
		for _, s := range r.spans {
			if last(s) {
				// Nothing of the queue goes after a record given up: the chunk's retry sends
				// them in order.
				q.giveUp(r)
				q.giveUpQueue(g)
				return time.Time{}
			}
		}
	}
	var c compactor
	for _, s := range r.spans {
		if last(s) {
			q.givenUp = append(q.givenUp, s.events)
			continue
		}
		c.keep(r, s)
	}
	if !c.done(r) {
		q.recycle(r)
		return time.Time{}
	}
	r.notBefore = now.Add(wait)
	at := r.notBefore
	if q.f.ordered {
		if len(g.ready) > 0 && q.join(r, g.ready[0]) {
			g.ready[0] = r
		} else {
			g.ready = append(g.ready, nil)
			copy(g.ready[1:], g.ready)
			g.ready[0] = r
		}
		return at
	}
	if last := len(g.ready) - 1; last >= 0 && !g.ready[last].notBefore.IsZero() && q.join(g.ready[last], r) {
		g.ready[last].notBefore = maxTime(g.ready[last].notBefore, at)
		return at
	}
	g.ready = append(g.ready, r)
	return at
}

// join appends next's records to r when they fit in one request, recycles next, and reports
// whether it did.
func (q *Queues) join(r, next *request) bool {
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
	q.recycle(next)
	return true
}

// giveUp gives up r's records: they are not delivered by this flush.
func (q *Queues) giveUp(r *request) {
	for _, s := range r.spans {
		q.givenUp = append(q.givenUp, s.events)
		if s.attempt == 0 {
			q.notSent()
		}
	}
	q.recycle(r)
}

// giveUpQueue gives up every record g holds and every record committed to it from now on.
func (q *Queues) giveUpQueue(g *queue) {
	g.gaveUp = true
	for _, r := range g.ready {
		q.giveUp(r)
	}
	g.ready = g.ready[:0]
	if r := g.open; r != nil {
		for _, s := range r.spans {
			q.givenUp = append(q.givenUp, s.events)
			q.notSent()
		}
		// The buffer stays: the flush may be adding a record to it.
		clear(r.spans)
		r.spans, r.size = r.spans[:0], 0
		clear(g.shardBytes)
	}
}

// giveUpQueued gives up the records of every sealed request not started.
func (q *Queues) giveUpQueued() {
	for i := range q.queues {
		g := &q.queues[i]
		for _, r := range g.ready {
			q.giveUp(r)
		}
		g.ready = g.ready[:0]
	}
}

// releaseQueues returns the queues' open requests, empty at the end of a flush, to the pool.
func (q *Queues) releaseQueues() {
	for i := range q.queues {
		g := &q.queues[i]
		if g.open != nil {
			q.recycle(g.open)
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
