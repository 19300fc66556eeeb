package kinesis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// writeCBORResult answers a PutRecords request in CBOR, as writeResult does in JSON.
func writeCBORResult(w http.ResponseWriter, codes []string) {
	recs := cbor.List{}
	failed := 0
	for i, code := range codes {
		if code != "" {
			failed++
			recs = append(recs, cbor.Map{"ErrorCode": cbor.String(code), "ErrorMessage": cbor.String("failed " + code)})
			continue
		}
		recs = append(recs, cbor.Map{"SequenceNumber": cbor.String(fmt.Sprint(1000 + i)), "ShardId": cbor.String("shardId-000000000000")})
	}
	w.Header().Set("Content-Type", "application/x-amz-cbor-1.1")
	_, _ = w.Write(cbor.Encode(cbor.Map{"FailedRecordCount": cbor.Uint(failed), "Records": recs}))
}

// cborRecords decodes the records of a PutRecords body in CBOR with smithy-go's decoder.
func cborRecords(t *testing.T, body []byte) (stream string, records []Entry) {
	t.Helper()
	v, err := cbor.Decode(body)
	if err != nil {
		t.Fatalf("decode %.100q: %v", body, err)
	}
	m, _ := v.(cbor.Map)
	s, _ := m["StreamName"].(cbor.String)
	l, _ := m["Records"].(cbor.List)
	for _, rv := range l {
		rm, _ := rv.(cbor.Map)
		data, _ := rm["Data"].(cbor.Slice)
		key, _ := rm["PartitionKey"].(cbor.String)
		hash, _ := rm["ExplicitHashKey"].(cbor.String)
		records = append(records, Entry{Data: data, PartitionKey: string(key), ExplicitHashKey: string(hash)})
	}
	return string(s), records
}

// TestPutRecordsCBOR sends entries with Protocol cbor: the body is CBOR with every entry's data as
// it is, signed (signingHTTP checks the signature over the bytes it read), and again the same
// after a network error (auto retry rewinds it).
func TestPutRecordsCBOR(t *testing.T) {
	isolateEnv(t)
	r := rand.New(rand.NewPCG(9, 10))
	entries := append(randomEntries(r, limits.MaxRecordsPerRequest-2),
		Entry{Data: nil, PartitionKey: "empty"}, Entry{Data: []byte("x"), PartitionKey: "日本語のキー"})
	sent := sendOnceWith(t, Options{Stream: "my-stream", Protocol: ProtocolCBOR, AutoRetry: true}, entries, 1)
	if len(sent) != 2 {
		t.Fatalf("%d requests, want 2 (a network error, then the retry)", len(sent))
	}
	if !bytes.Equal(sent[0].Body, sent[1].Body) {
		t.Error("the retry sent another body")
	}
	got := sent[1]
	if got.ContentType != "application/x-amz-cbor-1.1" || got.Target != "Kinesis_20131202.PutRecords" ||
		got.ContentLength != int64(len(got.Body)) {
		t.Errorf("Content-Type %q, X-Amz-Target %q, Content-Length %d for %d bytes", got.ContentType, got.Target, got.ContentLength, len(got.Body))
	}
	stream, records := cborRecords(t, got.Body)
	if stream != "my-stream" || len(records) != len(entries) {
		t.Fatalf("stream %q, %d records; want my-stream, %d", stream, len(records), len(entries))
	}
	for i, e := range entries {
		g := records[i]
		if !bytes.Equal(g.Data, e.Data) || g.PartitionKey != e.PartitionKey || g.ExplicitHashKey != e.ExplicitHashKey {
			t.Errorf("record %d: %q %q %q, want %q %q %q", i, g.Data, g.PartitionKey, g.ExplicitHashKey, e.Data, e.PartitionKey, e.ExplicitHashKey)
		}
	}
	// Against the same entries in JSON: a quarter fewer bytes (the data is 2/3 of the base64).
	jsonSent := sendOnce(t, "my-stream", entries, 0, false)
	if len(jsonSent) != 1 || !utf8.Valid(jsonSent[0].Body) {
		t.Fatal("no JSON request")
	}
	if c, j := len(got.Body), len(jsonSent[0].Body); float64(c) > 0.8*float64(j) {
		t.Errorf("CBOR body %d bytes, JSON %d: want at most 0.8 times", c, j)
	}
}

// TestPutRecordsCBORAnswers: with Protocol cbor, the per-entry results and the errors of a CBOR
// answer are read as those of a JSON one: the same results, the same error classes and codes.
func TestPutRecordsCBORAnswers(t *testing.T) {
	isolateEnv(t)
	h := &cborHandler{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{Endpoint: srv.URL, Protocol: ProtocolCBOR})
	// An explicit hash key, so that the result keeps each entry's shard.
	entries := []Entry{{Data: []byte("a"), PartitionKey: "1", ExplicitHashKey: "1"}, {Data: []byte("b"), PartitionKey: "2"}, {Data: []byte("c"), PartitionKey: "3"}}

	codes := []string{"", CodeThroughputExceeded, CodeInternalFailure}
	h.set(codes, 0, "")
	res, err := c.PutRecords(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if res.FailedCount != 2 || fmt.Sprint(res.ErrorCodes) != fmt.Sprint(codes) || res.ShardIDs[0] != "shardId-000000000000" {
		t.Errorf("result %+v, want the codes %q", res, codes)
	}

	for _, tt := range []struct {
		status int
		code   string
		class  ErrorClass
	}{
		{400, "ResourceNotFoundException", ClassNotFound},
		{400, "ProvisionedThroughputExceededException", ClassRetryable},
		{400, "AccessDeniedException", ClassCredentials},
		{400, "InvalidArgumentException", ClassRejected},
		{400, "KMSThrottlingException", ClassRetryable},
		{500, "InternalFailure", ClassRetryable},
	} {
		h.set(nil, tt.status, tt.code)
		_, err := c.PutRecords(context.Background(), entries)
		if err == nil {
			t.Fatalf("%s: no error", tt.code)
		}
		if got := Classify(err); got != tt.class || ErrorCode(err) != tt.code {
			t.Errorf("%s: class %v, code %q; want %v, %q (%v)", tt.code, got, ErrorCode(err), tt.class, tt.code, err)
		}
		if IsRetryable(err) != (tt.class == ClassRetryable) {
			t.Errorf("%s: IsRetryable %v", tt.code, IsRetryable(err))
		}
	}
}

// cborHandler answers PutRecords in CBOR: the results set, or an error.
type cborHandler struct {
	mu     sync.Mutex
	codes  []string
	status int
	code   string
}

func (h *cborHandler) set(codes []string, status int, code string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.codes, h.status, h.code = codes, status, code
}

func (h *cborHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get("Content-Type") != "application/x-amz-cbor-1.1" {
		http.Error(w, "not CBOR", http.StatusUnsupportedMediaType)
		return
	}
	h.mu.Lock()
	codes, status, code := h.codes, h.status, h.code
	h.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/x-amz-cbor-1.1")
		w.WriteHeader(status)
		_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String(code), "message": cbor.String("fake " + code)}))
		return
	}
	writeCBORResult(w, codes)
}

func TestNewRejectsUnknownProtocol(t *testing.T) {
	isolateEnv(t)
	_, err := New(context.Background(), Options{Region: "us-east-1", Stream: "s", Protocol: "xml"})
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("New with protocol xml: %v, want an error naming it", err)
	}
}
