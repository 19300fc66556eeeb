package fluentbit

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/klauspost/compress/zstd"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kpl"
)

// examplesDir is the examples' directory, relative to the repository's root.
const examplesDir = "examples"

// plugins.conf is a plugins file, not a configuration (Fluent Bit refuses it
// with -c): plugins-file.conf loads it, and so checks it.
const pluginsFile = "plugins.conf"

// exampleFiles lists the configurations in examples/.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.conf", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(rootDir, examplesDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if filepath.Base(f) != pluginsFile {
				files = append(files, filepath.Base(f))
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	return files
}

// loadsPlugin reports whether a configuration loads the plugin itself: a
// classic one with plugins_file, a YAML one with a top-level plugins list.
var loadsPlugin = regexp.MustCompile(`(?mi)^(\s*plugins_file\s|plugins:)`)

// exampleArgs are the arguments to run example file (in the repository's
// root, where its relative paths point) with: -e for the plugin unless the
// file loads it.
func exampleArgs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loadsPlugin.Match(b) {
		return []string{"-c", path}
	}
	return []string{"-e", soPath, "-c", path}
}

// TestExamplesDryRun passes every example through `fluent-bit --dry-run`,
// from the repository's root, as its first lines say to run it.
func TestExamplesDryRun(t *testing.T) {
	needFluentBit(t)
	for _, f := range exampleFiles(t) {
		t.Run(f, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(rootDir, examplesDir, f)
			p := e.startIn(t, rootDir, append([]string{"--dry-run"}, exampleArgs(t, path)...)...)
			st, err := p.Wait(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			out := p.Stdout() + p.Stderr()
			if st.ExitCode() != 0 || !strings.Contains(out, "configuration test is successful") {
				t.Errorf("--dry-run of %s: %v\n%s", f, st, textdiff.LastBytes(out, 4<<10))
			}
		})
	}
}

// runnableExample is an example that runs here against kinesis-mock, once
// its streams and endpoint are rewritten, and what its records must be.
type runnableExample struct {
	file string
	// payloads maps each stream named in the file to a pattern every
	// record sent to it must match whole (after decoding).
	payloads map[string]string
	decode   string // "", "gzip", or "zstd+kpl": how consumers read a record
	// maxRecordKiB, when set, is the maximum record size the streams need.
	maxRecordKiB int32
	// partitionKey, when set, is every user record's partition key.
	partitionKey string
}

// exampleTime is time_key_format %Y-%m-%dT%H:%M:%S.%3NZ.
const exampleTime = `"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"`

var runnableExamples = []runnableExample{
	{file: "minimal.conf", payloads: map[string]string{"my-stream": `\{"message":"hello from fluent bit","level":"info"\}\n`}},
	{file: "minimal.yaml", payloads: map[string]string{"my-stream": `\{"message":"hello from fluent bit","level":"info"\}\n`}},
	{file: "workers.conf", payloads: map[string]string{"my-stream": `\{"message":"many records","level":"info"\}\n`}},
	{file: "time-key.conf", payloads: map[string]string{"my-stream": `\{"message":"with a timestamp","@timestamp":` + exampleTime + `\}\n`}},
	{file: "compression.conf", decode: "gzip",
		payloads: map[string]string{"my-stream": `\{"message":"a longer message, repeated, compresses well; a longer message, repeated, compresses well"\}\n`}},
	{file: "aggregation.conf", decode: "zstd+kpl", maxRecordKiB: 5 << 10, partitionKey: "acme",
		payloads: map[string]string{"my-stream": `\{"tenant":"acme","message":"aggregated"\}\n`}},
	{file: "aggregation.yaml", decode: "zstd+kpl", payloads: map[string]string{"my-stream": `\{"message":"aggregated"\}\n`}},
	{file: "local-endpoint.conf",
		payloads: map[string]string{"local-stream": `\{"log":"GET /healthz 200","stream":"stdout","time":` + exampleTime + `\}\n`}},
	{file: "local-endpoint.yaml", payloads: map[string]string{"local-stream": `\{"message":"to a local endpoint"\}\n`}},
	{file: "two-streams.conf", payloads: map[string]string{
		"app-logs": `\{"message":"GET / 200"\}\n`,
		"arn:aws:kinesis:us-east-1:123456789012:stream/audit-logs": `\{"user":"alice","action":"login"\}\n`,
	}},
	{file: "two-streams.yaml", payloads: map[string]string{
		"app-logs": `\{"message":"GET / 200"\}\n`,
		"arn:aws:kinesis:us-east-1:123456789012:stream/audit-logs": `\{"user":"alice","action":"login"\}\n`,
	}},
	{file: "plugins-file.conf", payloads: map[string]string{"my-stream": `\{"message":"dummy"\}\n`}},
}

