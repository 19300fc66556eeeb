package wire

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithycbor "github.com/aws/smithy-go/encoding/cbor"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/cbor"
)

// The tests of the CBOR protocol check this package's reader and writer against smithy-go's CBOR
// codec (encoding/cbor, written for the rpcv2Cbor protocol), an implementation of its own, and
// against the SDK's types and its JSON path: the same response in CBOR and in JSON must give the
// same output, the same error answer the same error.

// toCBOR converts a value decoded by encoding/json (with UseNumber) to smithy-go's CBOR values:
// integers as integers, other numbers as float64.
func toCBOR(v any) smithycbor.Value {
	switch v := v.(type) {
	case nil:
		return &smithycbor.Nil{}
	case bool:
		return smithycbor.Bool(v)
	case string:
		return smithycbor.String(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			if n < 0 {
				return smithycbor.NegInt(uint64(-n))
			}
			return smithycbor.Uint(uint64(n))
		}
		f, _ := v.Float64()
		return smithycbor.Float64(f)
	case []any:
		l := smithycbor.List{}
		for _, e := range v {
			l = append(l, toCBOR(e))
		}
		return l
	case map[string]any:
		m := smithycbor.Map{}
		for k, e := range v {
			m[k] = toCBOR(e)
		}
		return m
	}
	panic(fmt.Sprintf("toCBOR: %T", v))
}

// jsonAsCBOR returns the JSON body js in CBOR, and the same value in JSON again (encoding/json
// decodes strings, so invalid UTF-8 becomes U+FFFD in both), or false when js is not JSON.
func jsonAsCBOR(js string) (cborBody []byte, jsonBody string, ok bool) {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, "", false
	}
	again, err := json.Marshal(v)
	if err != nil {
		return nil, "", false
	}
	return smithycbor.Encode(toCBOR(v)), string(again), true
}

// TestDecodePutRecordsCBORMatchesJSON: every response of the JSON tests, in CBOR, through an SDK
// client with our decoder, gives what the same response in JSON gives through the SDK's own
// decoder (SequenceNumber aside), or an error when the SDK's fails.
func TestDecodePutRecordsCBORMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range responseCases {
		cborBody, jsonBody, ok := jsonAsCBOR(tt.body)
		if !ok {
			continue // not JSON at all: the malformed CBOR cases stand for these
		}
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := putRecordsRaw(t, cannedHTTP{status: 200, body: jsonBody}, false)
			var closed bool
			got, gotErr := putRecordsRaw(t, cannedHTTP{status: 200, body: string(cborBody), contentType: cborContentType, closed: &closed}, true)
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("error %v, SDK's from JSON %v", gotErr, wantErr)
			}
			if !closed {
				t.Error("response body not closed")
			}
			if gotErr != nil {
				var de *smithy.DeserializationError
				if !errors.As(gotErr, &de) {
					t.Errorf("error %v is not a *smithy.DeserializationError", gotErr)
				}
				return
			}
			for i := range want.Records {
				want.Records[i].SequenceNumber = nil
			}
			if g, w := describeOutput(got), describeOutput(want); g != w {
				t.Errorf("output differs from the SDK's for the JSON:\n got %.600s\nwant %.600s", g, w)
			}
		})
	}
}

// kinesisMockAnswer is kinesis-mock's answer to a CBOR PutRecords of two records: definite
// lengths, null ErrorCode and ErrorMessage in every entry.
const kinesisMockAnswer = "a36e456e6372797074696f6e54797065644e4f4e45714661696c65645265636f7264436f756e7400675265636f72647382" +
	"a4694572726f72436f6465f66c4572726f724d657373616765f66e53657175656e63654e756d626572783834393638303736303830343937343937383430323634393237313435313733343331323732303439333432323733383532323736373336326753686172644964747368617264496" +
	"42d303030303030303030303030a4694572726f72436f6465f66c4572726f724d657373616765f66e53657175656e63654e756d62657278383439363830373630383034393734393738343032363439323731343531373335353231363436333133303337333637363937343733353338675368617264496474736861726449642d303030303030303030303030"

// cborStr is the text string s with its head.
func cborStr(s string) string { return string(cbor.AppendText(nil, s)) }

