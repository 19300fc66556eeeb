package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/ledger"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// These tests check the delivery guarantees through Pool.Flush: the resends within a flush, the
// ledger across flushes of the same chunk, and what each class of error does.

// numberedChunk returns a chunk of n events {"c":name,"i":"<i>"}, and the data each one is sent as.
func numberedChunk(name string, n int) ([]byte, []string) {
	var chunk []byte
	data := make([]string, n)
	for i := range n {
		chunk = append(chunk, event(uint32(i), 0, strMap("c", name, "i", fmt.Sprint(i)))...)
		data[i] = fmt.Sprintf(`{"c":%q,"i":"%d"}`, name, i)
	}
	return chunk, data
}

// acceptCounter is a Putter that fails entries as fail decides and counts, per data, how many
// times it accepted each: the server's view of duplicates and losses.
type acceptCounter struct {
	fail func(data string) string // error code, or "" to accept

	mu       sync.Mutex
	accepted map[string]int
	sends    map[string]int
	requests int
}

func newAcceptCounter(fail func(string) string) *acceptCounter {
	return &acceptCounter{fail: fail, accepted: map[string]int{}, sends: map[string]int{}}
}

func (a *acceptCounter) PutRecords(_ context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	res := kinesis.PutResult{ErrorCodes: make([]string, len(entries))}
	for i, e := range entries {
		d := string(e.Data)
		a.sends[d]++
		if code := a.fail(d); code != "" {
			res.ErrorCodes[i] = code
			res.FailedCount++
			continue
		}
		a.accepted[d]++
	}
	return res, nil
}

func (a *acceptCounter) counts(data []string) (accepted, sends []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range data {
		accepted = append(accepted, a.accepted[d])
		sends = append(sends, a.sends[d])
	}
	return accepted, sends
}

