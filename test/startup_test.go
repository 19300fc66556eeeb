package test

// End-to-end tests of the start-up check (startup_check) and of max_record_size auto: the built
// library through the C host, against kinesis-mock.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// checkTimeout is the plugin's bound on the start-up check (kinesis.CheckTimeout).
const checkTimeout = 5 * time.Second

// lineOf returns the first line of lines that contains sub, or "".
func lineOf(lines []string, sub string) string {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// message is a log line without its time stamp.
func message(line string) string {
	if i := strings.Index(line, "] ["); i >= 0 {
		return line[i+2:]
	}
	return line
}

// TestStartupCheck runs three instances: one on a stream that exists, two on a stream that does
// not, with startup_check warn and fail. The first logs one info line with what it found; the
// others one error line that says what to fix; the fail one's Init fails, the warn one starts and
// hands its chunk back for a retry. The good instance delivers its records.
func TestStartupCheck(t *testing.T) {
	// Not parallel: it runs before the parallel tests, while kinesis-mock answers the start-up
	// check within its 5 s (under their load it can take longer).
	stream := newStream(t, "good", 2)
	missing := "missing-" + stream
	evs := chunk.LogEvents("startup", 0, 20, 0)
	want := multiset{}
	want.addRecords(evs)
	m := flbhost.Manifest{
		Instances: []flbhost.Instance{
			outputProps(stream),
			outputProps(missing),
			outputProps(missing, flbhost.Prop{"startup_check", "fail"}),
		},
		Jobs: []flbhost.Job{
			{Instance: 0, Thread: 0, Tag: "app.log", Chunk: chunk.Build(chunk.V2Compact, evs)},
			{Instance: 1, Thread: 1, Tag: "app.log", Chunk: chunk.Build(chunk.V2Compact, evs)},
		},
	}
	res := runHost(t, m, pluginEnv(t, false))

	wantRC := []int{flbhost.FLBOK, flbhost.FLBOK, flbhost.FLBError}
	for i, in := range res.Inits {
		if in.RC != wantRC[i] {
			t.Errorf("init %d: rc=%d, want %d", i, in.RC, wantRC[i])
		}
	}
	if res.Flushes[0].RC != flbhost.FLBOK || res.Flushes[1].RC != flbhost.FLBRetry {
		t.Errorf("flush return codes %d, %d; want FLB_OK for the good stream, FLB_RETRY for the missing one",
			res.Flushes[0].RC, res.Flushes[1].RC)
	}
	compareRecords(t, stream, readStream(t, stream), want)

	good := lineOf(instanceLines(res.Stderr, 0), "start-up check:")
	wantGood := regexp.MustCompile(`^\[ info\] \[output:kinesis_streams_go:kinesis_streams_go\.0\] start-up check: stream "` +
		regexp.QuoteMeta(stream) + `" is ACTIVE, provisioned, 2 open shards, retention 24h, encryption NONE, max record size [^;]+; ` +
		`credentials from EnvConfigCredentials; max_record_size auto: 1048576 bytes$`)
	if !wantGood.MatchString(message(good)) {
		t.Errorf("good stream's start-up line\n%s\ndoes not match\n%s", good, wantGood)
	}
	for i, consequence := range []string{
		"; starting anyway, records are retried until this is fixed (startup_check fail would refuse to start)",
		"; not starting (startup_check fail)",
	} {
		lines := instanceLines(res.Stderr, i+1)
		bad := lineOf(lines, "start-up check:")
		wantBad := fmt.Sprintf(`[error] [output:kinesis_streams_go:kinesis_streams_go.%d] start-up check: stream %q not found in region "us-east-1" `+
			`(ResourceNotFoundException): create it, or correct "stream" and "region"; credentials from EnvConfigCredentials%s`, i+1, missing, consequence)
		if message(bad) != wantBad {
			t.Errorf("missing stream's start-up line\n%s\nwant\n%s", message(bad), wantBad)
		}
		if n := countLines(strings.Join(lines, "\n"), "start-up check"); n != 1 {
			t.Errorf("instance %d: %d start-up check lines, want 1", i+1, n)
		}
	}
	t.Logf("start-up lines:\n%s\n%s\n%s", good, lineOf(instanceLines(res.Stderr, 1), "start-up check:"),
		lineOf(instanceLines(res.Stderr, 2), "start-up check:"))
}

// TestStartupCheckBounded: an endpoint that accepts connections and never answers delays Init by
// the check's bound, not by the HTTP timeout (60 s), and the error line says so.
func TestStartupCheckBounded(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	endpoint := "http://" + l.Addr().String()
	m := flbhost.Manifest{Instances: []flbhost.Instance{{
		{"region", kinesismock.Region}, {"stream", "never-answered"}, {"endpoint", endpoint},
	}}}
	start := time.Now()
	res := runHost(t, m, pluginEnv(t, false))
	took := time.Since(start)
	// The host loads the library and exits; the Init is all but the whole run.
	if took > checkTimeout+3*time.Second {
		t.Errorf("the host ran %v, want the start-up check's %v and little more", took.Round(time.Millisecond), checkTimeout)
	}
	line := lineOf(instanceLines(res.Stderr, 0), "start-up check:")
	want := regexp.MustCompile(`\[error\] .* start-up check: no answer from Kinesis at ` + regexp.QuoteMeta(endpoint) +
		` within 5(\.\d+)?s \(timeout\): check the network, "endpoint", "region" and any proxy \(HTTPS_PROXY\): .*; starting anyway`)
	if !want.MatchString(line) {
		t.Errorf("start-up line\n%s\ndoes not match\n%s", line, want)
	}
	t.Logf("host ran %v; %s", took.Round(time.Millisecond), line)
}

// bigEvent is an event whose record, as JSON with its newline, is size bytes.
func bigEvent(src string, seq, size int) chunk.Event { return sizedRecord(src, seq, size) }

// TestMaxRecordSizeAuto: on a stream raised to 2 MiB (UpdateMaxRecordSize), max_record_size auto
// (the default) takes the stream's 2 MiB, and a record of 1.5 MiB is delivered byte for byte; on a
// stream of 1 MiB the same record is skipped as too large, and the others delivered.
func TestMaxRecordSizeAuto(t *testing.T) {
	// Not parallel: it runs before the parallel tests, while kinesis-mock answers the start-up
	// check within its 5 s (under their load it can take longer).
	for _, tc := range []struct {
		name      string
		limit     int
		props     []flbhost.Prop
		delivered bool
	}{
		{"raised to 2 MiB, auto by default", 2 << 20, nil, true},
		{"raised to 2 MiB, auto", 2 << 20, []flbhost.Prop{{"max_record_size", "auto"}}, true},
		{"1 MiB", 1 << 20, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.ReplaceAll(tc.name, " ", "-")
			evs := []chunk.Event{bigEvent(src+"-small", 0, 300), bigEvent(src+"-big", 1, 3<<19), bigEvent(src+"-small", 2, 400)}
			want := multiset{}
			if tc.delivered {
				want.addRecords(evs)
			} else {
				want.addRecords([]chunk.Event{evs[0], evs[2]})
			}
			r := featureRun{shards: 1, maxRecordSize: tc.limit, props: tc.props,
				chunks: [][]byte{chunk.Build(chunk.V2Compact, evs)}}.run(t)
			compareRecords(t, r.stream, r.recs, want)
			line := lineOf(instanceLines(r.res.Stderr, 0), "start-up check:")
			wantLine := fmt.Sprintf("max record size %d KiB; credentials from EnvConfigCredentials; max_record_size auto: %d bytes", tc.limit>>10, tc.limit)
			if tc.limit == 1<<20 {
				wantLine = fmt.Sprintf("; credentials from EnvConfigCredentials; max_record_size auto: %d bytes", tc.limit)
			}
			if !strings.Contains(line, wantLine) {
				t.Errorf("start-up line\n%s\nlacks\n%s", line, wantLine)
			}
			t.Logf("%s", line)
		})
	}
}

