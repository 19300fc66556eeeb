// Package test holds the end-to-end tests: the built plugin library, loaded by
// a C host that drives Fluent Bit's Go proxy ABI, sends to kinesis-mock on
// 127.0.0.1, and every record is read back and compared byte for byte.
// Build the library first (`make build`); test/node_modules must be
// installed (`npm ci` in test/).
package test

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
)

// TestDeliversEveryRecord runs two instances, each to its own stream, one in
// each protocol (CBOR, JSON), each flushed from two threads at once with
// chunks in every encoding (and one chunk of big records that cannot go 500
// to a request), through a proxy that enforces Kinesis's request limits. Every flush must return FLB_OK and every
// record must reach its instance's stream exactly once, byte for byte.
// AWS_CA_BUNDLE is set, as on the machines that set it.
//
// kinesis-mock slows down as a shard fills (each put costs more than the
// last) and handles about 1 MB/s, so the volume is kept to what it can take
// in well under a minute on two cores.
func TestDeliversEveryRecord(t *testing.T) {
	t.Parallel()
	const (
		instances       = 2
		shards          = 4
		threadsPerInst  = 2
		chunksPerThread = 4
		recordsPerChunk = 700 // more than one request each; kinesis-mock slows as shards fill
		bigRecords      = 420 // over 10 MiB: fewer than 500 records, yet two requests
		bigPad          = 25000
	)
	formats := []chunk.Format{chunk.V2Wide, chunk.V2Compact, chunk.Legacy, chunk.V2Compact}

	proxy, err := mock.NewLimitProxy(0)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	var m flbhost.Manifest
	streams := make([]string, instances)
	want := make([]multiset, instances)
	perInstance := make([]int, instances)
	for i := range instances {
		streams[i] = newStream(t, strconv.Itoa(i), shards)
		want[i] = multiset{}
		props := flbhost.Instance{
			{"region", "us-east-1"},
			{"stream", streams[i]},
			{"endpoint", proxy.URL},
		}
		if i == 1 {
			// Fluent Bit's property lookup ignores case. Instance 0 sends CBOR (the
			// default), this one JSON: every record read back, in both protocols.
			props = flbhost.Instance{
				{"Region", "us-east-1"},
				{"STREAM", streams[i]},
				{"Endpoint", proxy.URL},
				{"Auto_Retry_Requests", "On"},
				{"append_newline", "true"},
				{"Protocol", "json"},
			}
		}
		m.Instances = append(m.Instances, props)
		for th := range threadsPerInst {
			for c := range chunksPerThread {
				f := formats[(c+th+i)%len(formats)]
				src := fmt.Sprintf("i%d-t%d-c%d-%s", i, th, c, f)
				var evs []chunk.Event
				if i == 0 && th == 1 && c == chunksPerThread-1 {
					evs = chunk.LogEvents(src, 0, bigRecords, bigPad)
				} else {
					evs = chunk.LogEvents(src, c*recordsPerChunk, recordsPerChunk, 0)
				}
				want[i].addRecords(evs)
				perInstance[i] += len(evs)
				m.Jobs = append(m.Jobs, flbhost.Job{
					Instance: i,
					Thread:   i*threadsPerInst + th,
					Tag:      fmt.Sprintf("kube.var.log.containers.web-%d_default_app-%d.log", i, th),
					Chunk:    chunk.Build(f, evs),
				})
			}
		}
	}

	res := runHost(t, m, pluginEnv(t, true))

	ctxs := map[string]bool{}
	for i, in := range res.Inits {
		if in.RC != flbhost.FLBOK || in.Ctx == "null" || ctxs[in.Ctx] {
			t.Errorf("init %d: rc=%d ctx=%s, want rc=1 and a context of its own", i, in.RC, in.Ctx)
		}
		ctxs[in.Ctx] = true
		// Init logs the effective configuration, which names the stream.
		if !strings.Contains(strings.Join(instanceLines(res.Stderr, i), "\n"), streams[i]) {
			t.Errorf("instance %d: no log line names its stream %s", i, streams[i])
		}
	}
	for j, f := range res.Flushes {
		if f.RC != flbhost.FLBOK {
			t.Errorf("flush %d (instance %d, thread %d, %d bytes): rc=%d, want FLB_OK",
				j, m.Jobs[j].Instance, m.Jobs[j].Thread, len(m.Jobs[j].Chunk), f.RC)
		}
	}
	if len(res.Exits) != instances {
		t.Errorf("%d exit calls ran, want %d", len(res.Exits), instances)
	}
	st := proxy.Stats()
	t.Logf("PutRecords: %d requests, %d records, at most %d records and %d bytes in one",
		st.Requests, st.Records, st.MaxRecords, st.MaxBytes)
	for _, v := range proxy.Violations() {
		t.Errorf("request beyond Kinesis limits: %s", v)
	}

	for i, stream := range streams {
		got := readStream(t, stream)
		compareRecords(t, stream, got, want[i])
		perShard := map[string]int{}
		for _, r := range got {
			perShard[r.ShardID]++
			if n := len(r.PartitionKey); n < 1 || n > 256 {
				t.Errorf("partition key %q: %d characters, want 1 to 256", r.PartitionKey, n)
			}
		}
		// Random partition keys spread the records over every shard.
		if len(perShard) != shards {
			t.Errorf("stream %s: records per shard %v, want all %d shards used", stream, perShard, shards)
		}
	}

	// The exit summary of each instance: loosely, a line with "exit" that
	// counts its records.
	for i := range instances {
		var exit []string
		for _, line := range instanceLines(res.Stderr, i) {
			if strings.Contains(strings.ToLower(line), "exit") {
				exit = append(exit, line)
			}
		}
		if len(exit) == 0 {
			t.Errorf("instance %d logged no exit summary", i)
			continue
		}
		if !strings.Contains(strings.Join(exit, "\n"), strconv.Itoa(perInstance[i])) {
			t.Errorf("instance %d exit summary does not count its %d records: %q", i, perInstance[i], exit)
		}
	}
}

