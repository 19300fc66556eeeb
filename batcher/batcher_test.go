package batcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// fakePutter records every request it is sent (copying the data, which is only valid during the
// call) and answers as scripted. It fails the test if a request breaks a PutRecords limit.
type fakePutter struct {
	t *testing.T

	// code, when set, gives the error code of an entry ("" = accepted); req counts from 0.
	code func(req, i int, e kinesis.Entry) string
	// shard, when set, gives the shard ID of an accepted entry (PutResult.ShardIDs); without it
	// the result has no ShardIDs.
	shard func(req, i int, e kinesis.Entry) string
	// err, when set, makes a whole request fail.
	err func(req int) error
	// short, when set, answers with one error code too few.
	short bool
	// entered, when set, receives a value when a request arrives; release, when set, is waited
	// for before answering.
	entered chan struct{}
	release chan struct{}

	mu       sync.Mutex
	requests [][]kinesis.Entry
}

func (f *fakePutter) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	size := 0
	for _, e := range entries {
		size += e.Size()
	}
	if len(entries) == 0 || len(entries) > limits.MaxRecordsPerRequest || size > limits.MaxRequestBytes {
		f.t.Errorf("request with %d entries of %d bytes breaks the limits", len(entries), size)
	}
	cp := make([]kinesis.Entry, len(entries))
	for i, e := range entries {
		cp[i] = kinesis.Entry{Data: bytes.Clone(e.Data), PartitionKey: e.PartitionKey, ExplicitHashKey: e.ExplicitHashKey}
	}
	f.mu.Lock()
	req := len(f.requests)
	f.requests = append(f.requests, cp)
	f.mu.Unlock()

	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-time.After(10 * time.Second):
			f.t.Error("fake putter never released")
		}
	}
	if f.err != nil {
		if err := f.err(req); err != nil {
			return kinesis.PutResult{}, err
		}
	}
	res := kinesis.PutResult{ErrorCodes: make([]string, len(entries))}
	if f.code != nil {
		for i, e := range cp {
			if c := f.code(req, i, e); c != "" {
				res.ErrorCodes[i] = c
				res.FailedCount++
			}
		}
	}
	if f.shard != nil {
		res.ShardIDs = make([]string, len(entries))
		for i, e := range cp {
			if res.ErrorCodes[i] == "" {
				res.ShardIDs[i] = f.shard(req, i, e)
			}
		}
	}
	if f.short {
		res.ErrorCodes = res.ErrorCodes[:len(res.ErrorCodes)-1]
	}
	return res, nil
}

func (f *fakePutter) sent() [][]kinesis.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]kinesis.Entry(nil), f.requests...)
}

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string // "LEVEL message"
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	s.lines = append(s.lines, r.Level.String()+" "+r.Message)
	s.mu.Unlock()
	return nil
}
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSink) WithGroup(string) slog.Handler      { return s }
func (s *logSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// fastRetry is the default policy without the waits, for tests.
var fastRetry = requests.Retry{MaxAttempts: requests.DefaultMaxAttempts, Window: time.Minute, Backoff: func(int) time.Duration { return 0 }}

// packAll drives the packing path directly with pre-encoded records, as Flush does with encoded
// events, and returns the flush's result. Tests that check the order of requests give the pool
// MaxInFlight 1: requests then reach the Putter in the order they were packed.
func packAll(t *testing.T, p *Pool, records [][]byte, decErr error) (*batcher, Result, error) {
	t.Helper()
	b, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(b)
	ctx := context.Background()
	b.begin("app.log", nil, nil)
	for _, r := range records {
		b.add(ctx, r)
	}
	res, err := b.end(ctx, decErr)
	if queued, inflight := b.queues.Pending(); queued != 0 || inflight != 0 {
		t.Errorf("after the flush: %d requests queued, %d in flight", queued, inflight)
	}
	return b, res, err
}

// numbered returns n records of the given sizes (cycled), each starting with its number so that
// order and integrity can be checked.
func numbered(n int, sizes ...int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = makeRecord(i, sizes[i%len(sizes)])
	}
	return out
}