// TestLedgerSendsOnlyTheRest flushes a chunk whose every seventh record is throttled at every
// attempt: the flush reports them, the ledger keeps the chunk, and the next flush of the same
// bytes and tag (a fresh copy, as Fluent Bit's retry) sends only those. Every record is accepted
// exactly once; the ledger forgets the chunk once it is delivered. The same chunk under another
// tag is another chunk.
func TestLedgerSendsOnlyTheRest(t *testing.T) {
	t.Parallel()
	var throttling atomic.Bool
	throttling.Store(true)
	srv := newAcceptCounter(func(d string) string {
		var i int
		fmt.Sscanf(d[strings.LastIndex(d, `"i":"`)+5:], "%d", &i)
		if throttling.Load() && i%7 == 0 {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	})
	logs := &logSink{}
	p := NewPool(srv, Options{Retry: fastRetry, Logger: slog.New(logs)})
	chunk, data := numberedChunk("a", 1200)
	failing := (1200 + 6) / 7

	res, err := p.Flush(context.Background(), chunk, "app")
	if !errors.Is(err, ErrNotDelivered) || res != (Result{Records: 1200, Accepted: 1200 - failing, Failed: failing}) {
		t.Fatalf("first flush: %+v, %v", res, err)
	}
	if p.ledger.Len() != 1 {
		t.Fatalf("ledger holds %d chunks, want 1", p.ledger.Len())
	}

	throttling.Store(false)
	res, err = p.Flush(context.Background(), append([]byte(nil), chunk...), "app")
	if err != nil || res != (Result{Records: 1200, Accepted: failing, Earlier: 1200 - failing}) {
		t.Fatalf("second flush: %+v, %v", res, err)
	}
	accepted, sends := srv.counts(data)
	for i := range data {
		wantSends := 1
		if i%7 == 0 {
			wantSends = requests.DefaultMaxAttempts + 1
		}
		if accepted[i] != 1 || sends[i] != wantSends {
			t.Fatalf("record %d: accepted %d times, sent %d; want 1, %d", i, accepted[i], sends[i], wantSends)
		}
	}
	if p.ledger.Len() != 0 {
		t.Errorf("ledger holds %d chunks after delivery, want 0", p.ledger.Len())
	}
	s := p.Stats()
	if s.SkippedEarlier != int64(1200-failing) || s.NotDelivered != 1 || s.Accepted != 1200 || s.Failed != int64(failing) {
		t.Errorf("stats = %+v", s)
	}

	// Another tag: all sent again.
	if res, err := p.Flush(context.Background(), chunk, "other"); err != nil || res.Accepted != 1200 {
		t.Errorf("same bytes, other tag: %+v, %v", res, err)
	}
}

// TestLedgerRemembersSkipped checks that a record skipped on purpose is not reconsidered (nor
// logged again) by the next flush, and that a chunk of which nothing was delivered takes no
// ledger entry.
func TestLedgerRemembersSkipped(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	srv := newAcceptCounter(func(d string) string {
		if fail.Load() && d == "second\n" {
			return kinesis.CodeInternalFailure
		}
		return ""
	})
	logs := &logSink{}
	p := NewPool(srv, Options{Retry: fastRetry, Logger: slog.New(logs), LogInterval: -1,
		Record: record.Options{LogKey: "log", AppendNewline: true}})
	chunk := append(event(1, 0, strMap("log", "first")), event(2, 0, strMap("other", "x"))...)
	chunk = append(chunk, event(3, 0, strMap("log", "second"))...)

	if _, err := p.Flush(context.Background(), chunk, "t"); !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("first flush: %v", err)
	}
	fail.Store(false)
	res, err := p.Flush(context.Background(), chunk, "t")
	if err != nil || res != (Result{Records: 3, Accepted: 1, Earlier: 2}) {
		t.Fatalf("second flush: %+v, %v", res, err)
	}
	if n := countPrefix(logs.all(), "WARN skipped 1 records without log_key"); n != 1 {
		t.Errorf("%d lines about the skipped record, want 1: %q", n, logs.all())
	}

	// Nothing delivered: no entry.
	fail.Store(true)
	only := event(1, 0, strMap("log", "second"))
	if _, err := p.Flush(context.Background(), only, "t"); !errors.Is(err, ErrNotDelivered) || p.ledger.Len() != 0 {
		t.Errorf("undelivered chunk: err %v, ledger holds %d chunks, want 0", err, p.ledger.Len())
	}
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestLedgerEvictionDuplicatesNeverLoses fills a ledger of one chunk per shard: the chunk it
// forgets is sent whole when flushed again. Its delivered records are duplicated; none is lost.
func TestLedgerEvictionDuplicatesNeverLoses(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	srv := newAcceptCounter(func(d string) string {
		if fail.Load() && strings.HasSuffix(d, `"i":"0"}`) {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	})
	led := ledger.New(ledger.Shards, 0) // one chunk per shard
	logs := &logSink{}
	p := NewPool(srv, Options{Retry: fastRetry, Ledger: led, Logger: slog.New(logs), LogInterval: -1})
	chunkA, dataA := numberedChunk("a", 10)
	// A second chunk whose key falls in the same shard.
	var chunkB []byte
	for i := 0; ; i++ {
		c, _ := numberedChunk(fmt.Sprint("b", i), 10)
		if ledger.KeyOf(c, "t")[0]%ledger.Shards == ledger.KeyOf(chunkA, "t")[0]%ledger.Shards {
			chunkB = c
			break
		}
	}
	for _, c := range [][]byte{chunkA, chunkB} {
		if _, err := p.Flush(context.Background(), c, "t"); !errors.Is(err, ErrNotDelivered) {
			t.Fatalf("flush: %v", err)
		}
	}
	if led.Len() != 1 || led.Evicted() != 1 {
		t.Fatalf("ledger: %d chunks, %d evicted; want 1, 1", led.Len(), led.Evicted())
	}
	if n := countPrefix(logs.all(), "WARN ledger full"); n != 1 {
		t.Errorf("%d lines about the eviction, want 1: %q", n, logs.all())
	}
	fail.Store(false)
	if res, err := p.Flush(context.Background(), chunkA, "t"); err != nil || res.Accepted != 10 || res.Earlier != 0 {
		t.Fatalf("forgotten chunk flushed again: %+v, %v; want all 10 sent", res, err)
	}
	accepted, _ := srv.counts(dataA)
	for i, n := range accepted {
		if want := map[bool]int{true: 1, false: 2}[i == 0]; n != want {
			t.Errorf("record %d accepted %d times, want %d", i, n, want)
		}
	}
}

// TestErrorClasses checks what each class of request error does to a flush of three requests
// whose second fails, sent one at a time: whether the flush resends, stops or gives the records
// up, the error it returns, and the level of its one log line. A rejected request's data never
// reaches the log.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-d4t4"
	validation := &smithy.GenericAPIError{Code: "ValidationException", Message: "value " + secret + " is bad"}
	tests := []struct {
		name         string
		err          error
		wantErr      error
		wantClass    kinesis.ErrorClass
		wantRequests int
		wantRes      Result
		wantLine     string
	}{
		{name: "retryable", err: &smithy.GenericAPIError{Code: "InternalFailure"}, wantRequests: 4,
			wantRes:  Result{Records: 1200, Accepted: 1200},
			wantLine: "WARN 500 of 1200 records failed (InternalFailure ×500), resent: all delivered after 2 attempts"},
		{name: "credentials", err: &kinesis.CredentialsError{Err: errors.New("no EC2 IMDS role found")},
			wantErr: ErrNotDelivered, wantClass: kinesis.ClassCredentials, wantRequests: 2,
			wantRes:  Result{Records: 1200, Accepted: 500, Failed: 700},
			wantLine: "ERROR 700 of 1200 records failed (credentials ×500, not sent ×200), 700 not delivered after 1 attempts (credentials); chunk will be retried"},
		{name: "not found", err: &smithy.GenericAPIError{Code: "ResourceNotFoundException"},
			wantErr: ErrNotDelivered, wantClass: kinesis.ClassNotFound, wantRequests: 2,
			wantRes:  Result{Records: 1200, Accepted: 500, Failed: 700},
			wantLine: "ERROR 700 of 1200 records failed (ResourceNotFoundException ×500, not sent ×200), 700 not delivered after 1 attempts (not found); chunk will be retried"},
		{name: "rejected", err: validation, wantErr: ErrRejected, wantRequests: 3,
			wantRes: Result{Records: 1200, Accepted: 700, Rejected: 500},
			wantLine: `ERROR 500 of 1200 records failed (ValidationException ×500), 500 rejected by Kinesis as invalid (ValidationException, request id ""): ` +
				"request of 500 records, 26000 bytes, largest record 52 bytes, partition keys of 16 to 16 bytes; chunk will be dropped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logSink{}
			f := &fakePutter{t: t, err: func(req int) error {
				if req == 1 {
					return tt.err
				}
				return nil
			}}
			p := NewPool(f, Options{Retry: fastRetry, Logger: slog.New(logs), MaxInFlight: 1})
			chunk, _ := numberedChunk("secret-"+secret, 1200)
			res, err := p.Flush(context.Background(), chunk, "t")
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			var de *DeliveryError
			if errors.As(err, &de) && de.Class != tt.wantClass {
				t.Errorf("class %s, want %s", de.Class, tt.wantClass)
			}
			if res != tt.wantRes {
				t.Errorf("result %+v, want %+v", res, tt.wantRes)
			}
			if n := len(f.sent()); n != tt.wantRequests {
				t.Errorf("%d requests, want %d", n, tt.wantRequests)
			}
			lines := logs.all()
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.wantLine) {
				t.Errorf("log = %q\nwant one line starting %q", lines, tt.wantLine)
			}
			if strings.Contains(strings.Join(lines, "\n"), secret) {
				t.Errorf("the log shows record data: %q", lines)
			}
		})
	}
}

