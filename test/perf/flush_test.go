package perf

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// processCPU is this process's user+system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFlushTLS is BenchmarkWholePath's path without cgo and the C host, in-process so that
// -cpuprofile and -memprofile see it: batcher.Pool.Flush (the plugin's defaults) with a real
// kinesis.Client sending to the sink over TLS, one chunk of 5,000 records per op, from one
// goroutine, in PERF_PROTOCOL. Two distinct chunks (PERF_DISTINCT) of PERF_INPUT are flushed in
// turn.
func BenchmarkFlushTLS(b *testing.B) {
	dir := b.TempDir()
	s := startSink(b, dir)
	for _, kv := range clientEnv(b, dir, s) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	ctx := context.Background()
	inFlight := envInt(b, "PERF_MAX_IN_FLIGHT", batcher.DefaultMaxInFlight)
	protocol := perfProtocol(b)
	client, err := kinesis.New(ctx, kinesis.Options{Region: region, Stream: streamName, Endpoint: s.Endpoint, AutoRetry: true,
		MaxConns: inFlight, Protocol: protocol})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	pool := batcher.NewPool(client, batcher.Options{Record: record.Options{AppendNewline: true}, Shards: client,
		MaxInFlight: inFlight})
	defer pool.Close(ctx)

	input := perfInput(b)
	chunks := buildChunks(input, envInt(b, "PERF_DISTINCT", 2))
	floor := floorPerRecord(recordData(input, 1), protocol)
	// One flush first: connection, TLS handshake, credentials.
	if _, err := pool.Flush(ctx, chunks[0], "kube.perf"); err != nil {
		b.Fatal(err)
	}
	before := s.stats(b)

	b.SetBytes(int64(len(chunks[0])))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := range b.N {
		res, err := pool.Flush(ctx, chunks[i%len(chunks)], "kube.perf")
		if err != nil {
			b.Fatal(err)
		}
		if res.Accepted != chunkRecords {
			b.Fatalf("flush %d: %d accepted, want %d", i, res.Accepted, chunkRecords)
		}
	}
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	sent := s.stats(b).sub(before)
	if want := int64(b.N * chunkRecords); sent.Records != want {
		b.Fatalf("sink received %d records, want %d", sent.Records, want)
	}
	records := float64(b.N * chunkRecords)
	perRecord := float64(cpu.Nanoseconds()) / records
	b.ReportMetric(perRecord, "ns-cpu/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
	b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/record")
	b.ReportMetric(perRecord/float64(floor.Nanoseconds()), "ratio")
}
