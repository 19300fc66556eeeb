// Package limits holds the limits of Kinesis Data Streams that the plugin packs records under, from
// the Kinesis Data Streams API reference
// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html). It imports
// nothing, so that every package can count with the same numbers, configuration included.
package limits

const (
	// MaxRecordsPerRequest: "Each PutRecords request can support up to 500 records."
	MaxRecordsPerRequest = 500
	// MaxRequestBytes: "... up to a limit of 10 MiB for the entire request, including partition keys."
	MaxRequestBytes = 10 << 20
	// MaxPartitionKeyLen: "Partition keys are Unicode strings with a maximum length limit of 256
	// characters for each key."
	MaxPartitionKeyLen = 256
	// DefaultMaxRecordSize is a stream's default maximum record size (data blob plus partition key),
	// 1 MiB.
	DefaultMaxRecordSize = 1 << 20
	// MaxMaxRecordSize is the largest maximum record size a stream can be raised to
	// (UpdateMaxRecordSize), 10 MiB.
	MaxMaxRecordSize = 10 << 20
	// ShardRecordsPerSecond and ShardBytesPerSecond are a shard's write limits (Kinesis Data
	// Streams quotas): 1,000 records and 1 MiB a second; an aggregated record counts as one.
	ShardRecordsPerSecond = 1000
	ShardBytesPerSecond   = 1 << 20
)
