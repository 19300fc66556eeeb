package batcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// Tests of requests in flight together: the bound, order per key, cancellation, pacing.

// inflightPutter answers after a delay, counting the requests in flight (the peak too), and
// checks that no two requests in flight carry records of one shard (of m, when shards is set) or,
// without, of one partition key. It records, per key, the records it accepted, in the order it
// accepted them. It fails each request with probability wholeP (a connection reset), and throttles
// a shard (of m) in a request with probability failP: from a record on, as Kinesis throttles a
// shard over its limits, the shard's later records in the request too. Its PRNG is seeded.
type inflightPutter struct {
	t       *testing.T
	delay   time.Duration
	m       *kpl.ShardMap // the stream's shards
	shards  bool          // the plugin knows m: check shards, not keys
	ordered bool          // check the order invariants
	failP   float64
	wholeP  float64
	// gate, when set, holds every request until gate requests are in flight together (or 5 s
	// passed), then lets them all go after delay.
	gate    int
	reached chan struct{}
	opened  bool
	// stubborn records (by seq) are throttled the first stubborn times they are sent.
	stubborn  map[int]int
	sentTimes map[int]int

	mu       sync.Mutex
	rng      *rand.Rand
	inflight int
	peak     int
	busy     map[string]int // shards (or keys) of the requests in flight
	accepted map[string][]int
	requests int
}

func newInflightPutter(t *testing.T, delay time.Duration, seed uint64) *inflightPutter {
	return &inflightPutter{t: t, delay: delay, m: fourShards(t), rng: rand.New(rand.NewPCG(seed, seed)),
		busy: map[string]int{}, accepted: map[string][]int{}}
}

// unit is what must not be in two requests in flight: the record's shard, or its key.
func (f *inflightPutter) unit(e kinesis.Entry) string {
	if !f.shards {
		return e.PartitionKey
	}
	return f.m.Shard(f.m.Lookup(e.PartitionKey)).ID
}

func (f *inflightPutter) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	units := map[string]bool{}
	for _, e := range entries {
		units[f.unit(e)] = true
	}
	f.mu.Lock()
	f.requests++
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	if f.ordered {
		for u := range units {
			if f.busy[u] > 0 {
				f.t.Errorf("two requests in flight carry records of %q", u)
			}
			f.busy[u]++
		}
	}
	whole := f.rng.Float64() < f.wholeP
	if f.gate > 0 && f.inflight == f.gate && f.peak == f.gate && !f.opened {
		f.opened = true
		close(f.reached)
	}
	f.mu.Unlock()

	if f.gate > 0 {
		select {
		case <-f.reached:
		case <-time.After(5 * time.Second):
		}
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if f.ordered {
		for u := range units {
			f.busy[u]--
		}
	}
	if err := ctx.Err(); err != nil {
		return kinesis.PutResult{}, err
	}
	if whole {
		return kinesis.PutResult{}, errors.New("injected connection reset")
	}
	res := kinesis.PutResult{ErrorCodes: make([]string, len(entries))}
	// Per shard of the request: -1, or the index of its first record to throttle.
	from := map[int]int{}
	for i, e := range entries {
		var rec struct {
			K   string
			Seq int
		}
		if err := json.Unmarshal(e.Data, &rec); err != nil {
			f.t.Errorf("record %q: %v", e.Data, err)
			continue
		}
		shard := f.m.Lookup(e.PartitionKey)
		if _, ok := from[shard]; !ok {
			from[shard] = -1
			if f.rng.Float64() < f.failP {
				from[shard] = i + f.rng.IntN(len(entries)-i)
			}
		}
		if f.sentTimes != nil {
			f.sentTimes[rec.Seq]++
			if f.sentTimes[rec.Seq] <= f.stubborn[rec.Seq] && (from[shard] < 0 || from[shard] > i) {
				from[shard] = i
			}
		}
		if at := from[shard]; at >= 0 && i >= at {
			res.ErrorCodes[i] = kinesis.CodeThroughputExceeded
			res.FailedCount++
			continue
		}
		f.accepted[rec.K] = append(f.accepted[rec.K], rec.Seq)
	}
	return res, nil
}