// TestDecodePutRecordsCBOR reads CBOR that JSON cannot stand for: indefinite lengths, tags,
// undefined, byte strings, floats, every integer width.
func TestDecodePutRecordsCBOR(t *testing.T) {
	t.Parallel()
	mock, err := hex.DecodeString(kinesisMockAnswer)
	if err != nil {
		t.Fatal(err)
	}
	k := cborStr
	entry := "\xa2" + k("SequenceNumber") + k("1") + k("ShardId") + k("shardId-000000000001")
	tests := []struct {
		name string
		body string
		want string // describeOutput
	}{
		{"kinesis-mock", string(mock), `failed 0 enc "NONE" records(nil false) {code nil msg nil seq nil shard "shardId-000000000000"} {code nil msg nil seq nil shard "shardId-000000000000"}`},
		{"indefinite map, array and strings", "\xbf" + k("Records") + "\x9f" +
			"\xbf" + k("ShardId") + "\x7f\x65shard\x63Id-\x60\x61" + "7\xff" + k("SequenceNumber") + "\x7f\xff" + "\xff" +
			"\xbf" + k("ErrorCode") + "\x7f\x61E\xff" + "\x6cErrorMessage" + "\x7f\x62\xc3\xa9\x61!\xff" + "\xff" +
			"\xff" + k("FailedRecordCount") + "\x01" + "\xff",
			`failed 1 enc "" records(nil false) {code nil msg nil seq nil shard "shardId-7"} {code "E" msg "é!" seq nil shard nil}`},
		{"tags everywhere", "\xc0\xa2" + k("FailedRecordCount") + "\xc1\xc2\x02" + k("Records") + "\xd8\x20\x81" + "\xd9\x01\x00\xa1" + k("ErrorCode") + "\xc3" + k("X"),
			`failed 2 enc "" records(nil false) {code "X" msg nil seq nil shard nil}`},
		{"undefined and null", "\xa3" + k("FailedRecordCount") + "\xf7" + k("EncryptionType") + "\xf6" + k("Records") + "\x82\xf7\xa2" + k("ShardId") + "\xf7" + k("SequenceNumber") + "\xf6",
			`failed nil enc "" records(nil false) {code nil msg nil seq nil shard nil} {code nil msg nil seq nil shard nil}`},
		{"count in 1, 2, 4 and 8 bytes, the last wins", "\xa4" + k("FailedRecordCount") + "\x18\x05" + k("FailedRecordCount") + "\x19\x01\x00" +
			k("FailedRecordCount") + "\x1a\x00\x01\x00\x00" + k("FailedRecordCount") + "\x1b\x00\x00\x00\x00\x7f\xff\xff\xff",
			`failed 2147483647 enc "" records(nil true)`},
		{"negative count", "\xa1" + k("FailedRecordCount") + "\x3a\x7f\xff\xff\xff", `failed -2147483648 enc "" records(nil true)`},
		{"unknown members of every type", "\xa3" + k("Extra") +
			"\x8b\x00\x20\x40\x41\x00\x60\xf4\xf5\xf9\x3c\x00\xfa\x3f\x80\x00\x00\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00\x5f\x41\x00\xff" +
			k("Records") + "\x81\xa2" + k("New") + "\xbf\x61a\x9f\x80\xa0\xff\xff" + k("ShardId") + k("s") +
			k("EncryptionType") + k("KMS"),
			`failed nil enc "KMS" records(nil false) {code nil msg nil seq nil shard "s"}`},
		{"500 accepted", "\xa2" + k("FailedRecordCount") + "\x00" + k("Records") + "\x99\x01\xf4" + strings.Repeat(entry, 500),
			"failed 0 enc \"\" records(nil false)" + strings.Repeat(` {code nil msg nil seq nil shard "shardId-000000000001"}`, 500)},
		{"invalid UTF-8 kept", "\xa1" + k("Records") + "\x81\xa1" + k("ErrorMessage") + "\x63\xff\xfe!",
			`failed nil enc "" records(nil false) {code nil msg "\xff\xfe!" seq nil shard nil}`},
		{"null records", "\xa1" + k("Records") + "\xf6", `failed nil enc "" records(nil true)`},
		{"empty indefinite records", "\xa1" + k("Records") + "\x9f\xff", `failed nil enc "" records(nil false)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := decodePutRecordsCBOR([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := describeOutput(out); got != tt.want {
				t.Errorf("output\n got %.600s\nwant %.600s", got, tt.want)
			}
			if _, err := smithycbor.Decode([]byte(tt.body)); err != nil {
				t.Errorf("smithy-go's CBOR decoder rejects the case: %v", err)
			}
		})
	}
}

// TestDecodePutRecordsCBORMalformed: what is not CBOR, or not a PutRecords response, is an error
// (wrapping errMalformedCBOR), never a panic or a partial output.
func TestDecodePutRecordsCBORMalformed(t *testing.T) {
	t.Parallel()
	k := cborStr
	valid := "\xa2" + k("FailedRecordCount") + "\x00" + k("Records") + "\x81\xa2" + k("SequenceNumber") + "\x7f\x61" + "1\xff" + k("ShardId") + k("s")
	nested := func(n int) string { return strings.Repeat("\x81", n) + "\x00" }
	tests := []struct{ name, body string }{
		{"empty", ""},
		{"null", "\xf6"},
		{"trailing data", valid + "\x00"},
		{"not a map", "\x80"},
		{"reserved additional information", "\xa1" + k("X") + "\x1c"},
		{"unassigned simple value", "\xa1" + k("X") + "\xe0"},
		{"one-byte simple value", "\xa1" + k("X") + "\xf8\xff"},
		{"tagged key", "\xa1\xc1" + k("EncryptionType") + k("NONE")},
		{"break outside an indefinite item", "\xa1" + k("X") + "\xff"},
		{"indefinite integer", "\xa1" + k("FailedRecordCount") + "\x1f"},
		{"integer key", "\xa1\x01\x00"},
		{"count too large", "\xa1" + k("FailedRecordCount") + "\x1a\x80\x00\x00\x00"},
		{"count too small", "\xa1" + k("FailedRecordCount") + "\x3a\x80\x00\x00\x00"},
		{"count as text", "\xa1" + k("FailedRecordCount") + k("1")},
		{"count as float", "\xa1" + k("FailedRecordCount") + "\xf9\x3c\x00"},
		{"records as a map", "\xa1" + k("Records") + "\xa0"},
		{"entry as a number", "\xa1" + k("Records") + "\x81\x01"},
		{"shard as bytes", "\xa1" + k("Records") + "\x81\xa1" + k("ShardId") + "\x41s"},
		{"sequence number as a number", "\xa1" + k("Records") + "\x81\xa1" + k("SequenceNumber") + "\x01"},
		{"byte chunk in a text string", "\xa1" + k("EncryptionType") + "\x7f\x41a\xff"},
		{"indefinite chunk in a text string", "\xa1" + k("EncryptionType") + "\x7f\x7f\xff\xff"},
		{"array longer than the body", "\xa1" + k("Records") + "\x9b\xff\xff\xff\xff\xff\xff\xff\xff"},
		{"string longer than the body", "\xa1" + k("EncryptionType") + "\x7a\x00\x01\x00\x00abc"},
		{"unknown member nested too deep", "\xa1" + k("X") + nested(cbor.MaxDepth+1)},
		{"endless tags", "\xa1" + k("EncryptionType") + strings.Repeat("\xc1", cbor.MaxTags+1) + k("NONE")},
	}
	for i := range len(valid) { // every cut of a valid body
		tests = append(tests, struct{ name, body string }{fmt.Sprintf("cut at %d", i), valid[:i]})
	}
	for _, tt := range tests {
		out, err := decodePutRecordsCBOR([]byte(tt.body))
		if err == nil || !errors.Is(err, errMalformedCBOR) || out != nil {
			t.Errorf("%s: output %s, error %v; want errMalformedCBOR", tt.name, describeOutput(out), err)
		}
	}
	if _, err := decodePutRecordsCBOR([]byte(valid)); err != nil {
		t.Fatalf("the valid body: %v", err)
	}
	if _, err := decodePutRecordsCBOR([]byte("\xa1" + k("X") + nested(cbor.MaxDepth-1))); err != nil {
		t.Errorf("nested %d deep: %v", cbor.MaxDepth-1, err)
	}
}

// TestDecodePutRecordsCBOROwnsItsStrings: nothing in the output aliases the body, whose buffer
// is reused; shard IDs and error codes are shared.
func TestDecodePutRecordsCBOROwnsItsStrings(t *testing.T) {
	t.Parallel()
	k := cborStr
	body := []byte("\xa3" + k("FailedRecordCount") + "\x02" + k("EncryptionType") + k("KMS") + k("Records") + "\x84" +
		"\xa2" + k("SequenceNumber") + k("1") + k("ShardId") + k("shardId-000000000001") +
		"\xa2" + k("ErrorCode") + k("ProvisionedThroughputExceededException") + k("ErrorMessage") + k("Rate exceeded") +
		"\xa2" + k("SequenceNumber") + k("2") + k("ShardId") + k("shardId-000000000001") +
		"\xa2" + k("ErrorCode") + k("ProvisionedThroughputExceededException") + k("ErrorMessage") + "\x7f\x62Ra\x62te\xff")
	out, err := decodePutRecordsCBOR(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	r := out.Records
	got := fmt.Sprint(out.EncryptionType, " ", *r[0].ShardId, " ", *r[1].ErrorCode, " ", *r[1].ErrorMessage, " ", *r[2].ShardId, " ", *r[3].ErrorMessage)
	if want := "KMS shardId-000000000001 ProvisionedThroughputExceededException Rate exceeded shardId-000000000001 Rate"; got != want {
		t.Errorf("after the body was overwritten: %q, want %q", got, want)
	}
	if r[0].ShardId != r[2].ShardId || r[1].ErrorCode != r[3].ErrorCode {
		t.Error("equal shard IDs or error codes not shared")
	}
}

// TestCBORErrorsMatchJSON: an error answer in CBOR gives the error the same answer in JSON gives
// through the SDK: the same type (the SDK's typed errors included), code, message and text.
func TestCBORErrorsMatchJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		header http.Header
		value  map[string]any // the body, "" for none
		raw    string         // a CBOR body that is not valid, instead of value
	}{
		{name: "not found", status: 400, value: map[string]any{"__type": "ResourceNotFoundException", "message": "Stream s under account 123456789012 not found."}},
		{name: "throttled, namespaced", status: 400, value: map[string]any{"__type": "com.amazonaws.kinesis#ProvisionedThroughputExceededException", "message": "Rate exceeded"}},
		{name: "invalid argument, Message", status: 400, value: map[string]any{"__type": "InvalidArgumentException", "Message": "Partition key must be between 1 and 256"}},
		{name: "KMS throttling", status: 400, value: map[string]any{"__type": "KMSThrottlingException", "message": "slow down"}},
		{name: "access denied", status: 400, value: map[string]any{"__type": "AccessDeniedException", "message": "User is not authorized"}},
		{name: "unknown code", status: 400, value: map[string]any{"__type": "BrandNewException", "message": "new", "Extra": []any{1, "two", nil, true, 2.5}}},
		{name: "code member", status: 400, value: map[string]any{"code": "ExpiredTokenException", "message": "expired"}},
		{name: "code in the header", status: 400, header: http.Header{"X-Amzn-Errortype": {"UnrecognizedClientException:http://internal.amazon.com/"}},
			value: map[string]any{"__type": "Other", "message": "The security token included in the request is invalid."}},
		{name: "server, no message", status: 500, value: map[string]any{"__type": "InternalFailure"}},
		{name: "empty body", status: 503},
		{name: "not CBOR", status: 502, raw: "<html>bad gateway</html>"},
		{name: "truncated CBOR", status: 400, raw: "\xa2\x66__type\x78\x19Resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var jsonBody, cborBody string
			if tt.value != nil {
				b, _ := json.Marshal(tt.value)
				var ok bool
				var cb []byte
				if cb, jsonBody, ok = jsonAsCBOR(string(b)); !ok {
					t.Fatal("bad case")
				}
				cborBody = string(cb)
			}
			if tt.raw != "" {
				cborBody = tt.raw // what cannot be read is as good as no body: the header and status say it all
			}
			_, wantErr := putRecordsRaw(t, cannedHTTP{status: tt.status, body: jsonBody, header: tt.header}, false)
			var closed bool
			_, gotErr := putRecordsRaw(t, cannedHTTP{status: tt.status, body: cborBody, header: tt.header, contentType: cborContentType, closed: &closed}, true)
			if gotErr == nil || wantErr == nil {
				t.Fatalf("errors: CBOR %v, JSON %v; want both", gotErr, wantErr)
			}
			if !closed {
				t.Error("response body not closed")
			}
			if gotErr.Error() != wantErr.Error() {
				t.Errorf("error differs from JSON's:\n got %v\nwant %v", gotErr, wantErr)
			}
			var g, w smithy.APIError
			if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) {
				t.Fatalf("not API errors: CBOR %T, JSON %T", gotErr, wantErr)
			}
			if g.ErrorCode() != w.ErrorCode() || g.ErrorMessage() != w.ErrorMessage() || fmt.Sprintf("%T", g) != fmt.Sprintf("%T", w) {
				t.Errorf("CBOR %T %q %q, JSON %T %q %q", g, g.ErrorCode(), g.ErrorMessage(), w, w.ErrorCode(), w.ErrorMessage())
			}
		})
	}
	// And the SDK's typed errors are what the JSON gives: a check that the table checks something.
	_, err := putRecordsRaw(t, cannedHTTP{status: 400, contentType: cborContentType,
		body: string(smithycbor.Encode(smithycbor.Map{"__type": smithycbor.String("ResourceNotFoundException"), "message": smithycbor.String("gone")}))}, true)
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) || notFound.ErrorMessage() != "gone" {
		t.Errorf("error %v (%T), want a *types.ResourceNotFoundException saying gone", err, err)
	}
}

// TestCBORErrorToJSON covers the conversion of the values JSON cannot carry as they are.
func TestCBORErrorToJSON(t *testing.T) {
	t.Parallel()
	body := smithycbor.Encode(smithycbor.Map{
		"bytes": smithycbor.Slice{0, 1, 0xff}, "neg": smithycbor.NegInt(5), "min": smithycbor.NegInt(0), "big": smithycbor.Uint(math.MaxUint64),
		"tag": &smithycbor.Tag{ID: 1, Value: smithycbor.Uint(7)}, "nan": smithycbor.Float64(math.NaN()), "inf": smithycbor.Float32(float32(math.Inf(1))),
		"undefined": &smithycbor.Undefined{}, "f": smithycbor.Float64(0.5),
	})
	got, err := cborErrorToJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"big":18446744073709551615,"bytes":"AAH/","f":0.5,"inf":null,"min":-18446744073709551616,"nan":null,"neg":-5,"tag":7,"undefined":null}`
	if string(got) != want {
		t.Errorf("JSON\n got %s\nwant %s", got, want)
	}
}

// putRecordsInput returns a random PutRecordsInput of n records: data of lengths around the
// sizes where a CBOR head grows, partition keys of up to 256 characters, some with multi-byte
// and invalid UTF-8, some explicit hash keys.
func putRecordsInput(r *rand.Rand, n int) *kinesissdk.PutRecordsInput {
	sizes := []int{0, 1, 23, 24, 255, 256, 65535, 65536, 70000}
	in := &kinesissdk.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, n)}
	for i := range in.Records {
		size := r.IntN(600)
		if r.IntN(8) == 0 {
			size = sizes[r.IntN(len(sizes))]
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		var key strings.Builder
		for key.Len() == 0 || r.IntN(20) != 0 && key.Len() < 250 {
			switch r.IntN(10) {
			case 0:
				key.WriteString("é")
			case 1:
				key.WriteByte(0xff)
			default:
				key.WriteByte(byte('a' + r.IntN(26)))
			}
		}
		in.Records[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(key.String())}
		if r.IntN(3) == 0 {
			in.Records[i].ExplicitHashKey = aws.String(fmt.Sprint(r.Uint64()))
		}
	}
	switch r.IntN(3) {
	case 0:
		in.StreamName = aws.String("stream-" + fmt.Sprint(r.IntN(1000)))
	case 1:
		in.StreamARN = aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/s")
	default:
		in.StreamName, in.StreamARN = aws.String("s"), aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/s")
	}
	return in
}

// TestPutRecordsCBORBody writes random requests and reads them back with smithy-go's decoder:
// every member as the input has it, the data byte for byte, each partition key as the JSON body
// carries it (invalid UTF-8 replaced alike), nothing else; the length computed first is exact.
func TestPutRecordsCBORBody(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 24, 500} {
		for round := range 4 {
			in := putRecordsInput(r, n)
			if round%2 == 0 { // every text valid UTF-8: written without a second check
				validKeys(in)
			}
			size, ok := putRecordsCBORLen(in)
			if !ok {
				t.Fatal("putRecordsCBORLen refused the input")
			}
			body := appendPutRecordsCBOR(make([]byte, 0, size), in)
			if len(body) != size {
				t.Fatalf("body is %d bytes, computed %d", len(body), size)
			}
			v, err := smithycbor.Decode(body)
			if err != nil {
				t.Fatalf("smithy-go cannot decode the body: %v", err)
			}
			if n := len(smithycbor.Encode(v)); n != len(body) {
				t.Errorf("body of %d bytes, %d in smithy-go's shortest form", len(body), n)
			}
			jsonBody := appendPutRecordsBody(nil, in)
			var fromJSON struct {
				Records []struct{ PartitionKey string }
			}
			if err := json.Unmarshal(jsonBody, &fromJSON); err != nil {
				t.Fatal(err)
			}
			checkCBORRequest(t, v, in, fromJSON.Records)
		}
	}
}

