package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
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
