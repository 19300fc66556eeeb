package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
)

// cannedHTTP answers every request with one response.
type cannedHTTP struct {
	status      int
	body        string
	closed      *bool
	contentType string      // jsonContentType when ""
	header      http.Header // more headers
}

func (h cannedHTTP) Do(req *http.Request) (*http.Response, error) {
	header := http.Header{"Content-Type": {jsonContentType}, "X-Amzn-Requestid": {"req-1"}}
	if h.contentType != "" {
		header.Set("Content-Type", h.contentType)
	}
	for k, v := range h.header {
		header[k] = v
	}
	return &http.Response{
		StatusCode: h.status, Status: http.StatusText(h.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        header,
		Body:          &closeTracker{Reader: strings.NewReader(h.body), closed: h.closed},
		ContentLength: int64(len(h.body)), Request: req,
	}, nil
}

type closeTracker struct {
	io.Reader
	closed *bool
}

func (c *closeTracker) Close() error {
	if c.closed != nil {
		*c.closed = true
	}
	return nil
}

// cannedClient is an SDK client answered by h, with or without our decoder.
func cannedClient(h cannedHTTP, ours bool) *kinesissdk.Client {
	return kinesissdk.New(kinesissdk.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("https://kinesis.test"), HTTPClient: h,
		Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		}),
	}, func(o *kinesissdk.Options) {
		if ours {
			o.APIOptions = append(o.APIOptions, InstallResponseDecoder)
		}
	})
}

// putRecordsRaw sends one PutRecords through an SDK client answered by h, with or without our decoder.
func putRecordsRaw(t *testing.T, h cannedHTTP, ours bool) (*kinesissdk.PutRecordsOutput, error) {
	t.Helper()
	return cannedClient(h, ours).PutRecords(context.Background(), &kinesissdk.PutRecordsInput{
		StreamName: aws.String("s"),
		Records:    []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}},
	})
}

func describeOutput(out *kinesissdk.PutRecordsOutput) string {
	if out == nil {
		return "<nil>"
	}
	p := func(s *string) string {
		if s == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", *s)
	}
	var b strings.Builder
	if out.FailedRecordCount == nil {
		b.WriteString("failed nil")
	} else {
		fmt.Fprintf(&b, "failed %d", *out.FailedRecordCount)
	}
	fmt.Fprintf(&b, " enc %q records(nil %v)", out.EncryptionType, out.Records == nil)
	for _, r := range out.Records {
		fmt.Fprintf(&b, " {code %s msg %s seq %s shard %s}", p(r.ErrorCode), p(r.ErrorMessage), p(r.SequenceNumber), p(r.ShardId))
	}
	return b.String()
}

// ok500 is a response accepting 500 records.
var ok500 = `{"FailedRecordCount":0,"Records":[` + strings.Repeat(`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"},`, 499) +
	`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588899","ShardId":"shardId-000000000001"}],"EncryptionType":"KMS"}`

// responseCases are PutRecords response bodies in JSON, and whether the SDK rejects them.
var responseCases = []struct {
	name    string
	body    string
	wantErr bool
}{
	{name: "success", body: `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}`},
	{name: "500 records", body: ok500},
	{name: "partial failure", body: `{"FailedRecordCount":2,"Records":[` +
		`{"SequenceNumber":"1","ShardId":"shardId-000000000003"},` +
		`{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream s under account 123456789012."},` +
		`{"ErrorCode":"InternalFailure","ErrorMessage":"Internal service failure."}],"EncryptionType":"NONE"}`},
	{name: "unicode and escapes", body: `{"FailedRecordCount":1,"Records":[{"ErrorCode":"KMSThrottlingException",` +
		`"ErrorMessage":"\u00e9t\u00e9 \"quoted\" \\ \/ \n\t\ud83d\ude00 \u2028 日本語 😀","ShardId":"shard\u002d1"}]}`},
	{name: "invalid UTF-8", body: "{\"Records\":[{\"ErrorCode\":\"E\",\"ErrorMessage\":\"bad \xff\xfe utf-8 \xe2\x82\"}]}"},
	{name: "lone surrogate", body: `{"Records":[{"ErrorCode":"E","ErrorMessage":"\ud800 lone \udfff"}]}`},
	{name: "whitespace and member order", body: " \n{ \"Records\" : [ { \"ShardId\" : \"a\" , \"SequenceNumber\" : \"2\" } ] ,\r\n\t\"FailedRecordCount\" : 0 } \n"},
	{name: "missing fields", body: `{"Records":[{},{"ShardId":"s"}]}`},
	{name: "nulls", body: `{"FailedRecordCount":null,"EncryptionType":null,"Records":[null,{"ErrorCode":null,"ShardId":null}]}`},
	{name: "null records", body: `{"FailedRecordCount":0,"Records":null}`},
	{name: "empty records", body: `{"FailedRecordCount":0,"Records":[]}`},
	{name: "empty object", body: `{}`},
	{name: "unknown members", body: `{"Extra":{"a":[1,2.5e3,true,false,null,"x\"]"],"b":{}},"Records":[{"New":[[]],"ShardId":"s","More":-1}],"Tail":"t"}`},
	// Near the shape acceptedEntry reads, but not it: the general path must read them.
	{name: "accepted shape with escapes", body: `{"Records":[{"SequenceNumber":"4\u0039","ShardId":"s"},{"SequenceNumber":"1","ShardId":"shard\u002d1"},{"SequenceNumber":"1","ShardId":"a\"b"}]}`},
	{name: "accepted shape with more", body: `{"Records":[{"SequenceNumber":"1","ShardId":"s","ErrorCode":"E"},{"SequenceNumber":"1","ShardId":"s" },{"SequenceNumber":"1" ,"ShardId":"s"}]}`},
	{name: "accepted shape cut", body: `{"Records":[{"SequenceNumber":"1","ShardId":"s"`, wantErr: true},
	{name: "control character in number", body: "{\"Records\":[{\"SequenceNumber\":\"1\x01\",\"ShardId\":\"s\"}]}", wantErr: true},
	{name: "control character in shard", body: "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\t\"}]}", wantErr: true},
	{name: "bad escape before brace", body: `{"Records":[{"SequenceNumber":"1","ShardId":"a\}"}]}`, wantErr: true},
	{name: "control character before brace", body: "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"a\x01},{\"ShardId\":\"b\"}]}", wantErr: true},
	{name: "not an object", body: `[]`, wantErr: true},
	{name: "truncated", body: `{"FailedRecordCount":0,"Records":[{"ShardId":"s"`, wantErr: true},
	{name: "records not an array", body: `{"Records":{"ShardId":"s"}}`, wantErr: true},
	{name: "count not a number", body: `{"FailedRecordCount":"1","Records":[]}`, wantErr: true},
	{name: "shard not a string", body: `{"Records":[{"ShardId":1}]}`, wantErr: true},
	{name: "bad escape", body: `{"Records":[{"ShardId":"\q"}]}`, wantErr: true},
}