// checkCBORRequest compares a decoded CBOR body with the input it was written from.
func checkCBORRequest(t *testing.T, v smithycbor.Value, in *kinesissdk.PutRecordsInput, jsonKeys []struct{ PartitionKey string }) {
	t.Helper()
	m, ok := v.(smithycbor.Map)
	if !ok {
		t.Fatalf("body is a %T", v)
	}
	wantMembers := 1
	for key, want := range map[string]*string{"StreamName": in.StreamName, "StreamARN": in.StreamARN} {
		if want == nil {
			continue
		}
		wantMembers++
		if got, _ := m[key].(smithycbor.String); string(got) != *want {
			t.Errorf("%s = %v, want %q", key, m[key], *want)
		}
	}
	if len(m) != wantMembers {
		t.Errorf("%d members, want %d: %v", len(m), wantMembers, m)
	}
	recs, _ := m["Records"].(smithycbor.List)
	if len(recs) != len(in.Records) {
		t.Fatalf("%d records, want %d", len(recs), len(in.Records))
	}
	for i, rv := range recs {
		rec, _ := rv.(smithycbor.Map)
		want := in.Records[i]
		if data, ok := rec["Data"].(smithycbor.Slice); !ok || !bytes.Equal(data, want.Data) {
			t.Errorf("record %d: data differs (%T)", i, rec["Data"])
		}
		key, _ := rec["PartitionKey"].(smithycbor.String)
		if string(key) != jsonKeys[i].PartitionKey || !utf8.ValidString(string(key)) {
			t.Errorf("record %d: partition key %q, the JSON body's %q", i, key, jsonKeys[i].PartitionKey)
		}
		if utf8.ValidString(*want.PartitionKey) && string(key) != *want.PartitionKey {
			t.Errorf("record %d: partition key %q, want %q", i, key, *want.PartitionKey)
		}
		members := 2
		if want.ExplicitHashKey != nil {
			members++
			if h, _ := rec["ExplicitHashKey"].(smithycbor.String); string(h) != *want.ExplicitHashKey {
				t.Errorf("record %d: explicit hash key %v, want %q", i, rec["ExplicitHashKey"], *want.ExplicitHashKey)
			}
		}
		if len(rec) != members {
			t.Errorf("record %d: %d members, want %d", i, len(rec), members)
		}
	}
}