// makeRecord returns record number i, of size bytes.
func makeRecord(i, size int) []byte {
	r := make([]byte, 0, max(size, 8))
	r = fmt.Appendf(r, "%d:", i)
	for len(r) < size {
		r = append(r, byte('a'+(i+len(r))%26))
	}
	return r[:size]
}

// checkDelivered asserts that the requests carry exactly the records, in order, with valid keys.
func checkDelivered(t *testing.T, reqs [][]kinesis.Entry, records [][]byte) {
	t.Helper()
	i := 0
	for r, req := range reqs {
		for _, e := range req {
			if len(e.PartitionKey) != kinesis.KeyLen {
				t.Fatalf("request %d: partition key %q, want %d characters", r, e.PartitionKey, kinesis.KeyLen)
			}
			if i >= len(records) {
				t.Fatalf("more records sent than added")
			}
			if !bytes.Equal(e.Data, records[i]) {
				t.Fatalf("record %d sent as %.40q..., want %.40q...", i, e.Data, records[i])
			}
			i++
		}
	}
	if i != len(records) {
		t.Fatalf("%d records sent, want %d", i, len(records))
	}
}

func requestSizes(reqs [][]kinesis.Entry) (counts, bytes []int) {
	for _, req := range reqs {
		n := 0
		for _, e := range req {
			n += e.Size()
		}
		counts = append(counts, len(req))
		bytes = append(bytes, n)
	}
	return counts, bytes
}

func TestPackRecordLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int
		wantN []int
	}{
		{name: "one", n: 1, wantN: []int{1}},
		{name: "500", n: 500, wantN: []int{500}},
		{name: "501", n: 501, wantN: []int{500, 1}},
		{name: "1001", n: 1001, wantN: []int{500, 500, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakePutter{t: t}
			p := NewPool(f, Options{MaxInFlight: 1})
			records := numbered(tt.n, 10, 300, 1)
			_, res, err := packAll(t, p, records, nil)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if want := (Result{Records: tt.n, Accepted: tt.n}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			reqs := f.sent()
			counts, _ := requestSizes(reqs)
			if fmt.Sprint(counts) != fmt.Sprint(tt.wantN) {
				t.Errorf("requests of %v records, want %v", counts, tt.wantN)
			}
			checkDelivered(t, reqs, records)
		})
	}
}

func TestPackByteLimit(t *testing.T) {
	t.Parallel()
	const half = limits.MaxRequestBytes / 20 // 512 KiB per record, 20 records fill a request
	data := half - kinesis.KeyLen
	tests := []struct {
		name       string
		sizes      []int // data sizes
		wantCounts []int
		wantBytes  []int
	}{
		{name: "exactly 10 MiB", sizes: repeat(20, data), wantCounts: []int{20}, wantBytes: []int{limits.MaxRequestBytes}},
		{name: "one byte more", sizes: append(repeat(19, data), data+1), wantCounts: []int{19, 1},
			wantBytes: []int{19 * half, half + 1}},
		{name: "one byte more at the start", sizes: append([]int{data + 1}, repeat(19, data)...), wantCounts: []int{19, 1},
			wantBytes: []int{19*half + 1, half}},
		{name: "a small record filling the rest", sizes: append(repeat(19, data), data-kinesis.KeyLen-1, 1),
			wantCounts: []int{21}, wantBytes: []int{limits.MaxRequestBytes}},
		{name: "a small record one byte too many", sizes: append(repeat(19, data), data-kinesis.KeyLen-1, 2),
			wantCounts: []int{20, 1}, wantBytes: []int{limits.MaxRequestBytes - kinesis.KeyLen - 1, kinesis.KeyLen + 2}},
		{name: "max record size", sizes: repeat(25, limits.DefaultMaxRecordSize-kinesis.KeyLen),
			wantCounts: []int{10, 10, 5}, wantBytes: []int{limits.MaxRequestBytes, limits.MaxRequestBytes, limits.MaxRequestBytes / 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakePutter{t: t}
			p := NewPool(f, Options{MaxInFlight: 1})
			records := make([][]byte, len(tt.sizes))
			for i, n := range tt.sizes {
				records[i] = makeRecord(i, n)
			}
			_, res, err := packAll(t, p, records, nil)
			if err != nil || res.Accepted != len(records) {
				t.Fatalf("result %+v, err %v", res, err)
			}
			reqs := f.sent()
			counts, sizes := requestSizes(reqs)
			if fmt.Sprint(counts) != fmt.Sprint(tt.wantCounts) || fmt.Sprint(sizes) != fmt.Sprint(tt.wantBytes) {
				t.Errorf("requests of %v records, %v bytes; want %v, %v", counts, sizes, tt.wantCounts, tt.wantBytes)
			}
			checkDelivered(t, reqs, records)
		})
	}
}

