package kinesis

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/aws/smithy-go/middleware"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// sentRequest is one request as the HTTP client received it, after signing.
type sentRequest struct {
	Body          []byte
	ContentType   string
	Target        string
	ContentLength int64
	URL           string
	Host          string
	Token         string // X-Amz-Security-Token
	SDKRequest    string // Amz-Sdk-Request
	InvocationID  int    // the length of Amz-Sdk-Invocation-Id
	// SignedHeaders and Scope are the signature's parts that do not change with time.
	SignedHeaders string
	Scope         string
}

// signingHTTP is an HTTP client that checks the SigV4 signature of every request against the body
// it carries (signing again with the fake credentials, at the request's time, over the SHA-256 of
// the bytes read), records the request and accepts every record.
type signingHTTP struct {
	t    *testing.T
	mu   sync.Mutex
	sent []sentRequest
	// hangUps is the number of requests to fail with a network error before answering.
	hangUps int
}

func (h *signingHTTP) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	resigned := r.Clone(r.Context())
	resigned.Header.Del("Authorization")
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		h.t.Errorf("X-Amz-Date: %v", err)
	}
	creds := aws.Credentials{AccessKeyID: fakeKeyID, SecretAccessKey: fakeSecret}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, resigned, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at); err != nil {
		h.t.Errorf("sign again: %v", err)
	}
	if got, want := r.Header.Get("Authorization"), resigned.Header.Get("Authorization"); got != want {
		h.t.Errorf("Authorization = %q,\nthe body's signature is %q", got, want)
	}

	h.mu.Lock()
	h.sent = append(h.sent, sentRequest{
		Body:          body,
		ContentType:   r.Header.Get("Content-Type"),
		Target:        r.Header.Get("X-Amz-Target"),
		ContentLength: r.ContentLength,
		URL:           r.URL.String(),
		Host:          r.Host,
		Token:         r.Header.Get("X-Amz-Security-Token"),
		SDKRequest:    r.Header.Get("Amz-Sdk-Request"),
		InvocationID:  len(r.Header.Get("Amz-Sdk-Invocation-Id")),
		SignedHeaders: authPart(r.Header.Get("Authorization"), "SignedHeaders="),
		Scope:         authPart(r.Header.Get("Authorization"), "Credential="),
	})
	hangUp := len(h.sent) <= h.hangUps
	h.mu.Unlock()
	if hangUp {
		return nil, &netError{}
	}

	rec := httptest.NewRecorder()
	if r.Header.Get("Content-Type") == "application/x-amz-cbor-1.1" {
		v, err := cbor.Decode(body)
		if err != nil {
			h.t.Errorf("decode body: %v", err)
		}
		m, _ := v.(cbor.Map)
		recs, _ := m["Records"].(cbor.List)
		writeCBORResult(rec, make([]string, len(recs)))
		return rec.Result(), nil
	}
	var in struct{ Records []json.RawMessage }
	if err := json.Unmarshal(body, &in); err != nil {
		h.t.Errorf("decode body: %v", err)
	}
	writeResult(rec, make([]string, len(in.Records)))
	return rec.Result(), nil
}

// authPart returns the part of an Authorization header that follows prefix, up to its comma.
func authPart(auth, prefix string) string {
	_, rest, ok := strings.Cut(auth, prefix)
	if !ok {
		return ""
	}
	part, _, _ := strings.Cut(rest, ",")
	return part
}

func (h *signingHTTP) requests() []sentRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sentRequest(nil), h.sent...)
}

// netError is a connection reset, as the SDK's retryer sees one.
type netError struct{}

func (*netError) Error() string   { return "read tcp: connection reset by peer" }
func (*netError) Timeout() bool   { return false }
func (*netError) Temporary() bool { return false }

// withSDKSerializer undoes wire.RequestBodies.Install: the client serializes with the SDK. It
// applies to the SDK path only: sendOnce takes that path when it is given.
func withSDKSerializer(o *kinesissdk.Options) {
	const id = "OperationSerializer"
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		m, ok := stack.Serialize.Get(id)
		if !ok {
			return fmt.Errorf("no %s", id)
		}
		ours, ok := m.(interface {
			Unwrap() middleware.SerializeMiddleware
		})
		if !ok {
			return fmt.Errorf("%s is %T, not ours", id, m)
		}
		_, err := stack.Serialize.Swap(id, ours.Unwrap())
		return err
	})
}

// sendOnce sends entries through a new client with the given serializer and returns what the
// HTTP client received.
func sendOnce(t *testing.T, stream string, entries []Entry, hangUps int, autoRetry bool, extra ...func(*kinesissdk.Options)) []sentRequest {
	t.Helper()
	return sendOnceWith(t, Options{Stream: stream, AutoRetry: autoRetry}, entries, hangUps, extra...)
}

