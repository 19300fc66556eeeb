package perf

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
)

// BenchmarkFluentBit is the benchmark that counts: the real Fluent Bit named by FLUENT_BIT
// (absolute, or relative to the repository's root) tails PERF_RECORDS container log lines (default
// 500,000; chunk.ContainerRecord as the docker log driver writes it, one JSON object a line, read
// with the json parser) into one output, a fresh Fluent Bit process per run:
//
//   - null: Fluent Bit's null output, the cost of Fluent Bit itself (tail, parser, chunks), as it
//     runs it, and with glibc's mmap threshold where the C output and the plugin raise it;
//   - c: Fluent Bit's C kinesis_streams output (TLS, SigV4 with fake credentials);
//   - go: this plugin (build/kinesis_streams_go.so, workers 1);
//
// each Kinesis output sending to the same local TLS sink (sink/, its own process). PERF_FB_OUTPUTS
// chooses the outputs (default defaultOutputs): a go output may name another library and take extra
// properties, as go@build/debug/kinesis_streams_go.so:protocol=json:workers=2 (a library's path
// is absolute or relative to the repository's root); a property env.NAME=VALUE sets an
// environment variable of Fluent Bit instead, as go:env.GOGC=200. Every output runs PERF_RUNS times
// (default 5), alternating (round r starts at output r), so that a machine that gets busier or
// quieter affects each alike.
//
// A run's CPU is the Fluent Bit process's (every thread, /proc/PID/stat) from the moment it is
// ready (HTTP server up, outputs initialised) to the moment the output has processed every record
// (Fluent Bit's metrics) and, for a Kinesis output, the sink has received every record; its peak
// resident set is VmHWM. Each run's CPU is also split into Fluent Bit's pipeline thread's and the
// output's threads' (its worker, the Go runtime's, the main thread). The summary prints each
// output's median CPU per record, the same less the first null output's (what the output costs),
// its threads' CPU, peak RSS and bytes per record on the wire (request bodies as the sink read
// them, and every byte the sink's sockets read: TLS records and HTTP headers included); then, for
// go against c, the ratios of their threads' CPU, of their CPU over each null output, peak RSS
// and bytes. PERF_FB_PROFILE=DIR records a perf profile (perf record
// PERF_FB_PERF_ARGS, default "-e cpu-clock -g") of each output's first measured phase into DIR;
// PERF_GODEBUG, PERF_GOGC, PERF_GOMEMLIMIT and PERF_GOMAXPROCS set the Go runtime's variables.
//
// It skips when FLUENT_BIT is unset. Run it alone: -benchtime=1x (make bench-fluent-bit).
func BenchmarkFluentBit(b *testing.B) {
	bin := fluentBitBinary(b)
	records := envInt(b, "PERF_RECORDS", 500_000)
	runs := envInt(b, "PERF_RUNS", 5)
	outputs := parseOutputs(b, os.Getenv("PERF_FB_OUTPUTS"))
	profileDir := os.Getenv("PERF_FB_PROFILE")
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}

	dir := b.TempDir()
	latency := time.Duration(0)
	if v := os.Getenv("PERF_FB_LATENCY"); v != "" {
		var err error
		if latency, err = time.ParseDuration(v); err != nil || latency < 0 {
			b.Fatalf("PERF_FB_LATENCY=%q: want a duration such as 30ms", v)
		}
	}
	s := startSinkLatency(b, dir, latency)
	logFile, logBytes := writeContainerLog(b, dir, records)
	env := append(clientEnv(b, dir, s), "PATH="+os.Getenv("PATH"))
	for _, k := range []string{"GODEBUG", "GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
		if v := os.Getenv("PERF_" + k); v != "" { // for experiments with the Go runtime
			env = append(env, k+"="+v)
		}
	}
	parsers := filepath.Join(dir, "parsers.conf")
	if err := os.WriteFile(parsers, []byte("[PARSER]\n    Name   json\n    Format json\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	fmt.Printf("fluentbit: %s (%s), %d lines of %.0f bytes on average (%.1f MB), outputs %s, %d runs each, alternating; "+
		"sink latency %v; %d CPUs, load average %s\n", fluentBitVersion(b, bin), bin, records, float64(logBytes)/float64(records),
		float64(logBytes)/1e6, outputNames(outputs), runs, latency, runtime.NumCPU(), loadAverage())

	b.ResetTimer()
	for range b.N {
		results := make([][]fbResult, len(outputs))
		for r := range runs {
			for k := range outputs {
				i := (r + k) % len(outputs)
				o := outputs[i]
				profile := ""
				if profileDir != "" && r == 0 && o.kind != "null" {
					profile = filepath.Join(profileDir, strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(o.label)+".perf.data")
				}
				res := runFluentBit(b, fbRun{
					bin: bin, dir: filepath.Join(dir, fmt.Sprintf("run-%d-%d", r, i)), out: o, sink: s,
					parsers: parsers, log: logFile, records: records, env: env, profile: profile,
				})
				results[i] = append(results[i], res)
				fmt.Printf("fluentbit: run %d %-*s %s\n", r+1, labelWidth(outputs), o.label, res.line(records))
			}
		}
		reportFluentBit(b, outputs, results, records)
	}
}