func repeat(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestPackRandom packs records of random sizes (tiny to the 10 MiB record limit) and checks that
// every record arrives intact and in order, and that packing is greedy: a request is sent only
// when its next record would break a limit.
func TestPackRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, 3000)
	for i := range sizes {
		switch rng.IntN(100) {
		case 0:
			sizes[i] = 1 + rng.IntN(limits.MaxRequestBytes-kinesis.KeyLen)
		case 1, 2, 3, 4, 5, 6, 7, 8, 9, 10:
			sizes[i] = 1 + rng.IntN(100_000)
		default:
			sizes[i] = 1 + rng.IntN(200)
		}
	}
	records := make([][]byte, len(sizes))
	for i, n := range sizes {
		records[i] = bytes.Repeat([]byte{byte(i)}, n)
	}
	f := &fakePutter{t: t}
	p := NewPool(f, Options{MaxInFlight: 1, MaxRecordSize: limits.MaxRequestBytes})
	_, res, err := packAll(t, p, records, nil)
	if err != nil || res.Accepted != len(records) {
		t.Fatalf("result %+v, err %v", res, err)
	}
	reqs := f.sent()
	checkDelivered(t, reqs, records)
	counts, bytesPer := requestSizes(reqs)
	for r := 0; r+1 < len(reqs); r++ {
		next := reqs[r+1][0].Size()
		if counts[r] < limits.MaxRecordsPerRequest && bytesPer[r]+next <= limits.MaxRequestBytes {
			t.Errorf("request %d (%d records, %d bytes) sent although the next record (%d bytes) fit", r, counts[r], bytesPer[r], next)
		}
	}
}