// TestPutRecordsDecoderMatchesSDK decodes real-shaped responses with our decoder and the SDK's,
// and wants the same output (but SequenceNumber, which ours leaves nil), or an error from both.
func TestPutRecordsDecoderMatchesSDK(t *testing.T) {
	t.Parallel()
	tests := responseCases
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := putRecordsRaw(t, cannedHTTP{status: 200, body: tt.body}, false)
			var closed bool
			got, gotErr := putRecordsRaw(t, cannedHTTP{status: 200, body: tt.body, closed: &closed}, true)
			if (wantErr != nil) != tt.wantErr {
				t.Fatalf("SDK error %v, want error %v: the case is wrong", wantErr, tt.wantErr)
			}
			if (gotErr != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v (SDK: %v)", gotErr, tt.wantErr, wantErr)
			}
			if !closed {
				t.Error("response body not closed")
			}
			if tt.wantErr {
				return
			}
			// Ours leaves SequenceNumber nil (nothing reads it): the rest must match.
			for i := range got.Records {
				if got.Records[i].SequenceNumber != nil {
					t.Fatalf("record %d: SequenceNumber %q kept", i, *got.Records[i].SequenceNumber)
				}
			}
			for i := range want.Records {
				want.Records[i].SequenceNumber = nil
			}
			if g, w := describeOutput(got), describeOutput(want); g != w {
				t.Errorf("output differs from the SDK's:\n got %.600s\nwant %.600s", g, w)
			}
		})
	}
}

// TestPutRecordsDecoderLeavesErrorsToSDK: error responses decode to the SDK's typed errors.
func TestPutRecordsDecoderLeavesErrorsToSDK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{name: "not found", status: 400, body: `{"__type":"ResourceNotFoundException","message":"Stream s under account 123456789012 not found."}`},
		{name: "throttled", status: 400, body: `{"__type":"com.amazonaws.kinesis#ProvisionedThroughputExceededException","message":"Rate exceeded"}`},
		{name: "server", status: 500, body: `{"__type":"InternalFailure"}`},
		{name: "empty", status: 503, body: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, wantErr := putRecordsRaw(t, cannedHTTP{status: tt.status, body: tt.body}, false)
			var closed bool
			_, gotErr := putRecordsRaw(t, cannedHTTP{status: tt.status, body: tt.body, closed: &closed}, true)
			if gotErr == nil || wantErr == nil {
				t.Fatalf("errors: ours %v, SDK %v; want both", gotErr, wantErr)
			}
			if gotErr.Error() != wantErr.Error() {
				t.Errorf("error differs from the SDK's:\n got %v\nwant %v", gotErr, wantErr)
			}
			var g, w interface{ ErrorCode() string }
			if errors.As(gotErr, &g) != errors.As(wantErr, &w) || g != nil && g.ErrorCode() != w.ErrorCode() {
				t.Errorf("error code differs from the SDK's: got %v, want %v", g, w)
			}
			if !closed {
				t.Error("response body not closed")
			}
		})
	}
}

