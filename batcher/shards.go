package batcher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// ShardLister lists the stream's open shards, for shard-aware aggregation; *kinesis.Client is one.
type ShardLister interface {
	ListShards(ctx context.Context) (*kpl.ShardMap, error)
}

var _ ShardLister = (*kinesis.Client)(nil)

// DefaultShardMapRefresh is how long a shard map is used before the shards are listed again, so
// that aggregation follows a resharding that no answer of Kinesis has revealed yet (see
// Pool.shardMapChanged).
const DefaultShardMapRefresh = 60 * time.Second

// listShardsTimeout bounds one listing: flushes wait for it.
const listShardsTimeout = 10 * time.Second

// shardCache holds a pool's shard map.
type shardCache struct {
	lister  ShardLister // nil: aggregation is not shard-aware
	refresh time.Duration

	mu     sync.Mutex // held during a listing: the flushes that need the map wait for it
	at     time.Time
	fresh  bool // false after a failed listing: list again at the next flush
	failed bool // the last listing failed
	denied bool // the credentials may not list shards: never list again

	// m is the map in use, nil when there is none; it is set under mu, and read without it by
	// shardMapChanged.
	m atomic.Pointer[kpl.ShardMap]
	// changed is the last map a flush found out of date: while it is m, the next flush lists the
	// shards again. Atomic, so that a flush that notices never waits for a listing in progress.
	changed   atomic.Pointer[kpl.ShardMap]
	infoLimit loglimit.Limiter // lines about changed shard maps
}

// shardMap returns the shard map for a flush: nil when aggregation is not shard-aware. It lists the
// shards at the first use, every refresh period, at the next flush after a failed listing, and at
// the next flush after one found the map out of date (shardMapChanged).
// When the listing is refused (access denied) it warns once and returns nil for ever after; when
// it fails otherwise it warns (rate-limited) and returns the last map, or nil if there is none.
// Flushes wait while one of them lists the shards.
func (p *Pool) shardMap(ctx context.Context) *kpl.ShardMap {
	c := &p.shards
	if c.lister == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	last := c.m.Load()
	if c.denied || (last != nil && c.fresh && now.Sub(c.at) < c.refresh && c.changed.Load() != last) {
		return last
	}
	lctx, cancel := context.WithTimeout(ctx, listShardsTimeout)
	m, err := c.lister.ListShards(lctx)
	cancel()
	switch {
	case err == nil:
		if c.failed {
			p.log.Info(fmt.Sprintf("aggregation: listed %d open shards: aggregation is shard-aware again", m.Len()))
		}
		c.at, c.fresh, c.failed = now, true, false
		c.m.Store(m)
		c.changed.Store(nil)
	case kinesis.IsAccessDenied(err):
		c.denied = true
		c.m.Store(nil)
		p.log.Warn("aggregation: not allowed to list the stream's shards (kinesis:ListShards), aggregating without " +
			"a shard map from now on: each aggregate goes to the shard of its first record's partition key, and a " +
			"consumer that checks shards (the KCL) may drop its other records; allow kinesis:ListShards to make " +
			"aggregation shard-aware: " + err.Error())
	default:
		c.fresh, c.failed = false, true
		what := "without a shard map"
		if last != nil {
			what = "with the last shard map"
		}
		if ok, held := p.warnLimit.Allow(now); ok {
			p.log.Warn(fmt.Sprintf("aggregation: listing the stream's shards failed, aggregating %s until it succeeds: %v%s",
				what, err, loglimit.HeldBack(held)))
		}
	}
	return c.m.Load()
}

// shardMapChanged records that Kinesis put a record sent with the explicit hash key of the shard
// wantID of m in another shard, gotID: the stream's shards have changed (a split, a merge, a
// resharding) since m was listed. If m is still the pool's map, the next flush lists the shards
// again, and one info line (rate-limited) says so; a flush that notices after the map was listed
// again changes nothing. Safe for concurrent use; it never waits for a listing.
func (p *Pool) shardMapChanged(m *kpl.ShardMap, wantID, gotID string) {
	c := &p.shards
	if c.m.Load() != m || c.changed.Swap(m) == m {
		return // an older map, or already noticed
	}
	if ok, held := c.infoLimit.Allow(time.Now()); ok {
		p.log.Info(fmt.Sprintf("aggregation: Kinesis put an aggregate sent to shard %q in shard %q: the stream's "+
			"shards have changed, listing them again at the next flush%s", wantID, gotID, loglimit.HeldBack(held)))
	}
}
