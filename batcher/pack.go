package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// span locates one pending record in the arena.
type span struct {
	off, n int
	key    string
	idx    int // the record's position among the flush's records (events), from 0
}

// batcher packs one flush's records into requests and sends them. It belongs to one flush at a
// time; its buffers are reused from flush to flush.
//
// Encoded records are appended to one arena. The entries of a request are sliced out of it only
// when the request is sent, so that growing the arena (which may move it) never leaves an entry
// pointing to the old array; after the request the arena is reused from its start.
type batcher struct {
	pool *Pool
	dec  record.Decoder
	enc  *record.Encoder
	keys *kinesis.KeyGen

	arena   []byte          // the pending request's data, then possibly one record being added
	spans   []span          // the pending request's records
	pending int             // the pending request's size (data + partition keys)
	entries []kinesis.Entry // scratch for the request being sent

	// Per flush.
	tag            string
	res            Result
	sent           int   // records in the requests sent
	failedIdx      []int // positions of the records not accepted, in order
	firstCode      string
	firstErr       error
	oversize       int
	largest        int // the largest oversize record
	noLogKey       int
	invalid        int
	firstInvalid   error
	flushRequests  int
	flushBytesSent int
}

// begin starts a flush of a chunk with this tag.
func (b *batcher) begin(tag string) {
	b.arena, b.spans, b.pending = b.arena[:0], b.spans[:0], 0
	b.tag, b.res, b.sent, b.failedIdx = tag, Result{}, 0, b.failedIdx[:0]
	b.firstCode, b.firstErr = "", nil
	b.oversize, b.largest, b.noLogKey, b.invalid, b.firstInvalid = 0, 0, 0, 0, nil
	b.flushRequests, b.flushBytesSent = 0, 0
}

// addEvent encodes ev straight into the arena and adds it to the pending request.
func (b *batcher) addEvent(ctx context.Context, ev *record.Event) {
	b.res.Records++
	start := len(b.arena)
	out, err := b.enc.Append(b.arena, ev)
	if err != nil {
		// b.arena[:start] is intact whatever Append returned: append never writes below len.
		b.arena = b.arena[:start]
		b.skipInvalid(err)
		return
	}
	b.arena = out
	b.commit(ctx, start)
}

// add adds one already encoded record to the pending request. Flush uses addEvent; tests and
// benchmarks use add to drive the packing without the record package.
func (b *batcher) add(ctx context.Context, data []byte) {
	b.res.Records++
	start := len(b.arena)
	b.arena = append(b.arena, data...)
	b.commit(ctx, start)
}

// commit makes the record in b.arena[start:] part of the pending request, sending the pending
// request first when the record would break one of its limits.
func (b *batcher) commit(ctx context.Context, start int) {
	n := len(b.arena) - start
	key := b.keys.Next()
	size := n + len(key) // kinesis.Entry.Size
	if size > b.pool.maxRecordSize {
		b.arena = b.arena[:start]
		b.oversize++
		b.largest = max(b.largest, size)
		return
	}
	if len(b.spans) == kinesis.MaxRecordsPerRequest || b.pending+size > kinesis.MaxRequestBytes {
		b.send(ctx)
		// The new record becomes the first of the next request.
		copy(b.arena, b.arena[start:])
		b.arena = b.arena[:n]
		start = 0
	}
	b.spans = append(b.spans, span{off: start, n: n, key: key, idx: b.res.Records - 1})
	b.pending += size
}