// TestConcurrentDelivery flushes 8 chunks from 8 goroutines through one pool whose server fails a
// random 30% of entries and 5% of requests, each chunk flushed again until it is delivered (as
// Fluent Bit does): every record is accepted exactly once, and the ledger ends empty. Run with
// -race.
func TestConcurrentDelivery(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 11))
	chance := func(p float64) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() < p
	}
	srv := newAcceptCounter(func(string) string {
		if chance(0.3) {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	})
	flaky := putterFunc(func(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
		if chance(0.05) {
			return kinesis.PutResult{}, &smithy.GenericAPIError{Code: "InternalFailure"}
		}
		return srv.PutRecords(ctx, entries)
	})
	p := NewPool(flaky, Options{Retry: requests.Retry{MaxAttempts: 2, Backoff: func(int) time.Duration { return 0 }}})
	const goroutines, events, maxFlushes = 8, 1100, 50
	var wg sync.WaitGroup
	var all []string
	retried := make([]int, goroutines)
	for g := range goroutines {
		chunk, data := numberedChunk(fmt.Sprint("g", g), events)
		all = append(all, data...)
		wg.Go(func() {
			for n := range maxFlushes {
				_, err := p.Flush(context.Background(), append([]byte(nil), chunk...), "t")
				if err == nil {
					return
				}
				if !errors.Is(err, ErrNotDelivered) {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				retried[g] = n + 1
			}
			t.Errorf("goroutine %d: not delivered after %d flushes", g, maxFlushes)
		})
	}
	wg.Wait()
	accepted, _ := srv.counts(all)
	lost, dup := 0, 0
	for _, n := range accepted {
		switch {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	if lost != 0 || dup != 0 {
		t.Errorf("%d records lost, %d duplicates", lost, dup)
	}
	if p.ledger.Len() != 0 {
		t.Errorf("ledger holds %d chunks at the end", p.ledger.Len())
	}
	t.Logf("flushes again per chunk: %v; %d requests; stats %+v", retried, srv.requests, p.Stats())
}

type putterFunc func(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error)

func (f putterFunc) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	return f(ctx, entries)
}
