package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

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
			i := &instance{log: newLogger(&buf, "kinesis_streams_go.0")}
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
		{"simple_aggregation", config.Config{SimpleAggregation: true, PartitionKey: pod, MaxRecordSize: 2 << 20},
			[]string{`[ warn] [output:kinesis_streams_go:x] partition_key "kubernetes->pod_name" has no effect with simple_aggregation`,
				"simple_aggregation: records, each ending with a newline, are joined into Kinesis records of up to 2097152 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logFeatures(newLogger(&buf, "x"), tt.cfg)
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
