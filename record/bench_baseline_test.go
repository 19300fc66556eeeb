//go:build cgo

package record

import (
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

// BenchmarkEncodeBaseline is BenchmarkEncode done the way the old Go plugin
// (aws/amazon-kinesis-streams-for-fluent-bit) does it: fluent-bit-go's decoder into
// map[interface{}]interface{}, a recursive copy into map[string]interface{} with
// []byte turned into string, and encoding/json. fluent-bit-go uses cgo, hence the
// build constraint.
func BenchmarkEncodeBaseline(b *testing.B) {
	chunk := containerLogChunk(benchRecords)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		dec := output.NewDecoder(unsafe.Pointer(&chunk[0]), len(chunk))
		n := 0
		for {
			ret, _, rec := output.GetRecord(dec)
			if ret != 0 {
				break
			}
			data, err := json.Marshal(stringKeys(rec))
			if err != nil {
				b.Fatal(err)
			}
			_ = append(data, '\n')
			n++
		}
		if n != benchRecords {
			b.Fatalf("%d records, want %d", n, benchRecords)
		}
	}
}

// stringKeys is the old plugin's plugins.DecodeMap: keys and []byte values to strings,
// recursively.
func stringKeys(m map[interface{}]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		var key string
		switch k := k.(type) {
		case string:
			key = k
		case []byte:
			key = string(k)
		default:
			continue
		}
		out[key] = stringValues(v)
	}
	return out
}

func stringValues(v interface{}) interface{} {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case map[interface{}]interface{}:
		return stringKeys(v)
	case []interface{}:
		for i := range v {
			v[i] = stringValues(v[i])
		}
		return v
	}
	return v
}