func TestPutRecordsCBORLenFallback(t *testing.T) {
	t.Parallel()
	k := aws.String("k")
	for name, in := range map[string]*kinesissdk.PutRecordsInput{
		"dry run":     {Records: []types.PutRecordsRequestEntry{{Data: []byte("d"), PartitionKey: k}}, DryRun: aws.Bool(false)},
		"stream id":   {Records: []types.PutRecordsRequestEntry{{Data: []byte("d"), PartitionKey: k}}, StreamId: aws.String("x")},
		"no records":  {},
		"nil data":    {Records: []types.PutRecordsRequestEntry{{PartitionKey: k}}},
		"nil key":     {Records: []types.PutRecordsRequestEntry{{Data: []byte("d")}}},
		"second nil ": {Records: []types.PutRecordsRequestEntry{{Data: []byte("d"), PartitionKey: k}, {Data: []byte("d")}}},
	} {
		if _, ok := putRecordsCBORLen(in); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAppendPutRecordsCBORAllocs(t *testing.T) {
	in := putRecordsInput(rand.New(rand.NewPCG(7, 8)), 500)
	size, _ := putRecordsCBORLen(in)
	buf := make([]byte, 0, size)
	if n := testing.AllocsPerRun(20, func() { buf = appendPutRecordsCBOR(buf[:0], in) }); n != 0 {
		t.Errorf("%v allocations per body", n)
	}
}

// TestPutRecordsSerializerCBOR: with CBOR set, the middleware writes the CBOR body with its
// content type.
func TestPutRecordsSerializerCBOR(t *testing.T) {
	t.Parallel()
	m := &putRecordsSerializer{sdk: middleware.SerializeMiddlewareFunc(operationSerializerID,
		func(context.Context, middleware.SerializeInput, middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
			t.Error("SDK serializer called")
			return middleware.SerializeOutput{}, middleware.Metadata{}, nil
		}), bodies: &RequestBodies{CBOR: true}}
	var body []byte
	var header http.Header
	next := middleware.SerializeHandlerFunc(func(_ context.Context, in middleware.SerializeInput) (middleware.SerializeOutput, middleware.Metadata, error) {
		req := in.Request.(*smithyhttp.Request)
		header = req.Header.Clone()
		body, _ = io.ReadAll(req.GetStream())
		return middleware.SerializeOutput{}, middleware.Metadata{}, nil
	})
	params := &kinesissdk.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("data"), PartitionKey: aws.String("k")}}}
	in := middleware.SerializeInput{Parameters: params, Request: smithyhttp.NewStackRequest()}
	if _, _, err := m.HandleSerialize(context.Background(), in, next); err != nil {
		t.Fatal(err)
	}
	if want := "\xa2\x67Records\x81\xa2\x64Data\x44data\x6cPartitionKey\x61k\x6aStreamName\x61s"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
	if got := header.Get("Content-Type"); got != cborContentType {
		t.Errorf("Content-Type = %q", got)
	}
	if got := header.Get("X-Amz-Target"); got != putRecordsTarget {
		t.Errorf("X-Amz-Target = %q", got)
	}
}

