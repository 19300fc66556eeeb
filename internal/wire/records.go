package wire

import (
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Record is one record of a PutRecords request.
type Record struct {
	Data         []byte
	PartitionKey string
	// ExplicitHashKey, when not "", is the hash key (decimal) that routes the record instead of
	// its partition key's MD5: shard-aware aggregation sends an aggregate to the shard of its
	// user records with it. It does not count in Size: Kinesis counts data and partition key.
	ExplicitHashKey string
}

// Size is the record's size as Kinesis counts it against every limit.
func (r Record) Size() int { return len(r.Data) + len(r.PartitionKey) }

// recordList is the records of a request as the body writers read them: the client's own
// (recordSlice), or the SDK's input (sdkRecords). The writers are generic over it, so that
// neither is converted to the other.
type recordList interface {
	Len() int
	// record returns the i'th record: its data, partition key, and explicit hash key if it has one.
	record(i int) (data []byte, key, hash string, hasHash bool)
}

type recordSlice []Record

func (s recordSlice) Len() int { return len(s) }

func (s recordSlice) record(i int) ([]byte, string, string, bool) {
	r := &s[i]
	return r.Data, r.PartitionKey, r.ExplicitHashKey, r.ExplicitHashKey != ""
}

// sdkRecords is the records of a PutRecords input that sdkWritable accepts.
type sdkRecords []types.PutRecordsRequestEntry

func (s sdkRecords) Len() int { return len(s) }

func (s sdkRecords) record(i int) ([]byte, string, string, bool) {
	r := &s[i]
	if r.ExplicitHashKey != nil {
		return r.Data, *r.PartitionKey, *r.ExplicitHashKey, true
	}
	return r.Data, *r.PartitionKey, "", false
}

// sdkWritable reports whether the body writers write in: not when it has DryRun or StreamId, no
// Records, or a record without Data or PartitionKey (the SDK's serializer writes those, or
// rejects them).
func sdkWritable(in *kinesissdk.PutRecordsInput) bool {
	if in.DryRun != nil || in.StreamId != nil || in.Records == nil {
		return false
	}
	for i := range in.Records {
		if r := &in.Records[i]; r.Data == nil || r.PartitionKey == nil {
			return false
		}
	}
	return true
}
