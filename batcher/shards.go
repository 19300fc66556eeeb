package batcher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// ShardLister lists the stream's open shards; *kinesis.Client is one.
type ShardLister interface {
	ListShards(ctx context.Context) (*kpl.ShardMap, error)
}

var _ ShardLister = (*kinesis.Client)(nil)

// DefaultShardMapRefresh is how long a shard map is used before the shards are listed again, so
// that packing and pacing follow a resharding that no answer of Kinesis has revealed yet (see
// Pool.shardMapChanged).
const DefaultShardMapRefresh = 60 * time.Second

// shardMapRetry is how long after a failed listing the shards are listed again: flushes wait for a
// listing, so one that keeps failing is not tried at every flush.
const shardMapRetry = 10 * time.Second

// listShardsTimeout bounds one listing: flushes wait for it.
const listShardsTimeout = 10 * time.Second

// shardView is a shard map with what the flushes derive from it once: the partition keys that
// random keys are drawn from.
type shardView struct {
	m    *kpl.ShardMap
	keys keyRing
}

// shardCache holds a pool's shard map. The map serves shard-aware aggregation, packing by shard
// with partition_key (one request in flight per shard), per-shard pacing, and the spreading of
// random partition keys over the shards.
type shardCache struct {
	lister  ShardLister // nil: no shard map
	refresh time.Duration
	retry   time.Duration // after a failed listing

	mu     sync.Mutex // held during a listing: the flushes that need the map wait for it
	at     time.Time
	fresh  bool // false after a failed listing: list again after retry
	failed bool // the last listing failed
	denied bool // the credentials may not list shards, or the endpoint cannot: never list again

	// v is the view in use, nil when there is none; it is set under mu, and read without it by
	// shardMapChanged.
	v atomic.Pointer[shardView]
	// changed is the last map a flush found out of date: while it is v's, the next flush lists the
	// shards again. Atomic, so that a flush that notices never waits for a listing in progress.
	changed   atomic.Pointer[kpl.ShardMap]
	infoLimit loglimit.Limiter // lines about changed shard maps
}

// shardMap returns the shard map for a flush, nil when there is none. It lists the shards at the
// first use, every refresh period, retry after a failed listing, and at the next flush after one
// found the map out of date (shardMapChanged). When the listing is refused (access denied), or the
// endpoint does not know the call, it says so once and returns nil for ever after; when it fails
// otherwise it warns (rate-limited) and returns the last map, or nil if there is none. Flushes
// wait while one of them lists the shards.
func (p *Pool) shardMap(ctx context.Context) *shardView {
	c := &p.shards
	if c.lister == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	last := c.v.Load()
	switch {
	case c.denied:
		return last
	case c.failed && now.Sub(c.at) < c.retry:
		return last
	case last != nil && c.fresh && now.Sub(c.at) < c.refresh && c.changed.Load() != last.m:
		return last
	}
	lctx, cancel := context.WithTimeout(ctx, listShardsTimeout)
	m, err := c.lister.ListShards(lctx)
	cancel()
	c.at = now
	switch {
	case err == nil:
		if c.failed {
			p.log.Info(fmt.Sprintf("shard map: listed %d open shards: %s again", m.Len(), p.shardUses()))
		}
		c.fresh, c.failed = true, false
		v := &shardView{m: m, keys: newKeyRing(m, p.keySeed)}
		c.v.Store(v)
		c.changed.Store(nil)
		p.sched.SetMap(m, now)
	case kinesis.IsAccessDenied(err) || kinesis.Classify(err) == kinesis.ClassRejected:
		c.denied = true
		c.v.Store(nil)
		p.sched.SetMap(nil, now)
		msg := "shard map: cannot list the stream's shards (kinesis:ListShards), going on without a shard map: " +
			p.shardLoss() + "; allow kinesis:ListShards to have them: " + err.Error()
		if p.packing == packKPL && !p.keyPath.IsZero() {
			p.log.Warn(msg) // consumers may drop records
		} else {
			p.log.Info(msg)
		}
	default:
		c.fresh, c.failed = false, true
		what := "without a shard map"
		if last != nil {
			what = "with the last shard map"
		}
		if ok, held := p.warnLimit.Allow(now); ok {
			p.log.Warn(fmt.Sprintf("shard map: listing the stream's shards failed, going on %s, trying again in %v: %v%s",
				what, c.retry, err, loglimit.HeldBack(held)))
		}
	}
	if v := c.v.Load(); v != nil {
		return v
	}
	return nil
}

// shardUses says what the shard map is for in this pool, for log lines.
func (p *Pool) shardUses() string {
	uses := "requests are paced per shard"
	if !p.keyPath.IsZero() {
		uses += ", packed by shard"
	}
	if p.packing == packKPL && !p.keyPath.IsZero() {
		uses += ", and aggregation is shard-aware"
	}
	return uses
}

// shardLoss says what goes without a shard map, for log lines.
func (p *Pool) shardLoss() string {
	loss := "requests are not paced per shard (throttling lowers the requests in flight instead)"
	if p.packing == packKPL && !p.keyPath.IsZero() {
		loss += ", and each aggregate goes to the shard of its first record's partition key, so a consumer that " +
			"checks shards (the KCL) may drop its other records"
	}
	return loss
}

// shardMapChanged records that Kinesis put a record sent with the explicit hash key of the shard
// wantID of m in another shard, gotID: the stream's shards have changed (a split, a merge, a
// resharding) since m was listed. If m is still the pool's map, the next flush lists the shards
// again, and one info line (rate-limited) says so; a flush that notices after the map was listed
// again changes nothing. Safe for concurrent use; it never waits for a listing.
func (p *Pool) shardMapChanged(m *kpl.ShardMap, wantID, gotID string) {
	c := &p.shards
	if v := c.v.Load(); v == nil || v.m != m || c.changed.Swap(m) == m {
		return // an older map, or already noticed
	}
	if ok, held := c.infoLimit.Allow(time.Now()); ok {
		p.log.Info(fmt.Sprintf("shard map: Kinesis put an aggregate sent to shard %q in shard %q: the stream's "+
			"shards have changed, listing them again at the next flush%s", wantID, gotID, loglimit.HeldBack(held)))
	}
}

// keyRing holds, per shard of a map, partition keys that Kinesis routes to that shard, for random
// keys: drawing them in turn from each shard spreads records evenly over the shards, which all
// have the same limits whatever the width of their hash key ranges (keys drawn at random spread
// records by width), and tells a record's shard without hashing its key.
type keyRing struct {
	shards []int      // the shards that have keys, in map order
	keys   [][]string // by shard
}

// Keys per shard in a keyRing, and the most keys drawn to find them: a shard with a range too
// narrow to be hit gets no key, and no random keys.
const (
	ringKeysPerShard = 16
	ringMaxDraws     = 8
)

func newKeyRing(m *kpl.ShardMap, seed uint64) keyRing {
	gen := kinesis.NewKeyGen(seed)
	r := keyRing{keys: make([][]string, m.Len())}
	want := m.Len() * ringKeysPerShard
	for have, draws := 0, 0; have < want && draws < want*ringMaxDraws; draws++ {
		k := gen.Next()
		if s := m.Lookup(k); len(r.keys[s]) < ringKeysPerShard {
			r.keys[s] = append(r.keys[s], strings.Clone(k)) // not a substring of the generator's buffer
			have++
		}
	}
	for s, ks := range r.keys {
		if len(ks) > 0 {
			r.shards = append(r.shards, s)
		}
	}
	return r
}
