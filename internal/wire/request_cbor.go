package wire

import (
	"strings"
	"unicode/utf8"

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
// when in has something this serializer does not write (see sdkWritable).
func putRecordsCBORLen(in *kinesissdk.PutRecordsInput) (int, bool) {
	if !sdkWritable(in) {
		return 0, false
	}
	n, _ := bodyCBORLen(sdkRecords(in.Records), in.StreamARN, in.StreamName)
	return n, true
}

// appendPutRecordsCBOR appends the CBOR body of in to dst. in must be one putRecordsCBORLen
// accepts.
func appendPutRecordsCBOR(dst []byte, in *kinesissdk.PutRecordsInput) []byte {
	l := sdkRecords(in.Records)
	_, valid := bodyCBORLen(l, in.StreamARN, in.StreamName)
	return appendBodyCBOR(dst, l, in.StreamARN, in.StreamName, valid)
}

// bodyCBORLen is the exact length of the body appendBodyCBOR writes, and whether every text
// string of it (partition keys, explicit hash keys, the stream's name and ARN) is valid UTF-8,
// which appendBodyCBOR then need not check again.
func bodyCBORLen[L recordList](l L, arn, name *string) (n int, valid bool) {
	valid = true
	text := func(s string) int {
		if utf8.ValidString(s) {
			return cbor.HeadLen(uint64(len(s))) + len(s)
		}
		valid = false
		return cbor.TextLen(s)
	}
	n = 1 + len(cborRecordsKey) + cbor.HeadLen(uint64(l.Len())) // the map's head: 3 entries at most
	for i := range l.Len() {
		data, key, hash, hasHash := l.record(i)
		n += 1 + len(cborDataKey) + cbor.HeadLen(uint64(len(data))) + len(data)
		if hasHash {
			n += len(cborExplicitHashKeyKey) + text(hash)
		}
		n += len(cborPartitionKeyKey) + text(key)
	}
	if arn != nil {
		n += len(cborStreamARNKey) + text(*arn)
	}
	if name != nil {
		n += len(cborStreamNameKey) + text(*name)
	}
	return n, valid
}

// appendBodyCBOR appends the CBOR body of a request of l to the stream arn or name (each nil when
// not sent) to dst: the members of the JSON body, with each record's data as a byte string (no
// base64). Text strings get U+FFFD for invalid UTF-8 as the JSON writer does (appendJSONString),
// so that Kinesis sees the same partition key, and routes the record to the same shard, whatever
// the protocol; valid says that every text string is valid UTF-8 (bodyCBORLen). With
// cap(dst)-len(dst) of bodyCBORLen, nothing is allocated.
func appendBodyCBOR[L recordList](dst []byte, l L, arn, name *string, valid bool) []byte {
	text := func(dst []byte, s string) []byte {
		if valid {
			return append(cbor.AppendHead(dst, cbor.MajorText, uint64(len(s))), s...)
		}
		return cbor.AppendText(dst, s)
	}
	members := uint64(1)
	if arn != nil {
		members++
	}
	if name != nil {
		members++
	}
	dst = cbor.AppendHead(dst, cbor.MajorMap, members)
	dst = append(dst, cborRecordsKey...)
	dst = cbor.AppendHead(dst, cbor.MajorArray, uint64(l.Len()))
	for i := range l.Len() {
		data, key, hash, hasHash := l.record(i)
		if hasHash {
			dst = append(dst, cbor.MajorMap|3)
		} else {
			dst = append(dst, cbor.MajorMap|2)
		}
		dst = append(dst, cborDataKey...)
		dst = cbor.AppendHead(dst, cbor.MajorBytes, uint64(len(data)))
		dst = append(dst, data...)
		if hasHash {
			dst = append(dst, cborExplicitHashKeyKey...)
			dst = text(dst, hash)
		}
		dst = append(dst, cborPartitionKeyKey...)
		dst = text(dst, key)
	}
	if arn != nil {
		dst = append(dst, cborStreamARNKey...)
		dst = text(dst, *arn)
	}
	if name != nil {
		dst = append(dst, cborStreamNameKey...)
		dst = text(dst, *name)
	}
	return dst
}