// TestBadInput sends chunks that cannot be decoded: each returns FLB_ERROR
// with an error logged, the process survives, and good chunks flushed after
// them on the same instance are delivered.
func TestBadInput(t *testing.T) {
	t.Parallel()
	stream := newStream(t, "s", 1)

	good := chunk.LogEvents("good", 0, 50, 0)
	floatTime := chunk.LogEvents("float-time", 0, 20, 0)
	truncated := chunk.LogEvents("truncated", 0, 10, 0)
	truncChunk := chunk.Build(chunk.V2Compact, truncated)
	truncChunk = truncChunk[:len(truncChunk)-5]

	var floatChunk []byte // legacy events with a float64 time
	for _, ev := range floatTime {
		floatChunk = append(floatChunk, 0x92, 0xcb)
		floatChunk = binary.BigEndian.AppendUint64(floatChunk, math.Float64bits(1_764_000_000.25))
		floatChunk = chunk.V2Compact.AppendValue(floatChunk, ev.Record)
	}

	tests := []struct {
		name  string
		chunk []byte
		want  int
	}{
		{"truncated", truncChunk, flbhost.FLBError},
		{"record not a map", chunk.AppendEventBody(nil, chunk.V2Wide, 1_764_000_000, 0,
			chunk.V2Wide.AppendString(nil, "a string, not a map")), flbhost.FLBError},
		{"garbage", []byte("this is not msgpack \xc1\xff\x00\x01"), flbhost.FLBError},
		{"good after bad", chunk.Build(chunk.V2Wide, good), flbhost.FLBOK},
		{"float time", floatChunk, flbhost.FLBOK},
	}
	m := flbhost.Manifest{Instances: []flbhost.Instance{outputProps(stream)}}
	for _, tt := range tests {
		m.Jobs = append(m.Jobs, flbhost.Job{Tag: "app.bad", Chunk: tt.chunk})
	}

	res := runHost(t, m, pluginEnv(t, false))

	if len(res.Inits) != 1 || res.Inits[0].RC != flbhost.FLBOK {
		t.Fatalf("init: %+v, want rc=1", res.Inits)
	}
	for j, tt := range tests {
		if got := res.Flushes[j].RC; got != tt.want {
			t.Errorf("flush %q: rc=%d, want %d", tt.name, got, tt.want)
		}
	}
	if n, want := countLines(res.Stderr, "error"), 3; n < want {
		t.Errorf("%d log lines mention an error, want at least %d (one per bad chunk)", n, want)
	}

	// The good chunks arrive exactly once. Whether the decodable prefix of the
	// truncated chunk is sent is not specified; if it is, at most once.
	want := multiset{}
	want.addRecords(good)
	want.addRecords(floatTime)
	prefix := multiset{}
	prefix.addRecords(truncated)
	var got []string
	var sent []int
	for _, r := range readStream(t, stream) {
		if prefix[string(r.Data)] > 0 {
			prefix[string(r.Data)]--
			sent = append(sent, len(r.Data))
			continue
		}
		got = append(got, string(r.Data))
	}
	if len(sent) > 0 {
		t.Logf("%d records of the truncated chunk were delivered before the decoding error", len(sent))
	}
	compareRecords(t, stream, toRecords(got), want)
}

