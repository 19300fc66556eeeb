package shards

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl/kpltest"
)

// lister lists the map it holds, failing the calls err says.
type lister struct {
	calls atomic.Int32
	m     atomic.Pointer[kpl.ShardMap]
	err   func(call int) error
}

func (l *lister) ListShards(context.Context) (*kpl.ShardMap, error) {
	n := int(l.calls.Add(1)) - 1
	if l.err != nil {
		if err := l.err(n); err != nil {
			return nil, err
		}
	}
	return l.m.Load(), nil
}

func even(t *testing.T, n int) *kpl.ShardMap {
	t.Helper()
	m, err := kpl.NewShardMap(kpltest.Even(n))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// newCache returns a cache over l that logs into logs, every line, and records the maps it is
// told of in maps.
func newCache(l Lister, logs *syncBuffer, maps *[]*kpl.ShardMap) *Cache {
	return New(Options{
		Lister:      l,
		Log:         slog.New(slog.NewTextHandler(logs, nil)),
		Warn:        &loglimit.Limiter{Every: -1},
		LogInterval: -1,
		KeySeed:     1,
		SetMap:      func(m *kpl.ShardMap, _ time.Time) { *maps = append(*maps, m) },
		Uses:        "uses",
		Loss:        "loss",
	})
}

// TestNilCache: without a lister there is no cache, and no map.
func TestNilCache(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	if c != nil {
		t.Fatal("a cache without a lister")
	}
	if v := c.Map(context.Background()); v != nil {
		t.Error("a nil cache has a map")
	}
	c.Changed(nil, "a", "b") // does nothing, and does not panic
}

// TestChangedOnce: a change is acted on once per map: a second notice of the same map neither
// logs nor lists again, nor does a late notice of a map already replaced.
func TestChangedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	four, eight := even(t, 4), even(t, 8)
	l := &lister{}
	l.m.Store(four)
	logs := &syncBuffer{}
	var maps []*kpl.ShardMap
	c := newCache(l, logs, &maps)
	const notice = `msg="shard map: Kinesis put`

	if v := c.Map(ctx); v == nil || v.Map != four {
		t.Fatal("first listing: not the lister's map")
	}
	c.Changed(four, "shardId-0", "shardId-4")
	c.Changed(four, "shardId-0", "shardId-5")
	if n := logs.count(notice); n != 1 {
		t.Errorf("%d info lines for one change, want 1: %s", n, logs.b.String())
	}
	l.m.Store(eight)
	if v := c.Map(ctx); v == nil || v.Map != eight || l.calls.Load() != 2 {
		t.Fatalf("after a change: listed %d times, want 2 and the new map", l.calls.Load())
	}
	if v := c.Map(ctx); v == nil || v.Map != eight || l.calls.Load() != 2 {
		t.Errorf("listed %d times, want 2: the new map is fresh", l.calls.Load())
	}
	// A flush that used the old map notices late.
	c.Changed(four, "shardId-0", "shardId-4")
	if v := c.Map(ctx); v == nil || v.Map != eight || l.calls.Load() != 2 {
		t.Errorf("a late notice of the old map: listed %d times, want 2", l.calls.Load())
	}
	if n := logs.count(notice); n != 1 {
		t.Errorf("a late notice of the old map logged: %s", logs.b.String())
	}
	want := `shard map: Kinesis put an aggregate sent to shard "shardId-0" in shard "shardId-4": ` +
		`the stream's shards have changed, listing them again at the next flush`
	if logs.count("level=INFO msg="+strconv.Quote(want)) != 1 {
		t.Errorf("log %s, want %q", logs.b.String(), want)
	}
	if len(maps) != 2 || maps[0] != four || maps[1] != eight {
		t.Errorf("SetMap told %d maps, want the two listed", len(maps))
	}
}

// TestListingFailures: a refused listing is said once and never tried again; another failure
// keeps the last map, warns, and is tried again only after retryAfter.
func TestListingFailures(t *testing.T) {
	t.Parallel()
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform kinesis:ListShards"}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		four := even(t, 4)
		l := &lister{err: func(call int) error {
			switch call {
			case 1, 2:
				return errors.New("connection reset")
			case 4:
				return denied
			}
			return nil
		}}
		l.m.Store(four)
		logs := &syncBuffer{}
		var maps []*kpl.ShardMap
		c := newCache(l, logs, &maps)
		steps := []struct {
			after time.Duration // since the step before
			calls int32
			warns int
			has   bool // a map
		}{
			{0, 1, 0, true},                            // listed
			{DefaultRefresh, 2, 1, true},               // refresh fails: the last map, a warning
			{retryAfter / 2, 2, 1, true},               // not again before retryAfter
			{retryAfter, 3, 2, true},                   // fails again
			{retryAfter, 4, 2, true},                   // listed
			{DefaultRefresh, 5, 2, false},              // refused: no map
			{DefaultRefresh + retryAfter, 5, 2, false}, // never again
		}
		for i, s := range steps {
			time.Sleep(s.after)
			v := c.Map(ctx)
			if got := l.calls.Load(); got != s.calls || (v != nil) != s.has {
				t.Errorf("step %d: %d listings, map %v; want %d, %v", i, got, v != nil, s.calls, s.has)
			}
			if n := logs.count("level=WARN"); n != s.warns {
				t.Errorf("step %d: %d warnings, want %d: %s", i, n, s.warns, logs.b.String())
			}
		}
		if n := logs.count(`level=INFO msg="shard map: cannot list`); n != 1 {
			t.Errorf("the refusal said %d times, want once (as info): %s", n, logs.b.String())
		}
		if n := logs.count(`msg="shard map: listed 4 open shards: uses again"`); n != 1 {
			t.Errorf("the recovery said %d times, want once: %s", n, logs.b.String())
		}
		if len(maps) != 3 || maps[2] != nil {
			t.Errorf("SetMap told %v, want two maps, then nil", maps)
		}
	})
}

// TestRandomKey: every key goes to the shard it is drawn for, and successive keys go to the
// shards in turn.
func TestRandomKey(t *testing.T) {
	t.Parallel()
	m := even(t, 5)
	v := &View{Map: m, keys: newKeyRing(m, 7)}
	seen := map[string]bool{}
	for n := range 5 * ringKeysPerShard {
		key, shard, ok := v.RandomKey(n)
		if !ok {
			t.Fatal("no keys")
		}
		if shard != n%5 {
			t.Errorf("key %d: shard %d, want %d (in turn)", n, shard, n%5)
		}
		if got := m.Lookup(key); got != shard {
			t.Errorf("key %q drawn for shard %d goes to shard %d", key, shard, got)
		}
		seen[key] = true
	}
	if len(seen) != 5*ringKeysPerShard {
		t.Errorf("%d distinct keys, want %d", len(seen), 5*ringKeysPerShard)
	}
	if _, _, ok := (&View{Map: m}).RandomKey(0); ok {
		t.Error("a view without keys gave one")
	}
}
