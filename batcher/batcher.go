// Package batcher turns a Fluent Bit chunk into PutRecords requests and sees them delivered: it
// decodes and encodes the chunk's events (package record), packs the encoded records into Kinesis
// records and commits them to requests under the PutRecords limits, which package requests sends
// through a Putter, resending only the entries Kinesis did not accept (matched by index) with a
// bounded jittered backoff (requests.Retry), and remembers in a Ledger which records of a chunk it
// will be flushed again were accepted, so that the next flush sends only the rest. A Pool gives each concurrent flush its own batcher, so that Fluent Bit's workers
// can flush in parallel.
//
// A Kinesis record is one encoded record (its partition key from a field, or random), or several
// joined by newlines (simple aggregation), or a KPL aggregate (aggregation; one per shard when a
// partition key field and a shard map make it shard-aware), its data compressed if asked. A
// Kinesis record that carries several events is accepted, resent (the same bytes) and remembered
// by the Ledger as a unit: its events are all delivered, or none is.
//
// # Delivery
//
// A flush returns nil only when Kinesis accepted every record of the chunk, or the record was
// skipped on purpose (larger than the maximum record size, without the log_key). Otherwise:
//
//   - ErrNotDelivered (a *DeliveryError): some records are still not accepted after the in-flush
//     resends; the Ledger remembers the others, and the chunk should be flushed again.
//   - ErrRejected: Kinesis refused a request as invalid (ValidationException...), which is a bug of
//     ours and will not change; the other records were delivered.
//   - ErrBadChunk: the chunk cannot be decoded, or some of its records cannot be encoded; the others
//     were delivered.
//
// A record Kinesis accepted is never sent again, neither within a flush nor, through the ledger, by
// a later flush of the same chunk. Duplicates can come from one place only: a request whose outcome
// is unknown. When a request fails as a whole after it may have reached Kinesis (a timeout, a
// connection reset or closed while waiting for the answer, a 5xx, an answer that does not match the
// request), Kinesis may or may not have stored its records, and PutRecords has no idempotency key:
// they are sent again, so each may be stored twice. The one other case is a chunk the Ledger had to
// forget (see Ledger), which is sent whole if flushed again.
//
// It does not know about cgo or Fluent Bit's return codes (package main maps its errors), nor about
// the AWS SDK (package kinesis).
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
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pace"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/requests"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/shards"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/ledger"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// Putter sends one PutRecords request; *kinesis.Client is one. See requests.Putter.
type Putter = requests.Putter

var (
	// ErrBadChunk: the chunk (or its tail) could not be decoded, or some of its records could not
	// be encoded; retrying cannot help.
	ErrBadChunk = errors.New("batcher: chunk cannot be decoded")
	// ErrNotDelivered: some records were not accepted by Kinesis; the chunk should be flushed
	// again, and the next flush sends only those. The error returned is a *DeliveryError.
	ErrNotDelivered = errors.New("batcher: records not delivered")
	// ErrRejected: Kinesis refused some requests as invalid (ValidationException,
	// InvalidArgumentException...), so their records will never be accepted: a bug of ours. The
	// flush's other records were delivered. The error also wraps the request's error.
	ErrRejected = errors.New("batcher: records rejected by kinesis")
	// ErrClosed: Flush was called after Close.
	ErrClosed = errors.New("batcher: pool is closed")
)

// DeliveryError says how many records of a flush Kinesis did not accept, and why. It matches
// ErrNotDelivered with errors.Is, and unwraps to the first request error, if any (so that
// kinesis.Classify can classify it).
type DeliveryError struct {
	Failed   int    // records not accepted at the end of the flush
	Total    int    // records the flush had to deliver: not skipped, not delivered by an earlier flush
	Attempts int    // the most times a record of the flush was sent (1 when nothing was resent)
	Code     string // the first failure's error code, e.g. ProvisionedThroughputExceededException
	// Class is why the flush stopped resending: kinesis.ClassRetryable when its attempts or its
	// time ran out, otherwise the class of the error that made it stop (credentials, not found,
	// canceled).
	Class kinesis.ErrorClass
	Err   error // the first request error, when a whole request failed
	// DecodeErr is set when the chunk also failed to decode after some events: the good events
	// were sent, and the error surfaces as ErrBadChunk on the retry, once the rest is delivered.
	DecodeErr error
}

