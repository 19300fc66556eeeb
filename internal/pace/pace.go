// Package pace decides when a request may go: a Scheduler bounds the requests of an instance in
// flight together (all its workers' flushes), and, from the stream's shard map, keeps each shard
// under its write limits with a token bucket whose rate adapts to Kinesis's answers (it is cut when
// a shard throttles and grows back as it accepts), as the KPL paces its shards.
//
// It sends nothing and knows nothing of records: package requests tells it what each request takes
// from each shard before it starts (TryStart), when it is answered (Done), and what the answer said
// of each shard (Feedback); package shards gives it each shard map listed (SetMap).
package pace

import (
	"sync"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// The pacing of a shard adapts to Kinesis's answers as TCP's congestion control does (additive
// increase, multiplicative decrease): the shard's rate, a fraction of its limits, is cut by
// paceDecrease when Kinesis throttles it (at most once per round trip: only for a request sent
// after the last cut), and grows back by paceIncrease for each second's worth of records it
// accepts. The floor keeps a throttled shard moving.
const (
	paceDecrease = 0.8
	paceIncrease = 0.25
	paceFloor    = 0.1
)

// Charge is what a request takes from one shard's budget.
type Charge struct {
	Shard          int // index in the shard map
	Records, Bytes int
}

// bucket is a token bucket of one shard: records and bytes, refilled at rate times the shard's
// limits, holding at most one second's worth at that rate. Tokens may go below zero: a request
// larger than a second's worth goes when the bucket is full, and the next one waits.
type bucket struct {
	id             string // the shard's ID, to carry its state over to a new shard map
	records, bytes float64
	at             time.Time // when the tokens were counted
	rate           float64   // in (0, 1]: the fraction of the shard's limits it is sent at
	cutAt          time.Time // when the rate was last cut
}

func (b *bucket) capRecords() float64 { return b.rate * limits.ShardRecordsPerSecond }
func (b *bucket) capBytes() float64   { return b.rate * limits.ShardBytesPerSecond }

// refill adds the tokens earned since b.at.
func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.records = min(b.capRecords(), b.records+dt*b.capRecords())
		b.bytes = min(b.capBytes(), b.bytes+dt*b.capBytes())
	}
	b.at = now
}

// wait returns how long until b holds what c needs (or is full, for a charge larger than the
// bucket): 0 when it does now. refill first.
func (b *bucket) wait(c Charge) time.Duration {
	needR := min(float64(c.Records), b.capRecords()) - b.records
	needB := min(float64(c.Bytes), b.capBytes()) - b.bytes
	secs := max(needR/b.capRecords(), needB/b.capBytes(), 0)
	if secs == 0 {
		return 0
	}
	return time.Duration(secs*float64(time.Second)) + time.Millisecond // round up past the float error
}

// Scheduler is a pool's bound on requests in flight (shared by its flushes) and its per-shard
// pacing. Flushes ask it before starting a request (TryStart), tell it when a request is answered
// (Done) and what Kinesis said of each shard (Feedback).
//
// Without a shard map there is no per-shard pacing; throttling then halves the number of requests
// in flight instead (down to one), and each answer without throttling raises it by 1/limit (one
// more request per round trip), up to max.
type Scheduler struct {
	max int

	mu       sync.Mutex
	inflight int
	limit    float64       // the bound now: max, or less after throttling without a shard map
	cutAt    time.Time     // when limit was last cut
	wake     chan struct{} // closed at the next slot freed; made when a flush waits for one
	m        *kpl.ShardMap // the map buckets belongs to
	buckets  []bucket
	// The map before m, and where each of its shards is in buckets (-1: gone): flushes that began
	// before the last listing (every refresh lists a new map, most often of the same shards) stay
	// paced until they end.
	prev    *kpl.ShardMap
	prevIdx []int
}

// New returns a scheduler of at most max requests in flight, without a shard map.
func New(max int) *Scheduler {
	return &Scheduler{max: max, limit: float64(max)}
}

// SetMap makes m the map that requests are paced by; shards it shares with the previous map (by
// ID) keep their state, and requests of flushes that began with the previous map are paced by
// them. Called when the pool lists the shards.
func (s *Scheduler) SetMap(m *kpl.ShardMap, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == s.m {
		return
	}
	old := make(map[string]*bucket, len(s.buckets))
	for i := range s.buckets {
		old[s.buckets[i].id] = &s.buckets[i]
	}
	var bs []bucket
	at := make(map[string]int)
	if m != nil {
		bs = make([]bucket, m.Len())
		for i := range bs {
			id := m.Shard(i).ID
			at[id] = i
			if o := old[id]; o != nil {
				bs[i] = *o
				continue
			}
			bs[i] = bucket{id: id, rate: 1, at: now}
			bs[i].records, bs[i].bytes = bs[i].capRecords(), bs[i].capBytes()
		}
	}
	var idx []int
	if m != nil && s.m != nil {
		idx = make([]int, len(s.buckets))
		for i, b := range s.buckets {
			idx[i] = -1
			if j, ok := at[b.id]; ok {
				idx[i] = j
			}
		}
	}
	s.prev, s.prevIdx = s.m, idx
	s.m, s.buckets = m, bs
}