// defaultOutputs are the outputs of PERF_FB_OUTPUTS unset: the null output twice, as Fluent Bit
// runs it and with glibc's mmap threshold at 5 MiB (where the C output's flush buffer puts it,
// and the plugin puts it at Init: Fluent Bit's chunks then come from the heap, which makes Fluent
// Bit's own threads cheaper), the C output and the plugin.
const defaultOutputs = "null,null:env.MALLOC_MMAP_THRESHOLD_=5242880,c,go"

// fbOutput is one output under test.
type fbOutput struct {
	label string // as given in PERF_FB_OUTPUTS
	kind  string // null, c or go
	so    string // the plugin library, for go
	props [][2]string
}

// parseOutputs reads PERF_FB_OUTPUTS: a comma-separated list of null, c and go outputs.
func parseOutputs(tb testing.TB, spec string) []fbOutput {
	tb.Helper()
	if spec == "" {
		spec = defaultOutputs
	}
	so, err := filepath.Abs(pluginSO)
	if err != nil {
		tb.Fatal(err)
	}
	var outs []fbOutput
	for _, label := range strings.Split(spec, ",") {
		label = strings.TrimSpace(label)
		head, props, _ := strings.Cut(label, ":")
		o := fbOutput{label: label, kind: head}
		if kind, path, ok := strings.Cut(head, "@"); ok {
			if !filepath.IsAbs(path) {
				path = filepath.Join("..", "..", path) // relative to the repository's root
			}
			if o.kind, o.so, err = kind, path, nil; !filepath.IsAbs(path) {
				o.so, err = filepath.Abs(path)
			}
			if err != nil {
				tb.Fatal(err)
			}
		} else if o.kind == "go" {
			o.so = so
		}
		if o.kind != "null" && o.kind != "c" && o.kind != "go" {
			tb.Fatalf("PERF_FB_OUTPUTS: %q: want null, c or go[@LIBRARY][:KEY=VALUE]...", label)
		}
		if props != "" {
			for _, kv := range strings.Split(props, ":") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					tb.Fatalf("PERF_FB_OUTPUTS: %q: property %q: want KEY=VALUE", label, kv)
				}
				o.props = append(o.props, [2]string{k, v})
			}
		}
		if o.kind == "go" {
			if _, err := os.Stat(o.so); err != nil {
				tb.Fatalf("plugin library %s missing: run `make build` first (%v)", o.so, err)
			}
		}
		outs = append(outs, o)
	}
	return outs
}

func outputNames(outs []fbOutput) string {
	names := make([]string, len(outs))
	for i, o := range outs {
		names[i] = o.label
	}
	return strings.Join(names, ", ")
}

func labelWidth(outs []fbOutput) int {
	w := 0
	for _, o := range outs {
		w = max(w, len(o.label))
	}
	return w
}

// fluentBitBinary returns the absolute path of FLUENT_BIT, and skips when it is unset.
func fluentBitBinary(b *testing.B) string {
	b.Helper()
	bin := os.Getenv("FLUENT_BIT")
	if bin == "" {
		b.Skip("FLUENT_BIT not set: skipping the benchmark in real Fluent Bit")
	}
	if !filepath.IsAbs(bin) {
		bin = filepath.Join("..", "..", bin) // relative to the repository's root
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		b.Fatalf("FLUENT_BIT: %v", err)
	}
	return abs
}