// notRunnable are the examples that cannot run here, and why.
var notRunnable = map[string]string{
	"container-logs.conf": "tails a node's /var/log/containers/*.log",
	"container-logs.yaml": "tails a node's /var/log/containers/*.log",
	"partition-key.conf":  "tails a node's container logs and asks the Kubernetes API server for pod metadata",
	"role-arn.conf":       "assumes a role with STS, which kinesis-mock does not serve",
	"role-arn.yaml":       "assumes a role with STS, which kinesis-mock does not serve",
}

// TestExamplesRun runs every example that can run here for real, against
// kinesis-mock: only its stream names (and ARNs) and its endpoint are
// rewritten. Each stream must get records, every record must be the
// example's record (decompressed and deaggregated as a consumer would), and
// the records read back must be as many as the plugin's exit summaries say
// were accepted. Every example must be either run here or listed in
// notRunnable with its reason.
func TestExamplesRun(t *testing.T) {
	needFluentBit(t)
	covered := map[string]bool{}
	for _, ex := range runnableExamples {
		covered[ex.file] = true
	}
	for f, why := range notRunnable {
		covered[f] = true
		t.Logf("%s does not run here: it %s", f, why)
	}
	for _, f := range exampleFiles(t) {
		if !covered[f] {
			t.Errorf("example %s is neither run nor listed as not runnable", f)
		}
	}
	for _, ex := range runnableExamples {
		t.Run(ex.file, func(t *testing.T) {
			t.Parallel()
			runExample(t, ex)
		})
	}
}

