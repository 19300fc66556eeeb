// Package requests owns a flush's PutRecords requests from the moment a record is committed to
// one until every record is answered: the queues of requests (the open one being filled, the
// sealed ones waiting), the requests in flight, each on a goroutine that only calls the Putter,
// the answers, matched to the records by index, the resends of only what Kinesis did not accept
// (the Retry policy), and giving up. It keeps the order of a partition key's records when asked
// (one request in flight per queue, failed records back to the queue's front), and tells the
// pool's pace.Scheduler what each request takes from its shards and what the answer said of them.
//
// It does not encode, compress, aggregate or choose partition keys (package batcher does, and
// hands it each Kinesis record's bytes and key), nor know what the records' events are: a Record
// carries its Events as the flush numbers them, and the Outcome hands them back, given up or
// rejected, for the flush's result and its ledger.
package requests

import (
	"context"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// Putter sends one PutRecords request; *kinesis.Client is one. The entries' Data is only valid
// until PutRecords returns: an implementation that keeps it must copy it.
type Putter interface {
	PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error)
}

var _ Putter = (*kinesis.Client)(nil)

// NoShard is the shard of a record sent without an explicit hash key (routed by its partition
// key), and the destination of a record when the flush has no shard map.
const NoShard = -1

// Events are the events a Kinesis record carries, as the flush numbers them (First is an index
// into the flush's own list; one record may carry several events when aggregated). The queues
// count N for the accepted records and hand the others back in the Outcome.
type Events struct{ First, N int }

// Record is a Kinesis record committed to a queue: its partition key, the shard of the flush's
// map whose explicit hash key it is sent with (NoShard for none), the shard it goes to, for
// pacing (NoShard when unknown), and its events.
type Record struct {
	Key         string
	Shard, Dest int
	Events      Events
}

// span locates one Kinesis record to send in its request's buffer. A Kinesis record is accepted,
// failed, resent (the same bytes) or rejected as a unit, and so are its events.
type span struct {
	off, n  int
	key     string
	shard   int // the shard of the flush's map whose explicit hash key it is sent with, or NoShard
	dest    int // the shard of the flush's map it goes to (paced by), or NoShard without a map
	events  Events
	attempt int // the times it was sent
	// retryEnd is when its resends must have started, counted from the flush's start: set at its
	// first failure, 0 before.
	retryEnd time.Duration
}

func (s span) size() int { return s.n + len(s.key) } // kinesis.Entry.Size

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

// Config is what a pool gives the queues of each of its flushes.
type Config struct {
	Putter    Putter
	Scheduler *pace.Scheduler // shared by the pool's flushes: slots and per-shard pacing
	Buffers   *Buffers
	Senders   *Senders // nil: a new goroutine for each request
	Retry     Retry    // with every field set (Retry.WithDefaults)
	// MaxQueues bounds the queues of an ordered flush: the pool's bound of requests in flight.
	MaxQueues int
	// Resharded is told when Kinesis put a record sent with the explicit hash key of shard wantID
	// of m in another shard, gotID: the stream's shards have changed since m was listed.
	Resharded func(m *kpl.ShardMap, wantID, gotID string)
}

// Counts are what the requests of one flush did, for the pool's totals (see batcher.Stats).
type Counts struct {
	Requests        int64 // PutRecords requests sent
	RequestErrors   int64 // requests that failed as a whole
	RequestsPartial int64 // requests answered with some records not accepted
	RecordsSent     int64 // Kinesis records in the requests sent, resends included
	BytesSent       int64 // their size (data + partition key)
	Throttled       int64 // Kinesis record sends refused for throttling (each attempt counts)
	Resent          int64 // Kinesis records sent again within the flush
	RequestsPaced   int64 // requests that waited for their shards' pacing before they went
	RateCuts        int64 // times throttling cut a shard's pace (or the requests in flight)
}

// Outcome is what became of a flush's records once every request is answered.
type Outcome struct {
	Accepted int // events accepted
	// GivenUp are the records not delivered (their attempts, their retry window or the flush
	// ended), to be sent by the chunk's next flush; Rejected those in requests Kinesis refused as
	// invalid. Both are valid until the next Begin.
	GivenUp, Rejected []Events

	FirstSent   int // records sent a first time, or given up unsent
	FirstFailed int // of those, the records whose first send failed (or that were not sent)
	MaxAttempt  int // the most times a record was sent
	Codes       Codes
	FirstErr    error  // the first request error
	RejectErr   error  // the first request error of class rejected
	RejectShape string // the shape of its request (see requestShape)
	// Stopped is set when the flush stopped sending (the policy refused a resend, the retry
	// window after a failed request ended, or the context was done), because of StopClass and,
	// when known, StopErr.
	Stopped   bool
	StopClass kinesis.ErrorClass
	StopErr   error
	Counts
}

