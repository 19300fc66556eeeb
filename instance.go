package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/shards"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/transport"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// drainTimeout bounds how long exit waits for in-flight flushes; past it, their context is
// cancelled (they stop sending and return FLB_RETRY) and exit waits cancelGrace more at most.
const (
	drainTimeout = 2 * time.Minute
	cancelGrace  = 10 * time.Second
)

// outcome is what a flush means for the chunk; plugin.go maps it to FLB codes.
type outcome int

const (
	outcomeDelivered outcome = iota // every record accepted or deliberately skipped
	outcomeRetry                    // some records not accepted: Fluent Bit should flush it again
	outcomeDrop                     // the chunk can never be fully delivered: Fluent Bit drops it
)

// instance is one [OUTPUT] section of the plugin.
type instance struct {
	name   string
	log    *slog.Logger
	client *kinesis.Client
	pool   *batcher.Pool
	// ctx is every flush's context, cancelled only when exit has waited drainTimeout for them.
	ctx     context.Context
	cancel  context.CancelFunc
	summary *summary
	metrics instanceMetrics // nil without metrics
	// limit is the stream's maximum record size with max_record_size auto, nil otherwise.
	limit        *streamLimit
	lastOversize atomic.Int64 // the pool's SkippedOversize when oversizeSkipped last looked
	// yields: flushes run on goroutines while Fluent Bit's coroutine yields (flush.c), at most
	// cap(yielding) at once (see flushMode). heldOnce warns of the first flush that could not.
	yields   atomic.Bool
	yielding chan struct{}
	heldOnce sync.Once

	closeOnce sync.Once
}

// instanceEnv is what the host gives an instance besides its configuration.
type instanceEnv struct {
	plugin, name string // the output plugin's name, and the instance's as Fluent Bit prints it
	// host is Fluent Bit's logger, nil when the host has none: lines then go to stderr, at the
	// level of KINESIS_STREAMS_GO_LOG_LEVEL.
	host hostLogger
	// metrics are the instance's metrics in the host, nil when it keeps none.
	metrics instanceMetrics
	// canYield: the host exports what a flush needs to yield its coroutine (flush.c).
	canYield bool
}

// instanceMetrics are an instance's metrics in its host (cmtMetrics in Fluent Bit).
type instanceMetrics interface {
	update(batcher.Stats)           // set every metric from the pool's totals
	observeRequest(d time.Duration) // one PutRecords request's duration
}