// FuzzDecodePutRecordsCBOR: the decoder never panics; what it accepts, smithy-go's decoder
// accepts too, and the members read agree with it (refOutput). And every value smithy-go's
// decoder reads, written again in its shortest form, is read by ours as refOutput says.
func FuzzDecodePutRecordsCBOR(f *testing.F) {
	mock, _ := hex.DecodeString(kinesisMockAnswer)
	f.Add(mock)
	k := cborStr
	f.Add([]byte("\xbf" + k("Records") + "\x9f\xbf" + k("ShardId") + "\x7f\x61s\xff\xff\xf6\xff" + k("FailedRecordCount") + "\x01\xff"))
	f.Add([]byte("\xc0\xa2" + k("FailedRecordCount") + "\xc1\x20" + k("Records") + "\x81\xa2" + k("ErrorCode") + k("E") + k("ErrorMessage") + "\x63\xff\xfe!"))
	f.Add([]byte("\xa2" + k("X") + "\x8b\x00\x20\x40\x41\x00\x60\xf4\xf5\xf9\x3c\x00\xfa\x3f\x80\x00\x00\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00\x5f\x41\x00\xff" + k("EncryptionType") + k("KMS")))
	for _, tt := range responseCases {
		if cb, _, ok := jsonAsCBOR(tt.body); ok {
			f.Add(cb)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := decodePutRecordsCBOR(body)
		v, refErr := smithycbor.Decode(body)
		if err == nil {
			if refErr != nil {
				t.Fatalf("accepted %x, which smithy-go rejects: %v", body, refErr)
			}
			want, ok := refOutput(v)
			if !ok {
				t.Fatalf("accepted %x, which is no PutRecords response: %v", body, v)
			}
			if got := describeOutput(out); got != want {
				t.Fatalf("%x:\n got %s\nwant %s", body, got, want)
			}
		}
		if refErr != nil {
			return
		}
		want, ok := refOutput(v)
		if !ok {
			return
		}
		canonical := smithycbor.Encode(v)
		out, err = decodePutRecordsCBOR(canonical)
		if err != nil {
			if strings.Contains(err.Error(), "nested deeper") || strings.Contains(err.Error(), "tags in a row") {
				return // smithy-go nests 128 deep; this reader skips 64 deep, and 8 tags in a row
			}
			t.Fatalf("rejected %x (from %x): %v", canonical, body, err)
		}
		if got := describeOutput(out); got != want {
			t.Fatalf("%x:\n got %s\nwant %s", canonical, got, want)
		}
	})
}