var fluentBitVersionLine = regexp.MustCompile(`Fluent Bit v\d+\.\d+\.\d+`)

func fluentBitVersion(b *testing.B, bin string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		b.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return fluentBitVersionLine.FindString(string(out))
}

// writeContainerLog writes n container log lines, as the docker log driver writes them, to a file
// in dir, and returns its path and size.
func writeContainerLog(tb testing.TB, dir string, n int) (string, int64) {
	tb.Helper()
	path := filepath.Join(dir, "container.log")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	var size int64
	for seq := range n {
		line = append(chunk.AppendJSON(line[:0], chunk.ContainerRecord(seq)), '\n')
		size += int64(len(line))
		if _, err := w.Write(line); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, size
}

// fbRun is one run of Fluent Bit.
type fbRun struct {
	bin, dir string
	out      fbOutput
	sink     *sink
	parsers  string
	log      string // the input, linked into the watched directory once Fluent Bit is ready
	records  int
	env      []string
	profile  string // perf record's output file, "" for none
}

// fbResult is what one run measured.
type fbResult struct {
	cpu      time.Duration // the process's CPU from ready to done
	switches int64         // voluntary context switches of its threads meanwhile
	// The CPU of Fluent Bit's pipeline thread (input, parser, engine), and of the output's
	// threads: every thread but the pipeline, the HTTP server's and the logger (the output's
	// worker, the Go runtime's threads, the main thread). A breakdown of cpu, less blurred by the
	// machine's load than cpu less null's.
	pipeline, outputThreads time.Duration
	wall                    time.Duration // from the input's arrival to done
	hwmKB                   int64         // VmHWM
	sent                    sinkStats
	retries                 int64 // Fluent Bit's retries of the output
	gcs                     int   // garbage collections, when PERF_GODEBUG has gctrace=1
}

// gcLine is a line of GODEBUG=gctrace=1.
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @`)

func (r fbResult) perRecord(records int) float64 {
	return float64(r.cpu.Nanoseconds()) / float64(records)
}

func (r fbResult) line(records int) string {
	line := fmt.Sprintf("cpu %6.3fs = %5.2f µs/record (pipeline %4.2f, output threads %4.2f), %.3f wake-ups/record, wall %5.1fs, VmHWM %5.1f MB",
		r.cpu.Seconds(), r.perRecord(records)/1e3, perRecord(r.pipeline, records), perRecord(r.outputThreads, records),
		float64(r.switches)/float64(records), r.wall.Seconds(), float64(r.hwmKB)/1024)
	if r.sent.Requests > 0 {
		line += fmt.Sprintf(", %d requests, body %.1f B/record, socket in %.1f B/record, out %.1f B/record",
			r.sent.Requests, float64(r.sent.Bytes)/float64(records), float64(r.sent.WireIn)/float64(records),
			float64(r.sent.WireOut)/float64(records))
	}
	if r.gcs > 0 {
		line += fmt.Sprintf(", %d GCs", r.gcs)
	}
	if r.retries > 0 {
		line += fmt.Sprintf(", %d retries", r.retries)
	}
	return line + ", load " + loadAverage()
}

// Bounds of a run's waits.
const (
	fbReadyTimeout = 30 * time.Second
	fbStopTimeout  = 20 * time.Second
	fbPoll         = 50 * time.Millisecond
)

// runFluentBit runs Fluent Bit once and measures it.
func runFluentBit(b *testing.B, run fbRun) fbResult {
	b.Helper()
	in := filepath.Join(run.dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		b.Fatal(err)
	}
	warmPageCache(b, run.log)
	port := freePort(b)
	conf := filepath.Join(run.dir, "fluent-bit.conf")
	if err := os.WriteFile(conf, []byte(fluentBitConfig(run, in, port)), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"-c", conf}
	if run.out.kind == "go" {
		args = append(args, "-e", run.out.so)
	}
	logPath := filepath.Join(run.dir, "fluent-bit.log")
	logOut, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logOut.Close()
	cmd := exec.Command(run.bin, args...)
	cmd.Env = run.env
	for _, p := range run.out.props {
		if k, ok := strings.CutPrefix(p[0], "env."); ok {
			cmd.Env = append(cmd.Env, k+"="+p[1])
		}
	}
	cmd.Stdout, cmd.Stderr = logOut, logOut
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(fbStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	defer stop()
	fail := func(format string, args ...any) {
		b.Helper()
		stop()
		out, _ := os.ReadFile(logPath)
		b.Fatalf("fluent-bit (%s): %s\nits log:\n%s", run.out.label, fmt.Sprintf(format, args...), textdiff.LastBytes(string(out), 4000))
	}

	metrics := fbMetricsClient{url: fmt.Sprintf("http://127.0.0.1:%d/api/v1/metrics", port)}
	deadline := time.Now().Add(fbReadyTimeout)
	for {
		if _, err := metrics.get(); err == nil {
			break
		}
		select {
		case <-exited:
			fail("exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			fail("metrics not served after %v", fbReadyTimeout)
		}
		time.Sleep(fbPoll)
	}
	time.Sleep(500 * time.Millisecond) // the output workers start after the HTTP server

	before := run.sink.stats(b)
	pid := cmd.Process.Pid
	var perf *exec.Cmd
	if run.profile != "" {
		perf = startPerf(b, pid, run.profile)
	}
	cpu0, csw0, threads0 := procCPU(b, pid), procSwitches(pid), threadCPU(pid)
	start := time.Now()
	if err := os.Link(run.log, filepath.Join(in, "container.log")); err != nil {
		fail("link the input: %v", err)
	}

	// Done when the output has processed every record and, for a Kinesis output, the sink has
	// received them. A run that delivers at the rate of the slowest machine still ends well
	// within this.
	timeout := 2*time.Minute + time.Duration(run.records)*20*time.Microsecond
	deadline = time.Now().Add(timeout)
	var m fbMetrics
	for {
		m, err = metrics.get()
		if err == nil && m.processed >= int64(run.records) &&
			(run.out.kind == "null" || run.sink.stats(b).sub(before).Records >= int64(run.records)) {
			break
		}
		select {
		case <-exited:
			fail("exited before every record was delivered (metrics %+v, error %v)", m, err)
		default:
		}
		if time.Now().After(deadline) {
			fail("not done after %v: metrics %+v, error %v, sink %+v", timeout, m, err, run.sink.stats(b).sub(before))
		}
		time.Sleep(fbPoll)
	}
	res := fbResult{cpu: procCPU(b, pid) - cpu0, switches: procSwitches(pid) - csw0, wall: time.Since(start),
		hwmKB: vmHWM(b, pid), retries: m.retries}
	res.pipeline, res.outputThreads = threadCPU(pid).since(threads0)
	if perf != nil {
		stopPerf(b, perf)
	}
	stop()
	res.sent = run.sink.stats(b).sub(before)
	if log, err := os.ReadFile(logPath); err == nil {
		res.gcs = len(gcLine.FindAll(log, -1))
	}
	if run.out.kind != "null" && res.sent.Records != int64(run.records) {
		fail("the sink received %d records, want %d", res.sent.Records, run.records)
	}
	if m.dropped > 0 || m.errors > 0 {
		fail("%d records dropped, %d errors", m.dropped, m.errors)
	}
	return res
}

// warmPageCache reads path, so that it is in the page cache when Fluent Bit reads it, as a
// container's log just written is (tail's File_Cache_Advise is off, or it would drop the file
// from the cache as it reads: reading it from the shared disk again weighs on every run,
// unevenly).
func warmPageCache(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		tb.Fatal(err)
	}
}

// fluentBitConfig is the classic configuration of a run.
func fluentBitConfig(run fbRun, in string, port int) string {
	var c strings.Builder
	fmt.Fprintf(&c, `[SERVICE]
    Flush        1
    Grace        1
    Log_Level    info
    Parsers_File %s
    HTTP_Server  On
    HTTP_Listen  127.0.0.1
    HTTP_Port    %d

[INPUT]
    Name             tail
    Path             %s
    Read_From_Head   On
    Refresh_Interval 1
    Parser           json
    Mem_Buf_Limit    %s
    File_Cache_Advise Off

[OUTPUT]
    Match  *
`, run.parsers, port, filepath.Join(in, "*.log"), memBufLimit())
	endpoint, _ := strings.CutPrefix(run.sink.Endpoint, "https://")
	host, sinkPort, _ := strings.Cut(endpoint, ":")
	switch run.out.kind {
	case "null":
		c.WriteString("    Name   null\n")
	case "c":
		fmt.Fprintf(&c, "    Name   kinesis_streams\n    region %s\n    stream %s\n    endpoint %s\n    port %s\n    tls.ca_file %s\n    workers 1\n",
			region, streamName, host, sinkPort, run.sink.CAFile)
	case "go":
		fmt.Fprintf(&c, "    Name   kinesis_streams_go\n    region %s\n    stream %s\n    endpoint %s\n    workers 1\n",
			region, streamName, run.sink.Endpoint)
	}
	for _, p := range run.out.props {
		if !strings.HasPrefix(p[0], "env.") {
			fmt.Fprintf(&c, "    %s %s\n", p[0], p[1])
		}
	}
	return c.String()
}

// memBufLimit is the tail input's Mem_Buf_Limit (PERF_FB_MEM_BUF_LIMIT, default 32MB): without
// one, a Kinesis output slower than tail lets the whole input pile up in memory, and the peak
// resident set measures the backlog rather than the output.
func memBufLimit() string {
	if v := os.Getenv("PERF_FB_MEM_BUF_LIMIT"); v != "" {
		return v
	}
	return "32MB"
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// fbMetrics is what the benchmark reads of Fluent Bit's /api/v1/metrics: the sums over outputs.
type fbMetrics struct{ processed, retries, dropped, errors int64 }

type fbMetricsClient struct{ url string }

var fbHTTP = &http.Client{Timeout: 5 * time.Second}

func (c fbMetricsClient) get() (fbMetrics, error) {
	resp, err := fbHTTP.Get(c.url)
	if err != nil {
		return fbMetrics{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Output map[string]struct {
			ProcRecords    int64 `json:"proc_records"`
			Retries        int64 `json:"retries"`
			DroppedRecords int64 `json:"dropped_records"`
			Errors         int64 `json:"errors"`
		} `json:"output"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fbMetrics{}, err
	}
	if len(body.Output) == 0 {
		return fbMetrics{}, errors.New("no output in the metrics")
	}
	var m fbMetrics
	for _, o := range body.Output {
		m.processed += o.ProcRecords
		m.retries += o.Retries
		m.dropped += o.DroppedRecords
		m.errors += o.Errors
	}
	return m, nil
}

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU is the user+system CPU time of process pid (every thread, live or exited).
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command's name, which ends with the last ')': state is field 3,
	// utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		tb.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * clockTick
}

