package batcher

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
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
	r := Retry{}.withDefaults()
	if r.MaxAttempts != DefaultMaxAttempts || r.Window != DefaultRetryWindow || r.Backoff == nil || r.CheckRetry == nil {
		t.Errorf("defaults = %+v", r)
	}
	custom := Retry{MaxAttempts: 2, Window: time.Second}.withDefaults()
	if custom.MaxAttempts != 2 || custom.Window != time.Second {
		t.Errorf("withDefaults overrode set fields: %+v", custom)
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

// alwaysThrottled fails every entry.
func alwaysThrottled(int, int, kinesis.Entry) string { return kinesis.CodeThroughputExceeded }

// TestRetryTiming checks that the flush waits the policy's backoff between passes, stops at the
// retry window, never sleeps past its context's deadline, and ends at once when cancelled. It runs
// on synctest's fake clock: time passes only while every goroutine of the test waits, so the
// elapsed times are exact and a slow or busy machine (an emulator) cannot move a pass across the
// window's end.
func TestRetryTiming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		retry        Retry
		timeout      time.Duration // the flush's deadline, if > 0
		cancelAfter  time.Duration // cancel the flush's context, if > 0
		wantAttempts int
		wantClass    kinesis.ErrorClass
		wantElapsed  time.Duration
	}{
		{name: "backoff between passes", retry: Retry{MaxAttempts: 3, Backoff: func(int) time.Duration { return 40 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 80 * time.Millisecond},
		// Passes at 0, 100 and 200 ms; the next would start at 300 ms, past the 250 ms window.
		{name: "window", retry: Retry{MaxAttempts: 10, Window: 250 * time.Millisecond, Backoff: func(int) time.Duration { return 100 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 200 * time.Millisecond},
		// A pass that starts exactly at the window's end is not past it.
		{name: "pass at the window's end", retry: Retry{MaxAttempts: 10, Window: 200 * time.Millisecond, Backoff: func(int) time.Duration { return 100 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 200 * time.Millisecond},
		{name: "backoff per attempt", retry: Retry{MaxAttempts: 4, Window: time.Minute, Backoff: func(a int) time.Duration { return time.Duration(a) * time.Second }},
			wantAttempts: 4, wantElapsed: (2 + 3 + 4) * time.Second},
		{name: "no sleep past the deadline", retry: Retry{Backoff: func(int) time.Duration { return time.Hour }},
			timeout: 5 * time.Second, wantAttempts: 1, wantElapsed: 0},
		{name: "deadline between passes", retry: Retry{MaxAttempts: 10, Window: time.Minute, Backoff: func(int) time.Duration { return 2 * time.Second }},
			timeout: 5 * time.Second, wantAttempts: 3, wantElapsed: 4 * time.Second},
		{name: "cancelled while waiting", retry: Retry{Backoff: func(int) time.Duration { return 10 * time.Second }, Window: time.Minute},
			cancelAfter: 100 * time.Millisecond, wantAttempts: 1, wantClass: kinesis.ClassCanceled,
			wantElapsed: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := &fakePutter{t: t, code: alwaysThrottled}
				p := NewPool(f, Options{Retry: tt.retry})
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				if tt.cancelAfter > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					timer := time.AfterFunc(tt.cancelAfter, cancel)
					defer timer.Stop()
				}
				start := time.Now()
				res, err := p.Flush(ctx, append(event(1, 0, strMap("a", "b")), event(2, 0, strMap("c", "d"))...), "t")
				elapsed := time.Since(start)
				var de *DeliveryError
				if !errors.As(err, &de) || res.Failed != 2 {
					t.Fatalf("result %+v, err %v; want 2 not delivered", res, err)
				}
				if de.Attempts != tt.wantAttempts || de.Class != tt.wantClass || len(f.sent()) != tt.wantAttempts {
					t.Errorf("%d attempts (%d requests), class %s; want %d, %s", de.Attempts, len(f.sent()), de.Class, tt.wantAttempts, tt.wantClass)
				}
				if elapsed != tt.wantElapsed {
					t.Errorf("flush took %v, want %v", elapsed, tt.wantElapsed)
				}
			})
		})
	}
}
