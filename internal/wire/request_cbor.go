package wire

import (
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
)

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
	n := 1 + len(cborRecordsKey) + cborHeadLen(uint64(len(in.Records))) // the map's head: 3 entries at most
	for i := range in.Records {
		r := &in.Records[i]
		if r.Data == nil || r.PartitionKey == nil {
			return 0, false
		}
		n += 1 + len(cborDataKey) + cborHeadLen(uint64(len(r.Data))) + len(r.Data)
		if r.ExplicitHashKey != nil {
			n += len(cborExplicitHashKeyKey) + cborTextLen(*r.ExplicitHashKey)
		}
		n += len(cborPartitionKeyKey) + cborTextLen(*r.PartitionKey)
	}
	if in.StreamARN != nil {
		n += len(cborStreamARNKey) + cborTextLen(*in.StreamARN)
	}
	if in.StreamName != nil {
		n += len(cborStreamNameKey) + cborTextLen(*in.StreamName)
	}
	return n, true
}

// appendPutRecordsCBOR appends the CBOR body of in to dst: the members of the JSON body, with each
// record's data as a byte string (no base64). in must be one putRecordsCBORLen accepts; with
// cap(dst)-len(dst) of that length, nothing is allocated.
func appendPutRecordsCBOR(dst []byte, in *kinesissdk.PutRecordsInput) []byte {
	members := uint64(1)
	if in.StreamARN != nil {
		members++
	}
	if in.StreamName != nil {
		members++
	}
	dst = appendCBORHead(dst, cborMap, members)
	dst = append(dst, cborRecordsKey...)
	dst = appendCBORHead(dst, cborArray, uint64(len(in.Records)))
	for i := range in.Records {
		r := &in.Records[i]
		if r.ExplicitHashKey != nil {
			dst = append(dst, cborMap|3)
		} else {
			dst = append(dst, cborMap|2)
		}
		dst = append(dst, cborDataKey...)
		dst = appendCBORHead(dst, cborBytes, uint64(len(r.Data)))
		dst = append(dst, r.Data...)
		if r.ExplicitHashKey != nil {
			dst = append(dst, cborExplicitHashKeyKey...)
			dst = appendCBORText(dst, *r.ExplicitHashKey)
		}
		dst = append(dst, cborPartitionKeyKey...)
		dst = appendCBORText(dst, *r.PartitionKey)
	}
	if in.StreamARN != nil {
		dst = append(dst, cborStreamARNKey...)
		dst = appendCBORText(dst, *in.StreamARN)
	}
	if in.StreamName != nil {
		dst = append(dst, cborStreamNameKey...)
		dst = appendCBORText(dst, *in.StreamName)
	}
	return dst
}
