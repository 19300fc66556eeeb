package requests

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// The in-flush retry policy's defaults. With them a record is sent at most 5 times in one flush,
// waiting at most 0.1 + 0.2 + 0.4 + 0.8 = 1.5 s in all between the sends (0.75 s on average) besides
// its shard's pacing, and is not sent again later than 10 s after its first failure. After a request
// fails as a whole, the flush sends one request at a time, and nothing once 10 s have passed without
// an answer: a flush against a failing endpoint returns within about one request, plus 10 s, plus
// one more request (each bounded by http_request_timeout, twice with auto_retry_requests).
const (
	DefaultMaxAttempts = 5
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffCap  = 2 * time.Second
	DefaultRetryWindow = 10 * time.Second
)

// Backoff returns how long to wait before the given attempt of a flush's failed records: 2 for the
// first resend, 3 for the next, and so on.
type Backoff func(attempt int) time.Duration

// CheckRetry reports whether records that failed with an error of class may be sent again within
// the flush. When it says no, the flush sends nothing more: its undelivered records are left to
// Fluent Bit's retry of the chunk. It is not asked about kinesis.ClassRejected: rejected records are
// never resent within a flush.
type CheckRetry func(ctx context.Context, class kinesis.ErrorClass) bool

// Retry is the policy for the records of a flush that Kinesis did not accept: they alone are sent
// again, matched by index, after a backoff, as long as the policy allows.
type Retry struct {
	// MaxAttempts bounds how many times a record is sent in one flush, the first time included.
	// Waiting for its shard's pacing is not an attempt: only a send is.
	MaxAttempts int
	// Window bounds the resends: a record is not sent again later than Window after its first
	// failure (a resend whose backoff would end later is not waited for), and after a request
	// failed as a whole, nothing is sent later than Window after that until a request is answered.
	Window     time.Duration
	Backoff    Backoff
	CheckRetry CheckRetry
}

// DefaultRetry returns the default policy: DefaultMaxAttempts, DefaultRetryWindow,
// DefaultBackoff and DefaultCheckRetry.
func DefaultRetry() Retry {
	return Retry{
		MaxAttempts: DefaultMaxAttempts,
		Window:      DefaultRetryWindow,
		Backoff:     DefaultBackoff,
		CheckRetry:  DefaultCheckRetry,
	}
}

// WithDefaults fills the unset fields of r from DefaultRetry.
func (r Retry) WithDefaults() Retry {
	d := DefaultRetry()
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = d.MaxAttempts
	}
	if r.Window <= 0 {
		r.Window = d.Window
	}
	if r.Backoff == nil {
		r.Backoff = d.Backoff
	}
	if r.CheckRetry == nil {
		r.CheckRetry = d.CheckRetry
	}
	return r
}

// DefaultBackoff is ExponentialJitter(DefaultBackoffBase, DefaultBackoffCap).
var DefaultBackoff = ExponentialJitter(DefaultBackoffBase, DefaultBackoffCap)

// ExponentialJitter returns a backoff with "full jitter": before attempt n (n >= 2) it waits a
// uniformly random time in [0, min(limit, base·2^(n-2))]. Randomness spreads the resends of
// concurrent flushes that were throttled together.
func ExponentialJitter(base, limit time.Duration) Backoff {
	return func(attempt int) time.Duration {
		d := limit
		if shift := attempt - 2; shift < 0 {
			d = base
		} else if shift < 32 && base<<shift > 0 && base<<shift < limit {
			d = base << shift
		}
		if d <= 0 {
			return 0
		}
		return rand.N(d + 1)
	}
}

// DefaultCheckRetry resends records that failed with a retryable error, unless ctx is done.
// Credential and not-found errors are left to Fluent Bit's retry of the chunk: they are fixed
// outside the plugin, rarely within seconds.
func DefaultCheckRetry(ctx context.Context, class kinesis.ErrorClass) bool {
	return ctx.Err() == nil && class == kinesis.ClassRetryable
}
