// Package batcher turns a Fluent Bit chunk into PutRecords requests: it decodes and encodes the
// chunk's events (package record), packs the encoded records into requests under the PutRecords
// limits, sends them in order through a Putter, and reports which records Kinesis accepted. A Pool
// gives each concurrent flush its own batcher, so that Fluent Bit's workers can flush in parallel.
//
// It does not know about cgo or Fluent Bit's return codes (package main maps its errors), nor about
// the AWS SDK (package kinesis). Resending failed entries with backoff and the per-chunk ledger
// belong here too but are not implemented yet: a flush with failures reports ErrNotDelivered and
// the whole chunk is retried by Fluent Bit.
package batcher

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// Putter sends one PutRecords request; *kinesis.Client is one. The entries' Data is only valid
// until PutRecords returns: an implementation that keeps it must copy it.
type Putter interface {
	PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error)
}

var _ Putter = (*kinesis.Client)(nil)

var (
	// ErrBadChunk: the chunk (or its tail) could not be decoded; retrying cannot help.
	ErrBadChunk = errors.New("batcher: chunk cannot be decoded")
	// ErrNotDelivered: some records were not accepted by Kinesis; the chunk should be retried.
	// The error returned is a *DeliveryError.
	ErrNotDelivered = errors.New("batcher: records not delivered")
	// ErrClosed: Flush was called after Close.
	ErrClosed = errors.New("batcher: pool is closed")
)

// DeliveryError says how many records of a flush Kinesis did not accept, and why. It matches
// ErrNotDelivered with errors.Is, and unwraps to the first request error, if any (so that
// kinesis.IsRetryable can classify it).
type DeliveryError struct {
	Failed int    // records not accepted
	Total  int    // records sent (accepted or not); skipped records are not counted
	Code   string // the first entry's error code, e.g. ProvisionedThroughputExceededException
	Err    error  // the first request error, when a whole request failed
	// DecodeErr is set when the chunk also failed to decode after some events: the good events
	// were sent, and the error surfaces as ErrBadChunk on the retry, once the rest is delivered.
	DecodeErr error
}

func (e *DeliveryError) Error() string {
	msg := fmt.Sprintf("batcher: %d of %d records not delivered: %s", e.Failed, e.Total, e.reason())
	if e.DecodeErr != nil {
		msg += "; the chunk's tail cannot be decoded: " + e.DecodeErr.Error()
	}
	return msg
}

func (e *DeliveryError) reason() string {
	switch {
	case e.Code != "" && e.Err != nil:
		return e.Code + "; " + e.Err.Error()
	case e.Code != "":
		return e.Code
	case e.Err != nil:
		return e.Err.Error()
	}
	return "unknown"
}

// Is makes errors.Is(err, ErrNotDelivered) true.
func (e *DeliveryError) Is(target error) bool { return target == ErrNotDelivered }

// Unwrap returns the first request error.
func (e *DeliveryError) Unwrap() error { return e.Err }

// Options configure a Pool.
type Options struct {
	// MaxRecordSize is the stream's maximum record size (data + partition key); a larger record is
	// skipped. 0 means kinesis.DefaultMaxRecordSize; it is capped at kinesis.MaxRequestBytes.
	MaxRecordSize int
	Record        record.Options
	Logger        *slog.Logger // nil discards
}

// Result counts what one flush did. Records = Accepted + Failed + Skipped.
type Result struct {
	Records  int // events decoded
	Accepted int // accepted by Kinesis
	Failed   int // not accepted
	Skipped  int // deliberately skipped (oversize, missing log_key, not a map)
}

// Stats are a pool's totals since NewPool, for the summary line at exit.
type Stats struct {
	Flushes         int64 // calls to Flush
	Records         int64 // events decoded
	Requests        int64 // PutRecords requests sent
	RequestErrors   int64 // requests that failed as a whole
	RecordsSent     int64 // records in the requests sent
	BytesSent       int64 // their size (data + partition key)
	Accepted        int64 // records accepted by Kinesis
	Failed          int64 // records not accepted
	SkippedOversize int64 // records larger than MaxRecordSize
	SkippedNoLogKey int64 // records without the log_key
	SkippedInvalid  int64 // records the encoder rejected (e.g. not a map)
}

