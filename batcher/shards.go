package batcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// ShardLister lists the stream's open shards, for shard-aware aggregation; *kinesis.Client is one.
type ShardLister interface {
	ListShards(ctx context.Context) (*kinesis.ShardMap, error)
}

var _ ShardLister = (*kinesis.Client)(nil)

// DefaultShardMapRefresh is how long a shard map is used before the shards are listed again, so
// that aggregation follows a resharding.
const DefaultShardMapRefresh = 60 * time.Second

// listShardsTimeout bounds one listing: flushes wait for it.
const listShardsTimeout = 10 * time.Second

// shardCache holds a pool's shard map.
type shardCache struct {
	lister  ShardLister // nil: aggregation is not shard-aware
	refresh time.Duration

	mu     sync.Mutex
	m      *kinesis.ShardMap
	at     time.Time
	fresh  bool // false after a failed listing: list again at the next flush
	failed bool // the last listing failed
	denied bool // the credentials may not list shards: never list again
}

// shardMap returns the shard map for a flush: nil when aggregation is not shard-aware. It lists the
// shards at the first use, every refresh period, and at the next flush after a failed listing.
// When the listing is refused (access denied) it warns once and returns nil for ever after; when
// it fails otherwise it warns (rate-limited) and returns the last map, or nil if there is none.
// Flushes wait while one of them lists the shards.
func (p *Pool) shardMap(ctx context.Context) *kinesis.ShardMap {
	c := &p.shards
	if c.lister == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.denied || (c.m != nil && c.fresh && now.Sub(c.at) < c.refresh) {
		return c.m
	}
	lctx, cancel := context.WithTimeout(ctx, listShardsTimeout)
	m, err := c.lister.ListShards(lctx)
	cancel()
	switch {
	case err == nil:
		if c.failed {
			p.log.Info(fmt.Sprintf("aggregation: listed %d open shards: aggregation is shard-aware again", m.Len()))
		}
		c.m, c.at, c.fresh, c.failed = m, now, true, false
	case kinesis.IsAccessDenied(err):
		c.m, c.denied = nil, true
		p.log.Warn("aggregation: not allowed to list the stream's shards (kinesis:ListShards), aggregating without " +
			"a shard map from now on: each aggregate goes to the shard of its first record's partition key, and a " +
			"consumer that checks shards (the KCL) may drop its other records; allow kinesis:ListShards to make " +
			"aggregation shard-aware: " + err.Error())
	default:
		c.fresh, c.failed = false, true
		what := "without a shard map"
		if c.m != nil {
			what = "with the last shard map"
		}
		if ok, held := p.warnLimit.allow(now); ok {
			p.log.Warn(fmt.Sprintf("aggregation: listing the stream's shards failed, aggregating %s until it succeeds: %v%s",
				what, err, heldBack(held)))
		}
	}
	return c.m
}
