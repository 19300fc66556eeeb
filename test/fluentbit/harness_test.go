package fluentbit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbproc"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// Bounds of the waits.
const (
	deliverTimeout = 90 * time.Second // until every record written is accepted
	stopTimeout    = 30 * time.Second // from SIGTERM to exit, beyond Grace
	readTimeout    = time.Minute
	pollEvery      = 100 * time.Millisecond
)

// props are a configuration section's properties, in order.
type props [][2]string

// pipeline is a Fluent Bit configuration, written as classic or YAML.
type pipeline struct {
	service props
	inputs  []props
	outputs []props
}

// classic writes p in the classic format.
func (p pipeline) classic() string {
	var b strings.Builder
	section := func(name string, ps props) {
		fmt.Fprintf(&b, "[%s]\n", name)
		for _, kv := range ps {
			fmt.Fprintf(&b, "    %s %s\n", kv[0], kv[1])
		}
		b.WriteString("\n")
	}
	section("SERVICE", p.service)
	for _, in := range p.inputs {
		section("INPUT", in)
	}
	for _, out := range p.outputs {
		section("OUTPUT", out)
	}
	return b.String()
}

// yaml writes p in the YAML format, loading the libraries plugins with a
// top-level plugins list.
func (p pipeline) yaml(plugins ...string) string {
	var b strings.Builder
	if len(plugins) > 0 {
		b.WriteString("plugins:\n")
		for _, so := range plugins {
			fmt.Fprintf(&b, "  - %s\n", yamlQuote(so))
		}
	}
	b.WriteString("service:\n")
	for _, kv := range p.service {
		fmt.Fprintf(&b, "  %s: %s\n", strings.ToLower(kv[0]), yamlQuote(kv[1]))
	}
	b.WriteString("pipeline:\n")
	list := func(name string, sections []props) {
		fmt.Fprintf(&b, "  %s:\n", name)
		for _, ps := range sections {
			for i, kv := range ps {
				lead := "      "
				if i == 0 {
					lead = "    - "
				}
				fmt.Fprintf(&b, "%s%s: %s\n", lead, strings.ToLower(kv[0]), yamlQuote(kv[1]))
			}
		}
	}
	list("inputs", p.inputs)
	list("outputs", p.outputs)
	return b.String()
}

