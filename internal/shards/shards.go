// Package shards owns a pool's copy of the stream's shard map: when the shards are listed (the
// first use, every refresh period, again soon after a failed listing, and at the next flush after
// an answer showed the map out of date), what a listing that fails or is refused does, and the
// random partition keys drawn per shard of a map. Flushes read the map through a View, and wait
// while one of them lists the shards, so that no flush packs by a map known to be stale.
//
// It does not decide what the map is used for (package batcher packs by it, package pace paces
// by it), nor parse shards (package kpl's ShardMap does), nor call Kinesis (a Lister does:
// *kinesis.Client).
package shards

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// Lister lists the stream's open shards; *kinesis.Client is one.
type Lister interface {
	ListShards(ctx context.Context) (*kpl.ShardMap, error)
}

var _ Lister = (*kinesis.Client)(nil)

// DefaultRefresh is how long a shard map is used before the shards are listed again, so that
// packing and pacing follow a resharding that no answer of Kinesis has revealed yet (see
// Cache.Changed).
const DefaultRefresh = 60 * time.Second

// retryAfter is how long after a failed listing the shards are listed again: flushes wait for a
// listing, so one that keeps failing is not tried at every flush.
const retryAfter = 10 * time.Second

// listTimeout bounds one listing: flushes wait for it.
const listTimeout = 10 * time.Second

// View is a shard map with what the flushes derive from it once: the partition keys that random
// keys are drawn from.
type View struct {
	Map  *kpl.ShardMap
	keys keyRing
}

// RandomKey returns the n-th random partition key of the view, and the shard Kinesis routes it
// to, or false when no shard has keys. Successive n go to the shards in turn (see keyRing).
func (v *View) RandomKey(n int) (key string, shard int, ok bool) {
	k := len(v.keys.shards)
	if k == 0 {
		return "", 0, false
	}
	shard = v.keys.shards[n%k]
	keys := v.keys.keys[shard]
	return keys[(n/k)%len(keys)], shard, true
}

// Options configure a Cache.
type Options struct {
	Lister  Lister
	Refresh time.Duration // 0 means DefaultRefresh
	Log     *slog.Logger
	// Warn rate-limits the warnings about failed listings; it may be shared with the pool's
	// other warnings.
	Warn *loglimit.Limiter
	// LogInterval rate-limits the lines about shard maps found out of date, as loglimit.Limiter's
	// Every.
	LogInterval time.Duration
	KeySeed     uint64 // seeds the random keys of each map

	// SetMap is told every map listed, and nil when there will be none.
	SetMap func(m *kpl.ShardMap, now time.Time)
	// Uses says what the map is for, and Loss what goes without it, for the log lines; LossMatters
	// makes a refused listing a warning instead of an info line (consumers may drop records).
	Uses, Loss  string
	LossMatters bool
}

// Cache holds a pool's shard map. A nil *Cache is a pool without a map. It is safe for concurrent
// use.
type Cache struct {
	o Options

	mu     sync.Mutex // held during a listing: the flushes that need the map wait for it
	at     time.Time
	fresh  bool // false after a failed listing: list again after retryAfter
	failed bool // the last listing failed
	denied bool // the credentials may not list shards, or the endpoint cannot: never list again

	// v is the view in use, nil when there is none; it is set under mu, and read without it by
	// Changed.
	v atomic.Pointer[View]
	// changed is the last map a flush found out of date: while it is v's, the next flush lists the
	// shards again. Atomic, so that a flush that notices never waits for a listing in progress.
	changed   atomic.Pointer[kpl.ShardMap]
	infoLimit loglimit.Limiter // lines about changed shard maps
}

// New returns a cache that lists shards with o.Lister, nil when o.Lister is nil.
func New(o Options) *Cache {
	if o.Lister == nil {
		return nil
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	return &Cache{o: o, infoLimit: loglimit.Limiter{Every: o.LogInterval}}
}

// Map returns the shard map for a flush, nil when there is none. It lists the shards at the first
// use, every refresh period, retryAfter a failed listing, and at the next flush after one found
// the map out of date (Changed). When the listing is refused (access denied), or the endpoint
// does not know the call, it says so once and returns nil for ever after; when it fails otherwise
// it warns (rate-limited) and returns the last map, or nil if there is none. Flushes wait while
// one of them lists the shards.
func (c *Cache) Map(ctx context.Context) *View {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	last := c.v.Load()
	switch {
	case c.denied:
		return last
	case c.failed && now.Sub(c.at) < retryAfter:
		return last
	case last != nil && c.fresh && now.Sub(c.at) < c.o.Refresh && c.changed.Load() != last.Map:
		return last
	}
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	m, err := c.o.Lister.ListShards(lctx)
	cancel()
	c.at = now
	log := c.o.Log
	switch {
	case err == nil:
		if c.failed {
			log.Info(fmt.Sprintf("shard map: listed %d open shards: %s again", m.Len(), c.o.Uses))
		}
		c.fresh, c.failed = true, false
		v := &View{Map: m, keys: newKeyRing(m, c.o.KeySeed)}
		c.v.Store(v)
		c.changed.Store(nil)
		c.o.SetMap(m, now)
	case kinesis.IsAccessDenied(err) || kinesis.Classify(err) == kinesis.ClassRejected:
		c.denied = true
		c.v.Store(nil)
		c.o.SetMap(nil, now)
		msg := "shard map: cannot list the stream's shards (kinesis:ListShards), going on without a shard map: " +
			c.o.Loss + "; allow kinesis:ListShards to have them: " + err.Error()
		if c.o.LossMatters {
			log.Warn(msg) // consumers may drop records
		} else {
			log.Info(msg)
		}
	default:
		c.fresh, c.failed = false, true
		what := "without a shard map"
		if last != nil {
			what = "with the last shard map"
		}
		if ok, held := c.o.Warn.Allow(now); ok {
			log.Warn(fmt.Sprintf("shard map: listing the stream's shards failed, going on %s, trying again in %v: %v%s",
				what, retryAfter, err, loglimit.HeldBack(held)))
		}
	}
	if v := c.v.Load(); v != nil {
		return v
	}
	return nil
}

// Changed records that Kinesis put a record sent with the explicit hash key of the shard wantID
// of m in another shard, gotID: the stream's shards have changed (a split, a merge, a resharding)
// since m was listed. If m is still the cache's map, the next flush lists the shards again, and
// one info line (rate-limited) says so; a flush that notices after the map was listed again
// changes nothing. It never waits for a listing.
func (c *Cache) Changed(m *kpl.ShardMap, wantID, gotID string) {
	if c == nil {
		return
	}
	if v := c.v.Load(); v == nil || v.Map != m || c.changed.Swap(m) == m {
		return // an older map, or already noticed
	}
	if ok, held := c.infoLimit.Allow(time.Now()); ok {
		c.o.Log.Info(fmt.Sprintf("shard map: Kinesis put an aggregate sent to shard %q in shard %q: the stream's "+
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
