package requests

import (
	"context"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

func TestExponentialJitter(t *testing.T) {
	t.Parallel()
	const base, limit = 100 * time.Millisecond, 2 * time.Second
	backoff := ExponentialJitter(base, limit)
	tests := []struct {
		attempt int
		max     time.Duration
	}{
		{0, base}, {1, base}, {2, base}, {3, 2 * base}, {4, 4 * base}, {5, 8 * base},
		{6, 16 * base}, {7, limit}, {8, limit}, {40, limit}, {1000, limit},
	}
	for _, tt := range tests {
		const n = 2000
		var sum, hi time.Duration
		lo := time.Duration(1 << 62)
		for range n {
			d := backoff(tt.attempt)
			if d < 0 || d > tt.max {
				t.Fatalf("attempt %d: backoff %v outside [0, %v]", tt.attempt, d, tt.max)
			}
			sum += d
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: uniform over [0, max], so the mean is about max/2 and the draws spread.
		if mean := sum / n; mean < tt.max*2/5 || mean > tt.max*3/5 {
			t.Errorf("attempt %d: mean backoff %v, want about %v", tt.attempt, mean, tt.max/2)
		}
		if hi-lo < tt.max/2 {
			t.Errorf("attempt %d: backoffs within [%v, %v], want spread over [0, %v]", tt.attempt, lo, hi, tt.max)
		}
	}
	if d := ExponentialJitter(0, 0)(3); d != 0 {
		t.Errorf("zero backoff = %v", d)
	}
}

// TestDefaultRetryBudget checks the documented bound: the default backoffs before attempts 2 to
// DefaultMaxAttempts add up to at most 1.5 s.
func TestDefaultRetryBudget(t *testing.T) {
	t.Parallel()
	var worst time.Duration
	for a := 2; a <= DefaultMaxAttempts; a++ {
		worst += min(DefaultBackoffCap, DefaultBackoffBase<<(a-2))
	}
	if worst != 1500*time.Millisecond {
		t.Errorf("worst total backoff %v, want 1.5s as documented", worst)
	}
	r := Retry{}.WithDefaults()
	if r.MaxAttempts != DefaultMaxAttempts || r.Window != DefaultRetryWindow || r.Backoff == nil || r.CheckRetry == nil {
		t.Errorf("defaults = %+v", r)
	}
	custom := Retry{MaxAttempts: 2, Window: time.Second}.WithDefaults()
	if custom.MaxAttempts != 2 || custom.Window != time.Second {
		t.Errorf("WithDefaults overrode set fields: %+v", custom)
	}
}

func TestDefaultCheckRetry(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		class kinesis.ErrorClass
		ctx   context.Context
		want  bool
	}{
		{kinesis.ClassRetryable, context.Background(), true},
		{kinesis.ClassRetryable, canceled, false},
		{kinesis.ClassCredentials, context.Background(), false},
		{kinesis.ClassNotFound, context.Background(), false},
		{kinesis.ClassRejected, context.Background(), false},
		{kinesis.ClassCanceled, context.Background(), false},
	}
	for _, tt := range tests {
		if got := DefaultCheckRetry(tt.ctx, tt.class); got != tt.want {
			t.Errorf("DefaultCheckRetry(ctx err %v, %s) = %v, want %v", tt.ctx.Err(), tt.class, got, tt.want)
		}
	}
}