// bucketOf returns the bucket of shard i of m, or nil when m is neither the map nor the one before
// it, or the shard is gone. s.mu is held.
func (s *Scheduler) bucketOf(m *kpl.ShardMap, i int) *bucket {
	switch {
	case m == nil:
		return nil
	case m == s.m:
		return &s.buckets[i]
	case m == s.prev && s.prevIdx != nil && s.prevIdx[i] >= 0:
		return &s.buckets[s.prevIdx[i]]
	}
	return nil
}

// paces reports whether requests of flushes that began with m are paced by shard.
func (s *Scheduler) paces(m *kpl.ShardMap) bool {
	return m != nil && (m == s.m || m == s.prev && s.prevIdx != nil)
}

// TryStart takes a slot and the charges' tokens for a request and returns true, or returns false
// with either the time when pacing lets the request go (the shards' tokens), or, when no slot is
// free, a channel closed at the next slot released. Charges index m; they are paced when m is the
// Scheduler's map or the one before it and their shard is in the Scheduler's map (a flush that began
// two listings ago, or a shard closed since, goes unpaced).
func (s *Scheduler) TryStart(m *kpl.ShardMap, charges []Charge, now time.Time) (ok bool, at time.Time, wake <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight >= max(1, int(s.limit)) {
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		return false, time.Time{}, s.wake
	}
	var longest time.Duration
	for _, c := range charges {
		if b := s.bucketOf(m, c.Shard); b != nil {
			b.refill(now)
			longest = max(longest, b.wait(c))
		}
	}
	if longest > 0 {
		return false, now.Add(longest), nil
	}
	for _, c := range charges {
		if b := s.bucketOf(m, c.Shard); b != nil {
			b.records -= float64(c.Records)
			b.bytes -= float64(c.Bytes)
		}
	}
	s.inflight++
	return true, time.Time{}, nil
}

// Done frees a request's slot, and wakes the flushes waiting for one.
func (s *Scheduler) Done() {
	s.mu.Lock()
	s.release()
	s.mu.Unlock()
}

// Cancel undoes a TryStart that returned true for a request that did not start: it frees the slot
// and gives the charges' tokens back (those the bucket can hold), with the same m and charges.
func (s *Scheduler) Cancel(m *kpl.ShardMap, charges []Charge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range charges {
		if b := s.bucketOf(m, c.Shard); b != nil {
			b.records = min(b.capRecords(), b.records+float64(c.Records))
			b.bytes = min(b.capBytes(), b.bytes+float64(c.Bytes))
		}
	}
	s.release()
}

func (s *Scheduler) release() {
	s.inflight--
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// Feedback is what an answer said of one shard: records accepted (and their bytes), and whether
// any was throttled.
type Feedback struct {
	Shard          int // index in the shard map
	Records, Bytes int
	Throttled      bool
}

// Feedback adapts the pacing to an answer: fb per shard of m, or, without a map (or one older than
// the one before the Scheduler's), throttled says whether any record of the request was throttled. It reports whether a rate (or
// the bound of requests in flight) was cut.
func (s *Scheduler) Feedback(m *kpl.ShardMap, fb []Feedback, throttled bool, sentAt, now time.Time) (cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paces(m) {
		switch {
		case throttled && sentAt.After(s.cutAt):
			s.limit = max(1, s.limit/2)
			s.cutAt = now
			return true
		case !throttled:
			s.limit = min(float64(s.max), s.limit+1/s.limit)
		}
		return false
	}
	for _, f := range fb {
		b := s.bucketOf(m, f.Shard)
		if b == nil {
			continue // closed since
		}
		b.refill(now)
		if f.Throttled {
			// The shard is over its limits now: no more until it earns tokens again.
			b.records, b.bytes = min(b.records, 0), min(b.bytes, 0)
			if sentAt.After(b.cutAt) {
				b.rate = max(paceFloor, b.rate*paceDecrease)
				b.cutAt = now
				cut = true
			}
			continue
		}
		share := max(float64(f.Records)/limits.ShardRecordsPerSecond, float64(f.Bytes)/limits.ShardBytesPerSecond)
		b.rate = min(1, b.rate+paceIncrease*share)
	}
	return cut
}