func (e *DeliveryError) Error() string {
	msg := fmt.Sprintf("batcher: %d of %d records not delivered after %d attempts: %s", e.Failed, e.Total, e.Attempts, e.reason())
	if e.DecodeErr != nil {
		msg += "; the chunk's tail cannot be decoded: " + e.DecodeErr.Error()
	}
	return msg
}

func (e *DeliveryError) reason() string {
	switch {
	case e.Code != "" && e.Err != nil && e.Code != kinesis.ErrorCode(e.Err):
		return e.Code + "; " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	case e.Code != "":
		return e.Code
	}
	return "unknown"
}

// Is makes errors.Is(err, ErrNotDelivered) true.
func (e *DeliveryError) Is(target error) bool { return target == ErrNotDelivered }

// Unwrap returns the first request error.
func (e *DeliveryError) Unwrap() error { return e.Err }

// DefaultLogInterval is the least time between two lines of one kind from one pool (failed flushes
// as warnings, as errors, skipped records, shard map changes); the lines held back are counted in
// the next one.
const DefaultLogInterval = 10 * time.Second

// DefaultMaxInFlight is the default bound of the requests a pool has in flight together, all its
// flushes included.
const DefaultMaxInFlight = 32

// MaxMaxInFlight bounds Options.MaxInFlight: each request in flight may hold a 10 MiB request's
// data, and a connection.
const MaxMaxInFlight = 256

// Options configure a Pool.
type Options struct {
	// MaxRecordSize is the stream's maximum record size (data + partition key); a larger record is
	// skipped. 0 means limits.DefaultMaxRecordSize; it is capped at limits.MaxRequestBytes.
	MaxRecordSize int
	Record        record.Options
	Logger        *slog.Logger // nil discards
	// Retry is the in-flush retry policy; its unset fields take requests.DefaultRetry's.
	Retry requests.Retry
	// Ledger remembers partly delivered chunks; nil means ledger.New(0, 0).
	Ledger *ledger.Ledger
	// LogInterval rate-limits each kind of line a pool writes per flush; 0 means
	// DefaultLogInterval, a negative value no limit.
	LogInterval time.Duration

	// PartitionKey is the record field whose value is each record's partition key; a record
	// without a usable value, or every record when it is zero, gets a random key.
	PartitionKey record.KeyPath
	// Compression compresses each Kinesis record's data: a plain record, a whole KPL aggregate,
	// or a simple_aggregation record. MaxRecordSize applies to the compressed data.
	Compression compress.Kind
	// Aggregation packs records into KPL aggregated records. With PartitionKey and Shards it is
	// shard-aware: an aggregate holds the records of one shard only.
	Aggregation bool
	// SimpleAggregation joins records, each ending with a newline, into one Kinesis record up to
	// MaxRecordSize, with a random partition key. Aggregation wins when both are set.
	SimpleAggregation bool
	// Shards lists the stream's shards: for per-shard pacing, packing by shard with
	// PartitionKey, shard-aware aggregation, and random keys spread over the shards. nil means
	// no shard map.
	Shards shards.Lister
	// ShardMapRefresh is how long a shard map is used before it is listed again; 0 means
	// shards.DefaultRefresh. It is listed again sooner when Kinesis puts an aggregate in another
	// shard than the map's (the stream was resharded).
	ShardMapRefresh time.Duration

	// RecordSizeLimit, when set, gives the maximum record size in MaxRecordSize's place when each
	// flush begins (a value <= 0 leaves MaxRecordSize): the stream's own, which can change.
	RecordSizeLimit func() int

	// MaxInFlight bounds the requests the pool's flushes have in flight together; 0 means
	// DefaultMaxInFlight, and it is capped at MaxMaxInFlight. Each may hold a request's data (up
	// to 10 MiB) until it is answered.
	MaxInFlight int
}

