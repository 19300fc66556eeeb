package perf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
)

const (
	pluginName = "kinesis_streams_go"
	pluginSO   = "../../build/kinesis_streams_go.so" // relative to this package
	hostSrc    = "../host/host.c"
)

// BenchmarkWholePath measures the whole path through the real ABI: the C host (test/host) loads
// the built library and flushes PERF_RECORDS records (default 500,000: PERF_DISTINCT distinct
// chunks of 5,000, default 10, flushed in turn) from PERF_THREADS threads (default 1, as
// "workers 1"), each waiting PERF_GAP_MS (default 40) after every flush as Fluent Bit's worker
// waits for its next chunk (the Go runtime goes idle in between, which costs it at every flush;
// flushed back to back, the plugin looks cheaper than it is in Fluent Bit), to the sink over
// TLS, in PERF_PROTOCOL (the plugin's default when unset). The CPU counted is the host process's (getrusage, every
// thread) from the start of the flushes to their end, less the host's own work (reading and wiping
// the chunks, its output and resident-set sampling); start-up and exit are reported apart. It runs
// the host PERF_RUNS times (default 3), each after measuring the floor again, prints every run,
// and reports the medians: on a shared machine one run can be 20% off. Run it alone:
// -benchtime=1x.
func BenchmarkWholePath(b *testing.B) {
	records := envInt(b, "PERF_RECORDS", 500_000)
	distinct := envInt(b, "PERF_DISTINCT", 10)
	threads := envInt(b, "PERF_THREADS", 1)
	gap := time.Duration(envInt0(b, "PERF_GAP_MS", 40)) * time.Millisecond
	protocol := perfProtocol(b)
	flushes := (records + chunkRecords - 1) / chunkRecords
	records = flushes * chunkRecords
	distinct = min(distinct, flushes)

	lib := pluginSO
	if v := os.Getenv("PERF_SO"); v != "" { // another build, e.g. make build-debug's for perf
		lib = v
		if !filepath.IsAbs(lib) {
			lib = filepath.Join("..", "..", lib) // relative to the repository's root
		}
	}
	so, err := filepath.Abs(lib)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(so); err != nil {
		b.Fatalf("plugin library %s missing: run `make build` first (%v)", so, err)
	}
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	host, err := flbhost.Build(ctx, hostSrc, dir)
	if err != nil {
		b.Fatal(err)
	}
	s := startSink(b, dir)
	env := append(clientEnv(b, dir, s), "PATH="+os.Getenv("PATH"))
	if v := os.Getenv("PERF_GODEBUG"); v != "" {
		env = append(env, "GODEBUG="+v)
	}
	if v := os.Getenv("PERF_GOGC"); v != "" { // for experiments with the collector
		env = append(env, "GOGC="+v)
	}

	input := perfInput(b)
	chunks := buildChunks(input, distinct)
	paths := make([]string, distinct)
	chunkBytes := 0
	for i, c := range chunks {
		paths[i] = filepath.Join(dir, "chunk-"+strconv.Itoa(i)+".bin")
		if err := os.WriteFile(paths[i], c, 0o600); err != nil {
			b.Fatal(err)
		}
		chunkBytes += len(c)
	}
	m := flbhost.Manifest{
		SO:   so,
		Name: pluginName,
		Gap:  gap,
		Instances: []flbhost.Instance{{
			{"region", region},
			{"stream", streamName},
			{"endpoint", s.Endpoint},
			{"workers", strconv.Itoa(threads)},
			{"protocol", protocol},
		}},
	}
	if v := os.Getenv("PERF_MAX_IN_FLIGHT"); v != "" {
		m.Instances[0] = append(m.Instances[0], flbhost.Prop{"max_in_flight", v})
	}
	inputBytes := 0
	for j := range flushes {
		m.Jobs = append(m.Jobs, flbhost.Job{Thread: j % threads, Tag: "kube.perf", Path: paths[j%distinct]})
		inputBytes += len(chunks[j%distinct])
	}
	data := recordData(input, distinct)
	chunks = nil
	runtime.GC()

	b.Logf("config: %d records = %d flushes of %d-record chunks (input %s, %s, %d distinct, %.2f MB each on average), %d flush threads, %v gap, protocol %s, "+
		"1 instance (region %s, stream %s, endpoint %s, defaults otherwise: random partition keys, append_newline, no compression), "+
		"TLS sink %s, GOMAXPROCS of the host: default, %d CPUs",
		records, flushes, chunkRecords, input, chunkFormat, distinct, float64(chunkBytes)/float64(distinct)/1e6, threads, gap, protocol,
		region, streamName, s.Endpoint, s.CAFile, runtime.NumCPU())

	runs := envInt(b, "PERF_RUNS", 3)
	b.ResetTimer()
	for range b.N {
		var perRecords, ratios, peaks []float64
		for range runs {
			p, r, peak := wholePathRun(b, host, dir, m, env, s, input, records, inputBytes, floorPerRecord(data, protocol))
			perRecords, ratios, peaks = append(perRecords, p), append(ratios, r), append(peaks, peak)
		}
		if runs > 1 {
			fmt.Printf("wholepath: median of %d runs: %.0f ns/record (%.0f records per CPU-second), ratio %.2f, peak RSS %.1f MB; ratios %.2f\n",
				runs, median(perRecords), 1e9/median(perRecords), median(ratios), median(peaks), ratios)
		}
		b.ReportMetric(median(perRecords), "ns-cpu/record")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(1e9/median(perRecords), "records/cpu-s")
		// Not the host's MaxRSSKB: Linux carries ru_maxrss across exec, so it would be the test
		// process's own peak (it forked the host).
		b.ReportMetric(median(peaks), "peak-rss-MB")
	}
}

