package fluentbit

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbproc"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// TestDelivers runs the plugin from a classic configuration (loaded with -e)
// and from a YAML one (loaded by its plugins list), with workers 0, 1 and 4:
// 2000 records in four files, so that each flush has four chunks to hand to
// the workers. Every record must reach the stream exactly once, byte for
// byte; Fluent Bit must exit 0 on SIGTERM, and the plugin's exit summary
// must count every record as accepted.
func TestDelivers(t *testing.T) {
	needFluentBit(t)
	const records = 2000
	for _, format := range []string{"classic", "yaml"} {
		for _, workers := range []int{0, 1, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", format, workers), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				w := want{}
				spread(t, filepath.Join(e.dir, "app"), "app", 4, 0, records, w)
				stream := newStream(t, 2)
				proxy := newProxy(t, kinesismock.Faults{})
				p := pipeline{
					service: e.service(5),
					inputs:  []props{e.tail("app")},
					outputs: []props{output("app.*", stream, proxy.URL, [2]string{"workers", strconv.Itoa(workers)})},
				}
				var proc *flbproc.Process
				if format == "yaml" {
					proc = e.start(t, "-c", e.write(t, "fluent-bit.yaml", p.yaml(soPath)))
				} else {
					proc = e.startClassic(t, p)
				}
				waitAccepted(t, proxy, records, proc)
				stop(t, proc, 5*time.Second)
				checkExactlyOnce(t, stream, w)
				stderr := proc.Stderr()
				checkLog(t, stderr)
				names, accepted := exitSummaries(stderr)
				if len(names) != 1 || names[0] != pluginName+".0" || accepted[0] != records {
					t.Errorf("exit summaries of %v with %v records accepted, want one of %s.0 with %d", names, accepted, pluginName, records)
				}
			})
		}
	}
}

// TestTwoInstances runs two outputs, each matching the records of its own
// tail input, to two streams. Each stream must hold exactly its records;
// each instance must log its own stream under its own name; Fluent Bit's
// metrics must count each instance's records as processed.
func TestTwoInstances(t *testing.T) {
	needFluentBit(t)
	const records = 1000
	e := newEnv(t)
	wa, wb := want{}, want{}
	spread(t, filepath.Join(e.dir, "a"), "a", 2, 0, records, wa)
	spread(t, filepath.Join(e.dir, "b"), "b", 2, 100000, records, wb)
	sa, sb := newStream(t, 2), newStream(t, 2)
	proxy := newProxy(t, kinesismock.Faults{})
	proc := e.startClassic(t, pipeline{
		service: e.service(5),
		inputs:  []props{e.tail("a"), e.tail("b")},
		outputs: []props{
			output("a.*", sa, proxy.URL, [2]string{"workers", "1"}),
			output("b.*", sb, proxy.URL, [2]string{"workers", "1"}),
		},
	})
	waitAccepted(t, proxy, 2*records, proc)

	// Fluent Bit counts a chunk's records as processed once the plugin
	// returned FLB_OK for it.
	for i := range 2 {
		name := fmt.Sprintf("%s.%d", pluginName, i)
		waitFor(t, name+" metrics", 10*time.Second, proc, func() bool {
			return promValue(t, e.port, "fluentbit_output_proc_records_total", name) == records
		})
	}
	stop(t, proc, 5*time.Second)
	checkExactlyOnce(t, sa, wa)
	checkExactlyOnce(t, sb, wb)

	stderr := proc.Stderr()
	checkLog(t, stderr)
	for i, s := range []string{sa, sb} {
		init := fmt.Sprintf("[output:%s:%s.%d] initialized: region=%s stream=%s ", pluginName, pluginName, i, kinesismock.Region, s)
		if !strings.Contains(stderr, init) {
			t.Errorf("no line %q in stderr", init)
		}
	}
	names, accepted := exitSummaries(stderr)
	if fmt.Sprint(names) != fmt.Sprintf("[%[1]s.0 %[1]s.1]", pluginName) || fmt.Sprint(accepted) != fmt.Sprintf("[%[1]d %[1]d]", records) {
		t.Errorf("exit summaries of %v with %v records accepted, want %s.0 and .1 with %d each", names, accepted, pluginName, records)
	}
}

// promValue returns the value of metric for output instance name from
// /api/v2/metrics/prometheus, or -1.
func promValue(t *testing.T, port int, metric, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := flbproc.Get(ctx, port, "/api/v2/metrics/prometheus")
	if err != nil {
		return -1
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `\{name="` + regexp.QuoteMeta(name) + `"\} (\d+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return -1
	}
	return n
}

// TestFlushesYield checks that a flush waiting for Kinesis does not hold its Fluent Bit worker:
// four chunks (four files) are flushed at once to an endpoint that answers after 300 ms, with
// one worker or none. Every chunk makes one request, so the endpoint must see more than one
// request at a time, as with Fluent Bit's C output; with KINESIS_STREAMS_GO_FLUSH=block, which
// holds the worker until the chunk's last answer, it must see exactly one. Every record must be
// delivered exactly once either way.
func TestFlushesYield(t *testing.T) {
	needFluentBit(t)
	const records = 400
	for _, mode := range []string{"yield", "block"} {
		for _, workers := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/workers=%d", mode, workers), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.vars = []string{"KINESIS_STREAMS_GO_FLUSH=" + mode}
				w := want{}
				spread(t, filepath.Join(e.dir, "app"), "app", 4, 0, records, w)
				stream := newStream(t, 2)
				proxy := newProxy(t, kinesismock.Faults{Latency: 300 * time.Millisecond})
				proc := e.startClassic(t, pipeline{
					service: e.service(5),
					inputs:  []props{e.tail("app")},
					outputs: []props{output("app.*", stream, proxy.URL, [2]string{"workers", strconv.Itoa(workers)})},
				})
				waitAccepted(t, proxy, records, proc)
				stop(t, proc, 5*time.Second)
				checkExactlyOnce(t, stream, w)
				checkLog(t, proc.Stderr())
				st := proxy.Stats()
				switch {
				case mode == "yield" && st.MaxInFlight < 2:
					t.Errorf("%d requests for %d chunks flushed at once, at most %d in flight at a time: flushes held the worker",
						st.Requests, 4, st.MaxInFlight)
				case mode == "block" && st.MaxInFlight != 1:
					t.Errorf("%d requests in flight at a time with flushes that block one worker, want 1", st.MaxInFlight)
				}
				t.Logf("%s, workers %d: %d requests, at most %d in flight", mode, workers, st.Requests, st.MaxInFlight)
			})
		}
	}
}
