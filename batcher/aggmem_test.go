package batcher

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl/kpltest"
)

// evenShards returns the map of a stream of n shards of equal hash key ranges.
func evenShards(t testing.TB, n int) *kpl.ShardMap {
	t.Helper()
	m, err := kpl.NewShardMap(kpltest.Even(n))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keyPerShard returns a partition key for each shard of m.
func keyPerShard(t testing.TB, m *kpl.ShardMap) []string {
	t.Helper()
	keys := make([]string, m.Len())
	left := m.Len()
	for i := 0; left > 0; i++ {
		if i == 1_000_000 {
			t.Fatalf("no key found for %d shards", left)
		}
		k := fmt.Sprintf("pod-%d", i)
		if s := m.Lookup(k); keys[s] == "" {
			keys[s], left = k, left-1
		}
	}
	return keys
}

// str16 is a msgpack str of up to 65535 bytes.
func str16(s string) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{0xda}, uint16(len(s))), s...)
}

// shardChunk is a chunk of n events {"k": key, "msg": pad bytes}: all for one shard.
func shardChunk(key string, n, pad int) []byte {
	var chunk []byte
	for i := range n {
		body := append([]byte{0x82}, str16("k")...)
		body = append(body, str16(key)...)
		body = append(body, str16("msg")...)
		body = append(body, str16(fmt.Sprintf("%d %s", i, strings.Repeat("x", pad)))...)
		chunk = append(chunk, event(uint32(i), 0, body)...)
	}
	return chunk
}

// aggregateMemory flushes, from 8 goroutines at once, chunks whose records go to one shard of a
// 200-shard stream each, every shard in turn, with shard-aware aggregation, and returns the
// aggregate buffers the pool's batchers keep afterwards, the number of batchers and the heap.
func aggregateMemory(t *testing.T) (retained, batchers int, heap uint64) {
	t.Helper()
	const (
		shards  = 200
		workers = 8
		perShrd = 2 // flushes per shard, per goroutine
		records = 16
		pad     = 1000
	)
	m := evenShards(t, shards)
	keys := keyPerShard(t, m)
	p := NewPool(nopPutter{}, Options{Aggregation: true, PartitionKey: mustKeyPath(t, "k"), Shards: &fakeLister{m: m}})
	chunks := make([][]byte, shards)
	for s := range shards {
		chunks[s] = shardChunk(keys[s], records, pad)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range shards * perShrd {
				s := (i + w*shards/workers) % shards
				res, err := p.Flush(context.Background(), chunks[s], "kube.app")
				if err != nil || res.Accepted != records {
					t.Errorf("flush of shard %d: %+v, %v", s, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.free {
		retained += b.retainedAggregateBytes()
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return retained, len(p.free), ms.HeapAlloc
}

// TestAggregateMemoryBound: with a 200-shard stream and 8 concurrent flushes, the aggregate
// buffers an instance keeps stay within 8 × keptAggregateBytes (8 MiB at the default limit);
// without releasing the idle ones (the control) they grow with the number of shards.
func TestAggregateMemoryBound(t *testing.T) {
	// Not parallel: the control switches releaseIdleAggregates off for the whole package.
	b := NewPool(nopPutter{}, Options{Aggregation: true}).newBatcher()
	b.setLimits()
	bound := 8 * b.keptAggregateBytes()

	releaseIdleAggregates = false
	unbounded, n, heap := aggregateMemory(t)
	releaseIdleAggregates = true
	t.Logf("without releasing idle aggregates: %d batchers keep %d bytes of aggregates (heap %d bytes)", n, unbounded, heap)
	if unbounded <= bound {
		t.Fatalf("the control keeps %d bytes, within the bound %d: the test does not load the aggregates enough", unbounded, bound)
	}

	retained, n, heap := aggregateMemory(t)
	t.Logf("releasing idle aggregates: %d batchers keep %d bytes of aggregates (heap %d bytes); bound %d", n, retained, heap, bound)
	if n > 8 {
		t.Errorf("%d batchers for 8 concurrent flushes", n)
	}
	if retained > bound {
		t.Errorf("the batchers keep %d bytes of aggregates, over the bound of %d", retained, bound)
	}
	if retained == 0 {
		t.Errorf("no aggregate buffer kept: every flush allocates them again")
	}
}