func runExample(t *testing.T, ex runnableExample) {
	e := newEnv(t)
	proxy := newProxy(t, kinesismock.Faults{})
	src := filepath.Join(rootDir, examplesDir, ex.file)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// Each stream of the example becomes a new one, named or by ARN as the
	// example has it.
	names := map[string]string{}   // the example's stream -> the new stream's name
	rewrite := map[string]string{} // the example's stream -> what the copy says
	for s := range ex.payloads {
		name := newStream(t, 1)
		if ex.maxRecordKiB > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := mock.SetMaxRecordSize(ctx, name, ex.maxRecordKiB)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		names[s] = name
		rewrite[s] = name
		if strings.HasPrefix(s, "arn:") {
			rewrite[s] = streamARN(t, name)
		}
	}
	conf, err := rewriteExample(string(b), rewrite, proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The copy sits in the test's directory, with a copy of the plugins
	// file beside it; relative paths in them point from the repository's
	// root, the working directory.
	path := e.write(t, ex.file, conf)
	pf, err := os.ReadFile(filepath.Join(rootDir, examplesDir, pluginsFile))
	if err != nil {
		t.Fatal(err)
	}
	e.write(t, pluginsFile, string(pf))

	p := e.startIn(t, rootDir, exampleArgs(t, path)...)
	// A record per stream, and one more.
	waitFor(t, "records accepted", deliverTimeout, p, func() bool {
		return proxy.Stats().Accepted > len(ex.payloads)
	})
	stop(t, p, 5*time.Second)
	stderr := p.Stderr()
	checkLog(t, stderr)

	total := 0
	for s, pattern := range ex.payloads {
		re := regexp.MustCompile(`\A` + pattern + `\z`)
		users := decodeRecords(t, ex.decode, readStream(t, names[s]))
		if len(users) == 0 {
			t.Errorf("stream %s (%s in the example): no records", names[s], s)
		}
		bad := 0
		for _, u := range users {
			if !re.Match(u.Data) {
				if bad++; bad <= 3 {
					t.Errorf("stream %s: record %q does not match %s", names[s], textdiff.Clip(string(u.Data), 300), pattern)
				}
			}
			if ex.partitionKey != "" && (u.PartitionKey == nil || *u.PartitionKey != ex.partitionKey) {
				if bad++; bad <= 3 {
					t.Errorf("stream %s: user record with partition key %v, want %q", names[s], u.PartitionKey, ex.partitionKey)
				}
			}
		}
		t.Logf("stream %s (%s in the example): %d records", names[s], s, len(users))
		total += len(users)
	}
	_, accepted := exitSummaries(stderr)
	sum := 0
	for _, n := range accepted {
		sum += n
	}
	if len(accepted) != len(ex.payloads) || sum != total {
		t.Errorf("%d exit summaries say %v records accepted (%d in all), %d read back", len(accepted), accepted, sum, total)
	}
}

// streamARN is the ARN kinesis-mock gives stream.
func streamARN(t *testing.T, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := mock.Client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

// exampleKey matches a "key value" (classic) or "key: value" (YAML) line.
var exampleKey = regexp.MustCompile(`^(\s*)(stream|endpoint)(:?\s+)(\S.*?)\s*$`)

// rewriteExample replaces the value of every stream line found in streams
// with its new value, and points every output that has a stream at
// endpoint: its endpoint line's value is replaced, or an endpoint line is
// added after its stream line.
func rewriteExample(conf string, streams map[string]string, endpoint string) (string, error) {
	lines := strings.Split(conf, "\n")
	var out []string
	replaced := 0
	for i, line := range lines {
		m := exampleKey.FindStringSubmatch(line)
		if m == nil {
			out = append(out, line)
			continue
		}
		indent, key, sep, value := m[1], m[2], m[3], m[4]
		if key == "endpoint" {
			out = append(out, indent+key+sep+endpoint)
			continue
		}
		s, ok := streams[value]
		if !ok {
			return "", fmt.Errorf("line %d: stream %q not expected", i+1, value)
		}
		replaced++
		out = append(out, indent+key+sep+s)
		if !hasEndpoint(lines, i) {
			out = append(out, indent+"endpoint"+sep+endpoint)
		}
	}
	if replaced != len(streams) {
		return "", fmt.Errorf("%d stream lines rewritten, want %d", replaced, len(streams))
	}
	return strings.Join(out, "\n"), nil
}

// hasEndpoint reports whether the section of line i (the lines around it
// with the same indentation) has an endpoint line.
func hasEndpoint(lines []string, i int) bool {
	indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
	same := func(l string) bool {
		return strings.HasPrefix(l, indent) && len(l) > len(indent) && l[len(indent)] != ' ' && l[len(indent)] != '\t'
	}
	for _, dir := range []int{-1, 1} {
		for j := i + dir; j >= 0 && j < len(lines) && same(lines[j]); j += dir {
			if m := exampleKey.FindStringSubmatch(lines[j]); m != nil && m[2] == "endpoint" {
				return true
			}
		}
	}
	return false
}

// decodeRecords returns the records a consumer reads from recs: each
// Kinesis record's data, decompressed and deaggregated as decode says.
func decodeRecords(t *testing.T, decode string, recs []kinesismock.Record) []kpl.UserRecord {
	t.Helper()
	var users []kpl.UserRecord
	switch decode {
	case "":
		for i, r := range recs {
			pk := r.PartitionKey
			users = append(users, kpl.UserRecord{Record: i, PartitionKey: &pk, Data: r.Data})
		}
	case "gzip":
		for i, r := range recs {
			zr, err := gzip.NewReader(bytes.NewReader(r.Data))
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			data, err := io.ReadAll(io.LimitReader(zr, 16<<20))
			if err != nil {
				t.Fatalf("record %d: gzip: %v", i, err)
			}
			pk := r.PartitionKey
			users = append(users, kpl.UserRecord{Record: i, PartitionKey: &pk, Data: data})
		}
	case "zstd+kpl":
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var aggs [][]byte
		aggregates := 0
		for i, r := range recs {
			data, err := d.DecodeAll(r.Data, nil)
			if err != nil {
				t.Fatalf("record %d: zstd: %v", i, err)
			}
			// An aggregate of one user record goes as that record, as the KPL sends it (a flush
			// may hold one record); the deaggregator reads both forms.
			if bytes.HasPrefix(data, kpl.Magic) {
				aggregates++
			}
			aggs = append(aggs, data)
		}
		if aggregates == 0 || len(recs)-aggregates > len(recs)/2 {
			t.Errorf("%d of %d Kinesis records are KPL aggregates, want most", aggregates, len(recs))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if users, err = kpl.Deaggregate(ctx, "..", aggs); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown decode %q", decode)
	}
	return users
}
