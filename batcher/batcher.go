// Package batcher turns a chunk into PutRecords requests.
// STUB: replaced by the real implementation.
package batcher

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// Putter sends one PutRecords request; *kinesis.Client is one.
type Putter interface {
	PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error)
}

var _ Putter = (*kinesis.Client)(nil)

var (
	// ErrBadChunk: the chunk (or its tail) could not be decoded; retrying cannot help.
	ErrBadChunk = errors.New("batcher: chunk cannot be decoded")
	// ErrNotDelivered: some records were not accepted by Kinesis; the chunk should be retried.
	ErrNotDelivered = errors.New("batcher: records not delivered")
)

// Options configure a Pool.
type Options struct {
	MaxRecordSize int
	Record        record.Options
	Logger        *slog.Logger
}

// Result counts what one flush did.
type Result struct {
	Records  int // events decoded
	Accepted int // accepted by Kinesis
	Failed   int // not accepted
	Skipped  int // deliberately skipped (oversize, missing log_key)
}

// Pool hands each concurrent flush its own batcher.
type Pool struct{}

// NewPool returns a pool sending through p.
func NewPool(p Putter, o Options) *Pool { return &Pool{} }

// Flush decodes, encodes, batches and sends chunk.
func (p *Pool) Flush(ctx context.Context, chunk []byte, tag string) (Result, error) {
	return Result{}, nil
}

// Close waits for in-flight flushes to finish.
func (p *Pool) Close(ctx context.Context) error { return nil }
