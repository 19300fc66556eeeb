package fluentbit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// overloadSeconds is how many seconds of the stream's capacity TestShardLimitedOverload offers,
// twice over: OVERLOAD_SECONDS, default 6 (`make e2e-overload` runs 60).
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

// TestShardLimitedOverload runs the plugin in Fluent Bit, one worker, against a proxy that applies
// Kinesis's limits per shard (1,000 records and 1 MiB a second) and answers after 30 ms: a 4-shard
// stream, and twice OVERLOAD_SECONDS seconds of its capacity written before Fluent Bit starts, in 4
// files that tail reads at once, so that the plugin is offered more than the stream takes from the
// first flush to the last. With random keys, flushes yield the worker and several chunks are in
// flight at once; with partition_key (the field src, 8 keys per file, spread evenly over the
// shards), a flush holds its worker. Either way the plugin must deliver at least 90% of the
// stream's capacity (counting the second's worth each shard holds at first), with at most 10% of
// its requests throttled, every record exactly once and byte for byte, and, with partition_key,
// every key's records in order.
func TestShardLimitedOverload(t *testing.T) {
	needFluentBit(t)
	for _, keyed := range []bool{false, true} {
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
		files        = 4
		keysPerFile  = 8
		latency      = 30 * time.Millisecond
		perShardRate = kinesismock.ShardRecordsPerSecond
	)
	seconds := overloadSeconds(t)
	total := 2 * shards * perShardRate * seconds
	proxy, err := mock.NewShardProxy(kinesismock.ShardLimits{Latency: latency, Store: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	stream := newStream(t, shards)
	ranges, err := mock.ShardRanges(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	// Each file has keys of its own, as many in each shard: a key's records are in one file, in
	// order, and a chunk (of one file) loads every shard alike. File f holds the records f,
	// f+files, f+2·files... in order, their keys taken in turn.
	keys := make([][]string, files)
	for f := range keys {
		if keys[f], err = kinesismock.EvenKeys(ranges, fmt.Sprintf("pod-%d-", f), keysPerFile); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	w := want{}
	dir := filepath.Join(e.dir, "app")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, files)
	for seq := range total {
		f := seq % files
		key := keys[f][(seq/files)%keysPerFile]
		start := len(bufs[f])
		bufs[f] = chunk.AppendJSON(bufs[f], record(key, seq))
		bufs[f] = append(bufs[f], '\n')
		w[seq] = string(bufs[f][start:])
	}
	for f, b := range bufs {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(f)+".log"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	out := output("app.*", stream, proxy.URL,
		[2]string{"workers", "1"},
		[2]string{"http_request_timeout", "30s"},
		[2]string{"Retry_Limit", "no_limits"})
	if keyed {
		out = append(out, [2]string{"partition_key", "src"})
	}
	start := time.Now()
	proc := e.startClassic(t, pipeline{service: e.service(5), inputs: []props{e.tail("app")}, outputs: []props{out}})
	// Twice the capacity takes twice the seconds to deliver; a minute more for a slow machine.
	waitFor(t, fmt.Sprintf("%d records accepted", total), time.Duration(2*seconds)*time.Second+time.Minute, proc, func() bool {
		return proxy.Stats().Accepted >= total
	})
	elapsed := time.Since(start)
	stop(t, proc, 5*time.Second)

	d, problems := compare(stream, proxy.Records(stream), w, true)
	if len(d.missing)+d.duplicates+d.mismatched+d.unexpected > 0 {
		t.Errorf("stream %s: %d written, %d accepted: %d missing, %d duplicates, %d differ, %d unexpected",
			stream, len(w), d.read, len(d.missing), d.duplicates, d.mismatched, d.unexpected)
	}
	for _, p := range problems {
		t.Error(p)
	}
	st := proxy.Stats()
	goodput := float64(st.Accepted) / proxy.Capacity(stream)
	throttled := float64(st.ThrottledRequests) / float64(max(st.Requests, 1))
	stderr := proc.Stderr()
	summary := ""
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "] exit: ") || strings.Contains(line, "[ warn]") && summary == "" {
			summary += "\n" + line
		}
	}
	t.Logf("%d records offered to %d shards (%d s of capacity, twice): all accepted %v after Fluent Bit started (%v from the "+
		"first request to the last record accepted), %.1f%% of capacity; %d requests, %d (%.1f%%) with throttled records, "+
		"%d records throttled; plugin: %s", total, shards, seconds, elapsed.Round(time.Millisecond),
		st.LastAccepted.Sub(st.FirstRequest).Round(time.Millisecond), 100*goodput, st.Requests, st.ThrottledRequests,
		100*throttled, st.Throttled, summary)
	if goodput < 0.9 {
		t.Errorf("goodput %.1f%% of the stream's capacity, want at least 90%%", 100*goodput)
	}
	if throttled > 0.1 {
		t.Errorf("%.1f%% of the requests throttled, want at most 10%%", 100*throttled)
	}
	if keyed {
		checkKeyOrder(t, proxy.Accepted(), stream)
	}
}

// checkKeyOrder checks that each key's records were accepted in the order they were written (by
// sequence number: a key's records are all in one file).
func checkKeyOrder(t *testing.T, accepted []kinesismock.Accepted, stream string) {
	t.Helper()
	last := map[string]int{}
	bad, n := 0, 0
	for _, a := range accepted {
		if a.Stream != stream {
			continue
		}
		var rec struct {
			Seq int    `json:"seq"`
			Src string `json:"src"`
		}
		if err := json.Unmarshal(a.Data, &rec); err != nil || rec.Src != a.PartitionKey {
			t.Fatalf("record %q with partition key %q: %v", a.Data, a.PartitionKey, err)
		}
		n++
		if s, ok := last[rec.Src]; ok && rec.Seq <= s {
			if bad++; bad <= 5 {
				t.Errorf("key %s: record %d accepted after record %d", rec.Src, rec.Seq, s)
			}
		}
		last[rec.Src] = rec.Seq
	}
	if bad > 0 {
		t.Errorf("%d of %d records accepted out of their key's order", bad, n)
	}
	t.Logf("order checked per key over %d records", n)
}