// perRecord is d per record, in µs.
func perRecord(d time.Duration, records int) float64 {
	return float64(d.Nanoseconds()) / float64(records) / 1e3
}

// taskCPU is the CPU time of each thread of a process, by thread ID, and the threads' names.
type taskCPU map[string]struct {
	comm string
	cpu  time.Duration
}

// threadCPU reads the CPU time of every thread of process pid (/proc/PID/task/TID/stat).
func threadCPU(pid int) taskCPU {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	m := taskCPU{}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		m[filepath.Base(filepath.Dir(t))] = struct {
			comm string
			cpu  time.Duration
		}{s[open+1 : end], time.Duration(utime+stime) * clockTick}
	}
	return m
}

// since splits the CPU the threads spent since before into Fluent Bit's pipeline thread's and
// the output's threads' (every thread but the pipeline, the HTTP server's and the logger).
func (now taskCPU) since(before taskCPU) (pipeline, output time.Duration) {
	for tid, t := range now {
		d := t.cpu - before[tid].cpu
		switch {
		case t.comm == "flb-pipeline":
			pipeline += d
		case strings.HasPrefix(t.comm, "monkey"), t.comm == "flb-logger":
		default:
			output += d
		}
	}
	return pipeline, output
}

// procSwitches is the voluntary context switches of the threads of process pid: one per thread
// that sleeps and wakes up again. Fluent Bit's threads and the Go runtime's live as long as the process.
func procSwitches(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "voluntary_ctxt_switches" {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// vmHWM is the peak resident set of process pid so far, in KiB.
func vmHWM(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb
		}
	}
	tb.Fatalf("/proc/%d/status has no VmHWM", pid)
	return 0
}