// String is the summary line of the totals, e.g. for the exit log.
func (s Stats) String() string {
	return fmt.Sprintf("%d flushes, %d records: %d accepted, %d failed, %d skipped "+
		"(%d oversize, %d without log_key, %d invalid); %d requests (%d failed) sent %d records, %d bytes",
		s.Flushes, s.Records, s.Accepted, s.Failed, s.SkippedOversize+s.SkippedNoLogKey+s.SkippedInvalid,
		s.SkippedOversize, s.SkippedNoLogKey, s.SkippedInvalid, s.Requests, s.RequestErrors, s.RecordsSent, s.BytesSent)
}

type counters struct {
	flushes, records, requests, requestErrors, recordsSent, bytesSent, accepted, failed,
	skippedOversize, skippedNoLogKey, skippedInvalid atomic.Int64
}

// Pool hands each concurrent flush its own batcher. It is safe for concurrent use.
type Pool struct {
	putter        Putter
	recordOpts    record.Options
	maxRecordSize int
	log           *slog.Logger

	mu       sync.Mutex
	free     []*batcher // idle batchers, reused to keep their buffers
	closed   bool
	inflight sync.WaitGroup

	stats counters
}

// NewPool returns a pool sending through p.
func NewPool(p Putter, o Options) *Pool {
	max := o.MaxRecordSize
	if max <= 0 {
		max = kinesis.DefaultMaxRecordSize
	}
	max = min(max, kinesis.MaxRequestBytes)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Pool{putter: p, recordOpts: o.Record, maxRecordSize: max, log: log}
}

// Flush decodes, encodes, batches and sends chunk, and returns once every request is answered.
//
// The error is nil when every record was accepted or deliberately skipped. Otherwise it is a
// *DeliveryError (errors.Is ErrNotDelivered) when some records were not accepted, an error wrapping
// ErrBadChunk (and the decoder's error) when the chunk could not be decoded to its end, or ErrClosed.
// When both delivery and decoding failed, ErrNotDelivered wins: a retry may still deliver the good
// records, and the decoding error surfaces then (DeliveryError.DecodeErr keeps it meanwhile).
func (p *Pool) Flush(ctx context.Context, chunk []byte, tag string) (Result, error) {
	b, err := p.acquire()
	if err != nil {
		return Result{}, err
	}
	defer p.release(b)

	b.begin(tag)
	b.dec.Reset(chunk)
	var ev record.Event
	for b.dec.Next(&ev) {
		b.addEvent(ctx, &ev)
	}
	decErr := b.dec.Err()
	b.dec.Reset(nil) // do not keep the chunk alive
	return b.end(ctx, decErr)
}

// Close waits for in-flight flushes to finish, or for ctx to end; later flushes fail with ErrClosed.
// It does not close the Putter.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.free = nil
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("batcher: close: flushes still in flight: %w", ctx.Err())
	}
}

// Stats returns the pool's totals.
func (p *Pool) Stats() Stats {
	s := &p.stats
	return Stats{
		Flushes:         s.flushes.Load(),
		Records:         s.records.Load(),
		Requests:        s.requests.Load(),
		RequestErrors:   s.requestErrors.Load(),
		RecordsSent:     s.recordsSent.Load(),
		BytesSent:       s.bytesSent.Load(),
		Accepted:        s.accepted.Load(),
		Failed:          s.failed.Load(),
		SkippedOversize: s.skippedOversize.Load(),
		SkippedNoLogKey: s.skippedNoLogKey.Load(),
		SkippedInvalid:  s.skippedInvalid.Load(),
	}
}

func (p *Pool) acquire() (*batcher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.inflight.Add(1) // under mu, so that Close's Wait cannot start between the check and the Add
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b, nil
	}
	return p.newBatcher(), nil
}

// maxKeptArena bounds the buffer a batcher keeps between flushes: a full request and one record.
const maxKeptArena = 2 * kinesis.MaxRequestBytes

func (p *Pool) release(b *batcher) {
	if cap(b.arena) > maxKeptArena {
		b.arena = nil // a huge skipped record grew it: let it go
	}
	p.mu.Lock()
	if !p.closed {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
	p.inflight.Done()
}

func (p *Pool) newBatcher() *batcher {
	var seed [8]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand.Read crashes the program instead)
	return &batcher{
		pool:    p,
		enc:     record.NewEncoder(p.recordOpts),
		keys:    kinesis.NewKeyGen(binary.LittleEndian.Uint64(seed[:])),
		spans:   make([]span, 0, kinesis.MaxRecordsPerRequest),
		entries: make([]kinesis.Entry, 0, kinesis.MaxRecordsPerRequest),
	}
}