func TestPackOversize(t *testing.T) {
	t.Parallel()
	const max = 100
	logs := &logSink{}
	f := &fakePutter{t: t}
	p := NewPool(f, Options{MaxInFlight: 1, MaxRecordSize: max, Logger: slog.New(logs)})
	ok := bytes.Repeat([]byte{'o'}, max-kinesis.KeyLen)
	records := [][]byte{ok, make([]byte, max-kinesis.KeyLen+1), ok, make([]byte, 5000), ok}
	_, res, err := packAll(t, p, records, nil)
	if err != nil {
		t.Fatalf("err = %v (skipping is not an error)", err)
	}
	if want := (Result{Records: 5, Accepted: 3, Skipped: 2}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	checkDelivered(t, f.sent(), [][]byte{ok, ok, ok})
	lines := logs.all()
	want := `WARN skipped 2 records larger than max_record_size 100 bytes (largest 5016 bytes) in a chunk of tag "app.log"`
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("log = %q, want one line %q", lines, want)
	}
	if s := p.Stats(); s.SkippedOversize != 2 || s.Accepted != 3 || s.Requests != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// TestPartialFailure fails some entries once: only those are sent again, with their partition
// keys, and the flush succeeds. The log says it, once.
func TestPartialFailure(t *testing.T) {
	t.Parallel()
	logs := &logSink{}
	const throttled = kinesis.CodeThroughputExceeded
	failOnce := map[string]string{} // record number: its code the first time
	for _, i := range []int{7, 107, 207, 307, 407} {
		failOnce[fmt.Sprint(i)] = throttled
	}
	failOnce["1000"] = kinesis.CodeInternalFailure
	var mu sync.Mutex
	f := &fakePutter{t: t, code: func(_, _ int, e kinesis.Entry) string {
		mu.Lock()
		defer mu.Unlock()
		n := string(e.Data[:bytes.IndexByte(e.Data, ':')])
		code := failOnce[n]
		delete(failOnce, n)
		return code
	}}
	p := NewPool(f, Options{Logger: slog.New(logs), Retry: fastRetry, MaxInFlight: 1}) // codes in order
	records := numbered(1200, 20)
	_, res, err := packAll(t, p, records, nil)
	if want := (Result{Records: 1200, Accepted: 1200}); res != want || err != nil {
		t.Errorf("result = %+v, %v; want %+v, nil", res, err, want)
	}
	// The failed entries, and only they, are sent twice, with the keys they had.
	keys := map[string][]string{}
	for _, req := range f.sent() {
		for _, e := range req {
			keys[string(e.Data)] = append(keys[string(e.Data)], e.PartitionKey)
		}
	}
	for i, r := range records {
		want := 1
		if i%100 == 7 && i < 500 || i == 1000 {
			want = 2
		}
		if k := keys[string(r)]; len(k) != want || len(k) == 2 && k[0] != k[1] {
			t.Errorf("record %d sent with the keys %q, want %d sends with one key", i, k, want)
		}
	}
	wantLine := "WARN 6 of 1200 records failed (" + throttled + " ×5, InternalFailure ×1), resent: all delivered after 2 attempts"
	if lines := logs.all(); len(lines) != 1 || lines[0] != wantLine {
		t.Errorf("log = %q, want one line %q", lines, wantLine)
	}
	if s := p.Stats(); s.Failed != 0 || s.Accepted != 1200 || s.Requests < 4 || s.RecordsSent != 1206 ||
		s.Resent != 6 || s.Throttled != 5 || s.RequestErrors != 0 || s.NotDelivered != 0 || s.LedgerChunks != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestFailingRecords fails some records at every attempt: they are sent requests.DefaultMaxAttempts times,
// the others once, and the flush reports them not delivered, with the set of delivered records
// for the ledger.
func TestFailingRecords(t *testing.T) {
	t.Parallel()
	logs := &logSink{}
	f := &fakePutter{t: t, code: func(_, _ int, e kinesis.Entry) string {
		if bytes.HasSuffix(e.Data[:bytes.IndexByte(e.Data, ':')], []byte("3")) {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	}}
	var backoffs []int // only the flush's goroutine asks
	retry := fastRetry
	retry.Backoff = func(attempt int) time.Duration { backoffs = append(backoffs, attempt); return 0 }
	p := NewPool(f, Options{Logger: slog.New(logs), Retry: retry})
	records := numbered(1000, 20) // records 3, 13, 23... fail: 100 of them
	b, res, err := packAll(t, p, records, nil)
	if want := (Result{Records: 1000, Accepted: 900, Failed: 100}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	var de *DeliveryError
	if !errors.As(err, &de) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("err = %v, want a DeliveryError", err)
	}
	if de.Failed != 100 || de.Total != 1000 || de.Attempts != requests.DefaultMaxAttempts || de.Class != kinesis.ClassRetryable ||
		de.Code != kinesis.CodeThroughputExceeded || de.Err != nil {
		t.Errorf("delivery error = %+v", de)
	}
	if got, want := err.Error(), "batcher: 100 of 1000 records not delivered after 5 attempts: "+kinesis.CodeThroughputExceeded; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
	// The two requests' failures are resent together or apart, as their answers come.
	seen := map[int]bool{}
	for _, a := range backoffs {
		seen[a] = true
		if a < 2 || a > requests.DefaultMaxAttempts {
			t.Errorf("backoff asked for attempt %d: want 2 to %d", a, requests.DefaultMaxAttempts)
		}
	}
	if len(seen) != requests.DefaultMaxAttempts-1 {
		t.Errorf("backoff asked for attempts %v, want each of 2 to %d", backoffs, requests.DefaultMaxAttempts)
	}
	sent := map[string]int{}
	for _, req := range f.sent() {
		for _, e := range req {
			sent[string(e.Data)]++
		}
	}
	for i, r := range records {
		want := 1
		if i%10 == 3 {
			want = requests.DefaultMaxAttempts
		}
		if sent[string(r)] != want {
			t.Fatalf("record %d sent %d times, want %d", i, sent[string(r)], want)
		}
	}
	for i := range records {
		if b.f.remember.Has(i) == (i%10 == 3) {
			t.Fatalf("ledger set: record %d delivered = %v", i, b.f.remember.Has(i))
		}
	}
	want := "WARN 100 of 1000 records failed (" + kinesis.CodeThroughputExceeded + " ×500), 100 not delivered after 5 attempts; chunk will be retried"
	if lines := logs.all(); len(lines) != 1 || lines[0] != want {
		t.Errorf("log = %q, want one line %q", lines, want)
	}
	if s := p.Stats(); s.Failed != 100 || s.Accepted != 900 || s.Resent != 400 || s.Throttled != 500 || s.NotDelivered != 1 ||
		s.Requests < 6 || s.Requests > 10 || s.RequestsPartial != s.Requests {
		t.Errorf("stats = %+v", s)
	}
}

// TestPutterError fails the second request as a whole, once: the flush then sends one request at a
// time (the third), and once that one is answered, the failed one again.
func TestPutterError(t *testing.T) {
	t.Parallel()
	putErr := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	f := &fakePutter{t: t, err: func(req int) error {
		if req == 1 {
			return putErr
		}
		return nil
	}}
	logs := &logSink{}
	p := NewPool(f, Options{MaxInFlight: 1, Retry: fastRetry, Logger: slog.New(logs)})
	records := numbered(1100, 20)
	_, res, err := packAll(t, p, records, nil)
	if want := (Result{Records: 1100, Accepted: 1100}); res != want || err != nil {
		t.Errorf("result = %+v, %v; want %+v", res, err, want)
	}
	// The failed request's records go again, once; the third request goes before or after them,
	// as the failure's answer and the end of the chunk come.
	counts, _ := requestSizes(f.sent())
	if slices.Sort(counts); fmt.Sprint(counts) != "[100 500 500 500]" {
		t.Errorf("requests of %v records, want three of 500 and one of 100", counts)
	}
	sends := map[string]int{}
	for _, req := range f.sent() {
		for _, e := range req {
			sends[string(e.Data)]++
		}
	}
	for i, r := range records {
		if want := map[bool]int{true: 2, false: 1}[i >= 500 && i < 1000]; sends[string(r)] != want {
			t.Fatalf("record %d sent %d times, want %d", i, sends[string(r)], want)
		}
	}
	if s := p.Stats(); s.RequestErrors != 1 || s.Failed != 0 || s.Resent != 500 {
		t.Errorf("stats = %+v", s)
	}
	want := "WARN 500 of 1100 records failed (network error ×500), resent: all delivered after 2 attempts; " +
		"first error: " + putErr.Error()
	if lines := logs.all(); len(lines) != 1 || lines[0] != want {
		t.Errorf("log = %q\nwant one line %q", lines, want)
	}
}

func TestShortResult(t *testing.T) {
	t.Parallel()
	p := NewPool(&fakePutter{t: t, short: true}, Options{Retry: fastRetry})
	_, res, err := packAll(t, p, numbered(3, 5), nil)
	if res.Failed != 3 || !errors.Is(err, ErrNotDelivered) || !errors.Is(err, kinesis.ErrMalformedResponse) {
		t.Errorf("result %+v, err %v; want all failed, ErrMalformedResponse", res, err)
	}
}

func TestCanceledFlushSendsNothingMore(t *testing.T) {
	t.Parallel()
	f := &fakePutter{t: t, entered: make(chan struct{}), release: make(chan struct{})}
	p := NewPool(f, Options{MaxInFlight: 1})
	b, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel while the first request is in flight, then answer it.
	go func() {
		<-f.entered
		cancel()
		f.release <- struct{}{}
	}()
	b.begin("t", nil, nil)
	for _, r := range numbered(700, 5) {
		b.add(ctx, r)
	}
	res, err := b.end(ctx, nil)
	var de *DeliveryError
	if len(f.sent()) != 1 || res.Accepted != 500 || res.Failed != 200 || !errors.Is(err, context.Canceled) ||
		!errors.As(err, &de) || de.Class != kinesis.ClassCanceled {
		t.Errorf("%d requests, result %+v, err %v", len(f.sent()), res, err)
	}
}

func TestErrorPrecedence(t *testing.T) {
	t.Parallel()
	decErr := &record.DecodeError{Index: 3, Offset: 40, Err: record.ErrTruncated}
	t.Run("bad chunk", func(t *testing.T) {
		t.Parallel()
		f := &fakePutter{t: t}
		_, res, err := packAll(t, NewPool(f, Options{MaxInFlight: 1}), numbered(3, 5), decErr)
		if res.Accepted != 3 || len(f.sent()) != 1 {
			t.Errorf("the good records were not sent first: %+v", res)
		}
		if !errors.Is(err, ErrBadChunk) || !errors.Is(err, record.ErrTruncated) || errors.Is(err, ErrNotDelivered) {
			t.Errorf("err = %v, want ErrBadChunk wrapping the decoder's error", err)
		}
		if want := "batcher: chunk cannot be decoded: record: event 3 at offset 40: truncated"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
	t.Run("bad chunk and not delivered", func(t *testing.T) {
		t.Parallel()
		f := &fakePutter{t: t, code: func(int, int, kinesis.Entry) string { return kinesis.CodeInternalFailure }}
		_, _, err := packAll(t, NewPool(f, Options{MaxInFlight: 1, Retry: fastRetry}), numbered(3, 5), decErr)
		if !errors.Is(err, ErrNotDelivered) || errors.Is(err, ErrBadChunk) {
			t.Errorf("err = %v, want ErrNotDelivered only", err)
		}
		var de *DeliveryError
		if !errors.As(err, &de) || de.DecodeErr != decErr {
			t.Errorf("DeliveryError does not keep the decode error: %+v", de)
		}
	})
}

// TestArenaGrowth adds records whose sizes force the arena to grow (and move) inside one request:
// every entry must still carry its own bytes when the request is sent.
func TestArenaGrowth(t *testing.T) {
	t.Parallel()
	f := &fakePutter{t: t}
	p := NewPool(f, Options{MaxInFlight: 1, MaxRecordSize: limits.MaxRequestBytes})
	var records [][]byte
	for n := 1; n < 4<<20; n *= 3 {
		records = append(records, bytes.Repeat([]byte{byte(n)}, n))
	}
	for range 2 { // the second flush reuses the grown arena
		f.mu.Lock()
		f.requests = nil
		f.mu.Unlock()
		_, res, err := packAll(t, p, records, nil)
		if err != nil || res.Accepted != len(records) {
			t.Fatalf("result %+v, err %v", res, err)
		}
		checkDelivered(t, f.sent(), records)
	}
}

func TestPackAllocs(t *testing.T) {
	p := NewPool(nopPutter{}, Options{})
	records := numbered(2000, 100, 700)
	b, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(b)
	ctx := context.Background()
	run := func() {
		b.begin("t", nil, nil)
		for _, r := range records {
			b.add(ctx, r)
		}
		_, _ = b.end(ctx, nil)
	}
	run() // grow the buffers
	allocs := testing.AllocsPerRun(20, run)
	// Partition keys come 64 to an allocation; a request costs 2 (its closures), and 2 more when
	// no sender is idle to take it (a new sender's goroutine and idle timer: with -race, senders
	// are often still busy); nothing else may allocate per record.
	if limit := float64(len(records))/64 + 4*float64(len(records))/float64(limits.MaxRecordsPerRequest) + 5; allocs > limit {
		t.Errorf("a flush of %d records allocates %.0f times, want at most %.0f", len(records), allocs, limit)
	}
}

type nopPutter struct{}

func (nopPutter) PutRecords(_ context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	return kinesis.PutResult{ErrorCodes: make([]string, len(entries))}, nil
}

// nopPutterShared answers with one preallocated slice, so that benchmarks measure the batcher.
type nopPutterShared struct{ codes []string }

func (p nopPutterShared) PutRecords(_ context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	return kinesis.PutResult{ErrorCodes: p.codes[:len(entries)]}, nil
}

func TestCloseWaitsForFlushes(t *testing.T) {
	t.Parallel()
	f := &fakePutter{t: t, entered: make(chan struct{}, 1), release: make(chan struct{})}
	p := NewPool(f, Options{})
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		b, err := p.acquire()
		if err != nil {
			done <- outcome{err: err}
			return
		}
		defer p.release(b)
		b.begin("t", nil, nil)
		b.add(context.Background(), []byte("x"))
		res, err := b.end(context.Background(), nil)
		done <- outcome{res, err}
	}()
	select {
	case <-f.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("flush never reached the putter")
	}

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a flush in flight = %v, want DeadlineExceeded", err)
	}
	if _, err := p.Flush(context.Background(), nil, "t"); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- p.Close(ctx)
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a flush was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	if o := <-done; o.err != nil || o.res.Accepted != 1 {
		t.Errorf("in-flight flush: %+v", o)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the flush ended")
	}
}

func TestStatsString(t *testing.T) {
	t.Parallel()
	s := Stats{Flushes: 3, NotDelivered: 1, Records: 12, Accepted: 7, Failed: 1, Rejected: 1, SkippedOversize: 1,
		SkippedNoLogKey: 1, SkippedEarlier: 1, Requests: 4, RequestErrors: 1, RecordsSent: 10, BytesSent: 400,
		Throttled: 2, Resent: 2, LedgerChunks: 1, LedgerEvicted: 5}
	want := "3 flushes (1 to be retried), 12 records: 7 accepted, 1 not delivered, 1 rejected, " +
		"3 skipped (1 oversize, 1 without log_key, 0 invalid, 1 delivered by an earlier flush); " +
		"4 requests (1 failed) sent 10 records, 400 bytes; 2 throttled, 2 resent; 0 requests paced, 0 rate cuts; ledger: 1 chunks held, 5 forgotten"
	if got := s.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
}

func BenchmarkPack(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("records=10000/size=%d", size), func(b *testing.B) {
			records := numbered(10000, size)
			p := NewPool(nopPutterShared{codes: make([]string, limits.MaxRecordsPerRequest)}, Options{})
			bt, err := p.acquire()
			if err != nil {
				b.Fatal(err)
			}
			defer p.release(bt)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(records) * size))
			for b.Loop() {
				bt.begin("t", nil, nil)
				for _, r := range records {
					bt.add(ctx, r)
				}
				if _, err := bt.end(ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
