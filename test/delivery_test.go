package test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbhost"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// The delivery guarantees, end to end: the built library, driven by the C
// host through its ABI, sends through a fault-injecting proxy in front of
// kinesis-mock; every chunk that returns FLB_RETRY is flushed again, as
// Fluent Bit does, until it returns FLB_OK; then every stream is read back.
// No record may be lost, and none duplicated.
//
// The proxy never forwards a request it fails as a whole (500, reset,
// delayed past the plugin's timeout, down): the records of such a request
// are known not to be stored, so resending them cannot duplicate anything.
// The one way a duplicate could still arise is a forwarded request whose
// answer the plugin did not get in time (kinesis-mock slower than the
// timeout): the proxy counts those as ambiguous, and a duplicate is allowed
// only for a payload it counted so. In a normal run there are none, and the
// check is exact.

const (
	// deliveryTimeout is the plugin's http_request_timeout in these tests:
	// a delayed answer costs this much. kinesis-mock answers a request in
	// about a second, but may take several when the other tests load it.
	deliveryTimeout = 15 * time.Second
	// reflushMax and reflushDelay bound the host's flushes again: a chunk
	// gets at most 1+reflushMax flushes.
	reflushMax   = 30
	reflushDelay = 300 * time.Millisecond
)

// deliveryRun is one fault mix: instances × threads × chunks × records.
type deliveryRun struct {
	name      string
	faults    kinesismock.Faults
	instances int
	threads   int // per instance, flushing concurrently (workers)
	chunks    int // per thread
	records   int // per chunk
	shards    int32
	// wantRetry: some flush must have returned FLB_RETRY (and been flushed
	// again), and some records must have been skipped as delivered earlier.
	wantRetry bool
}

func TestDeliveryUnderFaults(t *testing.T) {
	t.Parallel()
	runs := []deliveryRun{
		{
			name: "throttled-20pct-http500-5pct-reset-2pct-delayed-0.5pct",
			faults: kinesismock.Faults{
				Seed: 1, RecordFail: 0.20, HTTP500: 0.05, Reset: 0.02, Delay: 0.005,
				DelayMax:       2 * deliveryTimeout,
				AmbiguousAfter: deliveryTimeout - time.Second,
				// Every fault at least once, whatever the draws.
				Force: map[int]kinesismock.Fault{2: kinesismock.FaultHTTP500, 4: kinesismock.FaultReset, 6: kinesismock.FaultDelay},
			},
			instances: 2, threads: 2, chunks: 3, records: 300, shards: 8,
		},
		{
			name: "down-4s-then-back",
			faults: kinesismock.Faults{
				Seed: 2, RecordFail: 0.10, DownAfter: 5, DownFor: 4 * time.Second,
				AmbiguousAfter: deliveryTimeout - time.Second,
			},
			instances: 2, threads: 2, chunks: 3, records: 300, shards: 8,
			wantRetry: true,
		},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			run.check(t)
		})
	}
}

