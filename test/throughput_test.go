package test

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// Throughput under Kinesis's per-shard limits: the built library, driven by the C host, sends
// through a ShardProxy, which throttles each shard over 1,000 records or 1 MiB a second as
// Kinesis does and answers every request after a latency.

// overloadSeconds is how many seconds of the stream's capacity the overload test offers, twice
// over: OVERLOAD_SECONDS, default 6 (a run of about 12 s; `make e2e-overload` runs 60).
func overloadSeconds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("OVERLOAD_SECONDS")
	if v == "" {
		return 6
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("OVERLOAD_SECONDS=%q: want a whole number of seconds", v)
	}
	return n
}

// overloadEvent is record seq of chunk c with partition key key: {"k", "c", "s", "msg"}, about
// 200 bytes of JSON.
func overloadEvent(key string, c, seq int) chunk.Event {
	return chunk.Event{Sec: 1_764_000_000 + uint32(seq/1000), Record: chunk.Map{
		{Key: "k", Value: key},
		{Key: "c", Value: int64(c)},
		{Key: "s", Value: int64(seq)},
		{Key: "msg", Value: "GET /api/v1/items?id=" + strconv.Itoa(seq) + " status=200 " + strings.Repeat("x", 120)},
	}}
}

// TestShardLimitedOverload offers a 4-shard stream twice what it takes: OVERLOAD_SECONDS seconds
// of its capacity, twice over, in chunks flushed back to back by 2 workers, through a proxy that
// applies Kinesis's limits per shard and answers after 30 ms (storing what it accepts: kinesis-mock
// cannot take 4,000 records a second). The plugin must deliver close to the stream's capacity
// (at least 90%, counting the second's worth a shard holds at first), with at most 10% of its
// requests throttled, every record exactly once, and, with partition_key, every key's records in
// order. The keys are picked so that each shard has as many: with a hot shard, no producer
// delivers the stream's capacity.
func TestShardLimitedOverload(t *testing.T) {
	t.Parallel()
	for _, keyed := range []bool{true, false} {
		name := "random keys"
		if keyed {
			name = "partition_key"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runOverload(t, keyed)
		})
	}
}