// seqChunk returns n events {"k": key, "seq": i} with keys cycling over keys distinct values.
func seqChunk(n, keys int) []byte {
	var chunk []byte
	for i := range n {
		seq := []byte{0xce, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} // msgpack uint32
		chunk = append(chunk, event(uint32(i), 0, msgMap("k", fmt.Sprint("key-", i%keys), "seq", seq))...)
	}
	return chunk
}

// TestInFlightBound: concurrent flushes of one pool never have more requests in flight than
// MaxInFlight, and do reach it; every record is delivered once.
func TestInFlightBound(t *testing.T) {
	t.Parallel()
	for _, bound := range []int{1, 4, 16} {
		t.Run(fmt.Sprint("max_in_flight=", bound), func(t *testing.T) {
			t.Parallel()
			f := newInflightPutter(t, 10*time.Millisecond, 1)
			f.gate, f.reached = bound, make(chan struct{})
			p := NewPool(f, Options{MaxInFlight: bound})
			chunk := seqChunk(5000, 5000) // 10 requests
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					if res, err := p.Flush(context.Background(), chunk, "t"); err != nil || res.Accepted != 5000 {
						t.Errorf("Flush = %+v, %v", res, err)
					}
				})
			}
			wg.Wait()
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.peak != bound {
				t.Errorf("peak of %d requests in flight, want %d", f.peak, bound)
			}
			n := 0
			for _, seqs := range f.accepted {
				n += len(seqs)
				if len(seqs) != 3 {
					t.Fatalf("a record accepted %d times, want 3 (once per flush)", len(seqs))
				}
			}
			if n != 15000 {
				t.Errorf("%d records accepted, want 15000", n)
			}
		})
	}
}

// TestOrderPerKey: with partition_key, each key's records are accepted in the chunk's order,
// under throttling and request failures, across the flushes again of a chunk not fully delivered
// (as Fluent Bit retries it), with and without a shard map; no two requests in flight share a
// shard (or a key, without a map); every record is accepted exactly once.
func TestOrderPerKey(t *testing.T) {
	t.Parallel()
	for _, withMap := range []bool{true, false} {
		t.Run(fmt.Sprint("shard map ", withMap), func(t *testing.T) {
			t.Parallel()
			const records, keys = 6000, 37
			f := newInflightPutter(t, time.Millisecond, 7)
			f.ordered, f.failP, f.wholeP = true, 0.2, 0.03
			// Two records fail every send of the first flush: it gives them up, and what follows
			// them in their queue.
			f.stubborn, f.sentTimes = map[int]int{1234: 3, 4321: 3}, map[int]int{}
			o := Options{PartitionKey: mustKeyPath(t, "k"), MaxInFlight: 8,
				Retry: requests.Retry{MaxAttempts: 3, Window: time.Minute, Backoff: func(int) time.Duration { return 0 }}}
			if withMap {
				f.shards = true
				o.Shards = &fakeLister{m: f.m}
			}
			p := NewPool(f, o)
			chunk := seqChunk(records, keys)
			flushes, retried := 0, false
			for ; flushes < 50; flushes++ {
				res, err := p.Flush(context.Background(), chunk, "t")
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNotDelivered) {
					t.Fatalf("flush %d: %v", flushes, err)
				}
				retried = retried || res.Failed > 0
			}
			if !retried {
				t.Errorf("no flush left records to the next: the test does not exercise giving up")
			}
			if flushes == 0 {
				t.Errorf("the first flush delivered everything: the stubborn records were not given up")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			n := 0
			for k, seqs := range f.accepted {
				n += len(seqs)
				for i := 1; i < len(seqs); i++ {
					if seqs[i] <= seqs[i-1] {
						t.Fatalf("key %s: record %d accepted after record %d", k, seqs[i], seqs[i-1])
					}
				}
			}
			if n != records {
				t.Errorf("%d records accepted, want %d exactly once each", n, records)
			}
			if f.peak < 2 {
				t.Errorf("peak of %d requests in flight: keys should go in parallel", f.peak)
			}
			t.Logf("%d flushes, %d requests, peak %d in flight", flushes+1, f.requests, f.peak)
		})
	}
}