// median returns the median of v (the mean of the middle two for an even count).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// wholePathRun runs the host once over the manifest and prints its line: CPU per record, the ratio
// to floor (measured just before, so that both see the machine in the same state) and the peak
// resident set in MB.
func wholePathRun(b *testing.B, host, dir string, m flbhost.Manifest, env []string, s *sink,
	input string, records, inputBytes int, floor time.Duration) (perRecord, ratio, peakMB float64) {
	before := s.stats(b)
	start := time.Now()
	runCtx, runCancel := context.WithTimeout(context.Background(), 3*time.Minute)
	r, err := flbhost.Run(runCtx, host, dir, m, env)
	runCancel()
	wall := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if r.Err != nil || !r.Done || r.Usage == nil {
		b.Fatalf("host: %v (done %v)\nstdout:\n%s\nstderr:\n%s", r.Err, r.Done, r.Stdout, r.Stderr)
	}
	for j, f := range r.Flushes {
		if f.RC != flbhost.FLBOK {
			b.Fatalf("flush %d: rc %d\nstderr:\n%s", j, f.RC, r.Stderr)
		}
	}
	sent := s.stats(b).sub(before)
	if sent.Records != int64(records) {
		b.Fatalf("sink received %d records, want %d", sent.Records, records)
	}

	u := r.Usage
	flushCPU := u.User + u.Sys
	pluginCPU := flushCPU - u.Host
	total := time.Duration(r.Rusage.Utime.Nano() + r.Rusage.Stime.Nano())
	perRecord = float64(pluginCPU.Nanoseconds()) / float64(records)
	fmt.Printf("wholepath: input %s, %d records, %d bytes of chunks, wall %v; flush phase CPU %v (user %v, sys %v), host's own work %v, "+
		"plugin %v = %.0f ns/record (%.0f records per CPU-second), %.3f wake-ups/record; start-up and exit %v; "+
		"peak RSS %.1f MB (%.1f MB over the host alone); sink: %d requests, %.1f MB of bodies, %d over HTTP/2; floor %v/record; ratio %.2f\n",
		input, records, inputBytes, wall.Round(time.Millisecond), flushCPU, u.User, u.Sys, u.Host, pluginCPU, perRecord,
		1e9/perRecord, float64(u.Switches)/float64(records), (total - flushCPU).Round(time.Millisecond), float64(r.RSS.Peak)/1024, float64(r.RSS.Peak-r.RSS.Start)/1024,
		sent.Requests, float64(sent.Bytes)/1e6, sent.HTTP2, floor, perRecord/float64(floor.Nanoseconds()))
	if os.Getenv("PERF_GODEBUG") != "" { // e.g. gctrace=1: the runtime's lines are on stderr
		fmt.Println(r.Stderr)
	}
	reportRSS(b, r.RSS, records)
	return perRecord, perRecord / float64(floor.Nanoseconds()), float64(r.RSS.Peak) / 1024
}

// soakGrowthMB is how much the resident set may grow from the second quarter of a soak (the
// plugin's buffers and pools have reached their size) to its last quarter.
const soakGrowthMB = 8

// reportRSS prints the host's resident set: alone, after Init, and after each tenth of the
// flushes. From 1,000,000 records on (a soak: PERF_RECORDS=2000000) it fails when the last
// quarter's peak exceeds the second quarter's by more than soakGrowthMB.
func reportRSS(b *testing.B, rss flbhost.RSS, records int) {
	n := len(rss.Order)
	if n == 0 {
		b.Fatal("host printed no rss after flushes")
	}
	series := make([]int64, n)
	for i, j := range rss.Order {
		series[i] = rss.AfterFlush[j]
	}
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	line := fmt.Sprintf("rss: host alone %.1f MB, after init %.1f MB; after each tenth of the flushes:", mb(rss.Start), mb(rss.Init))
	for k := 1; k <= 10; k++ {
		line += fmt.Sprintf(" %.1f", mb(series[k*n/10-1]))
	}
	peakOf := func(s []int64) int64 {
		var m int64
		for _, v := range s {
			m = max(m, v)
		}
		return m
	}
	q2, q4 := peakOf(series[n/4:n/2]), peakOf(series[3*n/4:])
	line += fmt.Sprintf(" MB; sampled peak %.1f MB after %d flushes; peak of the 2nd quarter %.1f MB, of the last %.1f MB (%+.1f MB)", mb(rss.Peak), rss.PeakAfter, mb(q2), mb(q4), mb(q4-q2))
	fmt.Println(line)
	if records >= 1_000_000 && mb(q4-q2) > soakGrowthMB {
		b.Errorf("soak: resident set grew %.1f MB from the second quarter to the last (limit %d MB)", mb(q4-q2), soakGrowthMB)
	}
}