func runOverload(t *testing.T, keyed bool) {
	const (
		shards       = 4
		threads      = 2
		keysPerTh    = 32
		chunkRecords = 4000
		latency      = 30 * time.Millisecond
	)
	total := 2 * shards * kinesismock.ShardRecordsPerSecond * overloadSeconds(t)
	proxy, err := mock.NewShardProxy(kinesismock.ShardLimits{Latency: latency, Store: true})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	stream := newStream(t, "s", shards)
	props := []flbhost.Prop{{"http_request_timeout", "30s"}}
	if keyed {
		props = append(props, flbhost.Prop{"partition_key", "k"})
	}
	ins := outputProps(stream, props...)
	for i := range ins {
		if ins[i][0] == "endpoint" {
			ins[i][1] = proxy.URL
		}
	}
	m := flbhost.Manifest{Instances: []flbhost.Instance{ins}, Reflush: flbhost.Reflush{Max: reflushMax, Delay: reflushDelay}}
	ranges, err := mock.ShardRanges(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	want := multiset{}
	dir := t.TempDir()
	for th := range threads {
		keys := evenKeys(t, ranges, fmt.Sprintf("pod-%d-", th), keysPerTh)
		seq := 0
		for c := 0; c*chunkRecords < total/threads; c++ {
			evs := make([]chunk.Event, chunkRecords)
			for i := range evs {
				evs[i] = overloadEvent(keys[seq%len(keys)], c, seq)
				seq++
			}
			want.addRecords(evs)
			path := fmt.Sprintf("%s/chunk-%d-%d.bin", dir, th, c)
			if err := os.WriteFile(path, chunk.Build(chunk.V2Wide, evs), 0o600); err != nil {
				t.Fatal(err)
			}
			m.Jobs = append(m.Jobs, flbhost.Job{Thread: th, Tag: fmt.Sprintf("app-%d", th), Path: path})
		}
	}
	start := time.Now()
	// Twice the capacity takes twice the seconds to deliver; a minute more for a slow machine.
	res := runHostWithin(t, m, pluginEnv(t, false), time.Duration(2*overloadSeconds(t))*time.Second+time.Minute)
	elapsed := time.Since(start)

	retried := 0
	for _, f := range res.Flushes {
		if f.RC != flbhost.FLBOK {
			t.Errorf("a chunk ended with rc=%d after %d flushes", f.RC, len(f.RCs))
		}
		retried += len(f.RCs) - 1
	}
	got := proxy.Records(stream)
	compareRecords(t, stream, got, want)

	st := proxy.Stats()
	goodput := float64(st.Accepted) / proxy.Capacity(stream)
	throttled := float64(st.ThrottledRequests) / float64(max(st.Requests, 1))
	t.Logf("%d records offered to %d shards (%d s of capacity, twice): delivered in %v (%v from the first request to the "+
		"last record accepted), %.1f%% of capacity; %d requests, %d (%.1f%%) with throttled records, %d records throttled; "+
		"%d flushes again; plugin: %s", len(want), shards, overloadSeconds(t), elapsed.Round(time.Millisecond),
		st.LastAccepted.Sub(st.FirstRequest).Round(time.Millisecond), 100*goodput, st.Requests, st.ThrottledRequests,
		100*throttled, st.Throttled, retried, exitLine(res.Stderr, 0))
	if goodput < 0.9 {
		t.Errorf("goodput %.1f%% of the stream's capacity, want at least 90%%", 100*goodput)
	}
	if throttled > 0.1 {
		t.Errorf("%.1f%% of the requests throttled, want at most 10%%", 100*throttled)
	}
	if paced := summaryCount(exitLine(res.Stderr, 0), `(\d+) requests paced`); paced < 1 {
		t.Errorf("no request waited for its shard's pacing: the stream was not overloaded")
	}
	if keyed {
		checkKeyOrder(t, proxy.Accepted(), stream, retried == 0)
	}
}

// evenKeys returns n partition keys starting with prefix, as many in each shard of ranges.
func evenKeys(t *testing.T, ranges []kinesismock.ShardRange, prefix string, n int) []string {
	t.Helper()
	keys, err := kinesismock.EvenKeys(ranges, prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkKeyOrder checks that each key's records were accepted in order: by their sequence number
// when no chunk was flushed again (Fluent Bit's retry of a chunk comes after later chunks), and
// within each chunk always.
func checkKeyOrder(t *testing.T, accepted []kinesismock.Accepted, stream string, acrossChunks bool) {
	t.Helper()
	type pos struct{ c, s int }
	last := map[string]pos{}
	bad, n := 0, 0
	for _, a := range accepted {
		if a.Stream != stream {
			continue
		}
		var rec struct {
			K    string
			C, S int
		}
		if err := json.Unmarshal(a.Data, &rec); err != nil || rec.K != a.PartitionKey {
			t.Fatalf("record %q with key %q: %v", a.Data, a.PartitionKey, err)
		}
		n++
		key := rec.K
		if !acrossChunks {
			key += "/" + strconv.Itoa(rec.C)
		}
		if p, ok := last[key]; ok && rec.S <= p.s {
			if bad++; bad <= 5 {
				t.Errorf("key %s: record %d (chunk %d) accepted after record %d (chunk %d)", rec.K, rec.S, rec.C, p.s, p.c)
			}
		}
		last[key] = pos{rec.C, rec.S}
	}
	if bad > 0 {
		t.Errorf("%d of %d records accepted out of their key's order", bad, n)
	}
	t.Logf("order checked per key over %d records (across chunks: %v)", n, acrossChunks)
}

// TestShardLimitedKinesisMock throttles far below the plugin's pacing (64 KiB a second per
// shard), storing what it accepts in kinesis-mock: the plugin resends, cuts its pace, leaves
// what it cannot deliver to the chunk's next flush, and in the end every record is in the stream
// exactly once, each key's records in order in its shard.
func TestShardLimitedKinesisMock(t *testing.T) {
	t.Parallel()
	const (
		shards  = 2
		records = 400
		keys    = 8
	)
	proxy, err := mock.NewShardProxy(kinesismock.ShardLimits{Latency: 20 * time.Millisecond, BytesPerSecond: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	stream := newStream(t, "s", shards)
	ins := flbhost.Instance{
		{"region", kinesismock.Region},
		{"stream", stream},
		{"endpoint", proxy.URL},
		{"partition_key", "k"},
		{"http_request_timeout", deliveryTimeout.String()},
	}
	var evs []chunk.Event
	for i := range records {
		ev := overloadEvent(fmt.Sprint("pod-", i%keys), 0, i)
		ev.Record[3].Value = strings.Repeat("y", 1500) // 1.5 KB: the byte limit binds
		evs = append(evs, ev)
	}
	want := multiset{}
	want.addRecords(evs)
	m := flbhost.Manifest{
		Instances: []flbhost.Instance{ins},
		Jobs:      []flbhost.Job{{Tag: "app", Chunk: chunk.Build(chunk.V2Compact, evs)}},
		Reflush:   flbhost.Reflush{Max: reflushMax, Delay: reflushDelay},
	}
	res := runHost(t, m, pluginEnv(t, false))
	if f := res.Flushes[0]; f.RC != flbhost.FLBOK {
		t.Errorf("the chunk ended with rc=%d after %d flushes", f.RC, len(f.RCs))
	}
	got := readStream(t, stream)
	compareRecords(t, stream, got, want)
	// ReadAll reads each shard in sequence order: a key's records, all in one shard, must be in
	// order there.
	last := map[string]int{}
	for _, r := range got {
		var rec struct {
			K string
			S int
		}
		if err := json.Unmarshal(r.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if s, ok := last[rec.K]; ok && rec.S <= s {
			t.Errorf("key %s: record %d stored after record %d", rec.K, rec.S, s)
		}
		last[rec.K] = rec.S
	}
	st := proxy.Stats()
	t.Logf("%d records: %d requests, %d with throttled records, %d records throttled; %d flushes; plugin: %s",
		records, st.Requests, st.ThrottledRequests, st.Throttled, len(res.Flushes[0].RCs), exitLine(res.Stderr, 0))
	if st.Throttled == 0 {
		t.Errorf("no record throttled: the test does not exercise throttling")
	}
}
