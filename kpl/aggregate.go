package kpl

import (
	"crypto/md5"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"google.golang.org/protobuf/encoding/protowire"
)

// The KPL aggregated record format
// (https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md):
//
//	magic (4 bytes) | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// The KCL and the official deaggregators read any Kinesis record that starts with the magic bytes
// as an aggregate, and give each user record the partition key its index points to in the table.
const (
	aggPartitionKeyTable protowire.Number = 1
	aggRecords           protowire.Number = 3
	recPartitionKeyIndex protowire.Number = 1
	recData              protowire.Number = 3
)

// aggMagic starts every KPL aggregated record.
var aggMagic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// aggOverhead is what an aggregate adds around its protobuf message: the magic and the MD5.
const aggOverhead = len(aggMagic) + md5.Size

// aggLinearKeys is the size of the partition key table up to which Add looks a key up by scanning
// the table: an aggregate usually has one key (random keys are shared by the whole aggregate) or a
// few (a field such as a pod name); a map is built only for tables larger than this.
const aggLinearKeys = 8

// aggMaxKeptIndex is the largest key map Reset keeps for the next aggregate.
const aggMaxKeptIndex = 4096

// AddResult says what Aggregator.Add did with a user record.
type AddResult uint8

const (
	// Added: the record is part of the aggregate.
	Added AddResult = iota
	// AggregateFull: the record was not added, because the aggregate would exceed its size limit
	// with it; it would fit in an empty aggregate. Send the aggregate (Finish), Reset, and add the
	// record again: Add then returns Added.
	AggregateFull
	// TooLargeToAggregate: the record was not added, because even alone it would make an aggregate
	// larger than the limit. Send it as a plain Kinesis record (which is smaller), or skip it if
	// even that is too large.
	TooLargeToAggregate
)

func (r AddResult) String() string {
	switch r {
	case Added:
		return "added"
	case AggregateFull:
		return "aggregate full"
	case TooLargeToAggregate:
		return "too large to aggregate"
	}
	return "unknown"
}

// Aggregator builds KPL aggregated records, one at a time, under a size limit: the Kinesis
// record it finishes (the data from Finish, plus its partition key, PartitionKey) is never larger
// than the limit, and its size is known exactly before each user record is added.
//
// The partition key table keeps the keys in the order they were first added, and a user record
// points to its own key: a deaggregator gives every user record back with the key it was added
// with. The aggregate's own partition key, which Kinesis uses to route it, is the first user
// record's key, as with the KPL.
//
// Add copies the data; it keeps the partition key string until Reset. Buffers are kept across
// Reset, so that in steady state adding and finishing allocate nothing. An Aggregator is not safe
// for concurrent use: give each batcher its own.
type Aggregator struct {
	maxSize int
	keys    []string       // the partition key table, in insertion order
	index   map[string]int // key -> position in keys, once len(keys) > aggLinearKeys
	indexed bool           // index holds every key of the table
	records []byte         // the encoded records (field 3 of AggregatedRecord), in order
	first   int            // the offset in records of the first user record's data
	n       int            // user records added
	pbSize  int            // the size of the protobuf message
}

// NewAggregator returns an aggregator whose records are at most maxSize bytes (data plus
// partition key); maxSize <= 0 means limits.DefaultMaxRecordSize.
func NewAggregator(maxSize int) *Aggregator {
	if maxSize <= 0 {
		maxSize = limits.DefaultMaxRecordSize
	}
	return &Aggregator{maxSize: maxSize}
}

// MaxSize is the aggregator's size limit.
func (a *Aggregator) MaxSize() int { return a.maxSize }

// SetMaxSize changes the size limit of the next aggregate (as NewAggregator's maxSize), when the
// stream's maximum record size changes. It does nothing while the aggregate is not empty, whose
// records were admitted under the old limit: Reset it first.
func (a *Aggregator) SetMaxSize(maxSize int) {
	if a.n > 0 {
		return
	}
	if maxSize <= 0 {
		maxSize = limits.DefaultMaxRecordSize
	}
	a.maxSize = maxSize
}

// Len is the number of user records in the aggregate.
func (a *Aggregator) Len() int { return a.n }

// PartitionKey is the aggregate's partition key, the first user record's, to send the aggregate
// with; "" when the aggregate is empty.
func (a *Aggregator) PartitionKey() string {
	if len(a.keys) == 0 {
		return ""
	}
	return a.keys[0]
}

// Size is the size Kinesis will count for the finished aggregate: len(Finish(nil)) +
// len(PartitionKey()). It is 0 when the aggregate is empty.
func (a *Aggregator) Size() int {
	if a.n == 0 {
		return 0
	}
	return aggOverhead + a.pbSize + len(a.keys[0])
}

// AggregatedSize is the size (data plus partition key) of an aggregate that holds only one user
// record of dataLen bytes with this partition key. A record for which it exceeds the limit cannot
// be aggregated (Add returns TooLargeToAggregate).
func AggregatedSize(dataLen int, partitionKey string) int {
	return aggOverhead + keyEntrySize(partitionKey) + recordEntrySize(0, dataLen) + len(partitionKey)
}

