package wire

import (
	"strings"

	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/cbor"
)

// cborContentType is the media type of Kinesis's CBOR protocol (the AWS SDK for Java's default
// for Kinesis): the awsJson1_1 operations and members, with the bodies in CBOR (RFC 8949) and
// blobs as byte strings instead of base64 text.
const cborContentType = "application/x-amz-cbor-1.1"

// isCBOR reports whether a Content-Type header names cborContentType.
func isCBOR(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), cborContentType)
}

// The keys of a PutRecords request in CBOR, each a text string with its head, and the heads of
// the maps, in the order the JSON body has them (members sorted by name).
const (
	cborRecordsKey         = "\x67Records"
	cborDataKey            = "\x64Data"
	cborExplicitHashKeyKey = "\x6fExplicitHashKey"
	cborPartitionKeyKey    = "\x6cPartitionKey"
	cborStreamARNKey       = "\x69StreamARN"
	cborStreamNameKey      = "\x6aStreamName"
)

// putRecordsCBORLen is the exact length of the body appendPutRecordsCBOR writes for in, and false
// when in has something this serializer does not write (as putRecordsBodyLen).
func putRecordsCBORLen(in *kinesissdk.PutRecordsInput) (int, bool) {
	if in.DryRun != nil || in.StreamId != nil || in.Records == nil {
		return 0, false
	}
	n := 1 + len(cborRecordsKey) + cbor.HeadLen(uint64(len(in.Records))) // the map's head: 3 entries at most
	for i := range in.Records {
		r := &in.Records[i]
		if r.Data == nil || r.PartitionKey == nil {
			return 0, false
		}
		n += 1 + len(cborDataKey) + cbor.HeadLen(uint64(len(r.Data))) + len(r.Data)
		if r.ExplicitHashKey != nil {
			n += len(cborExplicitHashKeyKey) + cbor.TextLen(*r.ExplicitHashKey)
		}
		n += len(cborPartitionKeyKey) + cbor.TextLen(*r.PartitionKey)
	}
	if in.StreamARN != nil {
		n += len(cborStreamARNKey) + cbor.TextLen(*in.StreamARN)
	}
	if in.StreamName != nil {
		n += len(cborStreamNameKey) + cbor.TextLen(*in.StreamName)
	}
	return n, true
}

// appendPutRecordsCBOR appends the CBOR body of in to dst: the members of the JSON body, with each
// record's data as a byte string (no base64). Text strings get U+FFFD for invalid UTF-8 as the
// JSON writer does (appendJSONString), so that Kinesis sees the same partition key, and routes
// the record to the same shard, whatever the protocol. in must be one putRecordsCBORLen accepts; with
// cap(dst)-len(dst) of that length, nothing is allocated.
func appendPutRecordsCBOR(dst []byte, in *kinesissdk.PutRecordsInput) []byte {
	members := uint64(1)
	if in.StreamARN != nil {
		members++
	}
	if in.StreamName != nil {
		members++
	}
	dst = cbor.AppendHead(dst, cbor.MajorMap, members)
	dst = append(dst, cborRecordsKey...)
	dst = cbor.AppendHead(dst, cbor.MajorArray, uint64(len(in.Records)))
	for i := range in.Records {
		r := &in.Records[i]
		if r.ExplicitHashKey != nil {
			dst = append(dst, cbor.MajorMap|3)
		} else {
			dst = append(dst, cbor.MajorMap|2)
		}
		dst = append(dst, cborDataKey...)
		dst = cbor.AppendHead(dst, cbor.MajorBytes, uint64(len(r.Data)))
		dst = append(dst, r.Data...)
		if r.ExplicitHashKey != nil {
			dst = append(dst, cborExplicitHashKeyKey...)
			dst = cbor.AppendText(dst, *r.ExplicitHashKey)
		}
		dst = append(dst, cborPartitionKeyKey...)
		dst = cbor.AppendText(dst, *r.PartitionKey)
	}
	if in.StreamARN != nil {
		dst = append(dst, cborStreamARNKey...)
		dst = cbor.AppendText(dst, *in.StreamARN)
	}
	if in.StreamName != nil {
		dst = append(dst, cborStreamNameKey...)
		dst = cbor.AppendText(dst, *in.StreamName)
	}
	return dst
}
