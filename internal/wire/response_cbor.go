package wire

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/encoding/cbor"
)

// decodePutRecordsCBOR reads a PutRecords response body in CBOR as decodePutRecordsOutput reads
// one in JSON: unknown members are skipped, null ones left nil, each record's SequenceNumber is
// checked but left nil; maps, arrays and strings of definite or indefinite length, tags before
// any item. The output does not alias body.
func decodePutRecordsCBOR(body []byte) (*kinesissdk.PutRecordsOutput, error) {
	r := cborReader{b: body}
	if err := r.skipTags(); err != nil {
		return nil, err
	}
	if ib, ok := r.peek(); !ok || ib&0xe0 != cborMap {
		return nil, r.errorf("want a map")
	}
	out := &kinesissdk.PutRecordsOutput{}
	err := r.object(func(key string) error {
		switch key {
		case "FailedRecordCount":
			if err := r.skipTags(); err != nil || r.null() {
				return err
			}
			major, arg, _, err := r.head()
			switch {
			case err != nil:
				return err
			case major != cborUint && major != cborNegInt:
				return r.errorf("FailedRecordCount: want an integer")
			case major == cborUint && arg > math.MaxInt32, major == cborNegInt && arg > -(math.MinInt32+1):
				return r.errorf("FailedRecordCount: out of range")
			}
			n := int32(arg)
			if major == cborNegInt {
				n = -1 - n
			}
			out.FailedRecordCount = aws.Int32(n)
			return nil
		case "EncryptionType":
			s, null, err := r.textOrNull()
			if err == nil && !null {
				out.EncryptionType = types.EncryptionType(strings.Clone(s))
			}
			return err
		case "Records":
			return r.records(out)
		}
		return r.skip(0)
	})
	if err != nil {
		return nil, err
	}
	if r.i != len(r.b) {
		return nil, r.errorf("data after the map")
	}
	return out, nil
}

func (r *cborReader) records(out *kinesissdk.PutRecordsOutput) error {
	n, null, err := r.container(cborArray)
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
		more, err := r.more(i, n)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		var e types.PutRecordsResultEntry
		err = r.object(func(key string) error {
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
				_, _, err := r.textOrNull()
				return err
			default:
				return r.skip(0)
			}
			s, null, err := r.textOrNull()
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
	v, err := cbor.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedCBOR, err)
	}
	return json.Marshal(jsonValue(v))
}

// jsonValue is v as encoding/json marshals it.
func jsonValue(v cbor.Value) any {
	switch v := v.(type) {
	case cbor.Uint:
		return json.Number(fmt.Sprint(uint64(v)))
	case cbor.NegInt: // -v; 0 stands for -2^64
		n := new(big.Int).SetUint64(uint64(v))
		if v == 0 {
			n.Lsh(big.NewInt(1), 64)
		}
		return json.Number(n.Neg(n).String())
	case cbor.Slice:
		return base64.StdEncoding.EncodeToString(v)
	case cbor.String:
		return string(v)
	case cbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = jsonValue(e)
		}
		return l
	case cbor.Map:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = jsonValue(e)
		}
		return m
	case *cbor.Tag:
		return jsonValue(v.Value)
	case cbor.Bool:
		return bool(v)
	case cbor.Float32:
		return finite(float64(v))
	case cbor.Float64:
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
