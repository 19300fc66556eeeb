package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// How often max_record_size auto may ask the stream again (DescribeStreamSummary, which AWS limits
// to 20 calls per second per account, shared with every other caller): soon after Kinesis refused
// a record, which may mean the stream's limit was lowered; rarely after records were skipped as
// larger than the limit, which may mean it was raised.
const (
	refreshAfterRejection = time.Minute
	refreshAfterSkip      = 10 * time.Minute
)

// streamLimit is the maximum record size of max_record_size auto: the stream's own, from the
// start-up check, read again when Kinesis refuses a record or records are skipped as too large;
// limits.DefaultMaxRecordSize while it is unknown. Reads are atomic; a refresh runs in its own
// goroutine (one at a time), so that no flush waits for it.
type streamLimit struct {
	log      *slog.Logger
	describe func(context.Context) (kinesis.StreamSummary, error)
	timeout  time.Duration // of one refresh

	bytes  atomic.Int64
	known  atomic.Bool // the stream said it
	denied atomic.Bool // DescribeStreamSummary is not allowed: never asked again

	mu      sync.Mutex
	last    time.Time // the last refresh's start
	running bool
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

func newStreamLimit(log *slog.Logger, describe func(context.Context) (kinesis.StreamSummary, error)) *streamLimit {
	l := &streamLimit{log: log, describe: describe, timeout: kinesis.CheckTimeout}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.bytes.Store(limits.DefaultMaxRecordSize)
	return l
}

// get is the limit for the next flush (batcher.Options.RecordSizeLimit).
func (l *streamLimit) get() int { return int(l.bytes.Load()) }

// learn takes the limit of the stream described by s, and says when it changed.
func (l *streamLimit) learn(s kinesis.StreamSummary, why string) {
	n := int64(s.RecordSizeLimit())
	l.known.Store(true)
	if old := l.bytes.Swap(n); old != n && why != "" {
		l.log.Info(fmt.Sprintf("max_record_size auto: the stream's maximum record size is %d KiB (was %d KiB), %s",
			n>>10, old>>10, why))
	}
}

// deny stops every refresh: the credentials may not call DescribeStreamSummary.
func (l *streamLimit) deny() { l.denied.Store(true) }

// refresh asks the stream for its limit again in the background, unless a refresh ran less than
// minGap ago, one is running, or asking is denied. why says what prompted it, for the log. The
// channel it returns is closed when the refresh it started ends; it is nil when none started.
func (l *streamLimit) refresh(minGap time.Duration, why string) <-chan struct{} {
	if l.denied.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.closed || l.running || (!l.last.IsZero() && now.Sub(l.last) < minGap) {
		return nil
	}
	l.last, l.running = now, true
	l.wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer l.wg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
		s, err := l.describe(ctx)
		cancel()
		switch {
		case err == nil:
			l.learn(s, why)
		case kinesis.IsAccessDenied(err):
			l.deny()
			l.log.Warn("max_record_size auto: not allowed to describe the stream (kinesis:DescribeStreamSummary): keeping " +
				fmt.Sprint(l.get()) + " bytes: " + err.Error())
		case l.ctx.Err() == nil:
			l.log.Warn(fmt.Sprintf("max_record_size auto: could not read the stream's maximum record size (%s), keeping %d bytes: %v",
				why, l.get(), err))
		}
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()
	return done
}

// close stops a refresh in progress and waits for it.
func (l *streamLimit) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
}

// afterFlush asks the stream for its limit when it is still unknown (the start-up check was off
// or got no answer), and (rarely) when the flush skipped records as larger than it and it is below
// what a stream can be raised to: the stream may have been raised since.
func (l *streamLimit) afterFlush(skippedOversize bool) {
	switch {
	case !l.known.Load():
		l.refresh(refreshAfterRejection, "read after start-up")
	case skippedOversize && l.get() < limits.MaxMaxRecordSize:
		l.refresh(refreshAfterSkip, "read again after records larger than it were skipped")
	}
}

// limitWatch passes each PutRecords on, and reads the limit again when Kinesis refuses a record or
// a request as invalid: a record over the stream's limit is refused so (kinesis-mock answers
// InvalidArgumentException for the record; Kinesis has answered ValidationException for the
// request), which means the limit was lowered since it was read. The request that saw the refusal
// waits for the answer (kinesis.CheckTimeout at most), so that the next flush packs under the new
// limit; other flushes do not wait.
type limitWatch struct {
	batcher.Putter
	limit *streamLimit
}

func (p limitWatch) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	res, err := p.Putter.PutRecords(ctx, entries)
	var done <-chan struct{}
	switch {
	case err != nil:
		if kinesis.Classify(err) == kinesis.ClassRejected {
			done = p.limit.refresh(refreshAfterRejection, "read again after Kinesis refused a request as invalid")
		}
	case res.FailedCount > 0:
		for _, code := range res.ErrorCodes {
			if code != "" && kinesis.ClassifyCode(code) == kinesis.ClassRejected {
				done = p.limit.refresh(refreshAfterRejection, "read again after Kinesis refused a record as invalid ("+code+")")
				break
			}
		}
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return res, err
}