// startPerf starts perf record on process pid, writing to out.
func startPerf(tb testing.TB, pid int, out string) *exec.Cmd {
	tb.Helper()
	args := strings.Fields(os.Getenv("PERF_FB_PERF_ARGS"))
	if len(args) == 0 {
		args = []string{"-e", "cpu-clock", "-g"}
	}
	cmd := exec.Command("perf", append(append([]string{"record"}, args...), "-p", strconv.Itoa(pid), "-o", out)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("perf record: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // attached before the input arrives
	return cmd
}

// stopPerf ends perf record (SIGINT makes it write its file) and waits for it.
func stopPerf(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		tb.Log("perf record did not stop: killed")
	}
}

// loadAverage is the 1-minute load average, as /proc/loadavg says.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// reportFluentBit prints the medians of every output, and go against c.
func reportFluentBit(b *testing.B, outputs []fbOutput, results [][]fbResult, records int) {
	b.Helper()
	med := func(rs []fbResult, f func(fbResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	cpuPerRecord := func(r fbResult) float64 { return r.perRecord(records) / 1e3 }
	threadsPerRecord := func(r fbResult) float64 { return perRecord(r.outputThreads, records) }
	hwm := func(r fbResult) float64 { return float64(r.hwmKB) / 1024 }
	body := func(r fbResult) float64 { return float64(r.sent.Bytes) / float64(records) }
	wire := func(r fbResult) float64 { return float64(r.sent.WireIn) / float64(records) }

	null := -1
	for i, o := range outputs {
		if o.kind == "null" {
			null = i
			break
		}
	}
	nullCPU := 0.0
	if null >= 0 {
		nullCPU = med(results[null], cpuPerRecord)
	}
	over := make([]float64, len(outputs))
	fmt.Printf("fluentbit: medians of %d runs, load average now %s\n", len(results[0]), loadAverage())
	fmt.Printf("fluentbit:   %-*s  %12s  %11s  %14s  %9s  %11s  %13s\n", labelWidth(outputs), "output", "CPU/record", "over null",
		"output threads", "VmHWM", "body/record", "socket/record")
	for i, o := range outputs {
		cpu := med(results[i], cpuPerRecord)
		over[i] = cpu - nullCPU
		overs := "-"
		if null >= 0 && i != null {
			overs = fmt.Sprintf("%.2f µs", over[i])
		}
		bytes := "-           -"
		if o.kind != "null" {
			bytes = fmt.Sprintf("%9.1f B  %11.1f B", med(results[i], body), med(results[i], wire))
		}
		fmt.Printf("fluentbit:   %-*s  %9.2f µs  %11s  %11.2f µs  %6.1f MB  %s\n", labelWidth(outputs), o.label, cpu, overs,
			med(results[i], threadsPerRecord), med(results[i], hwm), bytes)
		b.ReportMetric(cpu*1e3, o.label+"-ns-cpu/record")
	}
	for c, oc := range outputs {
		if oc.kind != "c" {
			continue
		}
		for g, og := range outputs {
			if og.kind != "go" {
				continue
			}
			fmt.Printf("fluentbit: %s against %s: output threads' CPU %.2f, peak RSS %+.1f MB, body bytes %.2f, socket bytes %.2f\n",
				og.label, oc.label, med(results[g], threadsPerRecord)/med(results[c], threadsPerRecord),
				med(results[g], hwm)-med(results[c], hwm), med(results[g], body)/med(results[c], body), med(results[g], wire)/med(results[c], wire))
			for n, on := range outputs {
				if on.kind != "null" {
					continue
				}
				// Per round too: the runs of one round saw the machine in about the same state.
				nullCPU := med(results[n], cpuPerRecord)
				var rounds []string
				for r := range results[g] {
					base := results[n][r].perRecord(records)
					rounds = append(rounds, fmt.Sprintf("%.2f", (results[g][r].perRecord(records)-base)/(results[c][r].perRecord(records)-base)))
				}
				ratio := (med(results[g], cpuPerRecord) - nullCPU) / (med(results[c], cpuPerRecord) - nullCPU)
				fmt.Printf("fluentbit: %s against %s: CPU over %s %.2f (per round %s)\n", og.label, oc.label, on.label, ratio, strings.Join(rounds, " "))
				if n == null {
					b.ReportMetric(ratio, og.label+"/"+oc.label+"-cpu")
				}
			}
		}
	}
}