// Result counts what one flush did, in events (Fluent Bit records): a Kinesis record that
// aggregates several events is accepted, failed or rejected with all of them.
// Records = Accepted + Failed + Rejected + Skipped + Earlier.
type Result struct {
	Records  int // events decoded
	Accepted int // accepted by Kinesis in this flush
	Failed   int // not accepted at the end of the flush, to be sent by the next flush of the chunk
	Rejected int // refused by Kinesis as invalid requests: never accepted
	Skipped  int // deliberately skipped (oversize, missing log_key), or not encodable (not a map)
	Earlier  int // delivered (or skipped) by an earlier flush of the same chunk: not sent again
}

// Pool hands each concurrent flush its own batcher. It is safe for concurrent use.
type Pool struct {
	putter        Putter
	recordOpts    record.Options
	maxRecordSize int
	log           *slog.Logger
	retry         requests.Retry
	ledger        *ledger.Ledger
	warnLimit     loglimit.Limiter // lines about flushes with failures
	errorLimit    loglimit.Limiter // lines about credentials, missing streams, rejected requests
	skipLimit     loglimit.Limiter // lines about skipped records
	keyPath       record.KeyPath
	compression   compress.Kind
	packing       packing
	aggMaxSize    int           // the aggregator's limit, so that a compressed aggregate fits maxRecordSize
	shards        *shards.Cache // the stream's shard map, nil without a lister
	maxInFlight   int
	sched         *pace.Scheduler
	// bufs keeps idle request buffers: at most 2·maxInFlight (besides those in flight, each flush
	// holds a few: its open and sealed requests).
	bufs *requests.Buffers
	// senders run the flushes' requests (kept goroutines, each ending when idle).
	senders *requests.Senders

	mu       sync.Mutex
	free     []*batcher // idle batchers, reused to keep their buffers
	closed   bool
	inflight sync.WaitGroup

	statsMu sync.Mutex
	stats   Stats // the counts; the ledger's are read by Stats

	// recordSizeLimit is Options.RecordSizeLimit: when set, it overrides maxRecordSize per flush.
	recordSizeLimit func() int
}

// NewPool returns a pool sending through p.
func NewPool(p Putter, o Options) *Pool {
	max := o.MaxRecordSize
	if max <= 0 {
		max = limits.DefaultMaxRecordSize
	}
	max = min(max, limits.MaxRequestBytes)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	led := o.Ledger
	if led == nil {
		led = ledger.New(0, 0)
	}
	every := o.LogInterval
	if every == 0 {
		every = DefaultLogInterval
	}
	pk := packPlain
	switch {
	case o.Aggregation:
		pk = packKPL
	case o.SimpleAggregation:
		pk = packSimple
	}
	inFlight := o.MaxInFlight
	if inFlight <= 0 {
		inFlight = DefaultMaxInFlight
	}
	inFlight = min(inFlight, MaxMaxInFlight)
	var seed [8]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand.Read crashes the program instead)
	pool := &Pool{
		putter:        p,
		recordOpts:    o.Record,
		maxRecordSize: max,
		log:           log,
		retry:         o.Retry.WithDefaults(),
		ledger:        led,
		warnLimit:     loglimit.Limiter{Every: every},
		errorLimit:    loglimit.Limiter{Every: every},
		skipLimit:     loglimit.Limiter{Every: every},
		keyPath:       o.PartitionKey,
		compression:   o.Compression,
		packing:       pk,
		aggMaxSize:    aggregateLimit(max, o.Compression),
		maxInFlight:   inFlight,
		sched:         pace.New(inFlight),
		bufs:          requests.NewBuffers(2 * inFlight),
		senders:       requests.NewSenders(),
	}
	pool.recordSizeLimit = o.RecordSizeLimit
	pool.shards = shards.New(shards.Options{
		Lister:      o.Shards,
		Refresh:     o.ShardMapRefresh,
		Log:         log,
		Warn:        &pool.warnLimit,
		LogInterval: every,
		KeySeed:     binary.LittleEndian.Uint64(seed[:]),
		SetMap:      pool.sched.SetMap,
		Uses:        pool.shardUses(),
		Loss:        pool.shardLoss(),
		LossMatters: pool.packing == packKPL && !pool.keyPath.IsZero(),
	})
	return pool
}