func (run deliveryRun) check(t *testing.T) {
	proxy, err := mock.NewFaultProxy(run.faults)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	m := flbhost.Manifest{Reflush: flbhost.Reflush{Max: reflushMax, Delay: reflushDelay}}
	streams := make([]string, run.instances)
	want := make([]multiset, run.instances)
	perInstance := make([]int, run.instances)
	formats := []chunk.Format{chunk.V2Compact, chunk.V2Wide, chunk.Legacy}
	for i := range run.instances {
		streams[i] = newStream(t, fmt.Sprint(i), run.shards)
		want[i] = multiset{}
		// auto_retry_requests on for one instance, off for the other.
		m.Instances = append(m.Instances, flbhost.Instance{
			{"region", kinesismock.Region},
			{"stream", streams[i]},
			{"endpoint", proxy.URL},
			{"http_request_timeout", deliveryTimeout.String()},
			{"auto_retry_requests", fmt.Sprint(i%2 == 0)},
		})
		for th := range run.threads {
			for c := range run.chunks {
				src := fmt.Sprintf("%s-i%d-t%d-c%d", run.name, i, th, c)
				evs := chunk.LogEvents(src, 0, run.records, 0)
				want[i].addRecords(evs)
				perInstance[i] += len(evs)
				m.Jobs = append(m.Jobs, flbhost.Job{
					Instance: i,
					Thread:   i*run.threads + th,
					Tag:      fmt.Sprintf("kube.var.log.containers.app-%d-%d.log", i, th),
					Chunk:    chunk.Build(formats[(i+th+c)%len(formats)], evs),
				})
			}
		}
	}

	res := runHost(t, m, pluginEnv(t, false))

	// Return codes: FLB_RETRY until the last call, which is FLB_OK.
	retried, reflushes := 0, 0
	for j, f := range res.Flushes {
		for k, rc := range f.RCs {
			if last := k == len(f.RCs)-1; (last && rc != flbhost.FLBOK) || (!last && rc != flbhost.FLBRetry) {
				t.Errorf("job %d (instance %d): return codes %v, want FLB_RETRY (2) until a last FLB_OK (1)",
					j, m.Jobs[j].Instance, f.RCs)
				break
			}
		}
		if len(f.RCs) > 1 {
			retried++
			reflushes += len(f.RCs) - 1
		}
	}
	if run.wantRetry && retried == 0 {
		t.Errorf("no flush returned FLB_RETRY: the outage did not show")
	}

	// Every record once: read back, and compare with what was sent and with
	// what the proxy saw kinesis-mock accept.
	var sent, received, unique, lost, dup, allowed, unexpected int
	ambiguous := proxy.Ambiguous()
	for i, stream := range streams {
		got := readStream(t, stream)
		received += len(got)
		count := map[string]int{}
		for _, r := range got {
			count[string(r.Data)]++
		}
		for p := range want[i] {
			sent++
			switch n := count[p]; {
			case n == 0:
				lost++
			case n > 1:
				dup += n - 1
				allowed += min(n-1, ambiguous[p])
			}
			if count[p] > 0 {
				unique++
			}
		}
		for p, n := range count {
			if want[i][p] == 0 {
				unexpected += n
			}
		}
		if lost > 0 || unexpected > 0 || dup > allowed {
			compareRecords(t, stream, got, want[i])
		}
	}
	// The plugin's own account, from its exit summaries.
	var resent, earlier int
	for i := range run.instances {
		exit := exitLine(res.Stderr, i)
		resent += summaryCount(exit, `(\d+) resent`)
		earlier += summaryCount(exit, `(\d+) delivered by an earlier flush`)
	}
	if run.wantRetry && earlier == 0 {
		t.Errorf("no record was skipped as delivered by an earlier flush: the ledger was not used")
	}
	st := proxy.Stats()
	t.Logf("fault mix %s: records sent %d, received %d, unique received %d, lost %d, duplicated %d "+
		"(%d in ambiguous requests), unexpected %d; PutRecords requests %d (%d forwarded): %d records throttled, "+
		"%d answered 500, %d reset, %d delayed past the timeout, %d refused while down, %d ambiguous; "+
		"flushes %d, of which %d returned FLB_RETRY and were flushed again %d times; "+
		"records resent within a flush %d, skipped by the ledger when flushed again %d",
		run.name, sent, received, unique, lost, dup, allowed, unexpected, st.Requests, st.Forwarded,
		st.FailedRecords, st.HTTP500, st.Resets, st.Delays, st.Down, st.Ambiguous,
		len(m.Jobs)+reflushes, retried, reflushes, resent, earlier)
	if lost != 0 || unexpected != 0 {
		t.Errorf("%d records lost, %d unexpected", lost, unexpected)
	}
	if dup != allowed {
		t.Errorf("%d duplicates, of which only %d come from requests whose answer the plugin may have missed", dup, allowed)
	}
	if st.Ambiguous > 0 {
		t.Logf("kinesis-mock answered %d requests later than the plugin may have waited: their records may be duplicated", st.Ambiguous)
	}
	// The proxy saw kinesis-mock accept exactly what the streams hold.
	if st.Accepted != received {
		t.Errorf("proxy counted %d records accepted, the streams hold %d", st.Accepted, received)
	}
	if run.faults.HTTP500 > 0 && (st.FailedRecords == 0 || st.HTTP500 == 0 || st.Resets == 0 || st.Delays == 0) {
		t.Errorf("not every fault happened: %+v", st)
	}

	// The plugin's own account, in its exit summary: every record accepted
	// once; and its warnings say what failed.
	for i := range run.instances {
		lines := strings.Join(instanceLines(res.Stderr, i), "\n")
		exit := exitLine(res.Stderr, i)
		if got := summaryCount(exit, `: (\d+) accepted,`); got != perInstance[i] {
			t.Errorf("instance %d: exit summary %q counts %d records accepted, want %d", i, exit, got, perInstance[i])
		}
		if !strings.Contains(lines, "records failed (") {
			t.Errorf("instance %d: no warning about failed records", i)
		}
	}
	if run.wantRetry && countLines(res.Stderr, "chunk will be retried") == 0 {
		t.Errorf("no line says a chunk will be retried")
	}
}

