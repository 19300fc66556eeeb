package batcher

import "fmt"

// Stats are a pool's totals since NewPool: what its flushes did, counted in events (Fluent Bit
// records) unless a name says otherwise, and the state of its ledger. It is the one type behind
// the summary lines and the metrics: a new total is a field here and an entry in StatList.
type Stats struct {
	Flushes         int64 // calls to Flush
	NotDelivered    int64 // flushes that ended with ErrNotDelivered (the chunk is flushed again)
	Records         int64 // events decoded
	Requests        int64 // PutRecords requests sent
	RequestErrors   int64 // requests that failed as a whole
	RequestsPartial int64 // requests answered with some records not accepted
	RecordsSent     int64 // Kinesis records in the requests sent, resends included (an aggregate counts once)
	BytesSent       int64 // their size (data + partition key)
	Accepted        int64 // records accepted by Kinesis
	Failed          int64 // records not accepted at the end of their flush (sent by a later flush)
	Throttled       int64 // Kinesis record sends refused for throttling (each attempt counts)
	Resent          int64 // Kinesis records sent again within a flush
	RequestsPaced   int64 // requests that waited for their shards' pacing before they went
	RateCuts        int64 // times throttling cut a shard's pace (or, without a shard map, the requests in flight)
	Rejected        int64 // records in requests Kinesis refused as invalid
	SkippedOversize int64 // records larger than MaxRecordSize
	SkippedNoLogKey int64 // records without the log_key
	SkippedInvalid  int64 // records the encoder rejected (e.g. not a map)
	SkippedEarlier  int64 // records an earlier flush of the same chunk delivered (the ledger)
	// RandomKeyFallback counts records given a random partition key because their partition_key
	// field was missing, empty or not a scalar.
	RandomKeyFallback int64
	LedgerChunks      int64 // chunks the ledger holds now (a level, not a count)
	LedgerEvicted     int64 // chunks the ledger forgot to stay within its bounds
}

// A Stat describes one field of Stats.
type Stat struct {
	Name  string // in snake case, e.g. "records_throttled"
	Help  string
	Gauge bool // a level (the ledger's size), not a count since start
	field func(*Stats) *int64
}

// Of returns the stat's value in s.
func (st Stat) Of(s Stats) int64 { return *st.field(&s) }

// StatList describes every field of Stats, in order.
var StatList = []Stat{
	{"flushes", "Chunks flushed", false, func(s *Stats) *int64 { return &s.Flushes }},
	{"flushes_not_delivered", "Flushes that left records to a retry of the chunk", false, func(s *Stats) *int64 { return &s.NotDelivered }},
	{"records", "Records decoded from chunks", false, func(s *Stats) *int64 { return &s.Records }},
	{"requests", "PutRecords requests sent", false, func(s *Stats) *int64 { return &s.Requests }},
	{"request_errors", "PutRecords requests that failed as a whole", false, func(s *Stats) *int64 { return &s.RequestErrors }},
	{"requests_partial", "PutRecords requests answered with some records not accepted", false, func(s *Stats) *int64 { return &s.RequestsPartial }},
	{"kinesis_records_sent", "Kinesis records sent, resends included", false, func(s *Stats) *int64 { return &s.RecordsSent }},
	{"bytes_sent", "Bytes of Kinesis records sent (data and partition keys), resends included", false, func(s *Stats) *int64 { return &s.BytesSent }},
	{"records_accepted", "Records accepted by Kinesis", false, func(s *Stats) *int64 { return &s.Accepted }},
	{"records_failed", "Records not accepted at the end of their flush", false, func(s *Stats) *int64 { return &s.Failed }},
	{"records_throttled", "Record sends refused by Kinesis for throttling", false, func(s *Stats) *int64 { return &s.Throttled }},
	{"records_resent", "Kinesis records sent again within a flush", false, func(s *Stats) *int64 { return &s.Resent }},
	{"requests_paced", "PutRecords requests that waited for their shards' pacing", false, func(s *Stats) *int64 { return &s.RequestsPaced }},
	{"rate_cuts", "Times throttling cut a shard's pace, or the requests in flight without a shard map", false, func(s *Stats) *int64 { return &s.RateCuts }},
	{"records_rejected", "Records in requests Kinesis refused as invalid", false, func(s *Stats) *int64 { return &s.Rejected }},
	{"records_skipped_oversize", "Records skipped as larger than max_record_size", false, func(s *Stats) *int64 { return &s.SkippedOversize }},
	{"records_skipped_no_log_key", "Records skipped for want of the log_key", false, func(s *Stats) *int64 { return &s.SkippedNoLogKey }},
	{"records_skipped_invalid", "Records that could not be encoded", false, func(s *Stats) *int64 { return &s.SkippedInvalid }},
	{"records_skipped_earlier", "Records not sent again because an earlier flush of their chunk delivered them", false, func(s *Stats) *int64 { return &s.SkippedEarlier }},
	{"records_random_key", "Records given a random partition key for want of a usable partition_key field", false, func(s *Stats) *int64 { return &s.RandomKeyFallback }},
	{"ledger_chunks", "Partly delivered chunks the ledger remembers", true, func(s *Stats) *int64 { return &s.LedgerChunks }},
	{"ledger_evicted", "Partly delivered chunks the ledger forgot to stay within its bounds", false, func(s *Stats) *int64 { return &s.LedgerEvicted }},
}

// add adds the counts of o to s; levels (gauges) are left alone.
func (s *Stats) add(o Stats) {
	for _, st := range StatList {
		if !st.Gauge {
			*st.field(s) += *st.field(&o)
		}
	}
}

// Since returns what changed from prev to s: the difference of every count, and s's levels.
func (s Stats) Since(prev Stats) Stats {
	d := s
	for _, st := range StatList {
		if !st.Gauge {
			*st.field(&d) -= *st.field(&prev)
		}
	}
	return d
}

// Skipped is the records skipped for any reason, the ledger's included.
func (s Stats) Skipped() int64 {
	return s.SkippedOversize + s.SkippedNoLogKey + s.SkippedInvalid + s.SkippedEarlier
}

// String is the summary line of the totals, e.g. for the exit log.
func (s Stats) String() string {
	fallback := ""
	if s.RandomKeyFallback > 0 {
		fallback = fmt.Sprintf("; %d records without a usable partition_key field got a random key", s.RandomKeyFallback)
	}
	return fmt.Sprintf("%d flushes (%d to be retried), %d records: %d accepted, %d not delivered, %d rejected, "+
		"%d skipped (%d oversize, %d without log_key, %d invalid, %d delivered by an earlier flush); "+
		"%d requests (%d failed) sent %d records, %d bytes; %d throttled, %d resent; %d requests paced, %d rate cuts; "+
		"ledger: %d chunks held, %d forgotten%s",
		s.Flushes, s.NotDelivered, s.Records, s.Accepted, s.Failed, s.Rejected,
		s.Skipped(), s.SkippedOversize, s.SkippedNoLogKey, s.SkippedInvalid, s.SkippedEarlier,
		s.Requests, s.RequestErrors, s.RecordsSent, s.BytesSent, s.Throttled, s.Resent, s.RequestsPaced, s.RateCuts,
		s.LedgerChunks, s.LedgerEvicted, fallback)
}