// sendOnceWith is sendOnce with the client's options (region and endpoint set for it).
func sendOnceWith(t *testing.T, o Options, entries []Entry, hangUps int, extra ...func(*kinesissdk.Options)) []sentRequest {
	t.Helper()
	h := &signingHTTP{t: t, hangUps: hangUps}
	if len(extra) > 0 {
		o.PutRecordsPath = PathSDK // the options apply to the SDK's stack
	}
	extra = append([]func(*kinesissdk.Options){func(o *kinesissdk.Options) { o.HTTPClient = h }}, extra...)
	o.Region, o.Endpoint = "us-east-1", "https://kinesis.test"
	c, err := newClient(context.Background(), o, extra...)
	if err != nil {
		t.Fatalf("newClient: %v", err)
	}
	if _, err := c.PutRecords(context.Background(), entries); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	return h.requests()
}

// wireBody is a PutRecords body, decoded.
type wireBody struct {
	StreamName *string
	StreamARN  *string
	Records    []struct {
		Data            []byte // base64
		PartitionKey    *string
		ExplicitHashKey *string
	}
}

func decodeBody(t *testing.T, body []byte) wireBody {
	t.Helper()
	var w wireBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("decode %.200q: %v", body, err)
	}
	return w
}

func randomEntries(r *rand.Rand, n int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		data := make([]byte, r.IntN(2000))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		entries[i] = Entry{Data: data, PartitionKey: fmt.Sprintf("key-%d-%x", i, r.Uint64())}
		if i%3 == 0 {
			entries[i].ExplicitHashKey = fmt.Sprint(r.Uint64())
		}
	}
	return entries
}

// TestPutRecordsBodyMatchesSDK sends the same entries with the SDK's serializer and with ours and
// compares what reached the HTTP client: the same bytes (so the same JSON), the same headers, and
// a signature over those bytes.
func TestPutRecordsBodyMatchesSDK(t *testing.T) {
	isolateEnv(t)
	r := rand.New(rand.NewPCG(1, 2))
	mib := make([]byte, 1<<20)
	for i := range mib {
		mib[i] = byte(r.Uint32())
	}
	tests := []struct {
		name    string
		stream  string
		entries []Entry
	}{
		{name: "stream name", stream: "my-stream", entries: []Entry{{Data: []byte("{\"a\":1}\n"), PartitionKey: "k"}}},
		{name: "stream ARN", stream: "arn:aws:kinesis:us-east-1:123456789012:stream/s", entries: []Entry{{Data: []byte("x"), PartitionKey: "k"}}},
		{name: "explicit hash key set and unset", stream: "s", entries: []Entry{
			{Data: []byte("a"), PartitionKey: "k1", ExplicitHashKey: "170141183460469231731687303715884105728"},
			{Data: []byte("b"), PartitionKey: "k2"},
			{Data: []byte("c"), PartitionKey: "k3", ExplicitHashKey: "0"},
		}},
		{name: "unicode keys", stream: "поток-ü", entries: []Entry{
			{Data: []byte("a"), PartitionKey: "ключ"},
			{Data: []byte("b"), PartitionKey: "日本語のキー"},
			{Data: []byte("c"), PartitionKey: "😀\u00e9\u2028\u2029"},
		}},
		{name: "escaped keys", stream: "s", entries: []Entry{
			{Data: []byte("a"), PartitionKey: `quote " and backslash \ `},
			{Data: []byte("b"), PartitionKey: "\n\r\t\b\f\x00\x01\x1f\x7f"},
			{Data: []byte("c"), PartitionKey: "<html>&amp;</html>"},
			{Data: []byte("d"), PartitionKey: "invalid \xff\xfe utf-8 \xe2\x82"},
			{Data: []byte("e"), PartitionKey: strings.Repeat("\"\\", limits.MaxPartitionKeyLen/2)},
		}},
		{name: "empty data", stream: "s", entries: []Entry{{Data: []byte{}, PartitionKey: "k"}, {Data: nil, PartitionKey: "k"}}},
		{name: "1 MiB data", stream: "s", entries: []Entry{{Data: mib, PartitionKey: "k"}}},
		{name: "500 records", stream: "s", entries: randomEntries(r, limits.MaxRecordsPerRequest)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdk := sendOnce(t, tt.stream, tt.entries, 0, false, withSDKSerializer)
			ours := sendOnce(t, tt.stream, tt.entries, 0, false)
			if len(sdk) != 1 || len(ours) != 1 {
				t.Fatalf("requests: SDK %d, ours %d, want 1", len(sdk), len(ours))
			}
			want, got := sdk[0], ours[0]
			if got.ContentType != "application/x-amz-json-1.1" || got.ContentType != want.ContentType {
				t.Errorf("Content-Type = %q, SDK %q", got.ContentType, want.ContentType)
			}
			if got.Target != "Kinesis_20131202.PutRecords" || got.Target != want.Target {
				t.Errorf("X-Amz-Target = %q, SDK %q", got.Target, want.Target)
			}
			if got.ContentLength != int64(len(got.Body)) || got.ContentLength != want.ContentLength {
				t.Errorf("Content-Length = %d for %d bytes, SDK %d", got.ContentLength, len(got.Body), want.ContentLength)
			}
			// The same JSON, whatever the byte order...
			wb, gb := decodeBody(t, want.Body), decodeBody(t, got.Body)
			wj, _ := json.Marshal(wb)
			gj, _ := json.Marshal(gb)
			if !bytes.Equal(gj, wj) {
				t.Errorf("decoded body differs from the SDK's:\n got %.300s\nwant %.300s", gj, wj)
			}
			if len(gb.Records) != len(tt.entries) {
				t.Fatalf("%d records sent, want %d", len(gb.Records), len(tt.entries))
			}
			for i, e := range tt.entries {
				rec := gb.Records[i]
				if !bytes.Equal(rec.Data, e.Data) {
					t.Errorf("record %d: data differs", i)
				}
				if utf8.ValidString(e.PartitionKey) && (rec.PartitionKey == nil || *rec.PartitionKey != e.PartitionKey) {
					t.Errorf("record %d: partition key %v, want %q", i, rec.PartitionKey, e.PartitionKey)
				}
				if (rec.ExplicitHashKey != nil) != (e.ExplicitHashKey != "") ||
					rec.ExplicitHashKey != nil && *rec.ExplicitHashKey != e.ExplicitHashKey {
					t.Errorf("record %d: explicit hash key %v, want %q", i, rec.ExplicitHashKey, e.ExplicitHashKey)
				}
			}
			// ... and, as both write members in the schema's order, the same bytes.
			if !bytes.Equal(got.Body, want.Body) {
				t.Errorf("body differs from the SDK's:\n got %.300q\nwant %.300q", got.Body, want.Body)
			}
		})
	}
}