// yamlQuote quotes s as a YAML single-quoted scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// fbEnv is Fluent Bit's whole environment: fake credentials, empty shared
// AWS files, no instance metadata, no AWS_REGION (every output names its
// region) and no AWS_CA_BUNDLE (the endpoints are plain HTTP, or the
// configuration names its CA), whatever this process's environment holds.
func fbEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + kinesismock.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + kinesismock.SecretAccessKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// env is a test's Fluent Bit setting: a directory of its own, with a parsers
// file, and a free port for the HTTP server.
type env struct {
	dir     string
	port    int
	parsers string
	vars    []string // more of Fluent Bit's environment, NAME=value
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	e.parsers = filepath.Join(e.dir, "parsers.conf")
	if err := os.WriteFile(e.parsers, []byte("[PARSER]\n    Name   json\n    Format json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.port, err = flbproc.FreePort(); err != nil {
		t.Fatal(err)
	}
	return e
}

// service is the [SERVICE] section: flush every second, the given Grace,
// the json parser, and the HTTP server on 127.0.0.1.
func (e *env) service(grace int, extra ...[2]string) props {
	ps := props{
		{"Flush", "1"},
		{"Grace", strconv.Itoa(grace)},
		{"Log_Level", "info"},
		{"Parsers_File", e.parsers},
		{"HTTP_Server", "On"},
		{"HTTP_Listen", "127.0.0.1"},
		{"HTTP_Port", strconv.Itoa(e.port)},
	}
	return append(ps, extra...)
}

// tail is a tail input of the JSON lines of every *.log file in dir/name,
// from their start, with an offsets database so that a restart or a reload
// reads nothing twice; each file's records are tagged name.<path>.
func (e *env) tail(name string, extra ...[2]string) props {
	ps := props{
		{"Name", "tail"},
		{"Tag", name + ".*"},
		{"Path", filepath.Join(e.dir, name, "*.log")},
		{"Parser", "json"},
		{"Read_from_Head", "On"},
		{"Refresh_Interval", "1"},
		{"DB", filepath.Join(e.dir, name+".db")},
	}
	return append(ps, extra...)
}

// output is a kinesis_streams_go output of the records matching match, to
// stream at endpoint.
func output(match, stream, endpoint string, extra ...[2]string) props {
	ps := props{
		{"Name", pluginName},
		{"Match", match},
		{"region", kinesismock.Region},
		{"stream", stream},
		{"endpoint", endpoint},
	}
	return append(ps, extra...)
}

// write writes content to the file name in the test's directory and returns
// its path.
func (e *env) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var procSeq atomic.Int32

// start starts Fluent Bit with args in a directory of its own in the
// test's. Its output is logged when the test fails; it is killed with its
// group at the end of the test if it still runs.
func (e *env) start(t *testing.T, args ...string) *flbproc.Process {
	t.Helper()
	return e.startIn(t, "", args...)
}

// startIn is start with the working directory cwd (when not empty).
func (e *env) startIn(t *testing.T, cwd string, args ...string) *flbproc.Process {
	t.Helper()
	dir := filepath.Join(e.dir, fmt.Sprintf("run-%d", procSeq.Add(1)))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if cwd == "" {
		cwd = dir
	}
	p, err := flbproc.Start(flbproc.Options{Bin: fluentBit, Args: args, Dir: cwd, LogDir: dir, Env: append(fbEnv(t), e.vars...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.Exited():
		default:
			p.Kill()
		}
		if t.Failed() {
			t.Logf("fluent-bit %s (pid %d, %v):\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.PID(), p.State(),
				textdiff.LastBytes(p.Stdout(), 4<<10), textdiff.LastBytes(p.Stderr(), 24<<10))
		}
	})
	return p
}

// startClassic writes p as a classic configuration and starts Fluent Bit
// on it with the plugin loaded by -e.
func (e *env) startClassic(t *testing.T, p pipeline) *flbproc.Process {
	t.Helper()
	return e.start(t, "-e", soPath, "-c", e.write(t, "fluent-bit.conf", p.classic()))
}

// stop sends SIGTERM and checks that Fluent Bit exits with status 0 within
// its Grace and stopTimeout; it returns how long it took.
func stop(t *testing.T, p *flbproc.Process, grace time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	st, err := p.Stop(grace + stopTimeout)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if st == nil || st.ExitCode() != 0 {
		t.Errorf("fluent-bit exited with %v after SIGTERM, want status 0", st)
	}
	return took
}

// waitFor polls cond until it holds, and fails the test when timeout passes
// first or when p (if not nil) exits meanwhile.
func waitFor(t *testing.T, what string, timeout time.Duration, p *flbproc.Process, cond func() bool) {
	t.Helper()
	if err := poll(timeout, p, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll is waitFor's loop: nil once cond holds, an error on timeout or when p
// exits.
func poll(timeout time.Duration, p *flbproc.Process, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	var exited <-chan struct{}
	if p != nil {
		exited = p.Exited()
	}
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		select {
		case <-exited:
			if cond() {
				return nil
			}
			return fmt.Errorf("fluent-bit exited (%v)", p.State())
		case <-time.After(pollEvery):
		}
	}
}

// inputRecords is the number of records Fluent Bit's inputs have ingested,
// from /api/v1/metrics (0 when it does not answer).
func inputRecords(port int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := flbproc.Get(ctx, port, "/api/v1/metrics")
	if err != nil {
		return 0
	}
	var m struct {
		Input map[string]struct {
			Records int `json:"records"`
		} `json:"input"`
	}
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	n := 0
	for _, in := range m.Input {
		n += in.Records
	}
	return n
}

// want maps the sequence number of every record written to the exact data
// the plugin must send for it: its JSON and a newline.
type want map[int]string

// record is the record written as line seq by source src. Its strings need
// JSON escaping (quote, backslash, tab, newline, a control character) or are
// multi-byte UTF-8, and its values are of every JSON type but floats, nested.
func record(src string, seq int) chunk.Map {
	msg := src + " " + strconv.Itoa(seq) + " GET /items?id=" + strconv.Itoa(seq) + "&sort=asc 200"
	switch seq % 4 {
	case 0:
		msg += ` quote" back\slash` + "\ttab\nnewline\x01ctl"
	case 1:
		msg += " héllo wörld — 日本語 🚀 ü"
	case 2:
		msg += ` </script> & 'single' {"json": [1, 2]}`
	}
	f := func(k string, v any) chunk.Field { return chunk.Field{Key: k, Value: v} }
	return chunk.Map{
		f("seq", int64(seq)),
		f("src", src),
		f("msg", msg),
		f("even", seq%2 == 0),
		f("none", nil),
		f("nested", chunk.Map{
			f("neg", int64(-1000*seq-1)),
			f("list", []any{"a", int64(seq), true, chunk.Map{f("k", "v")}}),
			f("empty", chunk.Map{}),
		}),
	}
}

// writeRecords appends the JSON lines of records first to first+n-1 of
// source src to the file path (its directory is created), and adds what the
// plugin must send for each to w.
func writeRecords(t *testing.T, path, src string, first, n int, w want) {
	t.Helper()
	if err := appendRecords(path, src, first, n, w); err != nil {
		t.Fatal(err)
	}
}

// appendRecords is writeRecords for any goroutine.
func appendRecords(path, src string, first, n int, w want) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var b []byte
	for seq := first; seq < first+n; seq++ {
		start := len(b)
		b = chunk.AppendJSON(b, record(src, seq))
		b = append(b, '\n')
		if _, dup := w[seq]; dup {
			return fmt.Errorf("sequence number %d written twice", seq)
		}
		w[seq] = string(b[start:])
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// spread writes n records, from sequence number first, over files files in
// dir (dir/0.log, dir/1.log, ...), in runs of 50, so that Fluent Bit makes a
// chunk per file and flushes them at once.
func spread(t *testing.T, dir, src string, files, first, n int, w want) {
	t.Helper()
	const run = 50
	for i := 0; i < n; i += run {
		f := (i / run) % files
		writeRecords(t, filepath.Join(dir, strconv.Itoa(f)+".log"), src, first+i, min(run, n-i), w)
	}
}

// delivery is what was read back, compared with what was written.
type delivery struct {
	read, duplicates, mismatched, unexpected int
	missing                                  []int // sequence numbers, sorted
}

// compare compares the records read back from stream with w: each written
// record must be there exactly once, byte for byte, or, when exact is false,
// as the same JSON value (for Fluent Bit's C output, which escapes
// differently). It returns the counts and the first problems found.
func compare(stream string, got []kinesismock.Record, w want, exact bool) (delivery, []string) {
	d := delivery{read: len(got)}
	var problems []string
	note := func(format string, args ...any) {
		if len(problems) < 6 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	seen := make(map[int]int, len(w))
	for _, r := range got {
		var v struct {
			Seq *int `json:"seq"`
		}
		if err := json.Unmarshal(r.Data, &v); err != nil || v.Seq == nil {
			d.unexpected++
			note("stream %s: unexpected record %q", stream, textdiff.Clip(string(r.Data), 300))
			continue
		}
		exp, ok := w[*v.Seq]
		if !ok {
			d.unexpected++
			note("stream %s: record with unknown seq %d: %q", stream, *v.Seq, textdiff.Clip(string(r.Data), 300))
			continue
		}
		if seen[*v.Seq]++; seen[*v.Seq] > 1 {
			d.duplicates++
			continue
		}
		if exact && string(r.Data) != exp || !exact && !sameJSON(r.Data, []byte(exp)) {
			d.mismatched++
			note("stream %s: seq %d differs: %s", stream, *v.Seq, textdiff.FirstDiff(exp, string(r.Data)))
		}
	}
	for seq := range w {
		if seen[seq] == 0 {
			d.missing = append(d.missing, seq)
		}
	}
	if len(d.missing) > 0 {
		sort.Ints(d.missing)
		note("stream %s: %d records missing, the first: seq %v", stream, len(d.missing), d.missing[:min(10, len(d.missing))])
	}
	return d, problems
}

// sameJSON reports whether a and b hold the same JSON value, followed by a
// newline.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if !bytes.HasSuffix(a, []byte("\n")) || !bytes.HasSuffix(b, []byte("\n")) ||
		json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// checkExactlyOnce reads stream back and fails unless every record of w is
// there exactly once, byte for byte, and nothing else.
func checkExactlyOnce(t *testing.T, stream string, w want) delivery {
	t.Helper()
	d, problems := compare(stream, readStream(t, stream), w, true)
	if len(d.missing)+d.duplicates+d.mismatched+d.unexpected > 0 {
		t.Errorf("stream %s: %d written, %d read: %d missing, %d duplicates, %d differ, %d unexpected",
			stream, len(w), d.read, len(d.missing), d.duplicates, d.mismatched, d.unexpected)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return d
}

var streamSeq atomic.Int32

// newStream creates a stream named after the test.
func newStream(t *testing.T, shards int32) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, fmt.Sprintf("%s-%d", t.Name(), streamSeq.Add(1)))
	if len(name) > 128 {
		name = name[len(name)-128:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mock.CreateStream(ctx, name, shards); err != nil {
		t.Fatal(err)
	}
	return name
}

// readStream returns every record of stream.
func readStream(t *testing.T, stream string) []kinesismock.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	recs, err := mock.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// newProxy starts a FaultProxy with faults f in front of kinesis-mock; with
// no faults it only counts what kinesis-mock accepted.
func newProxy(t *testing.T, f kinesismock.Faults) *kinesismock.FaultProxy {
	t.Helper()
	p, err := mock.NewFaultProxy(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitAccepted waits until kinesis-mock has accepted n records through proxy.
func waitAccepted(t *testing.T, proxy *kinesismock.FaultProxy, n int, p *flbproc.Process) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d records accepted", n), deliverTimeout, p, func() bool {
		return proxy.Stats().Accepted >= n
	})
}

// exitLine is the plugin's summary line at exit, per instance.
var exitLine = regexp.MustCompile(`\[output:` + pluginName + `:(` + pluginName + `\.\d+)\] exit: .*?(\d+) records: (\d+) accepted`)

// exitSummaries returns the records accepted per exit summary line of the
// plugin in stderr, in order, with the instance name of each.
func exitSummaries(stderr string) (names []string, accepted []int) {
	for _, m := range exitLine.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.Atoi(m[3])
		names = append(names, m[1])
		accepted = append(accepted, n)
	}
	return names, accepted
}

// checkLog fails when Fluent Bit's stderr shows a crash or a Go panic.
func checkLog(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic:", "fatal error:", "caught signal (SIGSEGV)", "caught signal (SIGABRT)", "goroutine "} {
		if strings.Contains(stderr, bad) {
			t.Errorf("fluent-bit's stderr contains %q", bad)
		}
	}
}