// shardUses says what the shard map is for in this pool, for log lines.
func (p *Pool) shardUses() string {
	uses := "requests are paced per shard"
	if !p.keyPath.IsZero() {
		uses += ", packed by shard"
	}
	if p.packing == packKPL && !p.keyPath.IsZero() {
		uses += ", and aggregation is shard-aware"
	}
	return uses
}

// shardLoss says what goes without a shard map, for log lines.
func (p *Pool) shardLoss() string {
	loss := "requests are not paced per shard (throttling lowers the requests in flight instead)"
	if p.packing == packKPL && !p.keyPath.IsZero() {
		loss += ", and each aggregate goes to the shard of its first record's partition key, so a consumer that " +
			"checks shards (the KCL) may drop its other records"
	}
	return loss
}

// Flush decodes, encodes, batches and sends chunk, with up to the pool's MaxInFlight requests in
// flight (shared with the other flushes), resends what Kinesis did not accept, and returns once
// every request it started is answered. chunk is only read during the call.
//
// The error is nil when every record was accepted or deliberately skipped, now or by an earlier
// flush of the same chunk and tag. Otherwise it is a *DeliveryError (errors.Is ErrNotDelivered)
// when some records are still not accepted, an error wrapping ErrRejected when Kinesis refused
// some requests as invalid, an error wrapping ErrBadChunk (and the decoder's or encoder's error)
// when the chunk could not be decoded to its end, or ErrClosed. ErrNotDelivered wins over the
// others, and ErrRejected over ErrBadChunk: a retry may still deliver the good records, and the
// other errors surface then (DeliveryError.DecodeErr keeps a decoding error meanwhile).
func (p *Pool) Flush(ctx context.Context, chunk []byte, tag string) (Result, error) {
	b, err := p.acquire()
	if err != nil {
		return Result{}, err
	}
	defer p.release(b)

	// Hash only when needed: to look the chunk up in a ledger that is not empty, or (below) to
	// remember a chunk that was not fully delivered.
	var key ledger.Key
	hashed := false
	var earlier ledger.Bitset
	if p.ledger.Len() > 0 {
		key, hashed = ledger.KeyOf(chunk, tag), true
		earlier, _ = p.ledger.Take(key)
	}

	b.begin(tag, earlier, p.shards.Map(ctx))
	b.dec.Reset(chunk)
	var ev record.Event
	for b.addNext(ctx, &ev) {
	}
	decErr := b.dec.Err()
	b.dec.Reset(nil) // do not keep the chunk alive
	res, err := b.end(ctx, decErr)

	if remember := b.f.remember; remember != nil {
		b.f.remember = nil
		if !hashed {
			key = ledger.KeyOf(chunk, tag)
		}
		if n := p.ledger.Put(key, remember); n > 0 {
			p.logLedgerEviction(n)
		}
	}
	return res, err
}

// Close waits for in-flight flushes to finish, or for ctx to end; later flushes fail with ErrClosed.
// It does not close the Putter.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.free = nil
	p.mu.Unlock()
	p.bufs.Close()
	p.senders.Close()

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
	p.statsMu.Lock()
	s := p.stats
	p.statsMu.Unlock()
	s.LedgerChunks, s.LedgerEvicted = int64(p.ledger.Len()), p.ledger.Evicted()
	return s
}

// addStats adds a flush's counts to the pool's totals.
func (p *Pool) addStats(s Stats) {
	p.statsMu.Lock()
	p.stats.add(s)
	p.statsMu.Unlock()
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

// maxKeptArena bounds a scratch buffer kept between flushes: a full request and one record.
const maxKeptArena = 2 * limits.MaxRequestBytes

func (p *Pool) release(b *batcher) {
	b.releaseAggregates()
	if cap(b.raw) > maxKeptArena {
		b.raw = nil
	}
	if cap(b.scratch) > maxKeptArena {
		b.scratch = nil
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
		comp:    compress.New(p.compression),
		keyStrs: make(map[string]keyInfo),
		rr:      int(seed[0]),
		queues: requests.New(requests.Config{
			Putter:    p.putter,
			Scheduler: p.sched,
			Buffers:   p.bufs,
			Senders:   p.senders,
			Retry:     p.retry,
			MaxQueues: p.maxInFlight,
			Resharded: p.shards.Changed,
		}),
	}
}
