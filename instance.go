package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
)

// drainTimeout bounds how long exit waits for in-flight flushes.
const drainTimeout = 2 * time.Minute

// outcome is what a flush means for the chunk; plugin.go maps it to FLB codes.
type outcome int

const (
	outcomeDelivered outcome = iota // every record accepted or deliberately skipped
	outcomeRetry                    // some records not accepted: Fluent Bit should flush it again
	outcomeDrop                     // the chunk can never be delivered: Fluent Bit drops it
)

// instance is one [OUTPUT] section of the plugin.
type instance struct {
	name   string
	log    *slog.Logger
	client *kinesis.Client
	pool   *batcher.Pool

	closeOnce sync.Once
}

// newInstance parses the configuration and builds the client and the pool.
// Every failure is logged here, once.
func newInstance(g config.Getter, name string) (*instance, error) {
	log := newLogger(os.Stderr, name)
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
	})
	if err != nil {
		log.Error(err.Error())
		return nil, err
	}
	pool := batcher.NewPool(client, batcher.Options{
		MaxRecordSize: cfg.MaxRecordSize,
		Record: record.Options{
			TimeKey:       cfg.TimeKey,
			TimeFormat:    cfg.TimeFormat,
			LogKey:        cfg.LogKey,
			AppendNewline: cfg.AppendNewline,
		},
		Logger: log,
	})
	log.Info("initialized: " + cfg.String())
	return &instance{name: name, log: log, client: client, pool: pool}, nil
}

// flush sends one chunk and says what Fluent Bit should do with it.
func (i *instance) flush(chunk []byte, tag string) outcome {
	_, err := i.pool.Flush(context.Background(), chunk, tag)
	return i.outcome(err, tag)
}

// outcome classifies a flush error. Undeliverable data is dropped; anything
// that a later attempt may fix (throttling, network, credentials) is retried.
func (i *instance) outcome(err error, tag string) outcome {
	switch {
	case err == nil:
		return outcomeDelivered
	case errors.Is(err, batcher.ErrNotDelivered):
		// The batcher has already logged the failure counts.
		return outcomeRetry
	case errors.Is(err, batcher.ErrBadChunk):
		i.log.Error(fmt.Sprintf("tag %q: %v: the readable records were delivered, the chunk is dropped", tag, err))
		return outcomeDrop
	default:
		i.log.Error(fmt.Sprintf("tag %q: %v: chunk will be retried", tag, err))
		return outcomeRetry
	}
}

// close drains in-flight flushes, closes connections and logs a summary. It
// is safe to call more than once.
func (i *instance) close() {
	i.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		if err := i.pool.Close(ctx); err != nil {
			i.log.Warn("exit: " + err.Error())
		}
		i.client.Close()
		i.log.Info("exit: " + i.pool.Stats().String())
	})
}

// registry holds the live instances, so that FLBPluginExit can close those
// that FLBPluginExitCtx did not, and names them as Fluent Bit numbers them.
type registry struct {
	mu    sync.Mutex
	next  int
	alive map[*instance]struct{}
}

var instances = &registry{alive: make(map[*instance]struct{})}

// nextName returns the instance name Fluent Bit gives the next [OUTPUT] of
// this plugin: instances are initialised in config order, numbered from 0.
func (r *registry) nextName() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := fmt.Sprintf("%s.%d", pluginName, r.next)
	r.next++
	return name
}

func (r *registry) add(i *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alive[i] = struct{}{}
}

func (r *registry) remove(i *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.alive, i)
}

func (r *registry) takeAll() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*instance, 0, len(r.alive))
	for i := range r.alive {
		all = append(all, i)
	}
	clear(r.alive)
	return all
}
