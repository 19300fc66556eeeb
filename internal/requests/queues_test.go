package requests

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// The queues' own tests: records committed as the flush commits them, a Putter that records
// what it was sent and answers as scripted, and the Outcome. The whole flush (packing, keys,
// aggregation, the ledger) is tested through batcher.Pool.

// scripted records every request and answers each entry with code(request, entry), or fails the
// request with err(request) when that is not nil.
type scripted struct {
	mu   sync.Mutex
	sent [][]string // per request: each entry's data
	code func(req int, data string) string
	err  func(req int) error
}

func (p *scripted) PutRecords(_ context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	req := len(p.sent)
	var data []string
	for _, e := range entries {
		data = append(data, string(e.Data))
	}
	p.sent = append(p.sent, data)
	if p.err != nil {
		if err := p.err(req); err != nil {
			return kinesis.PutResult{}, err
		}
	}
	res := kinesis.PutResult{ErrorCodes: make([]string, len(entries))}
	for i, d := range data {
		if p.code != nil {
			res.ErrorCodes[i] = p.code(req, d)
		}
		if res.ErrorCodes[i] != "" {
			res.FailedCount++
		}
	}
	return res, nil
}

// newQueues returns queues sending through p, one request in flight at a time (so that requests
// reach p in the order they go), resending at once, at most attempts times.
func newQueues(p Putter, attempts int) *Queues {
	return New(Config{
		Putter:    p,
		Scheduler: pace.New(1),
		Buffers:   NewBuffers(2),
		Retry:     Retry{MaxAttempts: attempts, Window: time.Minute, Backoff: func(int) time.Duration { return 0 }}.WithDefaults(),
		MaxQueues: 1,
		Resharded: func(*kpl.ShardMap, string, string) {},
	})
}

// commitAll commits one record per data, record i carrying event i, to queue 0.
func commitAll(ctx context.Context, q *Queues, data []string) {
	for i, d := range data {
		buf := q.Buf(0)
		start := len(*buf)
		*buf = append(*buf, d...)
		q.Commit(ctx, 0, start, Record{Key: "k", Shard: NoShard, Dest: NoShard, Events: Events{First: i, N: 1}})
	}
}

func records(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("record-%04d", i)
	}
	return out
}

// events lists the events of es, sorted.
func events(es []Events) []int {
	var out []int
	for _, e := range es {
		for i := range e.N {
			out = append(out, e.First+i)
		}
	}
	slices.Sort(out)
	return out
}

// TestCommitSealsAtLimit: a request is sealed when the next record would break the PutRecords
// record limit, and every record reaches the Putter once, in order, with its bytes.
func TestCommitSealsAtLimit(t *testing.T) {
	t.Parallel()
	p := &scripted{}
	q := newQueues(p, 5)
	q.Begin(false, nil)
	data := records(2*limits.MaxRecordsPerRequest + 1)
	commitAll(context.Background(), q, data)
	out := q.Finish(context.Background())
	if queued, inflight := q.Pending(); queued != 0 || inflight != 0 {
		t.Errorf("after Finish: %d queued, %d in flight", queued, inflight)
	}
	var sizes []int
	var got []string
	for _, r := range p.sent {
		sizes = append(sizes, len(r))
		got = append(got, r...)
	}
	if want := []int{limits.MaxRecordsPerRequest, limits.MaxRecordsPerRequest, 1}; !slices.Equal(sizes, want) {
		t.Errorf("requests of %v records, want %v", sizes, want)
	}
	if !slices.Equal(got, data) {
		t.Error("the records sent are not the records committed, in order")
	}
	if out.Accepted != len(data) || len(out.GivenUp) != 0 || len(out.Rejected) != 0 || out.Requests != 3 ||
		out.RecordsSent != int64(len(data)) || out.FirstSent != len(data) || out.MaxAttempt != 1 {
		t.Errorf("outcome %+v", out)
	}
}

