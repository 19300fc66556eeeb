package pace

import (
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl/kpltest"
)

func fourShards(t *testing.T) *kpl.ShardMap {
	t.Helper()
	m, err := kpl.NewShardMap(kpltest.FourShards)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSchedulerLimitWithoutMap: without a shard map, throttling halves the requests in flight,
// and answers without throttling raise them again.
func TestSchedulerLimitWithoutMap(t *testing.T) {
	t.Parallel()
	s := New(16)
	t0 := time.Unix(1000, 0)
	start := func(now time.Time) bool { ok, _, _ := s.TryStart(nil, nil, now); return ok }
	for i := range 16 {
		if !start(t0) {
			t.Fatalf("request %d refused, want 16 slots", i)
		}
	}
	if start(t0) {
		t.Fatal("a 17th request started")
	}
	// Every request of the round is throttled: one cut only (requests sent before the cut).
	for range 16 {
		s.Done()
		s.Feedback(nil, nil, true, t0, t0.Add(time.Millisecond))
	}
	if s.limit != 8 {
		t.Errorf("limit %v after a throttled round, want 8", s.limit)
	}
	// A request sent after the cut, throttled too: cut again.
	s.Feedback(nil, nil, true, t0.Add(2*time.Millisecond), t0.Add(3*time.Millisecond))
	if s.limit != 4 {
		t.Errorf("limit %v after a second round, want 4", s.limit)
	}
	for range 200 {
		s.Feedback(nil, nil, false, t0, t0)
	}
	if s.limit != 16 {
		t.Errorf("limit %v after 200 answers without throttling, want back at 16", s.limit)
	}
}

// TestSchedulerPacing: a shard's budget is a second of its limits; a request that needs more
// waits until the shard earned it; a throttled shard waits and is cut, and recovers as it accepts.
func TestSchedulerPacing(t *testing.T) {
	t.Parallel()
	m := fourShards(t)
	s := New(16)
	t0 := time.Unix(1000, 0)
	s.SetMap(m, t0)
	try := func(c Charge, now time.Time) (bool, time.Duration) {
		ok, at, _ := s.TryStart(m, []Charge{c}, now)
		if ok {
			s.Done()
			return true, 0
		}
		return false, at.Sub(now)
	}
	if ok, _ := try(Charge{Shard: 0, Records: 600, Bytes: 1000}, t0); !ok {
		t.Fatal("a full bucket refused 600 records")
	}
	ok, wait := try(Charge{Shard: 0, Records: 600, Bytes: 1000}, t0)
	if ok || wait < 190*time.Millisecond || wait > 210*time.Millisecond {
		t.Fatalf("400 records left: 600 more went %v, or wait %v, want to wait 200 ms", ok, wait)
	}
	if ok, _ := try(Charge{Shard: 1, Records: 600, Bytes: 1000}, t0); !ok {
		t.Error("another shard's budget was taken")
	}
	if ok, _ := try(Charge{Shard: 0, Records: 600, Bytes: 1000}, t0.Add(200*time.Millisecond)); !ok {
		t.Error("refused after the wait")
	}
	// Bytes: 1 MiB a second.
	if ok, wait := try(Charge{Shard: 2, Records: 1, Bytes: 3 << 19}, t0); !ok || wait != 0 {
		t.Error("a request larger than the bucket refused by a full bucket")
	}
	if ok, wait := try(Charge{Shard: 2, Records: 1, Bytes: 1}, t0.Add(400*time.Millisecond)); ok || wait < 90*time.Millisecond {
		t.Errorf("went %v, or wait %v, though the bucket is 0.1 MiB in debt", ok, wait)
	}
	// Throttled: the shard is emptied and cut; a second throttle of a request sent before the
	// cut cuts no more.
	if !s.Feedback(m, []Feedback{{Shard: 3, Throttled: true}}, true, t0, t0) {
		t.Error("a throttle did not cut")
	}
	if s.Feedback(m, []Feedback{{Shard: 3, Throttled: true}}, true, t0, t0) {
		t.Error("a throttle of a request sent before the cut cut again")
	}
	if r := s.buckets[3].rate; r != paceDecrease {
		t.Errorf("rate %v after a cut, want %v", r, paceDecrease)
	}
	if ok, wait := try(Charge{Shard: 3, Records: 100, Bytes: 100}, t0); ok || wait < 100*time.Millisecond {
		t.Errorf("a throttled shard took 100 records (wait %v)", wait)
	}
	for range 10 {
		s.Feedback(m, []Feedback{{Shard: 3, Records: 100, Bytes: 100}}, false, t0, t0)
	}
	if r := s.buckets[3].rate; r != 1 {
		t.Errorf("rate %v after 1,000 records accepted, want back at 1", r)
	}
}

// TestSchedulerCancel: a cancelled start gives its slot and its shard's tokens back (up to what
// the bucket holds), and wakes a flush waiting for the slot.
func TestSchedulerCancel(t *testing.T) {
	t.Parallel()
	m := fourShards(t)
	s := New(1)
	t0 := time.Unix(1000, 0)
	s.SetMap(m, t0)
	big := []Charge{{Shard: 2, Records: 800, Bytes: 1000}}
	if ok, _, _ := s.TryStart(m, big, t0); !ok {
		t.Fatal("first request refused")
	}
	ok, _, wake := s.TryStart(m, big, t0)
	if ok || wake == nil {
		t.Fatalf("second request: ok %v, wake %v; want refused for want of a slot", ok, wake)
	}
	s.Cancel(m, big) // the first request does not start after all
	select {
	case <-wake:
	default:
		t.Error("the flush waiting for a slot was not woken")
	}
	if b := s.buckets[2]; b.records != b.capRecords() {
		t.Errorf("shard 2 holds %v records after the cancel, want its cap %v", b.records, b.capRecords())
	}
	// Without the tokens back, 800 more records would wait for shard 2 to earn 600.
	if ok, at, _ := s.TryStart(m, big, t0); !ok {
		t.Fatalf("request after the cancel refused until %v", at.Sub(t0))
	}
	if s.inflight != 1 {
		t.Errorf("%d requests in flight, want 1", s.inflight)
	}
}

// TestSchedulerRelisted: a flush that began before the shards were listed again (every refresh
// lists a new map, most often of the same shards) stays paced by the same buckets, and its
// answers still adapt them; one that began two listings ago, or a shard closed since, goes unpaced.
func TestSchedulerRelisted(t *testing.T) {
	t.Parallel()
	old, relisted, third := fourShards(t), fourShards(t), fourShards(t)
	s := New(16)
	t0 := time.Unix(1000, 0)
	s.SetMap(old, t0)
	start := func(m *kpl.ShardMap, c Charge) (bool, time.Duration) {
		ok, at, _ := s.TryStart(m, []Charge{c}, t0)
		if ok {
			s.Done()
			return true, 0
		}
		return false, at.Sub(t0)
	}
	if ok, _ := start(old, Charge{Shard: 1, Records: 900, Bytes: 900}); !ok {
		t.Fatal("a full bucket refused 900 records")
	}
	s.SetMap(relisted, t0)
	// The old flush's next request, and a new flush's, wait for shard 1's tokens alike.
	for name, m := range map[string]*kpl.ShardMap{"the old map": old, "the new map": relisted} {
		if ok, wait := start(m, Charge{Shard: 1, Records: 500, Bytes: 500}); ok || wait < 390*time.Millisecond {
			t.Errorf("%s: 500 records went %v (wait %v) with 100 left in shard 1", name, ok, wait)
		}
	}
	// A throttle answered to the old flush cuts the shard's rate.
	if !s.Feedback(old, []Feedback{{Shard: 2, Throttled: true}}, true, t0.Add(time.Millisecond), t0.Add(time.Millisecond)) {
		t.Error("a throttle of a request of the old map did not cut")
	}
	if r := s.buckets[2].rate; r != paceDecrease {
		t.Errorf("shard 2's rate %v after the old map's throttle, want %v", r, paceDecrease)
	}
	if s.limit != 16 {
		t.Errorf("the old map's throttle cut the requests in flight to %v", s.limit)
	}
	// Two listings on, the first map's flush is no longer paced by shard.
	s.SetMap(third, t0)
	if ok, _ := start(old, Charge{Shard: 1, Records: 500, Bytes: 500}); !ok {
		t.Error("a request of a map two listings old was paced")
	}
	if ok, _ := start(relisted, Charge{Shard: 1, Records: 500, Bytes: 500}); ok {
		t.Error("a request of the previous map went unpaced")
	}
	// Closing the stream's map (no more listings): nothing is paced, nothing panics.
	s.SetMap(nil, t0)
	if ok, _ := start(third, Charge{Shard: 1, Records: 500, Bytes: 500}); !ok {
		t.Error("paced without a map")
	}
}