// TestBadConfig initialises instances with a missing region, and with bad
// values: Init returns FLB_ERROR and the log names every bad key; the valid
// instance initialised after them works; every exit call copes.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	stream := newStream(t, "s", 1)
	good := chunk.LogEvents("after-bad-config", 0, 30, 0)

	tests := []struct {
		name  string
		props flbhost.Instance
		words []string // the log must name these
	}{
		{"missing region", flbhost.Instance{{"stream", stream}, {"endpoint", mock.Endpoint}}, []string{"region"}},
		{"empty region", flbhost.Instance{{"region", ""}, {"stream", stream}, {"endpoint", mock.Endpoint}}, []string{"region"}},
		{"bad bool", outputProps(stream, flbhost.Prop{"auto_retry_requests", "maybe"}),
			[]string{"auto_retry_requests", "maybe"}},
		{"two bad values", outputProps(stream,
			flbhost.Prop{"max_record_size", "20M"},
			flbhost.Prop{"http_request_timeout", "soon"}),
			[]string{"max_record_size", "20M", "http_request_timeout", "soon"}},
		{"missing stream", flbhost.Instance{{"region", "us-east-1"}, {"endpoint", mock.Endpoint}}, []string{"stream"}},
	}
	var m flbhost.Manifest
	for _, tt := range tests {
		m.Instances = append(m.Instances, tt.props)
	}
	validIdx := len(m.Instances)
	m.Instances = append(m.Instances, outputProps(stream))
	m.Jobs = []flbhost.Job{{Instance: validIdx, Tag: "app.ok", Chunk: chunk.Build(chunk.V2Compact, good)}}

	res := runHost(t, m, pluginEnv(t, false))

	for i, tt := range tests {
		if res.Inits[i].RC != flbhost.FLBError {
			t.Errorf("init %q: rc=%d, want FLB_ERROR", tt.name, res.Inits[i].RC)
		}
		lines := strings.Join(instanceLines(res.Stderr, i), "\n")
		for _, w := range tt.words {
			if !strings.Contains(lines, w) {
				t.Errorf("init %q: log of instance %d does not name %q:\n%s", tt.name, i, w, lines)
			}
		}
		if !strings.Contains(lines, "error]") {
			t.Errorf("init %q: no error-level line", tt.name)
		}
	}
	if res.Inits[validIdx].RC != flbhost.FLBOK {
		t.Fatalf("valid instance after bad ones: init rc=%d, want FLB_OK", res.Inits[validIdx].RC)
	}
	if res.Flushes[0].RC != flbhost.FLBOK {
		t.Errorf("flush to the valid instance: rc=%d, want FLB_OK", res.Flushes[0].RC)
	}
	if len(res.Exits) != len(m.Instances) {
		t.Errorf("%d exit calls ran, want %d", len(res.Exits), len(m.Instances))
	}
	want := multiset{}
	want.addRecords(good)
	compareRecords(t, stream, readStream(t, stream), want)
}

// TestDryRun does what `fluent-bit --dry-run` does: Register, then ExitCtx
// with a context the plugin never made, then Unregister.
func TestDryRun(t *testing.T) {
	t.Parallel()
	res := runHost(t, flbhost.Manifest{Exit: flbhost.ExitNull}, pluginEnv(t, true))
	if len(res.Exits) != 1 {
		t.Errorf("%d exit calls ran, want 1", len(res.Exits))
	}
}

// TestExitWithoutContext ends the instances with FLBPluginExit, once per
// instance, as Fluent Bit does for plugins without FLBPluginExitCtx: the
// records are delivered and both instances log their exit.
func TestExitWithoutContext(t *testing.T) {
	t.Parallel()
	stream := newStream(t, "s", 1)
	evs := [2][]chunk.Event{chunk.LogEvents("exit-a", 0, 40, 0), chunk.LogEvents("exit-b", 0, 40, 0)}
	m := flbhost.Manifest{
		Instances: []flbhost.Instance{outputProps(stream), outputProps(stream)},
		Jobs: []flbhost.Job{
			{Instance: 0, Thread: 0, Tag: "a", Chunk: chunk.Build(chunk.V2Wide, evs[0])},
			{Instance: 1, Thread: 1, Tag: "b", Chunk: chunk.Build(chunk.Legacy, evs[1])},
		},
		Exit: flbhost.ExitPlugin,
	}
	res := runHost(t, m, pluginEnv(t, false))
	for j, f := range res.Flushes {
		if f.RC != flbhost.FLBOK {
			t.Errorf("flush %d: rc=%d, want FLB_OK", j, f.RC)
		}
	}
	if len(res.Exits) != 2 {
		t.Errorf("%d exit calls ran, want 2", len(res.Exits))
	}
	for i := range 2 {
		if countLines(strings.Join(instanceLines(res.Stderr, i), "\n"), "exit") == 0 {
			t.Errorf("instance %d logged no exit summary", i)
		}
	}
	want := multiset{}
	want.addRecords(evs[0])
	want.addRecords(evs[1])
	compareRecords(t, stream, readStream(t, stream), want)
}