// flushState is what the queues know of the flush in progress. Begin resets it by assignment.
type flushState struct {
	start   time.Time
	ordered bool          // partition_key: each queue has at most one request in flight
	m       *kpl.ShardMap // nil without a shard map

	inflight      int       // requests started and not yet handled
	probing       bool      // a request failed as a whole: one request at a time until one is answered
	probeEnd      time.Time // nothing starts after it while probing (the retry window)
	probeAt       time.Time // no probe starts before it: the last failed request's backoff
	shardsChanged bool      // the flush found its shard map out of date, see checkShard

	out Outcome
}

// Queues sends one flush's requests, several at once, and resends the records Kinesis did not
// accept. It belongs to one flush at a time; its buffers are reused from flush to flush.
//
// Records are committed to queues (see queue): one for the whole flush when order does not
// matter, one per group of shards (by shard, or by hash of the partition key without a shard
// map) when it does, where a group has at most one request in flight so that a key's records
// reach their shard in order. A queue's open request is filled until the next record would break
// a limit, then sealed, and sealed requests go as soon as the pool's scheduler gives them a slot
// and their shards' pacing allows. Each request goroutine only calls the Putter, hands the request
// back on q.answers and frees its slot of the pool's scheduler (waking the flush when it waits
// quietly, see waitQuietly): everything else belongs to the flush's own goroutine, which handles
// answers between records (in Commit) and, at the end (Finish), until every request it started
// is answered.
type Queues struct {
	c        Config
	queues   []queue
	answers  chan *request
	free     []*request // requests without a buffer, reused
	nextPump int        // the queue pump looks at first, so that every queue gets its turn

	// The quiet wait of drain (see waitQuietly): the requests started and not yet answered, counted
	// by their goroutines; whether the flush waits quietly; and the token that wakes it.
	unanswered atomic.Int32
	quietWait  atomic.Bool
	quiet      chan struct{}

	// Scratch of the charges and feedback of one request, per shard of the flush's map.
	perShard    []shardTally
	touched     []int
	feedbackBuf []pace.Feedback

	givenUp, rejected []Events // the Outcome's, reused from flush to flush

	f flushState
}

// shardTally adds up a request's records per shard.
type shardTally struct {
	records, bytes int
	throttled      bool
	seen           bool // listed in q.touched
}

// New returns the queues of one flush at a time.
func New(c Config) *Queues { return &Queues{c: c} }

// mapSeed hashes partition keys to queues when there is no shard map.
var mapSeed = maphash.MakeSeed()

// Begin readies the queues of a flush with the shard map m (nil without one): one when order does
// not matter; when ordered (partition_key), one per shard of the map up to MaxQueues (shards
// share queues beyond), or MaxQueues queues by hash of the key without a map.
func (q *Queues) Begin(ordered bool, m *kpl.ShardMap) {
	q.f = flushState{start: time.Now(), ordered: ordered, m: m}
	q.givenUp, q.rejected = q.givenUp[:0], q.rejected[:0]
	n := 1
	if ordered {
		n = q.c.MaxQueues
		if m != nil {
			n = min(n, m.Len())
		}
	}
	if cap(q.queues) < n {
		q.queues = make([]queue, n)
	}
	q.queues = q.queues[:n]
	shards := 0
	if m != nil {
		shards = m.Len()
	}
	for i := range q.queues {
		g := &q.queues[i]
		*g = queue{ready: g.ready[:0], shardBytes: g.shardBytes}
		if cap(g.shardBytes) < shards {
			g.shardBytes = make([]int, shards)
		}
		g.shardBytes = g.shardBytes[:shards]
		clear(g.shardBytes)
	}
	if len(q.perShard) < shards {
		q.perShard = make([]shardTally, shards)
	}
	if cap(q.answers) < q.c.MaxQueues {
		q.answers = make(chan *request, q.c.MaxQueues)
	}
	if q.quiet == nil {
		q.quiet = make(chan struct{}, 1)
	}
	select {
	case <-q.quiet: // a token left by the previous flush
	default:
	}
}

// Len is the number of queues of the flush.
func (q *Queues) Len() int { return len(q.queues) }

