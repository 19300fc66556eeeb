package batcher

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

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
		retry        requests.Retry
		timeout      time.Duration // the flush's deadline, if > 0
		cancelAfter  time.Duration // cancel the flush's context, if > 0
		wantAttempts int
		wantClass    kinesis.ErrorClass
		wantElapsed  time.Duration
	}{
		{name: "backoff between passes", retry: requests.Retry{MaxAttempts: 3, Backoff: func(int) time.Duration { return 40 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 80 * time.Millisecond},
		// Passes at 0, 100 and 200 ms; the next would start at 300 ms, past the 250 ms window.
		{name: "window", retry: requests.Retry{MaxAttempts: 10, Window: 250 * time.Millisecond, Backoff: func(int) time.Duration { return 100 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 200 * time.Millisecond},
		// A pass that starts exactly at the window's end is not past it.
		{name: "pass at the window's end", retry: requests.Retry{MaxAttempts: 10, Window: 200 * time.Millisecond, Backoff: func(int) time.Duration { return 100 * time.Millisecond }},
			wantAttempts: 3, wantElapsed: 200 * time.Millisecond},
		{name: "backoff per attempt", retry: requests.Retry{MaxAttempts: 4, Window: time.Minute, Backoff: func(a int) time.Duration { return time.Duration(a) * time.Second }},
			wantAttempts: 4, wantElapsed: (2 + 3 + 4) * time.Second},
		{name: "no sleep past the deadline", retry: requests.Retry{Backoff: func(int) time.Duration { return time.Hour }},
			timeout: 5 * time.Second, wantAttempts: 1, wantElapsed: 0},
		{name: "deadline between passes", retry: requests.Retry{MaxAttempts: 10, Window: time.Minute, Backoff: func(int) time.Duration { return 2 * time.Second }},
			timeout: 5 * time.Second, wantAttempts: 3, wantElapsed: 4 * time.Second},
		{name: "cancelled while waiting", retry: requests.Retry{Backoff: func(int) time.Duration { return 10 * time.Second }, Window: time.Minute},
			cancelAfter: 100 * time.Millisecond, wantAttempts: 1, wantClass: kinesis.ClassCanceled,
			wantElapsed: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := &fakePutter{t: t, code: alwaysThrottled}
				p := NewPool(f, Options{Retry: tt.retry})
				defer p.Close(context.Background()) // its idle senders end with it
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