// refOutput is describeOutput of what decodePutRecordsCBOR must give for the value v, read by
// smithy-go, and false when v is no PutRecords response (a member of a wrong type).
func refOutput(v smithycbor.Value) (string, bool) {
	untag := func(v smithycbor.Value) smithycbor.Value {
		for {
			t, ok := v.(*smithycbor.Tag)
			if !ok {
				return v
			}
			v = t.Value
		}
	}
	isNull := func(v smithycbor.Value) bool {
		switch v.(type) {
		case *smithycbor.Nil, *smithycbor.Undefined:
			return true
		}
		return false
	}
	text := func(v smithycbor.Value) (*string, bool) {
		v = untag(v)
		if isNull(v) {
			return nil, true
		}
		s, ok := v.(smithycbor.String)
		return aws.String(string(s)), ok
	}
	m, ok := untag(v).(smithycbor.Map)
	if !ok {
		return "", false
	}
	out := &kinesissdk.PutRecordsOutput{}
	if c, present := m["FailedRecordCount"]; present {
		switch c := untag(c).(type) {
		case smithycbor.Uint:
			if c > math.MaxInt32 {
				return "", false
			}
			out.FailedRecordCount = aws.Int32(int32(c))
		case smithycbor.NegInt:
			if c == 0 || c > -math.MinInt32 {
				return "", false
			}
			out.FailedRecordCount = aws.Int32(int32(-int64(c)))
		case *smithycbor.Nil, *smithycbor.Undefined:
		default:
			return "", false
		}
	}
	if e, present := m["EncryptionType"]; present {
		s, ok := text(e)
		if !ok {
			return "", false
		}
		out.EncryptionType = types.EncryptionType(aws.ToString(s))
	}
	if rv, present := m["Records"]; present {
		rv = untag(rv)
		if !isNull(rv) {
			l, ok := rv.(smithycbor.List)
			if !ok {
				return "", false
			}
			out.Records = []types.PutRecordsResultEntry{}
			for _, ev := range l {
				var e types.PutRecordsResultEntry
				ev = untag(ev)
				if !isNull(ev) {
					em, ok := ev.(smithycbor.Map)
					if !ok {
						return "", false
					}
					for key, dst := range map[string]**string{"ErrorCode": &e.ErrorCode, "ErrorMessage": &e.ErrorMessage, "ShardId": &e.ShardId} {
						if fv, present := em[key]; present {
							if *dst, ok = text(fv); !ok {
								return "", false
							}
						}
					}
					if sv, present := em["SequenceNumber"]; present {
						if _, ok := text(sv); !ok {
							return "", false
						}
					}
				}
				out.Records = append(out.Records, e)
			}
		}
	}
	return describeOutput(out), true
}

