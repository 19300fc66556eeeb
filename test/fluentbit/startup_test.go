package fluentbit

import (
	"fmt"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/textdiff"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/test/internal/chunk"
)

// TestStartupCheckFail: with startup_check fail and a stream that does not exist, Fluent Bit
// refuses to start: it exits with a non-zero status, and its log has the plugin's error line,
// which says what to fix.
func TestStartupCheckFail(t *testing.T) {
	needFluentBit(t)
	e := newEnv(t)
	missing := "missing-" + newStream(t, 1)
	proc := e.startClassic(t, pipeline{
		service: e.service(1),
		inputs:  []props{e.tail("app")},
		outputs: []props{output("app.*", missing, mock.Endpoint, [2]string{"startup_check", "fail"})},
	})
	st, err := proc.Wait(30 * time.Second)
	if err != nil {
		t.Fatalf("Fluent Bit did not exit: %v", err)
	}
	if st.ExitCode() == 0 {
		t.Errorf("Fluent Bit exited with status 0, want a failure")
	}
	stderr := proc.Stderr()
	checkLog(t, stderr)
	want := fmt.Sprintf(`[error] [output:%s:%s.0] start-up check: stream %q not found in region "us-east-1" (ResourceNotFoundException): `+
		`create it, or correct "stream" and "region"; credentials from EnvConfigCredentials; not starting (startup_check fail)`,
		pluginName, pluginName, missing)
	if !strings.Contains(stderr, want) {
		t.Errorf("Fluent Bit's log lacks\n%s\nlog:\n%s", want, textdiff.LastBytes(stderr, 8<<10))
	}
	t.Logf("Fluent Bit %s exited with %v; %s", version, st, regexp.MustCompile(`(?m)^.*start-up check:.*$`).FindString(stderr))
}

// TestSkippedAndRejected shows where a record that cannot be delivered goes, in one chunk of three
// records whose middle one is 1.5 MiB, sent to two streams of 1 MiB:
//
//   - with max_record_size auto, the plugin skips the big record before sending: the flush returns
//     FLB_OK, so Fluent Bit drops nothing (and its dead-letter storage gets nothing); the skip is
//     in a warn line and in fluentbit_output_kinesis_records_skipped_total{reason="oversize"};
//   - with max_record_size 2M, Kinesis refuses the big record as invalid: the flush returns
//     FLB_ERROR, and Fluent Bit drops the whole chunk (fluentbit_output_dropped_records_total
//     counts its three records), which is what its dead-letter storage (storage.keep.rejected)
//     would keep, though the two small records were delivered.
//
// In both, the small records reach the stream once.
func TestSkippedAndRejected(t *testing.T) {
	needFluentBit(t)
	e := newEnv(t)
	var b []byte
	w := []want{{}, {}}
	for seq, size := range []int{300, 3 << 19, 400} {
		m := chunk.Map{{Key: "seq", Value: int64(seq)}, {Key: "pad", Value: strings.Repeat("x", size)}}
		line := string(chunk.AppendJSON(nil, m)) + "\n"
		b = append(b, line...)
		if size < 1<<20 {
			w[0][seq], w[1][seq] = line, line
		}
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "app"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.write(t, filepath.Join("app", "big.log"), string(b))
	streams := []string{newStream(t, 1), newStream(t, 1)}
	proc := e.startClassic(t, pipeline{
		service: e.service(1),
		inputs:  []props{e.tail("app", [2]string{"Buffer_Chunk_Size", "2M"}, [2]string{"Buffer_Max_Size", "4M"})},
		outputs: []props{
			output("app.*", streams[0], mock.Endpoint, [2]string{"workers", "1"}),
			output("app.*", streams[1], mock.Endpoint, [2]string{"workers", "1"}, [2]string{"max_record_size", "2M"}),
		},
	})
	names := []string{pluginName + ".0", pluginName + ".1"}
	var skipped, dropped0, dropped1, rejected int
	waitFor(t, "the skipped and the dropped records in the metrics", deliverTimeout, proc, func() bool {
		skipped = promSeries(t, e.port, "fluentbit_output_kinesis_records_skipped_total", names[0], `reason="oversize"`)
		dropped1 = promSeries(t, e.port, "fluentbit_output_dropped_records_total", names[1], "")
		return skipped == 1 && dropped1 > 0
	})
	dropped0 = promSeries(t, e.port, "fluentbit_output_dropped_records_total", names[0], "")
	rejected = promSeries(t, e.port, "fluentbit_output_kinesis_records_rejected_total", names[1], "")
	stop(t, proc, time.Second)
	for i, s := range streams {
		checkExactlyOnce(t, s, w[i])
	}
	if dropped0 != 0 {
		t.Errorf("instance 0 (the big record skipped): Fluent Bit dropped %d records, want 0", dropped0)
	}
	if dropped1 != 3 || rejected != 1 {
		t.Errorf("instance 1 (the big record refused): Fluent Bit dropped %d records, the plugin counts %d rejected; want 3 (the chunk) and 1",
			dropped1, rejected)
	}
	stderr := proc.Stderr()
	checkLog(t, stderr)
	for _, re := range []string{
		`\[ warn\] \[output:` + pluginName + `:` + pluginName + `\.0\] skipped 1 records larger than max_record_size 1048576 bytes \(largest \d+ bytes\) in a chunk of tag "app\.`,
		`\[error\] \[output:` + pluginName + `:` + pluginName + `\.1\] 1 of 3 records failed \(InvalidArgumentException ×1\), 1 rejected by Kinesis as invalid; chunk will be dropped`,
	} {
		if !regexp.MustCompile(re).MatchString(stderr) {
			t.Errorf("Fluent Bit's log has no line matching %s", re)
		}
	}
	t.Logf("Fluent Bit %s: instance 0 skipped %d (dropped %d); instance 1 rejected %d, Fluent Bit dropped %d", version, skipped, dropped0, rejected, dropped1)
}
