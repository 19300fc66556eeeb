package batcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// These tests go through Pool.Flush, so they also depend on package record's decoder and encoder.

// event returns a Fluent Bit >= 2.1 event: [[ext 0 time, {}], body].
func event(sec, nsec uint32, body []byte) []byte {
	b := []byte{0x92, 0x92, 0xd7, 0x00}
	b = binary.BigEndian.AppendUint32(b, sec)
	b = binary.BigEndian.AppendUint32(b, nsec)
	b = append(b, 0x80)
	return append(b, body...)
}

// strMap returns a msgpack map of str keys and values (fewer than 16 pairs, strings < 256 bytes).
func strMap(kv ...string) []byte {
	b := []byte{0x80 | byte(len(kv)/2)}
	for _, s := range kv {
		b = append(b, 0xd9, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestFlush(t *testing.T) {
	t.Parallel()
	// [[ext0 time, {}], {"a":"b"}], written out by hand.
	handWritten := []byte{
		0x92,                                                       // event: array of 2
		0x92,                                                       // header: array of 2
		0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x07, // fixext8 type 0: seconds, nanoseconds
		0x80,                       // metadata: {}
		0x81, 0xa1, 'a', 0xa1, 'b', // {"a":"b"}
	}
	two := append(event(1, 0, strMap("msg", "one")), event(2, 0, strMap("msg", "two"))...)
	tests := []struct {
		name      string
		opts      Options
		chunk     []byte
		want      []string // data sent, in order
		wantRes   Result
		wantErr   error
		wantLines []string
	}{
		{name: "hand-written event", opts: Options{Record: record.Options{AppendNewline: true}}, chunk: handWritten,
			want: []string{"{\"a\":\"b\"}\n"}, wantRes: Result{Records: 1, Accepted: 1}},
		{name: "no newline", chunk: handWritten, want: []string{`{"a":"b"}`}, wantRes: Result{Records: 1, Accepted: 1}},
		{name: "empty chunk", chunk: nil, wantRes: Result{}},
		{name: "log_key", opts: Options{Record: record.Options{LogKey: "log", AppendNewline: true}},
			chunk: append(event(1, 0, strMap("log", "hello")), event(2, 0, strMap("other", "x"))...),
			want:  []string{"hello\n"}, wantRes: Result{Records: 2, Accepted: 1, Skipped: 1},
			wantLines: []string{`WARN skipped 1 records without log_key "log" in a chunk of tag "app.log"`}},
		{name: "not a map", chunk: append(event(1, 0, []byte{0x05}), two...),
			want: []string{`{"msg":"one"}`, `{"msg":"two"}`}, wantRes: Result{Records: 3, Accepted: 2, Skipped: 1},
			wantErr: ErrBadChunk},
		{name: "truncated tail", chunk: append(append([]byte{}, two...), event(3, 0, strMap("msg", "three"))[:20]...),
			want: []string{`{"msg":"one"}`, `{"msg":"two"}`}, wantRes: Result{Records: 2, Accepted: 2}, wantErr: ErrBadChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logSink{}
			f := &fakePutter{t: t}
			tt.opts.Logger = slog.New(logs)
			p := NewPool(f, tt.opts)
			res, err := p.Flush(context.Background(), tt.chunk, "app.log")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if res != tt.wantRes {
				t.Errorf("result = %+v, want %+v", res, tt.wantRes)
			}
			var got []string
			for _, req := range f.sent() {
				for _, e := range req {
					got = append(got, string(e.Data))
				}
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
			if lines := logs.all(); fmt.Sprintf("%q", lines) != fmt.Sprintf("%q", tt.wantLines) {
				t.Errorf("log = %q, want %q", lines, tt.wantLines)
			}
		})
	}
}

// TestConcurrentFlushes flushes from 8 goroutines at once through one pool (as Fluent Bit's
// workers do): each flush must get the result of its own chunk, and every record must be sent
// exactly once, intact. One goroutine's records partly fail, and only its results may say so.
func TestConcurrentFlushes(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		rounds     = 4
		events     = 1100 // three requests per flush
		failing    = 3    // the goroutine whose records fail (every tenth)
	)
	f := &fakePutter{t: t, code: func(_, _ int, e kinesis.Entry) string {
		if bytes.HasPrefix(e.Data, []byte(fmt.Sprintf(`{"g":"%d",`, failing))) && bytes.HasSuffix(e.Data, []byte("0\"}")) {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	}}
	p := NewPool(f, Options{Retry: fastRetry})
	chunk := func(g, r int) []byte {
		var c []byte
		for i := range events {
			c = append(c, event(uint32(i), 0, strMap("g", fmt.Sprint(g), "r", fmt.Sprint(r), "i", fmt.Sprint(i)))...)
		}
		return c
	}

	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				res, err := p.Flush(context.Background(), chunk(g, r), fmt.Sprintf("tag.%d", g))
				want := Result{Records: events, Accepted: events}
				if g == failing {
					want = Result{Records: events, Accepted: events - events/10, Failed: events / 10}
				}
				if res != want {
					errs <- fmt.Errorf("goroutine %d round %d: result %+v, want %+v", g, r, res, want)
				}
				if (g == failing) != errors.Is(err, ErrNotDelivered) {
					errs <- fmt.Errorf("goroutine %d round %d: err %v", g, r, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	seen := make(map[string]int)
	for _, req := range f.sent() {
		keys := make(map[string]bool)
		for _, e := range req {
			seen[string(e.Data)]++
			keys[e.PartitionKey] = true
		}
		if len(keys) != len(req) {
			t.Errorf("a request of %d records has %d distinct partition keys", len(req), len(keys))
		}
	}
	if want := goroutines * rounds * events; len(seen) != want {
		t.Errorf("%d distinct records sent, want %d", len(seen), want)
	}
	for g := range goroutines {
		for r := range rounds {
			for i := range events {
				data := fmt.Sprintf(`{"g":"%d","r":"%d","i":"%d"}`, g, r, i)
				want := 1 // sent once; the failing ones at every attempt
				if g == failing && i%10 == 0 {
					want = requests.DefaultMaxAttempts
				}
				if seen[data] != want {
					t.Fatalf("record %s sent %d times, want %d", data, seen[data], want)
				}
			}
		}
	}
	s := p.Stats()
	if s.Flushes != goroutines*rounds || s.Records != goroutines*rounds*events || s.Failed != rounds*events/10 ||
		s.NotDelivered != rounds || s.LedgerChunks != rounds {
		t.Errorf("stats = %+v", s)
	}
}

// BenchmarkFlush measures a whole flush (decode, encode, pack) of container-log-like events,
// with a putter that accepts everything.
func BenchmarkFlush(b *testing.B) {
	const events = 1000
	var chunk []byte
	for i := range events {
		chunk = append(chunk, event(uint32(1700000000+i), 0, strMap(
			"log", fmt.Sprintf("2026-11-26T02:52:55.%06dZ stdout F GET /api/v1/items/%d 200 %s", i, i, strings.Repeat("x", 60)),
			"stream", "stdout",
			"kubernetes_pod", "web-7d4b9c-abcde",
		))...)
	}
	cases := []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"partition_key", Options{PartitionKey: mustKeyPath(b, "kubernetes_pod")}},
		{"aggregation", Options{Aggregation: true}},
		{"simple_aggregation", Options{SimpleAggregation: true}},
		{"compression=zstd", Options{Compression: compress.Zstd}},
		{"compression=gzip", Options{Compression: compress.Gzip}},
		{"aggregation/compression=zstd", Options{Aggregation: true, Compression: compress.Zstd}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			c.opts.Record = record.Options{AppendNewline: true}
			p := NewPool(nopPutterShared{codes: make([]string, limits.MaxRecordsPerRequest)}, c.opts)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if _, err := p.Flush(ctx, chunk, "kube.var.log"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