// FuzzCBORErrorToJSON: the conversion never panics, and what it writes is JSON that encoding/json
// reads back.
func FuzzCBORErrorToJSON(f *testing.F) {
	f.Add(smithycbor.Encode(smithycbor.Map{"__type": smithycbor.String("ResourceNotFoundException"), "message": smithycbor.String("gone")}))
	f.Add([]byte("\xbf\x66__type\x7f\x61X\xff\xd8\x20\x41\x00\xff"))
	f.Add([]byte{0xa1, 0x61, 'a', 0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		js, err := cborErrorToJSON(body)
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatalf("%x gave %q, not JSON: %v", body, js, err)
		}
		if bytes.Contains(js, []byte{0xff}) {
			t.Fatalf("%x gave %q, not UTF-8", body, js)
		}
	})
}

// BenchmarkPutRecordsBody writes the body of 500 container-sized records in each protocol.
func BenchmarkPutRecordsBody(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	in := &kinesissdk.PutRecordsInput{StreamName: aws.String("s"), Records: make([]types.PutRecordsRequestEntry, 500)}
	for i := range in.Records {
		data := make([]byte, 395)
		for j := range data {
			data[j] = byte(' ' + r.IntN(90))
		}
		in.Records[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(fmt.Sprintf("%016x", r.Uint64()))}
	}
	for _, p := range []struct {
		name     string
		size     func(*kinesissdk.PutRecordsInput) (int, bool)
		appendTo func([]byte, *kinesissdk.PutRecordsInput) []byte
	}{{"protocol=json", putRecordsBodyLen, appendPutRecordsBody}, {"protocol=cbor", putRecordsCBORLen, appendPutRecordsCBOR}} {
		b.Run(p.name, func(b *testing.B) {
			n, _ := p.size(in)
			buf := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				n, _ := p.size(in)
				buf = p.appendTo(buf[:0], in)
				if len(buf) != n {
					b.Fatal("wrong length")
				}
			}
		})
	}
}

// BenchmarkDecodePutRecordsCBOR reads a 500-record answer in CBOR (BenchmarkDecodePutRecordsOutput
// reads it in JSON).
func BenchmarkDecodePutRecordsCBOR(b *testing.B) {
	body, _, _ := jsonAsCBOR(ok500)
	b.Run("records=500", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			out, err := decodePutRecordsCBOR(body)
			if err != nil {
				b.Fatal(err)
			}
			ReleaseResultEntries(out.Records)
		}
	})
}