// Of returns the queue of a record whose key goes to shard dest (NoShard without a map).
func (q *Queues) Of(key string, dest int) int {
	n := len(q.queues)
	switch {
	case n == 1:
		return 0
	case dest != NoShard:
		return dest % n
	}
	return int(maphash.String(mapSeed, key) % uint64(n))
}

// Buf returns the buffer of queue i's open request, for the flush to append one Kinesis record's
// data to, then Commit it, or cut the buffer back to its length before. It is valid until the
// next Commit.
func (q *Queues) Buf(i int) *[]byte { return &q.open(i).buf }

// open returns queue i's open request, with a buffer.
func (q *Queues) open(i int) *request {
	g := &q.queues[i]
	if g.open == nil {
		g.open = q.newRequest(i)
	}
	return g.open
}

// newRequest returns an empty request of queue i, with a buffer from the pool.
func (q *Queues) newRequest(i int) *request {
	var r *request
	if n := len(q.free); n > 0 {
		r, q.free = q.free[n-1], q.free[:n-1]
	} else {
		r = &request{}
	}
	r.queue, r.buf = i, q.c.Buffers.get()
	return r
}

// recycle returns r's buffer to the pool and keeps r for another request.
func (q *Queues) recycle(r *request) {
	q.c.Buffers.put(r.buf)
	clear(r.spans) // keep no partition key alive
	*r = request{spans: r.spans[:0], charges: r.charges[:0], entries: r.entries[:0]}
	q.free = append(q.free, r)
}

// Commit makes the bytes of queue i's open buffer from start on (see Buf) a Kinesis record,
// rec. The open request is sealed first when the record would make it break one of its limits,
// or, with a shard map, carry more than a second's worth of bytes for the record's shard (Dest);
// sealed requests are started as they may go, and the answers that arrived are handled. When the
// flush has stopped sending, or the queue gave up (ordered), the record is given up unsent.
func (q *Queues) Commit(ctx context.Context, i, start int, rec Record) {
	g := &q.queues[i]
	r := g.open
	n := len(r.buf) - start
	size := n + len(rec.Key) // kinesis.Entry.Size
	if len(r.spans) > 0 && (len(r.spans) == limits.MaxRecordsPerRequest || r.size+size > limits.MaxRequestBytes ||
		(rec.Dest != NoShard && g.shardBytes[rec.Dest]+size > limits.ShardBytesPerSecond)) {
		// The new record becomes the first of the next request.
		next := q.newRequest(i)
		next.buf = append(next.buf, r.buf[start:]...)
		r.buf = r.buf[:start]
		g.open = next
		q.seal(g, r)
		r, start = next, 0
		q.pump(ctx)
		q.limitBacklog(ctx)
	} else if len(q.answers) > 0 {
		q.pump(ctx) // free the answered requests' slots
	}
	if q.f.out.Stopped || g.gaveUp {
		r.buf = r.buf[:start]
		q.givenUp = append(q.givenUp, rec.Events)
		q.notSent()
		return
	}
	r.spans = append(r.spans, span{off: start, n: n, key: rec.Key, shard: rec.Shard, dest: rec.Dest, events: rec.Events})
	r.size += size
	if rec.Dest != NoShard {
		g.shardBytes[rec.Dest] += size
	}
}

// notSent counts a record given up before it was ever sent.
func (q *Queues) notSent() {
	q.f.out.Codes.add("not sent", 1)
	q.f.out.FirstSent++
	q.f.out.FirstFailed++
}

// Finish seals the open requests, sends everything sealed and handles answers until every record
// is answered or given up, and returns what became of the records. It keeps no shard map or error
// of the flush.
func (q *Queues) Finish(ctx context.Context) Outcome {
	for i := range q.queues {
		g := &q.queues[i]
		if g.open != nil && len(g.open.spans) > 0 {
			r := g.open
			g.open = nil
			q.seal(g, r)
		}
	}
	q.drain(ctx)
	q.releaseQueues()
	out := q.f.out
	out.GivenUp, out.Rejected = q.givenUp, q.rejected
	q.f = flushState{}
	return out
}

// Pending returns the requests sealed and not started, and those in flight: both 0 once Finish
// has returned.
func (q *Queues) Pending() (queued, inflight int) { return q.queuedRequests(), q.f.inflight }

// seal queues r, no longer open, to be sent after the requests sealed before it.
func (q *Queues) seal(g *queue, r *request) {
	clear(g.shardBytes)
	if len(r.spans) == 0 {
		q.recycle(r)
		return
	}
	g.ready = append(g.ready, r)
}