// send sends the pending request, if any, and records what Kinesis answered. It leaves the arena
// alone: the caller decides what it keeps.
func (b *batcher) send(ctx context.Context) {
	if len(b.spans) == 0 {
		return
	}
	entries := b.entries[:0]
	for _, s := range b.spans {
		// Cap each slice at its end, so that no Putter can append over the next record.
		entries = append(entries, kinesis.Entry{Data: b.arena[s.off : s.off+s.n : s.off+s.n], PartitionKey: s.key})
	}
	b.entries = entries
	n := len(entries)

	var res kinesis.PutResult
	err := ctx.Err() // a cancelled flush sends nothing more
	if err == nil {
		res, err = b.pool.putter.PutRecords(ctx, entries)
		b.flushRequests++
		b.flushBytesSent += b.pending
		if err == nil && len(res.ErrorCodes) != n {
			err = fmt.Errorf("batcher: %d results for %d records: %w", len(res.ErrorCodes), n, kinesis.ErrMalformedResponse)
		}
	}
	if err != nil {
		b.pool.stats.requestErrors.Add(1)
		if b.firstErr == nil {
			b.firstErr = err
		}
		for _, s := range b.spans {
			b.failedIdx = append(b.failedIdx, s.idx)
		}
		b.res.Failed += n
	} else {
		for i, code := range res.ErrorCodes {
			if code == "" {
				continue
			}
			if b.firstCode == "" {
				b.firstCode = code
			}
			b.failedIdx = append(b.failedIdx, b.spans[i].idx)
			b.res.Failed++
		}
		b.res.Accepted += n - countNonEmpty(res.ErrorCodes)
	}
	b.sent += n

	clear(entries) // keep neither the data nor the keys alive
	b.spans, b.pending = b.spans[:0], 0
}

func countNonEmpty(codes []string) int {
	n := 0
	for _, c := range codes {
		if c != "" {
			n++
		}
	}
	return n
}

// skipInvalid counts a record the encoder rejected: every encoder error concerns that record
// only (record.ErrMissingLogKey, ErrNotMap, ErrTooDeep, ErrNestedKey, a malformed body).
func (b *batcher) skipInvalid(err error) {
	if errors.Is(err, record.ErrMissingLogKey) {
		b.noLogKey++
		return
	}
	b.invalid++
	if b.firstInvalid == nil {
		b.firstInvalid = err
	}
}

// end sends what is pending, logs the flush's summary, adds it to the pool's totals and returns
// the flush's result (see Pool.Flush for the error).
func (b *batcher) end(ctx context.Context, decErr error) (Result, error) {
	b.send(ctx)
	b.arena = b.arena[:0]
	b.res.Skipped = b.oversize + b.noLogKey + b.invalid
	res := b.res

	s := &b.pool.stats
	s.flushes.Add(1)
	s.records.Add(int64(res.Records))
	s.requests.Add(int64(b.flushRequests))
	s.recordsSent.Add(int64(b.sent))
	s.bytesSent.Add(int64(b.flushBytesSent))
	s.accepted.Add(int64(res.Accepted))
	s.failed.Add(int64(res.Failed))
	s.skippedOversize.Add(int64(b.oversize))
	s.skippedNoLogKey.Add(int64(b.noLogKey))
	s.skippedInvalid.Add(int64(b.invalid))

	b.logSkips()
	var err error
	switch {
	case res.Failed > 0:
		de := &DeliveryError{Failed: res.Failed, Total: b.sent, Code: b.firstCode, Err: b.firstErr, DecodeErr: decErr}
		b.pool.log.Warn(fmt.Sprintf("%d of %d records failed (%s), chunk will be retried", res.Failed, b.sent, de.reason()),
			slog.String("tag", b.tag))
		err = de
	case decErr != nil:
		err = fmt.Errorf("%w: %w", ErrBadChunk, decErr)
	case b.invalid > 0:
		// A record that cannot be encoded never will be: the chunk is undeliverable as a whole,
		// though its other records were sent.
		err = fmt.Errorf("%w: %d of %d records cannot be encoded, first: %w", ErrBadChunk, b.invalid, res.Records, b.firstInvalid)
	}
	b.tag, b.firstErr, b.firstInvalid = "", nil, nil
	return res, err
}

// logSkips writes at most one line per reason for the records the flush skipped.
func (b *batcher) logSkips() {
	log, tag := b.pool.log, slog.String("tag", b.tag)
	if b.oversize > 0 {
		log.Warn(fmt.Sprintf("skipped %d records larger than max_record_size %d bytes (largest %d bytes) in a chunk of tag %q",
			b.oversize, b.pool.maxRecordSize, b.largest, b.tag), tag)
	}
	if b.noLogKey > 0 {
		log.Warn(fmt.Sprintf("skipped %d records without log_key %q in a chunk of tag %q",
			b.noLogKey, b.pool.recordOpts.LogKey, b.tag), tag)
	}
	// Records that cannot be encoded make the flush fail with ErrBadChunk, logged by the caller;
	// when a delivery failure takes precedence, they are reported on the retry.
}