// TestCancelInFlight: a flush cancelled while requests are in flight returns once every request
// it started has returned, with nothing delivered and ClassCanceled; Close then succeeds.
func TestCancelInFlight(t *testing.T) {
	t.Parallel()
	f := newInflightPutter(t, time.Hour, 1)
	p := NewPool(f, Options{MaxInFlight: 6})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := p.Flush(ctx, seqChunk(5000, 10), "t")
		done <- result{res, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		f.mu.Lock()
		n := f.inflight
		f.mu.Unlock()
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight after 10 s, want 6", n)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Flush did not return after its context was cancelled")
	}
	f.mu.Lock()
	n := f.inflight
	f.mu.Unlock()
	var de *DeliveryError
	if n != 0 || r.res.Accepted != 0 || r.res.Failed != 5000 || !errors.As(r.err, &de) || de.Class != kinesis.ClassCanceled {
		t.Errorf("Flush = %+v, %v with %d requests still in flight; want 5000 failed, canceled, none in flight", r.res, r.err, n)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := p.Close(cctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// shardLimitedPutter throttles records as a shard over its limits does: each shard of m earns
// 1,000 records and 1 MiB a second, holding at most a second's worth; once a shard throttles a
// record of a request, its later records in the request are throttled too. It counts requests
// with a throttled record.
type shardLimitedPutter struct {
	m     *kpl.ShardMap
	delay time.Duration

	mu        sync.Mutex
	tokens    []struct{ records, bytes float64 }
	at        time.Time
	requests  int
	throttled int // requests with a throttled record
	accepted  int
}

func newShardLimitedPutter(m *kpl.ShardMap, delay time.Duration) *shardLimitedPutter {
	p := &shardLimitedPutter{m: m, delay: delay, at: time.Now()}
	p.tokens = make([]struct{ records, bytes float64 }, m.Len())
	for i := range p.tokens {
		p.tokens[i].records, p.tokens[i].bytes = limits.ShardRecordsPerSecond, limits.ShardBytesPerSecond
	}
	return p
}

func (p *shardLimitedPutter) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	time.Sleep(p.delay / 2)
	p.mu.Lock()
	now := time.Now()
	dt := now.Sub(p.at).Seconds()
	p.at = now
	for i := range p.tokens {
		tk := &p.tokens[i]
		tk.records = min(limits.ShardRecordsPerSecond, tk.records+dt*limits.ShardRecordsPerSecond)
		tk.bytes = min(limits.ShardBytesPerSecond, tk.bytes+dt*limits.ShardBytesPerSecond)
	}
	res := kinesis.PutResult{ErrorCodes: make([]string, len(entries))}
	over := map[int]bool{}
	for i, e := range entries {
		s := p.m.Lookup(e.PartitionKey)
		if e.ExplicitHashKey != "" {
			s = shardOfHashKey(p.m, e.ExplicitHashKey)
		}
		tk := &p.tokens[s]
		if over[s] || tk.records < 1 || tk.bytes < float64(e.Size()) {
			over[s] = true
			res.ErrorCodes[i] = kinesis.CodeThroughputExceeded
			res.FailedCount++
			continue
		}
		tk.records--
		tk.bytes -= float64(e.Size())
		p.accepted++
	}
	p.requests++
	if res.FailedCount > 0 {
		p.throttled++
	}
	p.mu.Unlock()
	time.Sleep(p.delay / 2)
	return res, nil
}

func shardOfHashKey(m *kpl.ShardMap, h string) int {
	key, _ := new(big.Int).SetString(h, 10)
	for i := range m.Len() {
		end, _ := new(big.Int).SetString(m.Shard(i).EndingHashKey, 10)
		if key.Cmp(end) <= 0 {
			return i
		}
	}
	return m.Len() - 1
}

// TestPacingUnderOverload: flushes offer a 2-shard stream three times what it takes; with the
// shard map, requests are paced per shard: nearly every record goes through at the first send,
// close to the stream's capacity.
func TestPacingUnderOverload(t *testing.T) {
	t.Parallel()
	m := twoShards(t)
	f := newShardLimitedPutter(m, 10*time.Millisecond)
	p := NewPool(f, Options{Shards: &fakeLister{m: m}, MaxInFlight: 16, Retry: requests.Retry{Window: time.Minute}})
	start := time.Now()
	var wg sync.WaitGroup
	const flushes, records = 3, 2000
	for i := range flushes {
		wg.Go(func() {
			if res, err := p.Flush(context.Background(), seqChunk(records, records+i), "t"); err != nil || res.Accepted != records {
				t.Errorf("Flush = %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	f.mu.Lock()
	defer f.mu.Unlock()
	// The buckets start full: a second's worth goes at once.
	capacity := float64(m.Len()*limits.ShardRecordsPerSecond) * (elapsed.Seconds() + 1)
	goodput := float64(flushes*records) / capacity
	t.Logf("%d records in %v: %.0f%% of capacity; %d requests, %d with throttled records; stats %s",
		flushes*records, elapsed.Round(time.Millisecond), 100*goodput, f.requests, f.throttled, p.Stats())
	if f.accepted != flushes*records {
		t.Errorf("%d records accepted, want %d", f.accepted, flushes*records)
	}
	if goodput < 0.8 {
		t.Errorf("goodput %.0f%% of capacity, want at least 80%%", 100*goodput)
	}
	if float64(f.throttled) > 0.1*float64(f.requests) {
		t.Errorf("%d of %d requests throttled, want at most 10%%", f.throttled, f.requests)
	}
}

// twoShards returns the map of a stream of 2 equal shards.
func twoShards(t testing.TB) *kpl.ShardMap { return evenShards(t, 2) }

// TestFailingEndpointProbed: once requests fail as a whole, the flush sends one request at a time,
// each after the failed one's backoff, instead of every request it has.
func TestFailingEndpointProbed(t *testing.T) {
	t.Parallel()
	const backoff = 50 * time.Millisecond
	type call struct{ start, end time.Time }
	var mu sync.Mutex
	var calls []call
	putter := putterFunc(func(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
		start := time.Now()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		calls = append(calls, call{start, time.Now()})
		mu.Unlock()
		return kinesis.PutResult{}, errors.New("connection reset by peer")
	})
	p := NewPool(putter, Options{MaxInFlight: 16,
		Retry: requests.Retry{MaxAttempts: 3, Window: time.Minute, Backoff: func(int) time.Duration { return backoff }}})
	res, err := p.Flush(context.Background(), seqChunk(1500, 1500), "t") // 3 requests
	if !errors.Is(err, ErrNotDelivered) || res.Failed != 1500 {
		t.Fatalf("Flush = %+v, %v; want 1500 not delivered", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 9 {
		t.Errorf("%d requests, want 9: 3 requests, 3 attempts each", len(calls))
	}
	// The first requests went out together; the resends one at a time, after their backoff.
	for i := 1; i < len(calls); i++ {
		if calls[i].start.Before(calls[i-1].end) && i > 2 {
			t.Errorf("request %d started before request %d ended: two probes in flight", i, i-1)
		}
		if gap := calls[i].start.Sub(calls[i-1].end); i > 2 && gap < backoff-5*time.Millisecond {
			t.Errorf("request %d started %v after the last failure, want at least the backoff %v", i, gap, backoff)
		}
	}
}