// Add adds a user record to the aggregate if the aggregate stays within the size limit with it.
// See AddResult for what to do when it does not. partitionKey must not be empty; it is kept
// until Reset.
func (a *Aggregator) Add(data []byte, partitionKey string) AddResult {
	idx, known := a.lookup(partitionKey)
	grow := recordEntrySize(idx, len(data))
	if !known {
		grow += keyEntrySize(partitionKey)
	}
	size := aggOverhead + a.pbSize + grow
	if a.n == 0 {
		size += len(partitionKey)
	} else {
		size += len(a.keys[0])
	}
	if size > a.maxSize {
		if a.n == 0 || AggregatedSize(len(data), partitionKey) > a.maxSize {
			return TooLargeToAggregate
		}
		return AggregateFull
	}

	if !known {
		a.keys = append(a.keys, partitionKey)
		if a.indexed {
			a.index[partitionKey] = idx
		} else if len(a.keys) > aggLinearKeys {
			a.buildIndex()
		}
	}
	r := a.records
	r = protowire.AppendTag(r, aggRecords, protowire.BytesType)
	r = protowire.AppendVarint(r, uint64(recordSize(idx, len(data))))
	r = protowire.AppendTag(r, recPartitionKeyIndex, protowire.VarintType)
	r = protowire.AppendVarint(r, uint64(idx))
	r = protowire.AppendTag(r, recData, protowire.BytesType)
	r = protowire.AppendVarint(r, uint64(len(data)))
	if a.n == 0 {
		a.first = len(r)
	}
	r = append(r, data...)
	a.records = r
	a.pbSize += grow
	a.n++
	return Added
}

// lookup returns the index of key in the table, or the index it would get, and whether it is
// there already.
func (a *Aggregator) lookup(key string) (int, bool) {
	if a.indexed {
		if i, ok := a.index[key]; ok {
			return i, true
		}
		return len(a.keys), false
	}
	for i, k := range a.keys {
		if k == key {
			return i, true
		}
	}
	return len(a.keys), false
}

func (a *Aggregator) buildIndex() {
	if a.index == nil {
		a.index = make(map[string]int, 4*aggLinearKeys)
	}
	for i, k := range a.keys {
		a.index[k] = i
	}
	a.indexed = true
}

// Single returns the data and partition key of the aggregate's only user record, when it has
// exactly one: sent as a plain Kinesis record, it is smaller than as an aggregate, and consumers
// read both forms alike (the KPL does the same). The data is valid until the next Add or Reset.
func (a *Aggregator) Single() (data []byte, partitionKey string, ok bool) {
	if a.n != 1 {
		return nil, "", false
	}
	return a.records[a.first:len(a.records):len(a.records)], a.keys[0], true
}

// Finish appends the aggregated record (magic, protobuf message, MD5) to dst and returns the
// extended slice; the aggregate is left as it is (read PartitionKey, then Reset). Its length is
// Size() - len(PartitionKey()). An empty aggregate appends nothing: it is not worth sending.
func (a *Aggregator) Finish(dst []byte) []byte {
	if a.n == 0 {
		return dst
	}
	dst = append(dst, aggMagic[:]...)
	start := len(dst)
	// Fields in field-number order, as protobuf encoders write them: the key table, then records.
	for _, k := range a.keys {
		dst = protowire.AppendTag(dst, aggPartitionKeyTable, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
	}
	dst = append(dst, a.records...)
	sum := md5.Sum(dst[start:])
	return append(dst, sum[:]...)
}

// Retained is what the aggregator's buffers hold on to, in bytes: the capacity of its record buffer
// and of its key table (a string header per key).
func (a *Aggregator) Retained() int { return cap(a.records) + cap(a.keys)*16 }

// Release drops the buffers of an empty aggregator, so that an aggregator left idle costs nothing;
// the next Add allocates again. It does nothing to an aggregate that holds records.
func (a *Aggregator) Release() {
	if a.n > 0 {
		return
	}
	a.records, a.keys, a.index, a.indexed = nil, nil, nil, false
}

// Reset empties the aggregate, keeping its buffers.
func (a *Aggregator) Reset() {
	clear(a.keys) // drop the references to the keys
	a.keys = a.keys[:0]
	// The next aggregate's first keys are looked up by scanning again. A map that grew for one
	// unusually large table is dropped rather than kept for ever; a smaller one is kept, empty.
	if len(a.index) > aggMaxKeptIndex {
		a.index = nil
	} else {
		clear(a.index)
	}
	a.indexed = false
	a.records = a.records[:0]
	a.first, a.n, a.pbSize = 0, 0, 0
}

// keyEntrySize is the size of one entry of partition_key_table.
func keyEntrySize(key string) int {
	return protowire.SizeTag(aggPartitionKeyTable) + protowire.SizeBytes(len(key))
}

// recordSize is the size of one Record message.
func recordSize(keyIndex, dataLen int) int {
	return protowire.SizeTag(recPartitionKeyIndex) + protowire.SizeVarint(uint64(keyIndex)) +
		protowire.SizeTag(recData) + protowire.SizeBytes(dataLen)
}

// recordEntrySize is the size of one entry of records: the Record message with its tag and length.
func recordEntrySize(keyIndex, dataLen int) int {
	return protowire.SizeTag(aggRecords) + protowire.SizeBytes(recordSize(keyIndex, dataLen))
}