// TestPutRecordsDecoderOtherOperations: other operations keep the SDK's decoder.
func TestPutRecordsDecoderOtherOperations(t *testing.T) {
	t.Parallel()
	h := cannedHTTP{status: 200, body: `{"Shards":[{"ShardId":"shardId-000000000007","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"},` +
		`"SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}`}
	c := kinesissdk.New(kinesissdk.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("https://kinesis.test"), HTTPClient: h, Retryer: aws.NopRetryer{},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		}),
		APIOptions: []func(*middleware.Stack) error{InstallResponseDecoder},
	})
	out, err := c.ListShards(context.Background(), &kinesissdk.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	if len(out.Shards) != 1 || aws.ToString(out.Shards[0].ShardId) != "shardId-000000000007" ||
		aws.ToString(out.Shards[0].HashKeyRange.EndingHashKey) != "9" {
		t.Errorf("ListShards output %+v", out.Shards)
	}
}

func BenchmarkDecodePutRecordsOutput(b *testing.B) {
	body := []byte(`{"FailedRecordCount":0,"Records":[` + strings.Repeat(`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"},`, 499) +
		`{"SequenceNumber":"1","ShardId":"shardId-000000000001"}],"EncryptionType":"NONE"}`)
	b.Run("records=500", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodePutRecordsOutput(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPutRecordsResponse: a whole SDK call answered with a 500-record response, decoded by
// the SDK or by putRecordsDecoder.
func BenchmarkPutRecordsResponse(b *testing.B) {
	body := `{"FailedRecordCount":0,"Records":[` + strings.Repeat(`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"},`, 499) +
		`{"SequenceNumber":"1","ShardId":"shardId-000000000001"}],"EncryptionType":"NONE"}`
	for _, ours := range []bool{false, true} {
		name := "decoder=sdk"
		if ours {
			name = "decoder=ours"
		}
		b.Run(name, func(b *testing.B) {
			c := cannedClient(cannedHTTP{status: 200, body: body}, ours)
			in := &kinesissdk.PutRecordsInput{StreamName: aws.String("s"),
				Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.PutRecords(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodePutRecordsOutput: the decoder never panics, accepts only valid JSON, and agrees with
// encoding/json on the members it reads.
func FuzzDecodePutRecordsOutput(f *testing.F) {
	f.Add([]byte(`{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s"},{"ErrorCode":"E","ErrorMessage":"m\u00e9"}],"EncryptionType":"NONE"}`))
	f.Add([]byte(`{"Records":[null,{}],"X":[1,{"a":"\""}]}`))
	f.Add([]byte("{\"Records\":[{\"ShardId\":\"bad \xff utf-8\"}]}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := decodePutRecordsOutput(body)
		if err != nil || !utf8.Valid(body) {
			return // invalid UTF-8: the SDK keeps it as is, encoding/json does not (see the table test)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var top map[string]any // exact member names, as the SDK matches them
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
		}
		want, _ := top["Records"].([]any)
		if len(out.Records) != len(want) {
			t.Fatalf("%d records, encoding/json %d: %q", len(out.Records), len(want), body)
		}
		for i, w := range want {
			m, _ := w.(map[string]any)
			g := out.Records[i]
			if g.SequenceNumber != nil {
				t.Fatalf("record %d: SequenceNumber kept: %q", i, body)
			}
			for key, got := range map[string]*string{"ErrorCode": g.ErrorCode, "ErrorMessage": g.ErrorMessage, "ShardId": g.ShardId} {
				if v, _ := m[key].(string); aws.ToString(got) != v || (got == nil) != (m[key] == nil) {
					t.Fatalf("record %d %s: %v, encoding/json %v: %q", i, key, got, m[key], body)
				}
			}
		}
	})
}

// TestDecodePutRecordsOutputOwnsItsStrings: the body's buffer is reused for the next response, so
// nothing in the output may alias it; and shard IDs and error codes are shared, not copied per
// record.
func TestDecodePutRecordsOutputOwnsItsStrings(t *testing.T) {
	body := []byte(`{"FailedRecordCount":2,"EncryptionType":"KMS","Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000001"},` +
		`{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},` +
		`{"SequenceNumber":"2","ShardId":"shardId-000000000001"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate"}]}`)
	out, err := decodePutRecordsOutput(body)
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

// TestSpecialIndex compares specialIndex with a byte loop, for every length up to 40 and every
// position of each byte it looks for, among bytes it must pass over (high ones included).
func TestSpecialIndex(t *testing.T) {
	naive := func(s string) int {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == '"' || s[i] == '\\' {
				return i
			}
		}
		return len(s)
	}
	fill := []byte("0aZ~ \x7f\x80\xff!#[]")
	for n := 0; n <= 40; n++ {
		base := make([]byte, n)
		for i := range base {
			base[i] = fill[i%len(fill)]
		}
		if got := specialIndex(string(base)); got != n {
			t.Fatalf("%q: %d, want %d", base, got, n)
		}
		for pos := 0; pos < n; pos++ {
			for _, c := range []byte{'"', '\\', 0, 0x1f, '\n'} {
				b := append([]byte(nil), base...)
				b[pos] = c
				if pos+1 < n { // a second one after must not move the answer
					b[n-1] = '"'
				}
				if got, want := specialIndex(string(b)), naive(string(b)); got != want {
					t.Fatalf("%q: %d, want %d", b, got, want)
				}
			}
		}
	}
}
