package fluentbit

import (
	"context"
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/flbproc"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/kinesismock"
)

// pluginLine matches a line the plugin wrote, whatever its instance.
var pluginLine = regexp.MustCompile(`(?m)^.*\[output:` + pluginName + `:[^\]]+\] .*$`)

// TestLogFile runs three instances with [SERVICE] Log_File set: one at the
// service's level, one with the output's log_level error, one with an Alias.
// Every line the plugin writes must be in the file and none on stderr (the
// summary, which the plugin's own goroutine writes every second here, and
// the lines of the flushes included, whichever thread writes them); the log_level error instance must write no info line; the
// aliased one must be named by its alias, as Fluent Bit names it.
func TestLogFile(t *testing.T) {
	needFluentBit(t)
	const records = 600
	e := newEnv(t)
	logFile := filepath.Join(e.dir, "fluent-bit.log")
	streams := []string{newStream(t, 1), newStream(t, 1), newStream(t, 1)}
	ws := []want{{}, {}, {}}
	for i, name := range []string{"a", "b", "c"} {
		spread(t, filepath.Join(e.dir, name), name, 2, i*100000, records, ws[i])
	}
	proxy := newProxy(t, kinesismock.Faults{})
	proc := e.startClassic(t, pipeline{
		service: e.service(5, [2]string{"Log_File", logFile}),
		inputs:  []props{e.tail("a"), e.tail("b"), e.tail("c")},
		outputs: []props{
			output("a.*", streams[0], proxy.URL, [2]string{"workers", "1"}, [2]string{"summary_interval", "1s"}),
			output("b.*", streams[1], proxy.URL, [2]string{"workers", "1"}, [2]string{"log_level", "error"}),
			output("c.*", streams[2], proxy.URL, [2]string{"workers", "0"}, [2]string{"Alias", "kin_c"}),
		},
	})
	waitAccepted(t, proxy, 3*records, proc)
	// The summary comes from the plugin's own goroutine once a second after records flowed.
	summary := fmt.Sprintf("[ info] [output:%s:%s.0] last 1s: ", pluginName, pluginName)
	waitFor(t, "a summary line in the log file", 10*time.Second, proc, func() bool {
		b, err := os.ReadFile(logFile)
		return err == nil && strings.Contains(string(b), summary)
	})
	stop(t, proc, 5*time.Second)
	for i, s := range streams {
		checkExactlyOnce(t, s, ws[i])
	}
	checkLog(t, proc.Stderr())
	if lines := pluginLine.FindAllString(proc.Stderr(), -1); len(lines) > 0 {
		t.Errorf("%d plugin lines on stderr with Log_File set, first: %q", len(lines), lines[0])
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{
		fmt.Sprintf("[ info] [output:%s:%s.0] initialized: region=%s stream=%s ", pluginName, pluginName, kinesismock.Region, streams[0]),
		fmt.Sprintf("[ info] [output:%s:%s.0] exit: ", pluginName, pluginName),
		summary, // written by the plugin's own goroutine, on a thread Fluent Bit did not create
		fmt.Sprintf("[ info] [output:%s:kin_c] initialized: region=%s stream=%s ", pluginName, kinesismock.Region, streams[2]),
		fmt.Sprintf("[ info] [output:%s:kin_c] exit: ", pluginName),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log file has no line with %q", want)
		}
	}
	if lines := regexp.MustCompile(`(?m)^.*\[output:`+pluginName+`:`+pluginName+`\.1\] .*$`).FindAllString(log, -1); len(lines) > 0 {
		t.Errorf("the instance with log_level error wrote %d lines, first %q", len(lines), lines[0])
	}
	if t.Failed() {
		t.Logf("log file:\n%s", textdiff.LastBytes(log, 16<<10))
	}
}