// shrinkingStream is a proxy in front of kinesis-mock that answers the first
// DescribeStreamSummary with a maximum record size of 2 MiB while the stream's is 1 MiB: as if
// the stream had been lowered after the plugin started.
type shrinkingStream struct {
	URL       string
	srv       *httptest.Server
	describes atomic.Int32
}

func newShrinkingStream(t *testing.T) *shrinkingStream {
	t.Helper()
	target, err := url.Parse(mock.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s := &shrinkingStream{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), ".DescribeStreamSummary") || s.describes.Add(1) != 1 {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var out map[string]map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			return err
		}
		out["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] = 2048
		body, err = json.Marshal(out)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return nil
	}
	s.srv = httptest.NewServer(rp)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// TestMaxRecordSizeAutoLowered: the plugin starts believing the stream takes 2 MiB, but it takes
// 1 MiB. kinesis-mock refuses the 1.5 MiB record of the first chunk (InvalidArgumentException for
// that record); the plugin reads the stream's limit again at once, logs it, and drops that chunk
// (FLB_ERROR, its other records delivered). In the next chunk the big record is skipped as too
// large before it is sent, and the chunk is delivered (FLB_OK).
func TestMaxRecordSizeAutoLowered(t *testing.T) {
	// Not parallel: it runs before the parallel tests, while kinesis-mock answers the start-up
	// check within its 5 s (under their load it can take longer).
	stream := newStream(t, "s", 1)
	proxy := newShrinkingStream(t)
	first := []chunk.Event{bigEvent("first-small", 0, 300), bigEvent("first-big", 1, 3<<19), bigEvent("first-small", 2, 400)}
	second := []chunk.Event{bigEvent("second-small", 0, 300), bigEvent("second-big", 1, 3<<19), bigEvent("second-small", 2, 400)}
	m := flbhost.Manifest{
		Instances: []flbhost.Instance{{{"region", kinesismock.Region}, {"stream", stream}, {"endpoint", proxy.URL}}},
		Jobs: []flbhost.Job{
			{Tag: "app.log", Chunk: chunk.Build(chunk.V2Compact, first)},
			{Tag: "app.log", Chunk: chunk.Build(chunk.V2Compact, second)},
		},
	}
	res := runHost(t, m, pluginEnv(t, false))
	if res.Flushes[0].RC != flbhost.FLBError || res.Flushes[1].RC != flbhost.FLBOK {
		t.Errorf("flush return codes %d, %d; want FLB_ERROR (a record refused), then FLB_OK (a record skipped)",
			res.Flushes[0].RC, res.Flushes[1].RC)
	}
	want := multiset{}
	want.addRecords([]chunk.Event{first[0], first[2], second[0], second[2]})
	compareRecords(t, stream, readStream(t, stream), want)
	lines := instanceLines(res.Stderr, 0)
	for _, w := range []string{
		"max_record_size auto: 2097152 bytes",
		"[ info] [output:kinesis_streams_go:kinesis_streams_go.0] max_record_size auto: the stream's maximum record size is 1024 KiB (was 2048 KiB), " +
			"read again after Kinesis refused a record as invalid (InvalidArgumentException)",
		"skipped 1 records larger than max_record_size 1048576 bytes",
	} {
		if lineOf(lines, w) == "" {
			t.Errorf("no line with %q in:\n%s", w, strings.Join(lines, "\n"))
		}
	}
	if n := proxy.describes.Load(); n != 2 {
		t.Errorf("%d DescribeStreamSummary calls, want 2 (start-up, and after the refusal)", n)
	}
}
