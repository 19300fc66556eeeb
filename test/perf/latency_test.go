package perf

import (
	"cmp"
	"context"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFluentBitLatency runs the real Fluent Bit (the binary in FLUENT_BIT) on a file of
// container log lines (PERF_LINES, default 100,000, about 400 bytes each: tail and the json
// parser) with `workers 1`, once with Fluent Bit's C output kinesis_streams and once with this
// plugin, in turn, PERF_RUNS times each (default 5), against the sink answering each request after
// PERF_LATENCY (default 50ms), as Kinesis answers in tens of milliseconds. It measures the time
// from Fluent Bit's start until the sink has received every line (delivered), and from the first
// request to the last (sending), prints every run and reports the medians. PERF_MAX_IN_FLIGHT sets
// the plugin's max_in_flight (default: its own default) and PERF_GO_WORKERS its workers (default 1,
// the C output's 1 always); PERF_OUTPUTS=go or c runs one only;
// PERF_FLUSH sets the service's Flush (default 1, Fluent Bit's: chunks are handed to the output
// once a second, which often leaves the output idle between batches; 0.2 makes the output the
// bottleneck). Both outputs pay the same start-up and flush intervals. Run it alone: -benchtime=1x.
func BenchmarkFluentBitLatency(b *testing.B) {
	fluentBit := os.Getenv("FLUENT_BIT")
	if fluentBit == "" {
		b.Skip("FLUENT_BIT is not set: skipped (it needs a Fluent Bit binary with the kinesis_streams output)")
	}
	fluentBit, err := filepath.Abs(fluentBit)
	if err != nil {
		b.Fatal(err)
	}
	so, err := filepath.Abs(pluginSO)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(so); err != nil {
		b.Fatalf("plugin library %s missing: run `make build` first (%v)", so, err)
	}
	lines := envInt(b, "PERF_LINES", 100_000)
	runs := envInt(b, "PERF_RUNS", 5)
	latency := 50 * time.Millisecond
	if v := os.Getenv("PERF_LATENCY"); v != "" {
		if latency, err = time.ParseDuration(v); err != nil || latency < 0 {
			b.Fatalf("PERF_LATENCY=%q: want a duration such as 50ms", v)
		}
	}
	flush := "1"
	if v := os.Getenv("PERF_FLUSH"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 {
			b.Fatalf("PERF_FLUSH=%q: want a number of seconds such as 1 or 0.2", v)
		}
		flush = v
	}
	outputs := []string{"c", "go"}
	switch v := os.Getenv("PERF_OUTPUTS"); v {
	case "":
	case "c", "go":
		outputs = []string{v}
	default:
		b.Fatalf("PERF_OUTPUTS=%q: want c or go", v)
	}
	dir := b.TempDir()
	logFile, size := writeContainerLog(b, dir, lines)
	b.Logf("%d lines, %d bytes (%d a line), sink latency %v, Flush %s, workers 1 (this plugin: %s), max_in_flight %s", lines, size,
		size/int64(lines), latency, flush, cmp.Or(os.Getenv("PERF_GO_WORKERS"), "1"), cmp.Or(os.Getenv("PERF_MAX_IN_FLIGHT"), "default"))

	results := map[string][]latencyRun{}
	for run := range runs {
		for i := range outputs {
			out := outputs[(run+i)%len(outputs)] // alternate which goes first
			r := runLatency(b, fluentBit, so, logFile, out, flush, lines, latency, filepath.Join(dir, fmt.Sprintf("run-%d-%s", run, out)))
			// On stdout as it goes: a benchmark's log is printed at its end only.
			fmt.Printf("run %d %-2s: delivered in %v (sending %v), %d requests, %d records\n",
				run, out, r.delivered.Round(time.Millisecond), r.sending.Round(time.Millisecond), r.requests, r.records)
			results[out] = append(results[out], r)
		}
	}
	for _, out := range outputs {
		rs := results[out]
		d := medianOf(rs, func(r latencyRun) time.Duration { return r.delivered })
		s := medianOf(rs, func(r latencyRun) time.Duration { return r.sending })
		lo := slices.MinFunc(rs, func(a, b latencyRun) int { return cmp.Compare(a.delivered, b.delivered) }).delivered
		hi := slices.MaxFunc(rs, func(a, b latencyRun) int { return cmp.Compare(a.delivered, b.delivered) }).delivered
		b.Logf("%-2s: delivered in %v median (%v to %v), sending %v median, over %d runs",
			out, d.Round(time.Millisecond), lo.Round(time.Millisecond), hi.Round(time.Millisecond), s.Round(time.Millisecond), len(rs))
		b.ReportMetric(d.Seconds(), out+"-delivered-s")
		b.ReportMetric(s.Seconds(), out+"-sending-s")
	}
}

// latencyRun is one Fluent Bit run.
type latencyRun struct {
	delivered, sending time.Duration
	requests, records  int64
}

func medianOf(rs []latencyRun, f func(latencyRun) time.Duration) time.Duration {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = f(r)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// runLatency runs Fluent Bit on logFile with one output (c: kinesis_streams, go: this plugin)
// to a new sink, until the sink has lines records or 2 minutes passed.
func runLatency(b *testing.B, fluentBit, so, logFile, output, flush string, lines int, latency time.Duration, dir string) latencyRun {
	b.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	s := startSinkLatency(b, dir, latency)
	defer s.stop()
	port := s.Endpoint[strings.LastIndexByte(s.Endpoint, ':')+1:]
	var out string
	workers := "1"
	switch output {
	case "c":
		// The C output verifies TLS always: it is given the sink's certificate.
		out = "    Name kinesis_streams\n    endpoint 127.0.0.1\n    port " + port + "\n    tls.ca_file " + s.CAFile + "\n"
	default:
		out = "    Name kinesis_streams_go\n    endpoint " + s.Endpoint + "\n"
		if v := os.Getenv("PERF_MAX_IN_FLIGHT"); v != "" {
			out += "    max_in_flight " + v + "\n"
		}
		if v := os.Getenv("PERF_GO_WORKERS"); v != "" {
			workers = v
		}
	}
	parsers := filepath.Join(dir, "parsers.conf")
	conf := filepath.Join(dir, "fluent-bit.conf")
	files := map[string]string{
		parsers: "[PARSER]\n    Name json\n    Format json\n",
		conf: "[SERVICE]\n    Flush " + flush + "\n    Grace 1\n    Log_Level warn\n    Parsers_File " + parsers + "\n" +
			"[INPUT]\n    Name tail\n    Path " + logFile + "\n    Read_from_Head On\n    Parser json\n" +
			"[OUTPUT]\n" + out + "    Match *\n    region " + region + "\n    stream " + streamName + "\n    workers " + workers + "\n",
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command(fluentBit, "-e", so, "-c", conf)
	cmd.Env = append(clientEnv(b, dir, s), "PATH="+os.Getenv("PATH"))
	logPath := filepath.Join(dir, "fluent-bit.log")
	logOut, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logOut.Close()
	cmd.Stdout, cmd.Stderr = logOut, logOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var r latencyRun
	var first time.Time
	for {
		st := s.stats(b)
		now := time.Now()
		if first.IsZero() && st.Records > 0 {
			first = now
		}
		if st.Records >= int64(lines) {
			r.delivered, r.sending, r.requests, r.records = now.Sub(start), now.Sub(first), st.Requests, st.Records
			break
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(logPath)
			b.Fatalf("%s output: %d of %d records after %v\nFluent Bit's log:\n%s", output, st.Records, lines, time.Since(start), textdiff.LastBytes(string(log), 4000))
		case <-exited:
			log, _ := os.ReadFile(logPath)
			b.Fatalf("%s output: Fluent Bit exited with %d of %d records delivered\nFluent Bit's log:\n%s", output, st.Records, lines, textdiff.LastBytes(string(log), 4000))
		case <-time.After(5 * time.Millisecond):
		}
	}
	if r.records != int64(lines) {
		b.Errorf("%s output: the sink received %d records, want %d", output, r.records, lines)
	}
	return r
}