// TestMetricsThrottled sends records through a proxy that throttles a tenth
// of them: the instance's Kinesis metrics in Fluent Bit's Prometheus endpoint
// must count the throttled records and their resends, every record as
// accepted, and partly failed requests.
func TestMetricsThrottled(t *testing.T) {
	needFluentBit(t)
	const records = 3000
	e := newEnv(t)
	w := want{}
	spread(t, filepath.Join(e.dir, "app"), "app", 3, 0, records, w)
	stream := newStream(t, 2)
	proxy := newProxy(t, kinesismock.Faults{Seed: 7, RecordFail: 0.1})
	proc := e.startClassic(t, pipeline{
		service: e.service(5),
		inputs:  []props{e.tail("app")},
		outputs: []props{output("app.*", stream, proxy.URL, [2]string{"workers", "1"}, [2]string{"Retry_Limit", "no_limits"})},
	})
	waitAccepted(t, proxy, records, proc)
	name := pluginName + ".0"
	// Fluent Bit collects metrics once a second.
	var accepted, throttled, resent, partial int
	waitFor(t, "accepted records in the metrics", 10*time.Second, proc, func() bool {
		accepted = promSeries(t, e.port, "fluentbit_output_kinesis_records_accepted_total", name, "")
		return accepted == records
	})
	throttled = promSeries(t, e.port, "fluentbit_output_kinesis_records_throttled_total", name, "")
	resent = promSeries(t, e.port, "fluentbit_output_kinesis_records_resent_total", name, "")
	partial = promSeries(t, e.port, "fluentbit_output_kinesis_requests_total", name, `outcome="partial"`)
	// Every request's duration is in the histogram: the flush that made it hands it over at its end.
	requests := promSum(t, e.port, "fluentbit_output_kinesis_requests_total", name)
	var observed int
	waitFor(t, "every request in the duration histogram", 10*time.Second, proc, func() bool {
		observed = promSeries(t, e.port, "fluentbit_output_kinesis_request_duration_seconds_count", name, "")
		return observed == requests
	})
	failedByProxy := proxy.Stats().FailedRecords
	stop(t, proc, 5*time.Second)
	checkExactlyOnce(t, stream, w)
	t.Logf("metrics: accepted %d, throttled %d, resent %d, partial requests %d; the proxy throttled %d",
		accepted, throttled, resent, partial, failedByProxy)
	if throttled <= 0 || throttled != failedByProxy {
		t.Errorf("throttled records metric %d, the proxy throttled %d", throttled, failedByProxy)
	}
	if resent < throttled-records/10 || resent <= 0 {
		t.Errorf("resent records metric %d for %d throttled", resent, throttled)
	}
	if partial <= 0 {
		t.Errorf("partial requests metric %d, want some", partial)
	}
	if requests <= 0 || observed != requests {
		t.Errorf("request duration histogram counts %d requests, the requests metric %d", observed, requests)
	}
}

// promSum returns the sum of the series of metric for the output instance name, whatever their
// other labels, or -1 when there is none.
func promSum(t *testing.T, port int, metric, name string) int {
	t.Helper()
	values := promSeriesValues(t, port, metric, name, "")
	if len(values) == 0 {
		return -1
	}
	sum := 0
	for _, v := range values {
		sum += v
	}
	return sum
}

// promSeries returns the value of the series of metric for the output
// instance name whose other labels include label (when not ""), or -1.
func promSeries(t *testing.T, port int, metric, name, label string) int {
	t.Helper()
	values := promSeriesValues(t, port, metric, name, label)
	if len(values) == 0 {
		return -1
	}
	return values[0]
}

// promSeriesValues returns the values of the series of metric for the output instance name whose
// other labels include label (when not ""), in the endpoint's order; none when the endpoint did not
// answer or a value is not an integer.
func promSeriesValues(t *testing.T, port int, metric, name, label string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := flbproc.Get(ctx, port, "/api/v2/metrics/prometheus")
	if err != nil {
		return nil
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `\{([^}]*)\} (\d+)$`)
	var values []int
	for _, m := range re.FindAllSubmatch(b, -1) {
		labels := string(m[1])
		if !strings.Contains(labels, `name="`+name+`"`) || (label != "" && !strings.Contains(labels, label)) {
			continue
		}
		n, err := strconv.Atoi(string(m[2]))
		if err != nil {
			return nil
		}
		values = append(values, n)
	}
	return values
}

// kinesisMetrics counts the fluentbit_output_kinesis_* series of the output
// instance name.
func kinesisMetrics(t *testing.T, port int, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := flbproc.Get(ctx, port, "/api/v2/metrics/prometheus")
	if err != nil {
		return 0
	}
	return len(regexp.MustCompile(`(?m)^fluentbit_output_kinesis_\w+\{[^}]*name="`+regexp.QuoteMeta(name)+`"`).FindAll(b, -1))
}
