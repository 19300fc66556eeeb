package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// TestOutcome checks how flush errors map to what Fluent Bit does with the chunk, and which of
// them package main logs (the batcher logs the delivery failures itself, rate-limited).
func TestOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		want    outcome
		wantLog string // a substring of the one line logged, "" for none
	}{
		{name: "delivered", err: nil, want: outcomeDelivered},
		{name: "not delivered", err: &batcher.DeliveryError{Failed: 3, Total: 10, Attempts: 5}, want: outcomeRetry},
		{name: "rejected", err: fmt.Errorf("%w: 500 of 1000 records refused as invalid", batcher.ErrRejected), want: outcomeDrop},
		{name: "bad chunk", err: fmt.Errorf("%w: truncated", batcher.ErrBadChunk), want: outcomeDrop,
			wantLog: "the chunk is dropped"},
		{name: "closed", err: batcher.ErrClosed, want: outcomeRetry, wantLog: "chunk will be retried"},
		{name: "unknown", err: errors.New("something"), want: outcomeRetry, wantLog: "chunk will be retried"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			i := &instance{log: newLogger(&buf, "kinesis_streams_go", "kinesis_streams_go.0", slog.LevelInfo)}
			if got := i.outcome(tt.err, "app.log"); got != tt.want {
				t.Errorf("outcome(%v) = %d, want %d", tt.err, got, tt.want)
			}
			lines := strings.Count(buf.String(), "\n")
			switch {
			case tt.wantLog == "" && lines != 0:
				t.Errorf("logged %q, want nothing", buf.String())
			case tt.wantLog != "" && (lines != 1 || !strings.Contains(buf.String(), tt.wantLog)):
				t.Errorf("logged %q, want one line with %q", buf.String(), tt.wantLog)
			}
		})
	}
}

// TestLogFeatures: one Init line per packing feature that is on, none when all are off.
func TestLogFeatures(t *testing.T) {
	t.Parallel()
	pod, err := record.ParseKeyPath("kubernetes->pod_name")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.Config
		want []string // substrings, one per line, in order
	}{
		{"none", config.Config{MaxRecordSize: 1 << 20}, nil},
		{"partition_key", config.Config{PartitionKey: pod}, []string{`[ info] [output:kinesis_streams_go:x] partition_key: a record's partition key is its field "kubernetes->pod_name"`}},
		{"compression", config.Config{Compression: compress.Zstd}, []string{"compression: each Kinesis record's data is compressed with zstd"}},
		{"aggregation", config.Config{Aggregation: true, MaxRecordSize: 1 << 20},
			[]string{"aggregation: KPL aggregated records of up to 1048576 bytes, the records of each aggregate sharing one random partition key"}},
		{"shard-aware aggregation", config.Config{Aggregation: true, PartitionKey: pod, Compression: compress.Gzip, MaxRecordSize: 1 << 20},
			[]string{"partition_key:", "compression:", "aggregation: KPL aggregated records of up to 1048576 bytes, shard-aware"}},
		{"simple_aggregation", config.Config{SimpleAggregation: true, MaxRecordSize: 2 << 20},
			[]string{"simple_aggregation: records, each ending with a newline, are joined into Kinesis records of up to 2097152 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logFeatures(newLogger(&buf, "kinesis_streams_go", "x", slog.LevelInfo), tt.cfg, tt.cfg.MaxRecordSize)
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tt.want), buf.String())
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestSummaryLine: the periodic line gives what changed since the last one, and nothing when
// nothing flowed.
func TestSummaryLine(t *testing.T) {
	t.Parallel()
	prev := batcher.Stats{Flushes: 10, Records: 5000, Accepted: 4990, Requests: 12, BytesSent: 1 << 20,
		Throttled: 3, Resent: 3, NotDelivered: 1, SkippedOversize: 1, SkippedEarlier: 9}
	cur := prev
	if line, ok := summaryLine(prev, cur, time.Minute); ok {
		t.Errorf("nothing changed, got %q", line)
	}
	cur.Flushes += 4
	cur.Records += 1200
	cur.Accepted += 1195
	cur.Requests += 3
	cur.BytesSent += 345678
	cur.Throttled += 7
	cur.Resent += 7
	cur.NotDelivered += 1
	cur.SkippedNoLogKey += 2
	cur.SkippedEarlier += 3
	line, ok := summaryLine(prev, cur, time.Minute)
	want := "last 1m0s: 1200 records, 1195 accepted, 5 skipped; 3 requests, 345678 bytes; 7 throttled, 7 resent, 1 chunks to be retried"
	if !ok || line != want {
		t.Errorf("summaryLine = %q, %v\nwant %q", line, ok, want)
	}
}

// TestSummaryTicker runs the summary goroutine on synctest's fake clock: a line per interval in
// which records flowed, none in a quiet one, none after stop, and no goroutine left behind
// (synctest.Test fails if one is).
func TestSummaryTicker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		h := newFluentBitHandler(&buf, "kinesis_streams_go", "kinesis_streams_go.1", slog.LevelInfo)
		var mu sync.Mutex
		var st batcher.Stats
		add := func(records int64) {
			mu.Lock()
			defer mu.Unlock()
			st.Flushes++
			st.Records += records
			st.Accepted += records
			st.Requests++
			st.BytesSent += records * 100
		}
		s := startSummary(slog.New(h), time.Minute, func() batcher.Stats {
			mu.Lock()
			defer mu.Unlock()
			return st
		})
		synctest.Wait() // the goroutine has taken its first snapshot
		add(10)
		time.Sleep(time.Minute + time.Second) // one line: 10 records
		time.Sleep(time.Minute)               // quiet: no line
		add(5)
		time.Sleep(time.Minute) // one line: 5 records
		add(7)
		s.stop()
		s.stop() // a second stop is harmless
		time.Sleep(5 * time.Minute)

		got := stripStamps(t, buf.String())
		want := []string{
			"[ info] [output:kinesis_streams_go:kinesis_streams_go.1] last 1m0s: 10 records, 10 accepted, 0 skipped; 1 requests, 1000 bytes; 0 throttled, 0 resent, 0 chunks to be retried",
			"[ info] [output:kinesis_streams_go:kinesis_streams_go.1] last 1m0s: 5 records, 5 accepted, 0 skipped; 1 requests, 500 bytes; 0 throttled, 0 resent, 0 chunks to be retried",
		}
		if !slices.Equal(got, want) {
			t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestSummaryStopNil: an instance built without a summary (as in tests) closes cleanly.
func TestSummaryStopNil(t *testing.T) {
	t.Parallel()
	var s *summary
	s.stop()
}

// stripStamps returns the lines of out without their Fluent Bit timestamps, failing on a line
// that has none.
func stripStamps(t *testing.T, out string) []string {
	t.Helper()
	stamp := regexp.MustCompile(`^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{9}\] `)
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		loc := stamp.FindStringIndex(line)
		if loc == nil {
			t.Fatalf("line has no Fluent Bit timestamp: %q", line)
		}
		lines = append(lines, line[loc[1]:])
	}
	return lines
}

// TestMaxInFlightDefault: the config's default of max_in_flight is the pool's.
func TestMaxInFlightDefault(t *testing.T) {
	t.Parallel()
	if config.DefaultMaxInFlight != batcher.DefaultMaxInFlight || config.MaxMaxInFlight != batcher.MaxMaxInFlight {
		t.Errorf("config: default %d, most %d; batcher: default %d, most %d",
			config.DefaultMaxInFlight, config.MaxMaxInFlight, batcher.DefaultMaxInFlight, batcher.MaxMaxInFlight)
	}
}