// exitLine returns instance i's exit summary line, or "".
func exitLine(stderr string, i int) string {
	for _, l := range instanceLines(stderr, i) {
		if strings.Contains(l, "] exit: ") && strings.Contains(l, " flushes") {
			return l
		}
	}
	return ""
}

// summaryCount returns the number the first group of pattern matches in
// line, or -1.
func summaryCount(line, pattern string) int {
	m := regexp.MustCompile(pattern).FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// TestAutoRetryRequests counts, at the server, the requests one flush makes
// when every connection is reset: with auto_retry_requests each of the
// batcher's attempts is sent twice (one immediate re-send), without it once.
func TestAutoRetryRequests(t *testing.T) {
	t.Parallel()
	const attempts = 5 // requests.DefaultMaxAttempts
	tests := []struct {
		autoRetry    string
		wantRequests int
	}{
		{"on", 2 * attempts},
		{"off", attempts},
	}
	for _, tt := range tests {
		t.Run("auto_retry_requests="+tt.autoRetry, func(t *testing.T) {
			t.Parallel()
			proxy, err := mock.NewFaultProxy(kinesismock.Faults{Reset: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			stream := newStream(t, "s", 1)
			evs := chunk.LogEvents("auto-retry-"+tt.autoRetry, 0, 10, 0)
			m := flbhost.Manifest{
				Instances: []flbhost.Instance{{
					{"region", kinesismock.Region},
					{"stream", stream},
					{"endpoint", proxy.URL},
					{"auto_retry_requests", tt.autoRetry},
				}},
				Jobs: []flbhost.Job{{Tag: "app", Chunk: chunk.Build(chunk.V2Compact, evs)}},
			}
			res := runHost(t, m, pluginEnv(t, false))
			if rc := res.Flushes[0].RC; rc != flbhost.FLBRetry {
				t.Errorf("flush: rc=%d, want FLB_RETRY", rc)
			}
			st := proxy.Stats()
			if st.Requests != tt.wantRequests || st.Resets != tt.wantRequests {
				t.Errorf("server got %d requests (%d reset), want %d", st.Requests, st.Resets, tt.wantRequests)
			}
			t.Logf("auto_retry_requests %s: %d requests for %d attempts", tt.autoRetry, st.Requests, attempts)

			// Healthy again: the same chunk, flushed again, is delivered once.
			proxy.SetFaults(kinesismock.Faults{})
			m.Exit = ""
			res = runHost(t, m, pluginEnv(t, false))
			if rc := res.Flushes[0].RC; rc != flbhost.FLBOK {
				t.Errorf("flush after recovery: rc=%d, want FLB_OK", rc)
			}
			want := multiset{}
			want.addRecords(evs)
			compareRecords(t, stream, readStream(t, stream), want)
		})
	}
}