// packAhead reports whether the flush may pack more before some of its sealed requests go: it packs
// ahead of what it can send (the next request of each queue, and one more), so that encoding
// overlaps the requests in flight, but no further, which bounds the buffers a flush holds.
func (q *Queues) packAhead() bool { return q.queuedRequests() <= len(q.queues)+1 }

// limitBacklog waits, while the flush may not pack ahead, for some of its sealed requests to go.
func (q *Queues) limitBacklog(ctx context.Context) {
	for !q.packAhead() && !q.f.out.Stopped {
		at, wake := q.pump(ctx)
		if q.packAhead() {
			return
		}
		if !q.wait(ctx, at, wake) {
			return
		}
	}
}

// drain sends everything sealed, and handles answers, until every record is answered or given up.
func (q *Queues) drain(ctx context.Context) {
	for {
		at, wake := q.pump(ctx)
		if q.f.inflight == 0 && q.queuedRequests() == 0 {
			return
		}
		if !q.wait(ctx, at, wake) && q.f.inflight == 0 {
			q.giveUpQueued() // nothing can wake the flush: give up rather than hang
			return
		}
	}
}

func (q *Queues) queuedRequests() int {
	n := 0
	for i := range q.queues {
		n += len(q.queues[i].ready)
	}
	return n
}

// wait blocks until something may let the flush go on: an answer (which it handles), the time at
// (when not zero), wake closed (a slot freed), or ctx done (the flush stops sending). It reports
// false when there was nothing to wait for.
func (q *Queues) wait(ctx context.Context, at time.Time, wake <-chan struct{}) bool {
	var timer <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		timer = t.C
	}
	done := ctx.Done()
	if q.f.out.Stopped {
		done = nil // already stopped: only answers matter
	}
	if timer == nil && wake == nil && q.f.inflight == 0 && done == nil {
		return false
	}
	if timer == nil && wake == nil && q.queuedRequests() == 0 {
		q.waitQuietly(ctx, done)
		return true
	}
	select {
	case r := <-q.answers:
		q.answer(ctx, r)
	case <-timer:
	case <-wake:
	case <-done:
		q.stopWith(kinesis.Classify(ctx.Err()), ctx.Err())
	}
	return true
}

// waitQuietly waits, when the flush has nothing to start until answers come (no request sealed and
// waiting, no backoff, no pacing), for the answers that need it: one that failed in part or as a
// whole (records to send again), or the last one in flight; or for ctx done. The answers that came
// meanwhile are handled by the caller's next pump.
//
// Waking the flush for every answer, as wait does, hands its goroutine to Fluent Bit's thread and
// back each time (the goroutine of a call from C runs only on that thread): in real Fluent Bit, a
// chunk's dozen requests cost a dozen such hand-offs where one does. The slots of the pool's
// scheduler are freed by the requests' goroutines (start), so other flushes waiting for one do not
// wait for this flush to wake.
func (q *Queues) waitQuietly(ctx context.Context, done <-chan struct{}) {
	q.quietWait.Store(true)
	defer q.quietWait.Store(false)
	// An answer sent before quietWait was set did not wake the flush: it is in q.answers.
	if len(q.answers) > 0 || q.unanswered.Load() == 0 {
		return
	}
	select {
	case <-q.quiet:
	case <-done:
		q.stopWith(kinesis.Classify(ctx.Err()), ctx.Err())
	}
}