// TestPutRecordsRetrySendsSameBody: the pooled body is still whole when the SDK sends it again
// after a network error, and is signed again over the same bytes.
func TestPutRecordsRetrySendsSameBody(t *testing.T) {
	isolateEnv(t)
	entries := randomEntries(rand.New(rand.NewPCG(3, 4)), 50)
	want := sendOnce(t, "s", entries, 0, false, withSDKSerializer)
	got := sendOnce(t, "s", entries, 1, true)
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2 (one retry)", len(got))
	}
	for i, req := range got {
		if !bytes.Equal(req.Body, want[0].Body) {
			t.Errorf("attempt %d: body differs from the SDK's:\n got %.200q\nwant %.200q", i+1, req.Body, want[0].Body)
		}
	}
}

// TestPutRecordsConcurrentBodies: requests in flight at once on one client each send their own
// entries, never a body reused by another request.
func TestPutRecordsConcurrentBodies(t *testing.T) {
	isolateEnv(t)
	srv := newFakeKinesis(t, nil)
	c := newTestClient(t, Options{Endpoint: srv.URL})
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("w%d-i%d", w, i)
				data := bytes.Repeat([]byte(key), 1000+100*w)
				if _, err := c.PutRecords(context.Background(), []Entry{{Data: data, PartitionKey: key}}); err != nil {
					t.Errorf("PutRecords: %v", err)
				}
			}
		})
	}
	wg.Wait()
	reqs := srv.recorded()
	if len(reqs) != workers*perWorker {
		t.Fatalf("server got %d requests, want %d", len(reqs), workers*perWorker)
	}
	seen := map[string]bool{}
	for _, req := range reqs {
		e := req.Records[0]
		var w int
		if _, err := fmt.Sscanf(e.PartitionKey, "w%d-", &w); err != nil {
			t.Fatalf("key %q: %v", e.PartitionKey, err)
		}
		if want := bytes.Repeat([]byte(e.PartitionKey), 1000+100*w); !bytes.Equal(e.Data, want) {
			t.Errorf("key %q: data is not its own", e.PartitionKey)
		}
		seen[e.PartitionKey] = true
	}
	if len(seen) != workers*perWorker {
		t.Errorf("%d distinct requests, want %d", len(seen), workers*perWorker)
	}
}
