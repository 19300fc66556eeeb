package main

import (
	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
)

// A metricFamily is one of the metrics an instance keeps in Fluent Bit's cmetrics context, named
// fluentbit_output_<name> with the instance's name as the label "name" (as Fluent Bit's own output
// metrics), and at most one label more whose values are its series.
type metricFamily struct {
	name   string
	help   string
	gauge  bool   // a level, not a count since the instance started
	label  string // the family's own label, "" when it has one series
	series []metricSeries
}

type metricSeries struct {
	label string // the value of the family's label
	value func(batcher.Stats) int64
}

func one(f func(batcher.Stats) int64) []metricSeries { return []metricSeries{{value: f}} }

// metricFamilies are the Kinesis metrics of an instance, read from its pool's totals after every
// flush. Fluent Bit's own fluentbit_output_* metrics count chunks and what the plugin returned for
// them; these count what happened inside the flushes, with Kinesis.
var metricFamilies = []metricFamily{
	{name: "kinesis_records_total", help: "Records received from Fluent Bit in chunks",
		series: one(func(s batcher.Stats) int64 { return s.Records })},
	{name: "kinesis_records_accepted_total", help: "Records accepted by Kinesis",
		series: one(func(s batcher.Stats) int64 { return s.Accepted })},
	{name: "kinesis_records_failed_total", help: "Records not accepted at the end of their flush, left to Fluent Bit's retry of the chunk",
		series: one(func(s batcher.Stats) int64 { return s.Failed })},
	{name: "kinesis_records_rejected_total", help: "Records in requests Kinesis refused as invalid",
		series: one(func(s batcher.Stats) int64 { return s.Rejected })},
	{name: "kinesis_records_throttled_total", help: "Record sends Kinesis refused for throttling (each attempt counts)",
		series: one(func(s batcher.Stats) int64 { return s.Throttled })},
	{name: "kinesis_records_resent_total", help: "Kinesis records sent again within a flush",
		series: one(func(s batcher.Stats) int64 { return s.Resent })},
	{name: "kinesis_records_skipped_total", help: "Records not sent, by reason", label: "reason", series: []metricSeries{
		{"oversize", func(s batcher.Stats) int64 { return s.SkippedOversize }},
		{"no_log_key", func(s batcher.Stats) int64 { return s.SkippedNoLogKey }},
		{"invalid", func(s batcher.Stats) int64 { return s.SkippedInvalid }},
		{"delivered_earlier", func(s batcher.Stats) int64 { return s.SkippedEarlier }},
	}},
	{name: "kinesis_records_random_key_total", help: "Records given a random partition key for want of a usable partition_key field",
		series: one(func(s batcher.Stats) int64 { return s.RandomKeyFallback })},
	{name: "kinesis_requests_total", help: "PutRecords requests, by outcome", label: "outcome", series: []metricSeries{
		{"accepted", func(s batcher.Stats) int64 { return s.Requests - s.RequestErrors - s.RequestsPartial }},
		{"partial", func(s batcher.Stats) int64 { return s.RequestsPartial }},
		{"failed", func(s batcher.Stats) int64 { return s.RequestErrors }},
	}},
	{name: "kinesis_requests_paced_total", help: "PutRecords requests that waited for their shards' pacing before they went",
		series: one(func(s batcher.Stats) int64 { return s.RequestsPaced })},
	{name: "kinesis_rate_cuts_total", help: "Times throttling cut a shard's pace, or the requests in flight without a shard map",
		series: one(func(s batcher.Stats) int64 { return s.RateCuts })},
	{name: "kinesis_sent_records_total", help: "Kinesis records sent, resends included (an aggregate counts once)",
		series: one(func(s batcher.Stats) int64 { return s.RecordsSent })},
	{name: "kinesis_sent_bytes_total", help: "Bytes of Kinesis records sent (data and partition keys), resends included",
		series: one(func(s batcher.Stats) int64 { return s.BytesSent })},
	{name: "kinesis_flushes_total", help: "Chunks flushed",
		series: one(func(s batcher.Stats) int64 { return s.Flushes })},
	{name: "kinesis_flushes_not_delivered_total", help: "Flushes that returned a retry: some records were not accepted",
		series: one(func(s batcher.Stats) int64 { return s.NotDelivered })},
	{name: "kinesis_ledger_chunks", help: "Partly delivered chunks whose accepted records the plugin remembers", gauge: true,
		series: one(func(s batcher.Stats) int64 { return s.LedgerChunks })},
	{name: "kinesis_ledger_evicted_total", help: "Partly delivered chunks forgotten to keep the ledger bounded (a retry of those may duplicate)",
		series: one(func(s batcher.Stats) int64 { return s.LedgerEvicted })},
}

// The request latency histogram: one observation per PutRecords request, failed ones included.
const (
	latencyMetric = "kinesis_request_duration_seconds"
	latencyHelp   = "Duration of PutRecords requests"
)

var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
