package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

const (
	pluginName = "kinesis_streams_go"
	// pluginSO is the library under test, relative to this package, unless the environment
	// variable E2E_PLUGIN names another (a build for the architecture of E2E_CC, see flbhost).
	pluginSO = "../build/kinesis_streams_go.so"
	// systemCABundle is what AWS_CA_BUNDLE points to on the machines that set it.
	systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

	hostTimeout = 2 * time.Minute
	readTimeout = time.Minute
)

// Set up once by TestMain for every test of the package.
var (
	mock    *kinesismock.Server
	hostBin string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "e2e-host-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if hostBin, err = flbhost.Build(ctx, "host/host.c", tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	start := time.Now()
	mock, err = kinesismock.Start(ctx, ".", nil)
	if err != nil {
		if errors.Is(err, kinesismock.ErrNotInstalled) {
			fmt.Fprintln(os.Stderr, "e2e: node and test/node_modules are needed: run `npm ci` in test/:", err)
		} else {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
		return 1
	}
	defer func() {
		if err := mock.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "e2e: kinesis-mock ready at %s in %v\n", mock.Endpoint, time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// soPath returns the absolute path of the plugin library, failing the test
// when it has not been built.
func soPath(t *testing.T) string {
	t.Helper()
	so := pluginSO
	if env := os.Getenv("E2E_PLUGIN"); env != "" {
		so = env
	}
	p, err := filepath.Abs(so)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("plugin library %s missing: run `make build` (or `make dist` for E2E_PLUGIN) first (%v)", p, err)
	}
	return p
}

// pluginEnv is the host's whole environment: fake credentials, no shared AWS
// files, no instance metadata, and AWS_CA_BUNDLE set to the system bundle
// when caBundle is true and that file exists, unset otherwise.
func pluginEnv(t *testing.T, caBundle bool) []string {
	t.Helper()
	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=" + kinesismock.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + kinesismock.SecretAccessKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if caBundle {
		if _, err := os.Stat(systemCABundle); err == nil {
			env = append(env, "AWS_CA_BUNDLE="+systemCABundle)
		} else {
			t.Logf("%s missing: AWS_CA_BUNDLE left unset", systemCABundle)
		}
	}
	return env
}

// runHost runs the host on m and checks that it ran to its end without a
// crash; on failure the test's log gets the plugin's stderr.
func runHost(t *testing.T, m flbhost.Manifest, env []string) *flbhost.Result {
	t.Helper()
	return runHostWithin(t, m, env, hostTimeout)
}

// runHostWithin is runHost, killing the host after timeout.
func runHostWithin(t *testing.T, m flbhost.Manifest, env []string, timeout time.Duration) *flbhost.Result {
	t.Helper()
	m.SO = soPath(t)
	m.Name = pluginName
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res, err := flbhost.Run(ctx, hostBin, t.TempDir(), m, env)
	if res != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("host stdout:\n%s\nhost stderr (plugin log):\n%s", res.Stdout, textdiff.LastBytes(res.Stderr, 16<<10))
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host ran %d instances, %d flushes in %v", len(m.Instances), len(m.Jobs), time.Since(start).Round(time.Millisecond))
	if res.Err != nil || !res.Done {
		t.Fatalf("host did not run to its end: %v (done=%v)", res.Err, res.Done)
	}
	if res.Registered != pluginName {
		t.Errorf("registered name %q, want %q", res.Registered, pluginName)
	}
	if len(res.Inits) != len(m.Instances) {
		t.Errorf("%d init results, want %d", len(res.Inits), len(m.Instances))
	}
	checkLog(t, res.Stderr)
	return res
}

// logLine is a line in Fluent Bit's format, as the plugin must write them.
var logLine = regexp.MustCompile(`^\[\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?\] \[ ?(error|warn|info|debug)\] \[output:` + pluginName + `:[^\]]+\] \S`)

// checkLog checks that stderr holds only Fluent Bit-style log lines (and the
// host's own), and no sign of a Go panic or a crash.
func checkLog(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic:", "fatal error:", "SIGSEGV", "goroutine "} {
		if strings.Contains(stderr, bad) {
			t.Errorf("plugin stderr contains %q", bad)
		}
	}
	bad := 0
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "host: ") || logLine.MatchString(line) {
			continue
		}
		if bad++; bad <= 3 {
			t.Errorf("stderr line not in Fluent Bit's format: %q", line)
		}
	}
}

// instanceLines returns the log lines of instance i (kinesis_streams_go.i).
func instanceLines(stderr string, i int) []string {
	tag := fmt.Sprintf("[output:%s:%s.%d] ", pluginName, pluginName, i)
	var lines []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, tag) {
			lines = append(lines, line)
		}
	}
	return lines
}

var streamSeq atomic.Int32

// newStream creates a stream named after the test with shards shards.
func newStream(t *testing.T, suffix string, shards int32) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, fmt.Sprintf("%s-%s-%d", t.Name(), suffix, streamSeq.Add(1)))
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
	start := time.Now()
	recs, err := mock.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read %d records back from %s in %v", len(recs), stream, time.Since(start).Round(time.Millisecond))
	return recs
}

// outputProps are the properties of an instance that sends to stream on the
// mock, with the given extra properties.
func outputProps(stream string, extra ...flbhost.Prop) flbhost.Instance {
	ins := flbhost.Instance{
		{"region", kinesismock.Region},
		{"stream", stream},
		{"endpoint", mock.Endpoint},
	}
	return append(ins, extra...)
}

// multiset counts payloads.
type multiset map[string]int

// addRecords adds the payload the plugin must send for every event: its JSON
// and a newline.
func (m multiset) addRecords(evs []chunk.Event) {
	for _, ev := range evs {
		m[string(chunk.AppendJSON(nil, ev.Record))+"\n"]++
	}
}

// compareRecords checks that got holds exactly the payloads of want, byte
// for byte, each as many times: none missing, none extra or duplicated.
func compareRecords(t *testing.T, stream string, got []kinesismock.Record, want multiset) {
	t.Helper()
	left := make(multiset, len(want))
	total := 0
	for k, n := range want {
		left[k] = n
		total += n
	}
	var extra []string
	for _, r := range got {
		k := string(r.Data)
		if left[k] > 0 {
			left[k]--
			continue
		}
		extra = append(extra, k)
	}
	var missing []string
	for k, n := range left {
		for range n {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	sort.Strings(missing)
	sort.Strings(extra)
	t.Errorf("stream %s: %d records read, %d expected: %d missing, %d unexpected or duplicated",
		stream, len(got), total, len(missing), len(extra))
	for i, k := range missing {
		if i == 3 {
			break
		}
		t.Errorf("missing:    %q", textdiff.Clip(k, 400))
	}
	for i, k := range extra {
		if i == 3 {
			break
		}
		t.Errorf("unexpected: %q", textdiff.Clip(k, 400))
	}
	if len(missing) > 0 && len(extra) > 0 {
		t.Errorf("first difference of the first missing and unexpected payloads:\n%s", textdiff.FirstDiff(missing[0], extra[0]))
	}
}

// countLines counts the lines of s that contain sub, case-insensitively.
func countLines(s, sub string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if bytes.Contains(bytes.ToLower([]byte(line)), bytes.ToLower([]byte(sub))) {
			n++
		}
	}
	return n
}

func toRecords(data []string) []kinesismock.Record {
	recs := make([]kinesismock.Record, len(data))
	for i, d := range data {
		recs[i].Data = []byte(d)
	}
	return recs
}
