package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithycbor "github.com/aws/smithy-go/encoding/cbor"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/cbor"
)

// errMalformedCBOR is what the CBOR reader returns for a body that is not the CBOR it reads.
var errMalformedCBOR = errors.New("malformed PutRecords response (CBOR)")

// cborResponse reads a PutRecords response in CBOR: a cbor.Reader, and the strings it shares.
type cborResponse struct {
	cbor.Reader
	interner
}

// decodePutRecordsCBOR reads a PutRecords response body in CBOR as decodePutRecordsOutput reads
// one in JSON: unknown members are skipped, null ones left nil, each record's SequenceNumber is
// checked but left nil; maps, arrays and strings of definite or indefinite length, tags before
// any item. The output does not alias body.
func decodePutRecordsCBOR(body []byte) (*kinesissdk.PutRecordsOutput, error) {
	out, err := readPutRecordsCBOR(&cborResponse{Reader: cbor.NewReader(body)})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedCBOR, err)
	}
	return out, nil
}

func readPutRecordsCBOR(r *cborResponse) (*kinesissdk.PutRecordsOutput, error) {
	if err := r.SkipTags(); err != nil {
		return nil, err
	}
	if ib, ok := r.Peek(); !ok || ib&0xe0 != cbor.MajorMap {
		return nil, r.Errorf("want a map")
	}
	out := &kinesissdk.PutRecordsOutput{}
	err := r.Object(func(key string) error {
		switch key {
		case "FailedRecordCount":
			if err := r.SkipTags(); err != nil || r.Null() {
				return err
			}
			major, arg, _, err := r.Head()
			switch {
			case err != nil:
				return err
			case major != cbor.MajorUint && major != cbor.MajorNegInt:
				return r.Errorf("FailedRecordCount: want an integer")
			case major == cbor.MajorUint && arg > math.MaxInt32, major == cbor.MajorNegInt && arg > -(math.MinInt32+1):
				return r.Errorf("FailedRecordCount: out of range")
			}
			n := int32(arg)
			if major == cbor.MajorNegInt {
				n = -1 - n
			}
			out.FailedRecordCount = aws.Int32(n)
			return nil
		case "EncryptionType":
			s, null, err := r.TextOrNull()
			if err == nil && !null {
				out.EncryptionType = types.EncryptionType(strings.Clone(s))
			}
			return err
		case "Records":
			return r.records(out)
		}
		return r.Skip()
	})
	if err != nil {
		return nil, err
	}
	if !r.Done() {
		return nil, r.Errorf("data after the map")
	}
	return out, nil
}

func (r *cborResponse) records(out *kinesissdk.PutRecordsOutput) error {
	n, null, err := r.Container(cbor.MajorArray)
	if err != nil || null {
		return err
	}
	if n == 0 {
		out.Records = []types.PutRecordsResultEntry{}
		return nil
	}
	hint := n
	if hint < 0 {
		hint = 0
	}
	out.Records = getResultEntries(hint)
	for i := 0; ; i++ {
		more, err := r.More(i, n)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		var e types.PutRecordsResultEntry
		if r.plainEntry(&e) {
			out.Records = append(out.Records, e)
			continue
		}
		err = r.Object(func(key string) error {
			var dst **string
			shared := true // shard IDs and error codes: a few distinct values per response
			switch key {
			case "ErrorCode":
				dst = &e.ErrorCode
			case "ShardId":
				dst = &e.ShardId
			case "ErrorMessage":
				dst, shared = &e.ErrorMessage, false
			case "SequenceNumber": // nothing reads it: checked, not kept
				_, _, err := r.TextOrNull()
				return err
			default:
				return r.Skip()
			}
			s, null, err := r.TextOrNull()
			switch {
			case err != nil || null:
			case shared:
				*dst = r.intern(s)
			default:
				*dst = cloneString(s)
			}
			return err
		})
		if err != nil {
			return err
		}
		out.Records = append(out.Records, e)
	}
}

// cborErrorToJSON rewrites the CBOR body of an error answer as JSON, for the SDK's error
// deserializer, which reads JSON only: its code from the X-Amzn-ErrorType header or the body's
// __type (or code), its message from message (or Message), the members of the error types it
// knows. Byte strings become base64 text, as JSON carries blobs; tags are dropped; integers are
// kept exact.
func cborErrorToJSON(body []byte) ([]byte, error) {
	v, err := smithycbor.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedCBOR, err)
	}
	return json.Marshal(jsonValue(v))
}

// jsonValue is v as encoding/json marshals it.
func jsonValue(v smithycbor.Value) any {
	switch v := v.(type) {
	case smithycbor.Uint:
		return json.Number(fmt.Sprint(uint64(v)))
	case smithycbor.NegInt: // -v; 0 stands for -2^64
		n := new(big.Int).SetUint64(uint64(v))
		if v == 0 {
			n.Lsh(big.NewInt(1), 64)
		}
		return json.Number(n.Neg(n).String())
	case smithycbor.Slice:
		return base64.StdEncoding.EncodeToString(v)
	case smithycbor.String:
		return string(v)
	case smithycbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = jsonValue(e)
		}
		return l
	case smithycbor.Map:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = jsonValue(e)
		}
		return m
	case *smithycbor.Tag:
		return jsonValue(v.Value)
	case smithycbor.Bool:
		return bool(v)
	case smithycbor.Float32:
		return finite(float64(v))
	case smithycbor.Float64:
		return finite(float64(v))
	}
	return nil // null, undefined
}

// finite is f, or nil (JSON null) for NaN and the infinities, which JSON cannot carry.
func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// The members of a result entry, as plainEntry knows them.
const (
	memberErrorCode = 1 << iota
	memberErrorMessage
	memberSequenceNumber
	memberShardID
)

// plainEntry reads, in one pass and without a callback per member, a result entry as Kinesis and
// kinesis-mock write an accepted record's: a map of definite length whose members are among
// SequenceNumber and ShardId (short text strings) and ErrorCode and ErrorMessage (null), each at
// most once, without tags; e is then what the general reader would give (ShardId interned,
// SequenceNumber read and dropped). For anything else it reads nothing, leaves e as it was and
// returns false, and the general reader reads the entry. Reading the entries was about half of
// reading a 500-record answer.
func (r *cborResponse) plainEntry(e *types.PutRecordsResultEntry) bool {
	start := r.Offset()
	ib, ok := r.Peek()
	if !ok || ib&0xe0 != cbor.MajorMap || ib&0x1f > 4 {
		return false
	}
	r.Seek(start + 1)
	var seen int
	var shard string
	for range int(ib & 0x1f) {
		key, ok := r.ShortText()
		if !ok {
			r.Seek(start)
			return false
		}
		var member int
		switch key {
		case "SequenceNumber":
			member = memberSequenceNumber
			_, ok = r.ShortText()
		case "ShardId":
			member = memberShardID
			shard, ok = r.ShortText()
		case "ErrorCode":
			member, ok = memberErrorCode, r.Null()
		case "ErrorMessage":
			member, ok = memberErrorMessage, r.Null()
		}
		if member == 0 || !ok || seen&member != 0 {
			r.Seek(start)
			return false
		}
		seen |= member
	}
	if seen&memberShardID != 0 {
		e.ShardId = r.intern(shard)
	}
	return true
}