// closedChan is a wake that is already due.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// pump handles the answers that arrived, then starts every sealed request that may go now, queue
// by queue. It returns when it can start nothing more, with what may change that: the time at
// which a backoff or a shard's pacing ends (zero if none), and wake, closed when the pool frees a
// slot (nil when slots were not what was missing).
func (q *Queues) pump(ctx context.Context) (at time.Time, wake <-chan struct{}) {
	for len(q.answers) > 0 {
		q.answer(ctx, <-q.answers)
	}
	if err := ctx.Err(); err != nil && !q.f.out.Stopped { // a cancelled flush sends nothing more
		q.stopWith(kinesis.Classify(err), err)
	}
	if q.f.out.Stopped {
		q.giveUpQueued()
		return time.Time{}, nil
	}
	now := time.Now()
	if q.f.probing && now.After(q.f.probeEnd) {
		// The retry window after a failed request is over: leave the rest to Fluent Bit's retry.
		q.stopWith(kinesis.ClassRetryable, nil)
		q.giveUpQueued()
		return time.Time{}, nil
	}
	later := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	n := len(q.queues)
	q.nextPump++
	for i := range n {
		g := &q.queues[(q.nextPump+i)%n]
		for len(g.ready) > 0 {
			if q.f.probing && q.f.inflight > 0 {
				return at, nil // the answer ends or prolongs the probing
			}
			if q.f.probing && q.f.probeAt.After(now) {
				return q.f.probeAt, nil // the next probe waits the failed one's backoff
			}
			if q.f.ordered && g.busy > 0 {
				break
			}
			j := -1
			for k, r := range g.ready {
				if !r.notBefore.After(now) {
					j = k
					break
				}
				later(r.notBefore)
				if q.f.ordered {
					break // the queue's head waits, and everything after it
				}
			}
			if j < 0 {
				break
			}
			r := g.ready[j]
			charges := q.chargesOf(r)
			ok, when, w := q.c.Scheduler.TryStart(q.f.m, charges, now)
			if ok && len(q.answers) > 0 {
				// The slot may be one freed by an answer of this flush not yet handled (its
				// goroutine sends the answer, then frees the slot), and that answer may stop
				// the flush: handle it first, as one request at a time must.
				q.c.Scheduler.Cancel(q.f.m, charges)
				return at, closedChan
			}
			if !ok {
				if w != nil {
					return at, w // no slot: nothing else can start
				}
				if !r.paced {
					r.paced = true
					q.f.out.RequestsPaced++
				}
				later(when)
				break // this queue waits for its shards; others may go
			}
			g.ready = append(g.ready[:j], g.ready[j+1:]...)
			q.start(ctx, r, now)
		}
	}
	return at, nil
}

// chargesOf returns what r takes from its shards' budgets: its records and bytes per shard.
func (q *Queues) chargesOf(r *request) []pace.Charge {
	r.charges = r.charges[:0]
	if q.f.m == nil {
		return r.charges
	}
	q.touched = q.touched[:0]
	for _, s := range r.spans {
		if s.dest == NoShard {
			continue
		}
		t := &q.perShard[s.dest]
		if !t.seen {
			t.seen = true
			q.touched = append(q.touched, s.dest)
		}
		t.records++
		t.bytes += s.size()
	}
	for _, d := range q.touched {
		t := &q.perShard[d]
		r.charges = append(r.charges, pace.Charge{Shard: d, Records: t.records, Bytes: t.bytes})
		*t = shardTally{}
	}
	return r.charges
}

// start sends r on a sender goroutine, which hands it back on q.answers once answered, then frees
// its scheduler slot.
func (q *Queues) start(ctx context.Context, r *request, now time.Time) {
	m := q.f.m
	out := &q.f.out
	entries := r.entries[:0]
	for i := range r.spans {
		s := &r.spans[i]
		// Cap each slice at its end, so that no Putter can append over the next record.
		e := kinesis.Entry{Data: r.buf[s.off : s.off+s.n : s.off+s.n], PartitionKey: s.key}
		if s.shard != NoShard {
			e.ExplicitHashKey = m.Shard(s.shard).ExplicitHashKey()
		}
		entries = append(entries, e)
		s.attempt++
		if s.attempt == 1 {
			out.FirstSent++
		} else {
			out.Resent++
		}
		out.MaxAttempt = max(out.MaxAttempt, s.attempt)
	}
	r.entries, r.sentAt = entries, now
	q.f.inflight++
	q.queues[r.queue].busy++
	out.Requests++
	out.RecordsSent += int64(len(r.spans))
	out.BytesSent += int64(r.size)
	putter, answers, sched := q.c.Putter, q.answers, q.c.Scheduler
	q.unanswered.Add(1)
	q.c.Senders.run(func() {
		r.res, r.err = putter.PutRecords(ctx, r.entries)
		act := r.err != nil || r.res.FailedCount > 0 // r is the flush's once sent back
		select {
		case answers <- r:
		default:
			// The flush has more answers to handle than q.answers holds (its slots are freed
			// here, before it handles them): wake it from a quiet wait to make room.
			q.wakeQuiet()
			answers <- r
		}
		// The slot is freed after the answer is queued: a flush that takes the slot then sees
		// the answer (pump), and handles it before starting another request.
		sched.Done()
		if last := q.unanswered.Add(-1) == 0; (last || act) && q.quietWait.Load() {
			q.wakeQuiet()
		}
	})
}

// wakeQuiet wakes the flush from waitQuietly, or from its next one; a request's goroutine calls it.
func (q *Queues) wakeQuiet() {
	select {
	case q.quiet <- struct{}{}:
	default: // a token is there already
	}
}