// TestBodyOfMatchesBody: a body written from records (BodyOf, the direct path's) is byte for byte
// the one written from the same request as the SDK's input (Body, checked against the SDK's
// serializer and decoder by the tests above), in both protocols, with keys that are all valid
// UTF-8 (written without a second check) and keys that are not.
func TestBodyOfMatchesBody(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 3, 500} {
		for round := range 6 {
			in := putRecordsInput(r, n)
			if round%2 == 0 {
				validKeys(in)
			}
			records := make([]Record, len(in.Records))
			for i, e := range in.Records {
				records[i] = Record{Data: e.Data, PartitionKey: *e.PartitionKey}
				if e.ExplicitHashKey != nil {
					records[i].ExplicitHashKey = *e.ExplicitHashKey
				}
			}
			for _, cbor := range []bool{false, true} {
				b := &RequestBodies{CBOR: cbor}
				want, wantType, ok, err := b.Body(in)
				if !ok || err != nil {
					t.Fatalf("Body: %v, %v", ok, err)
				}
				got, gotType, err := b.BodyOf(records, in.StreamName, in.StreamARN)
				if err != nil {
					t.Fatal(err)
				}
				if gotType != wantType || !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("cbor %v, %d records, round %d: BodyOf wrote %s %.120q, Body %s %.120q",
						cbor, n, round, gotType, got.Bytes(), wantType, want.Bytes())
				}
				got.Release()
				want.Release()
			}
		}
	}
}

// validKeys makes every partition key of in valid UTF-8.
func validKeys(in *kinesissdk.PutRecordsInput) {
	for i := range in.Records {
		in.Records[i].PartitionKey = aws.String(strings.ToValidUTF8(*in.Records[i].PartitionKey, "?"))
	}
}

// TestPlainEntry: the fast reader takes the entries Kinesis and kinesis-mock write for accepted
// records, and gives what the general reader gives for them; it reads nothing of any other, for
// the general reader to read.
func TestPlainEntry(t *testing.T) {
	t.Parallel()
	k, seq, shard := cborStr, cborStr("49680760804974978402649271451734312720493422738522767362"), cborStr("shardId-000000000000")
	tests := []struct {
		name  string
		entry string
		taken bool
	}{
		{"kinesis", "\xa2" + k("SequenceNumber") + seq + k("ShardId") + shard, true},
		{"kinesis-mock", "\xa4" + k("ErrorCode") + "\xf6" + k("ErrorMessage") + "\xf6" + k("SequenceNumber") + seq + k("ShardId") + shard, true},
		{"shard first", "\xa2" + k("ShardId") + shard + k("SequenceNumber") + seq, true},
		{"undefined error", "\xa3" + k("ErrorCode") + "\xf7" + k("SequenceNumber") + seq + k("ShardId") + shard, true},
		{"empty", "\xa0", true},
		{"failed", "\xa2" + k("ErrorCode") + k("ProvisionedThroughputExceededException") + k("ErrorMessage") + k("Rate exceeded"), false},
		{"null shard", "\xa2" + k("SequenceNumber") + seq + k("ShardId") + "\xf6", false},
		{"unknown member", "\xa3" + k("SequenceNumber") + seq + k("ShardId") + shard + k("X") + "\x01", false},
		{"twice", "\xa2" + k("ShardId") + shard + k("ShardId") + cborStr("shardId-000000000001"), false},
		{"indefinite map", "\xbf" + k("ShardId") + shard + "\xff", false},
		{"indefinite text", "\xa1" + k("ShardId") + "\x7f" + shard + "\xff", false},
		{"tagged", "\xc0\xa1" + k("ShardId") + shard, false},
		{"long text", "\xa1" + k("ShardId") + string(cbor.AppendText(nil, strings.Repeat("s", 300))), false},
		{"cut short", "\xa2" + k("SequenceNumber") + seq + k("ShardId") + shard[:5], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.entry)
			fast := &cborResponse{Reader: cbor.NewReader(body)}
			var got types.PutRecordsResultEntry
			if taken := fast.plainEntry(&got); taken != tt.taken {
				t.Fatalf("taken %v, want %v", taken, tt.taken)
			}
			if !tt.taken {
				if fast.Offset() != 0 || got != (types.PutRecordsResultEntry{}) {
					t.Fatalf("not taken, yet read %d bytes and gave %+v", fast.Offset(), got)
				}
				return
			}
			if !fast.Done() {
				t.Errorf("read %d of %d bytes", fast.Offset(), len(body))
			}
			// The general reader, on the same entry in a response.
			resp := "\xa1" + k("Records") + "\x81" + tt.entry
			want, err := decodePutRecordsCBOR([]byte(resp))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := describeOutput(&kinesissdk.PutRecordsOutput{Records: []types.PutRecordsResultEntry{got}}), describeOutput(want); g != w {
				t.Errorf("fast reader gave %s, the response reader %s", g, w)
			}
		})
	}
}