// TestResendOnlyFailed: the entries Kinesis did not accept, matched by index, are sent again, and
// only they; a record that fails at every attempt is given up after the last.
func TestResendOnlyFailed(t *testing.T) {
	t.Parallel()
	p := &scripted{code: func(req int, d string) string {
		switch {
		case d == "record-0007": // never accepted
			return kinesis.CodeThroughputExceeded
		case req == 0 && strings.HasSuffix(d, "3"): // accepted the second time
			return "InternalFailure"
		}
		return ""
	}}
	q := newQueues(p, 3)
	q.Begin(false, nil)
	commitAll(context.Background(), q, records(20))
	out := q.Finish(context.Background())
	want := [][]string{records(20), {"record-0003", "record-0007", "record-0013"}, {"record-0007"}}
	if len(p.sent) != len(want) {
		t.Fatalf("%d requests, want %d: %q", len(p.sent), len(want), p.sent)
	}
	for i := range want {
		if !slices.Equal(p.sent[i], want[i]) {
			t.Errorf("request %d sent %q, want %q", i, p.sent[i], want[i])
		}
	}
	if got := events(out.GivenUp); !slices.Equal(got, []int{7}) {
		t.Errorf("given up %v, want [7]", got)
	}
	if out.Accepted != 19 || out.Resent != 4 || out.Throttled != 3 || out.MaxAttempt != 3 || out.FirstFailed != 3 || out.Stopped {
		t.Errorf("outcome %+v", out)
	}
	if got, want := out.Codes.String(), "InternalFailure ×2, ProvisionedThroughputExceededException ×3"; got != want {
		t.Errorf("codes %q, want %q", got, want)
	}
}

// TestOrderedGiveUp: with order kept, a record given up gives up every later record of its queue,
// sent or not, and those committed after it; none of them is sent again.
func TestOrderedGiveUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := &scripted{code: func(req int, d string) string {
		if d == "record-0002" {
			return kinesis.CodeThroughputExceeded
		}
		return ""
	}}
	q := newQueues(p, 1) // no resend: the first failure is the last
	q.Begin(true, nil)
	data := records(limits.MaxRecordsPerRequest + 10)
	commitAll(ctx, q, data[:limits.MaxRecordsPerRequest+5]) // the first request is answered meanwhile
	for i, d := range data[limits.MaxRecordsPerRequest+5:] {
		buf := q.Buf(0)
		start := len(*buf)
		*buf = append(*buf, d...)
		q.Commit(ctx, 0, start, Record{Key: "k", Shard: NoShard, Dest: NoShard, Events: Events{First: limits.MaxRecordsPerRequest + 5 + i, N: 1}})
	}
	out := q.Finish(ctx)
	if len(p.sent) != 1 {
		t.Errorf("%d requests, want 1: nothing goes after a record given up", len(p.sent))
	}
	var want []int
	for i := 2; i < len(data); i++ {
		if i >= limits.MaxRecordsPerRequest || i == 2 {
			want = append(want, i)
		}
	}
	if got := events(out.GivenUp); !slices.Equal(got, want) {
		t.Errorf("given up %d events %v..., want %d from 2 and 500 on", len(got), got[:min(5, len(got))], len(want))
	}
	if out.Accepted != limits.MaxRecordsPerRequest-1 {
		t.Errorf("accepted %d, want %d", out.Accepted, limits.MaxRecordsPerRequest-1)
	}
	if out.FirstSent != len(data) || out.FirstFailed != 11 {
		t.Errorf("first sent %d, first failed %d; want %d and 11 (1 failed, 10 not sent)", out.FirstSent, out.FirstFailed, len(data))
	}
}

// TestRejectedRequest: a request Kinesis refuses as invalid is not sent again; its records are
// rejected, and the outcome describes the request without its data.
func TestRejectedRequest(t *testing.T) {
	t.Parallel()
	invalid := &smithy.GenericAPIError{Code: "ValidationException", Message: "bad"}
	p := &scripted{err: func(int) error { return invalid }}
	q := newQueues(p, 5)
	q.Begin(false, nil)
	commitAll(context.Background(), q, records(3))
	out := q.Finish(context.Background())
	if len(p.sent) != 1 {
		t.Errorf("%d requests, want 1", len(p.sent))
	}
	if got := events(out.Rejected); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("rejected %v, want [0 1 2]", got)
	}
	if out.RejectErr != invalid || out.FirstErr != invalid || out.RequestErrors != 1 || len(out.GivenUp) != 0 {
		t.Errorf("outcome %+v", out)
	}
	if want := "3 records, 36 bytes, largest record 12 bytes, partition keys of 1 to 1 bytes"; out.RejectShape != want {
		t.Errorf("shape %q, want %q", out.RejectShape, want)
	}
}