// newInstance parses the configuration and builds the client and the pool of
// one instance. Every failure is logged here, once.
func newInstance(g config.Getter, env instanceEnv) (*instance, error) {
	levelEnv := os.Getenv(LogLevelEnv)
	level, ok := parseLogLevel(levelEnv)
	h := newFluentBitHandler(os.Stderr, env.plugin, env.name, level)
	log := slog.New(h)
	switch {
	case env.host != nil:
		h.withHost(env.host)
		if levelEnv != "" {
			log.Warn(fmt.Sprintf("%s=%s has no effect in Fluent Bit: the output's log_level, or the service's Log_Level, applies",
				LogLevelEnv, levelEnv))
		}
	case !ok:
		log.Warn(fmt.Sprintf("invalid %s value %q: want off, error, warn, info, debug or trace; logging at info",
			LogLevelEnv, levelEnv))
	}
	cfg, err := config.Parse(g)
	if err != nil {
		log.Error(err.Error())
		return nil, err
	}
	client, err := kinesis.New(context.Background(), kinesis.Options{
		Region:      cfg.Region,
		Stream:      cfg.Stream,
		Endpoint:    cfg.Endpoint,
		STSEndpoint: cfg.STSEndpoint,
		RoleARN:     cfg.RoleARN,
		ExternalID:  cfg.ExternalID,
		Profile:     cfg.Profile,
		AutoRetry:   cfg.AutoRetryRequests,
		HTTPTimeout: cfg.HTTPRequestTimeout,

		UseFIPSEndpoint:      cfg.UseFIPSEndpoint,
		UseDualStackEndpoint: cfg.UseDualStackEndpoint,
		MaxConns:             cfg.MaxInFlight,
		Protocol:             cfg.Protocol,
	})
	if err != nil {
		log.Error(err.Error())
		return nil, err
	}
	log.Info("initialized: " + cfg.String())
	if t := client.HTTPTransport(); t != "sync" {
		log.Info(fmt.Sprintf("http transport: %s (Go's net/http), as %s asks", t, transport.ModeEnv))
	}
	if p := client.PutRecordsPath(); p != kinesis.PathDirect {
		log.Info(fmt.Sprintf("PutRecords path: %s (the SDK's middleware), as %s asks", p, kinesis.PutRecordsPathEnv))
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	var limit *streamLimit
	var recordSizeLimit func() int
	if cfg.MaxRecordSize == config.MaxRecordSizeAuto {
		limit = newStreamLimit(log, client.DescribeStream)
		recordSizeLimit = limit.get
	}
	if err := startupCheck(log, client, cfg, limit); err != nil {
		client.Close()
		return nil, err
	}
	var putter batcher.Putter = client
	if limit != nil {
		putter = limitWatch{putter, limit}
	}
	if env.metrics != nil {
		putter = timedPutter{putter, env.metrics.observeRequest}
	}
	pool := batcher.NewPool(putter, batcher.Options{
		MaxRecordSize:   cfg.MaxRecordSize,
		RecordSizeLimit: recordSizeLimit,
		Record: record.Options{
			TimeKey:       cfg.TimeKey,
			TimeFormat:    cfg.TimeFormat,
			LogKey:        cfg.LogKey,
			DataKeys:      cfg.DataKeys,
			ReplaceDots:   cfg.ReplaceDots,
			AppendNewline: cfg.AppendNewline,
		},
		Logger:            log,
		PartitionKey:      cfg.PartitionKey,
		Compression:       cfg.Compression,
		Aggregation:       cfg.Aggregation,
		SimpleAggregation: cfg.SimpleAggregation,
		Shards:            client,
		MaxInFlight:       cfg.MaxInFlight,
	})
	maxRecordSize := cfg.MaxRecordSize
	if limit != nil {
		maxRecordSize = limit.get()
	}
	logFeatures(log, cfg, maxRecordSize)
	ctx, cancel := context.WithCancel(context.Background())
	yields, info, warning := flushMode(env.canYield, !cfg.PartitionKey.IsZero())
	if warning != "" {
		log.Warn(warning)
	}
	if info != "" && env.host != nil {
		log.Info(info)
	}
	inst := &instance{name: env.name, log: log, client: client, pool: pool, ctx: ctx, cancel: cancel,
		summary: startSummary(log, cfg.SummaryInterval, pool.Stats), metrics: env.metrics, limit: limit,
		yielding: make(chan struct{}, yieldingFlushes(cfg.MaxInFlight))}
	inst.yields.Store(yields)
	return inst, nil
}

// logFeatures writes one line per packing feature that is on, saying what it does; maxRecordSize
// is the maximum record size in effect.
func logFeatures(log *slog.Logger, cfg config.Config, maxRecordSize int) {
	if !cfg.PartitionKey.IsZero() {
		log.Info(fmt.Sprintf("partition_key: a record's partition key is its field %q, and a key's records reach their shard in order "+
			"(one request in flight per shard); a record without a usable value gets a random key", cfg.PartitionKey.String()))
	}
	if cfg.Compression != compress.None {
		log.Info(fmt.Sprintf("compression: each Kinesis record's data is compressed with %s; max_record_size applies to the compressed data",
			cfg.Compression))
	}
	switch {
	case cfg.Aggregation && !cfg.PartitionKey.IsZero():
		log.Info(fmt.Sprintf("aggregation: KPL aggregated records of up to %d bytes, shard-aware: the stream's shards are listed "+
			"(kinesis:ListShards) every %v, and each aggregate holds the records of one shard", maxRecordSize, shards.DefaultRefresh))
	case cfg.Aggregation:
		log.Info(fmt.Sprintf("aggregation: KPL aggregated records of up to %d bytes, the records of each aggregate sharing one random partition key",
			maxRecordSize))
	case cfg.SimpleAggregation:
		log.Info(fmt.Sprintf("simple_aggregation: records, each ending with a newline, are joined into Kinesis records of up to %d bytes",
			maxRecordSize))
	}
}

// flush sends one chunk and says what Fluent Bit should do with it.
func (i *instance) flush(chunk []byte, tag string) outcome {
	res, err := i.pool.Flush(i.ctx, chunk, tag)
	if i.metrics != nil {
		i.metrics.update(i.pool.Stats())
	}
	if i.limit != nil {
		i.limit.afterFlush(res.Skipped > 0 && i.oversizeSkipped())
	}
	return i.outcome(err, tag)
}

// flushYielding is flush for a flush that runs while Fluent Bit's coroutine yields: it waits
// first for one of the instance's cap(yielding) turns, so that the chunks Fluent Bit hands over
// at once are not all packed at once.
func (i *instance) flushYielding(chunk []byte, tag string) outcome {
	select {
	case i.yielding <- struct{}{}:
	case <-i.ctx.Done():
		return outcomeRetry
	}
	defer func() { <-i.yielding }()
	return i.flush(chunk, tag)
}

// flushHeld is told that a flush held its worker, as it could not yield for the reason why. When
// lasting, no later flush can yield either and none tries; it warns the first time.
func (i *instance) flushHeld(why string, lasting bool) {
	if lasting {
		i.yields.Store(false)
	}
	i.heldOnce.Do(func() {
		then := "this flush holds its worker until the chunk's last answer"
		if lasting {
			then = "flushes hold their worker until the chunk's last answer from now on"
		}
		i.log.Warn("a flush could not yield its worker (" + why + "): " + then)
	})
}

// oversizeSkipped reports whether records were skipped as too large since it was last called.
func (i *instance) oversizeSkipped() bool {
	n := i.pool.Stats().SkippedOversize
	return i.lastOversize.Swap(n) != n
}

// timedPutter passes each request's duration to observe.
type timedPutter struct {
	batcher.Putter
	observe func(time.Duration)
}

func (p timedPutter) PutRecords(ctx context.Context, entries []kinesis.Entry) (kinesis.PutResult, error) {
	start := time.Now()
	res, err := p.Putter.PutRecords(ctx, entries)
	p.observe(time.Since(start))
	return res, err
}

// outcome classifies a flush error. Undeliverable data is dropped; anything
// that a later attempt may fix (throttling, network, credentials, a missing
// stream) is retried, and the retry sends only what was not delivered.
func (i *instance) outcome(err error, tag string) outcome {
	switch {
	case err == nil:
		return outcomeDelivered
	case errors.Is(err, batcher.ErrNotDelivered):
		// The batcher has already logged the failure counts (rate-limited).
		return outcomeRetry
	case errors.Is(err, batcher.ErrRejected):
		// Kinesis refused a request as invalid: our bug, which a retry would repeat. The
		// batcher has logged the request's shape.
		return outcomeDrop
	case errors.Is(err, batcher.ErrBadChunk):
		i.log.Error(fmt.Sprintf("tag %q: %v: the readable records were delivered, the chunk is dropped", tag, err))
		return outcomeDrop
	default:
		i.log.Error(fmt.Sprintf("tag %q: %v: chunk will be retried", tag, err))
		return outcomeRetry
	}
}

// close drains in-flight flushes (their resends included), closes
// connections and logs one summary line. Flushes still running after
// drainTimeout are cancelled: they stop sending and report their records as
// not delivered. It is safe to call more than once.
func (i *instance) close() {
	i.closeOnce.Do(func() {
		i.summary.stop()
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		if err := i.pool.Close(ctx); err != nil {
			i.log.Warn(fmt.Sprintf("exit: %v after %v: cancelling them", err, drainTimeout))
			i.cancel()
			grace, cancelGraceCtx := context.WithTimeout(context.Background(), cancelGrace)
			defer cancelGraceCtx()
			if err := i.pool.Close(grace); err != nil {
				i.log.Error("exit: " + err.Error())
			}
		}
		i.cancel()
		if i.limit != nil {
			i.limit.close()
		}
		i.client.Close()
		stats := i.pool.Stats()
		if i.metrics != nil {
			i.metrics.update(stats)
		}
		i.log.Info("exit: " + stats.String())
	})
}

// summary logs, every interval while records flow, one info line with what changed since the
// last one. It runs one goroutine, which stop ends and waits for. A nil summary (the interval is
// off) does nothing.
type summary struct {
	log   *slog.Logger
	every time.Duration
	stats func() batcher.Stats
	quit  chan struct{}
	done  chan struct{}
}

func startSummary(log *slog.Logger, every time.Duration, stats func() batcher.Stats) *summary {
	if every <= 0 {
		return nil // summary_interval off
	}
	s := &summary{log: log, every: every, stats: stats, quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *summary) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	last := s.stats()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			now := s.stats()
			if line, ok := summaryLine(last, now, s.every); ok {
				s.log.Info(line)
			}
			last = now
		}
	}
}

// stop ends the goroutine and waits for it; safe to call more than once and on a nil summary.
func (s *summary) stop() {
	if s == nil {
		return
	}
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// summaryLine describes what changed from prev to cur, or false when nothing did.
func summaryLine(prev, cur batcher.Stats, every time.Duration) (string, bool) {
	d := cur.Since(prev)
	if d.Flushes == 0 && d.Records == 0 && d.Requests == 0 {
		return "", false
	}
	return fmt.Sprintf("last %v: %d records, %d accepted, %d skipped; %d requests, %d bytes; "+
		"%d throttled, %d resent, %d chunks to be retried",
		every, d.Records, d.Accepted, d.Skipped(), d.Requests, d.BytesSent, d.Throttled, d.Resent, d.NotDelivered), true
}

// yieldingFlushes is how many flushes that yield may pack and send at once: 2 for the default
// max_in_flight of 32, whose requests nearly fill it (a 2 MB chunk makes 10 to 13). Each holds its
// chunk's records encoded until they are answered: in real Fluent Bit, 4 at once took 29 MB more
// than flushes that block, 2 took 12 MB more, and both delivered as fast at 50 ms a request.
func yieldingFlushes(maxInFlight int) int { return max(2, maxInFlight/16) }
