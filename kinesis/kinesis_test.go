package kinesis

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

const (
	fakeKeyID  = "AKIAFAKEENVIRONMENT1"
	fakeSecret = "fake-secret-key"
)

// tempDir returns a new directory that is removed when the test ends. A failure to remove it is
// logged, not an error, because Wine, where the Windows build of these tests runs, cannot delete
// files the way os.RemoveAll asks it to (FileDispositionInformationEx).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kinesis-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("temporary directory left behind: %v", err)
		}
	})
	return dir
}

// isolateEnv makes the AWS SDK see only fake static credentials from the environment and no
// shared files, endpoints, retry settings or CA bundle of the host.
func isolateEnv(t *testing.T) {
	t.Helper()
	dir := tempDir(t)
	for _, k := range []string{
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_STS",
		"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_DEFAULTS_MODE", "AWS_CA_BUNDLE",
		"AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCOUNT_ID", "AWS_ACCOUNT_ID_ENDPOINT_MODE",
		"KINESIS_STREAMS_GO_HTTP_TRANSPORT", PutRecordsPathEnv,
	} {
		t.Setenv(k, "") // restores the old value at the end of the test
		os.Unsetenv(k)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", fakeKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", fakeSecret)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// putRequest is one PutRecords request as the fake server decoded it.
type putRequest struct {
	Target      string
	ContentType string
	Auth        string
	Token       string
	StreamName  *string
	StreamARN   *string
	Records     []Entry
}

// fakeKinesis is an httptest server speaking Kinesis JSON 1.1 for PutRecords. respond, when set,
// answers the n-th request (from 0); it may return status 0 to let the default answer through
// (every record accepted), or hijack the connection and return -1.
type fakeKinesis struct {
	*httptest.Server
	mu       sync.Mutex
	requests []putRequest
	calls    atomic.Int32
	respond  func(n int, req putRequest, w http.ResponseWriter) (status int)
}

func newFakeKinesis(t *testing.T, respond func(n int, req putRequest, w http.ResponseWriter) int) *fakeKinesis {
	t.Helper()
	f := &fakeKinesis{respond: respond}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKinesis) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.calls.Add(1) - 1)
	req, err := decodePut(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	if f.respond != nil {
		if status := f.respond(n, req, w); status != 0 {
			return
		}
	}
	writeResult(w, make([]string, len(req.Records)))
}

func (f *fakeKinesis) recorded() []putRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]putRequest(nil), f.requests...)
}

func decodePut(r *http.Request) (putRequest, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return putRequest{}, err
	}
	var in struct {
		StreamName *string
		StreamARN  *string
		Records    []struct {
			Data            string
			PartitionKey    string
			ExplicitHashKey *string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return putRequest{}, fmt.Errorf("decode body %q: %w", body, err)
	}
	req := putRequest{
		Target:      r.Header.Get("X-Amz-Target"),
		ContentType: r.Header.Get("Content-Type"),
		Auth:        r.Header.Get("Authorization"),
		Token:       r.Header.Get("X-Amz-Security-Token"),
		StreamName:  in.StreamName,
		StreamARN:   in.StreamARN,
	}
	for _, rec := range in.Records {
		data, err := base64.StdEncoding.DecodeString(rec.Data)
		if err != nil {
			return putRequest{}, fmt.Errorf("decode data %q: %w", rec.Data, err)
		}
		e := Entry{Data: data, PartitionKey: rec.PartitionKey}
		if rec.ExplicitHashKey != nil {
			e.ExplicitHashKey = *rec.ExplicitHashKey
			if e.ExplicitHashKey == "" {
				return putRequest{}, errors.New("empty ExplicitHashKey sent")
			}
		}
		req.Records = append(req.Records, e)
	}
	return req, nil
}

// writeResult answers PutRecords with one result per code ("" = accepted).
func writeResult(w http.ResponseWriter, codes []string) {
	type result struct {
		SequenceNumber string `json:",omitempty"`
		ShardId        string `json:",omitempty"`
		ErrorCode      string `json:",omitempty"`
		ErrorMessage   string `json:",omitempty"`
	}
	out := struct {
		FailedRecordCount int
		Records           []result
	}{Records: []result{}}
	for i, code := range codes {
		if code != "" {
			out.FailedRecordCount++
			out.Records = append(out.Records, result{ErrorCode: code, ErrorMessage: "failed " + code})
			continue
		}
		out.Records = append(out.Records, result{SequenceNumber: fmt.Sprint(1000 + i), ShardId: "shardId-000000000000"})
	}
	body, _ := json.Marshal(out) // no trailing newline: the SDK stops reading at the JSON's end
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(body)
}

// writeError answers with a Kinesis JSON 1.1 error.
func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":"fake %s"}`, code, code)
}

func newTestClient(t *testing.T, o Options) *Client {
	t.Helper()
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Stream == "" {
		o.Stream = "test-stream"
	}
	if o.HTTPTimeout == 0 {
		o.HTTPTimeout = 10 * time.Second
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestPutRecordsSendsExactBytes(t *testing.T) {
	isolateEnv(t)
	srv := newFakeKinesis(t, nil)
	c := newTestClient(t, Options{Endpoint: srv.URL, Stream: "my-stream"})

	entries := []Entry{
		{Data: []byte("{\"a\":\"b\"}\n"), PartitionKey: "key-1"},
		{Data: allBytes(), PartitionKey: "ключ"},
		{Data: []byte("x"), PartitionKey: strings.Repeat("k", limits.MaxPartitionKeyLen)},
	}
	res, err := c.PutRecords(context.Background(), entries)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if res.FailedCount != 0 || len(res.ErrorCodes) != len(entries) {
		t.Fatalf("result = %+v, want %d accepted", res, len(entries))
	}
	for i, code := range res.ErrorCodes {
		if code != "" {
			t.Errorf("ErrorCodes[%d] = %q, want accepted", i, code)
		}
	}
	reqs := srv.recorded()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.Target != "Kinesis_20131202.PutRecords" {
		t.Errorf("X-Amz-Target = %q", req.Target)
	}
	if req.ContentType != "application/x-amz-json-1.1" {
		t.Errorf("Content-Type = %q", req.ContentType)
	}
	if req.StreamName == nil || *req.StreamName != "my-stream" || req.StreamARN != nil {
		t.Errorf("StreamName = %v, StreamARN = %v, want name my-stream", req.StreamName, req.StreamARN)
	}
	if !strings.Contains(req.Auth, "Credential="+fakeKeyID+"/") {
		t.Errorf("Authorization = %q, want the environment's key id", req.Auth)
	}
	if len(req.Records) != len(entries) {
		t.Fatalf("server got %d records, want %d", len(req.Records), len(entries))
	}
	for i, got := range req.Records {
		if !bytes.Equal(got.Data, entries[i].Data) {
			t.Errorf("record %d data = %q, want %q", i, got.Data, entries[i].Data)
		}
		if got.PartitionKey != entries[i].PartitionKey {
			t.Errorf("record %d key = %q, want %q", i, got.PartitionKey, entries[i].PartitionKey)
		}
	}
}

// TestPutRecordsExplicitHashKey: an entry's ExplicitHashKey is sent when set, and the field is
// left out when not (Kinesis rejects an empty one); it does not count in the request's size.
func TestPutRecordsExplicitHashKey(t *testing.T) {
	isolateEnv(t)
	srv := newFakeKinesis(t, nil)
	c := newTestClient(t, Options{Endpoint: srv.URL, Stream: "my-stream"})
	entries := []Entry{
		{Data: []byte("a"), PartitionKey: "k1", ExplicitHashKey: "85070591730234615865843651857942052864"},
		{Data: []byte("b"), PartitionKey: "k2"},
		{Data: []byte("c"), PartitionKey: "k3", ExplicitHashKey: "0"},
	}
	if got := entries[0].Size(); got != 3 {
		t.Errorf("Size() = %d, want 3: the explicit hash key does not count", got)
	}
	for range 2 { // the second request reuses the pooled buffers: no stale hash key
		if _, err := c.PutRecords(context.Background(), entries); err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
		entries[0].ExplicitHashKey = ""
	}
	reqs := srv.recorded()
	if len(reqs) != 2 {
		t.Fatalf("server got %d requests, want 2", len(reqs))
	}
	want := [][]string{
		{"85070591730234615865843651857942052864", "", "0"},
		{"", "", "0"},
	}
	for r, req := range reqs {
		for i, rec := range req.Records {
			if rec.ExplicitHashKey != want[r][i] || rec.PartitionKey != entries[i].PartitionKey {
				t.Errorf("request %d record %d: key %q, explicit hash key %q; want %q, %q",
					r, i, rec.PartitionKey, rec.ExplicitHashKey, entries[i].PartitionKey, want[r][i])
			}
		}
	}
}

func TestPutRecordsStream(t *testing.T) {
	const arn = "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream"
	tests := []struct {
		name     string
		stream   string
		wantName string
		wantARN  string
	}{
		{name: "name", stream: "my-stream", wantName: "my-stream"},
		{name: "arn", stream: arn, wantARN: arn},
		{name: "name containing arn", stream: "my-arn:stream", wantName: "my-arn:stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			srv := newFakeKinesis(t, nil)
			c := newTestClient(t, Options{Endpoint: srv.URL, Stream: tt.stream})
			if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
				t.Fatalf("PutRecords: %v", err)
			}
			req := srv.recorded()[0]
			if got := aws.ToString(req.StreamName); got != tt.wantName {
				t.Errorf("StreamName = %q, want %q", got, tt.wantName)
			}
			if got := aws.ToString(req.StreamARN); got != tt.wantARN {
				t.Errorf("StreamARN = %q, want %q", got, tt.wantARN)
			}
		})
	}
}

func TestPutRecordsPartialFailure(t *testing.T) {
	isolateEnv(t)
	codes := []string{"", CodeThroughputExceeded, "", CodeInternalFailure, ""}
	srv := newFakeKinesis(t, func(_ int, _ putRequest, w http.ResponseWriter) int {
		writeResult(w, codes)
		return http.StatusOK
	})
	c := newTestClient(t, Options{Endpoint: srv.URL})
	entries := make([]Entry, len(codes))
	for i := range entries {
		entries[i] = Entry{Data: []byte{byte('a' + i)}, PartitionKey: "k"}
	}
	res, err := c.PutRecords(context.Background(), entries)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if res.FailedCount != 2 {
		t.Errorf("FailedCount = %d, want 2", res.FailedCount)
	}
	if fmt.Sprint(res.ErrorCodes) != fmt.Sprint(codes) {
		t.Errorf("ErrorCodes = %q, want %q", res.ErrorCodes, codes)
	}
}

// TestPutRecordsShardIDs: the shard of each accepted entry is read from the response, in order;
// a failed entry has none, even if the response names one; a request through the pooled buffers
// does not see the previous one's, nor changes an earlier result.
func TestPutRecordsShardIDs(t *testing.T) {
	isolateEnv(t)
	type result struct {
		SequenceNumber string `json:",omitempty"`
		ShardId        string `json:",omitempty"`
		ErrorCode      string `json:",omitempty"`
		ErrorMessage   string `json:",omitempty"`
	}
	answers := [][]result{
		{
			{SequenceNumber: "1", ShardId: "shardId-000000000004"},
			{ErrorCode: CodeThroughputExceeded, ErrorMessage: "slow down"},
			{SequenceNumber: "2", ShardId: "shardId-000000000001"},
			{ErrorCode: CodeInternalFailure, ErrorMessage: "oops", ShardId: "shardId-000000000009"},
			{SequenceNumber: "3"}, // no ShardId: not known
		},
		{
			{ErrorCode: CodeInternalFailure, ErrorMessage: "oops"},
			{SequenceNumber: "4", ShardId: "shardId-000000000005"},
		},
		{
			{SequenceNumber: "5", ShardId: "shardId-000000000006"},
			{SequenceNumber: "6", ShardId: "shardId-000000000007"},
			{SequenceNumber: "7", ShardId: "shardId-000000000006"},
		},
		{
			{SequenceNumber: "8", ShardId: "shardId-000000000008"},
		},
	}
	answers = append(answers, answers[0]) // for the last request, set before the server reads it
	srv := newFakeKinesis(t, func(n int, _ putRequest, w http.ResponseWriter) int {
		failed := 0
		for _, r := range answers[n] {
			if r.ErrorCode != "" {
				failed++
			}
		}
		body, _ := json.Marshal(struct {
			FailedRecordCount int
			Records           []result
		}{failed, answers[n]})
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write(body)
		return http.StatusOK
	})
	c := newTestClient(t, Options{Endpoint: srv.URL})
	want := []struct {
		codes, shards []string
		failed        int
	}{
		{
			[]string{"", CodeThroughputExceeded, "", CodeInternalFailure, ""},
			[]string{"shardId-000000000004", "", "shardId-000000000001", "", ""},
			2,
		},
		{
			[]string{CodeInternalFailure, ""},
			[]string{"", "shardId-000000000005"},
			1,
		},
		{
			[]string{"", "", ""},
			[]string{"shardId-000000000006", "shardId-000000000007", "shardId-000000000006"},
			0,
		},
		{
			[]string{""},
			[]string{"shardId-000000000008"},
			0,
		},
	}
	// Results must stay as they were while later requests reuse the decoder's entries.
	var results []PutResult
	defer func() {
		for r, res := range results {
			if fmt.Sprintf("%q %q", res.ShardIDs, res.ErrorCodes) != fmt.Sprintf("%q %q", want[r].shards, want[r].codes) {
				t.Errorf("request %d, after the others: ShardIDs %q, ErrorCodes %q; want %q, %q", r, res.ShardIDs, res.ErrorCodes, want[r].shards, want[r].codes)
			}
		}
	}()
	for r, w := range want {
		entries := make([]Entry, len(w.codes))
		for i := range entries {
			entries[i] = Entry{Data: []byte{byte('a' + i)}, PartitionKey: "k", ExplicitHashKey: "0"}
		}
		res, err := c.PutRecords(context.Background(), entries)
		if err != nil {
			t.Fatalf("request %d: PutRecords: %v", r, err)
		}
		if fmt.Sprintf("%q", res.ShardIDs) != fmt.Sprintf("%q", w.shards) {
			t.Errorf("request %d: ShardIDs = %q, want %q", r, res.ShardIDs, w.shards)
		}
		if fmt.Sprintf("%q", res.ErrorCodes) != fmt.Sprintf("%q", w.codes) || res.FailedCount != w.failed {
			t.Errorf("request %d: ErrorCodes = %q (%d failed), want %q (%d)", r, res.ErrorCodes, res.FailedCount, w.codes, w.failed)
		}
		// Appending to a list must not write over another result's (ErrorCodes may be shared).
		_ = append(res.ErrorCodes, "appended")
		if res.ShardIDs[0] != w.shards[0] || noErrorCodes[len(w.codes)] != "" {
			t.Errorf("request %d: appending to ErrorCodes wrote over ShardIDs[0] (%q) or the shared codes", r, res.ShardIDs[0])
		}
		results = append(results, res)
	}
	// The first answer again (answers[4]), for entries without an explicit hash key: nothing
	// reads their shards, and none are kept.
	plain := make([]Entry, len(want[0].codes))
	for i := range plain {
		plain[i] = Entry{Data: []byte{byte('a' + i)}, PartitionKey: "k"}
	}
	res, err := c.PutRecords(context.Background(), plain)
	if err != nil || res.ShardIDs != nil || fmt.Sprintf("%q", res.ErrorCodes) != fmt.Sprintf("%q", want[0].codes) {
		t.Errorf("without explicit hash keys: ShardIDs %q, ErrorCodes %q, %v; want nil, %q", res.ShardIDs, res.ErrorCodes, err, want[0].codes)
	}
}

func TestPutRecordsMalformedResponse(t *testing.T) {
	isolateEnv(t)
	srv := newFakeKinesis(t, func(_ int, _ putRequest, w http.ResponseWriter) int {
		writeResult(w, []string{""}) // one result for two records
		return http.StatusOK
	})
	c := newTestClient(t, Options{Endpoint: srv.URL})
	_, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("a"), PartitionKey: "k"}, {Data: []byte("b"), PartitionKey: "k"}})
	if !errors.Is(err, ErrMalformedResponse) {
		t.Fatalf("err = %v, want ErrMalformedResponse", err)
	}
}

func TestPutRecordsLimits(t *testing.T) {
	isolateEnv(t)
	srv := newFakeKinesis(t, nil)
	c := newTestClient(t, Options{Endpoint: srv.URL})
	ctx := context.Background()

	if res, err := c.PutRecords(ctx, nil); err != nil || res.FailedCount != 0 || len(res.ErrorCodes) != 0 {
		t.Errorf("PutRecords(nil) = %+v, %v; want an empty result", res, err)
	}
	tooMany := make([]Entry, limits.MaxRecordsPerRequest+1)
	for i := range tooMany {
		tooMany[i] = Entry{Data: []byte("d"), PartitionKey: "k"}
	}
	if _, err := c.PutRecords(ctx, tooMany); !errors.Is(err, ErrRequestTooLarge) {
		t.Errorf("501 records: err = %v, want ErrRequestTooLarge", err)
	}
	big := []Entry{
		{Data: make([]byte, limits.MaxRequestBytes/2), PartitionKey: "k"},
		{Data: make([]byte, limits.MaxRequestBytes/2-1), PartitionKey: "k"},
	}
	if _, err := c.PutRecords(ctx, big); !errors.Is(err, ErrRequestTooLarge) {
		t.Errorf("10 MiB + 1 byte: err = %v, want ErrRequestTooLarge", err)
	}
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("server got %d requests, want none", n)
	}

	// Exactly at both limits, and an empty blob, go through.
	exact := make([]Entry, limits.MaxRecordsPerRequest)
	per := limits.MaxRequestBytes / limits.MaxRecordsPerRequest
	for i := range exact {
		exact[i] = Entry{Data: bytes.Repeat([]byte{'x'}, per-1), PartitionKey: "k"}
	}
	exact[0].Data = append(exact[0].Data, bytes.Repeat([]byte{'y'}, limits.MaxRequestBytes-per*limits.MaxRecordsPerRequest)...)
	exact[1].Data = nil
	exact[1].PartitionKey = strings.Repeat("k", per)
	res, err := c.PutRecords(ctx, exact)
	if err != nil || res.FailedCount != 0 {
		t.Fatalf("500 records, 10 MiB: %+v, %v", res, err)
	}
	got := srv.recorded()[0].Records
	size := 0
	for _, e := range got {
		size += e.Size()
	}
	if len(got) != limits.MaxRecordsPerRequest || size != limits.MaxRequestBytes {
		t.Errorf("server got %d records of %d bytes, want %d of %d", len(got), size, limits.MaxRecordsPerRequest, limits.MaxRequestBytes)
	}
	if len(got[1].Data) != 0 {
		t.Errorf("empty record arrived as %q", got[1].Data)
	}
}

// TestRetries counts the requests that reach the server: the SDK re-sends only after a network
// error, once, and only with AutoRetry. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE must not change it.
func TestRetries(t *testing.T) {
	hangUp := func(n int, _ putRequest, w http.ResponseWriter) int {
		if n > 0 {
			return 0
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return -1
	}
	alwaysHangUp := func(_ int, _ putRequest, w http.ResponseWriter) int {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return -1
	}
	status := func(code int, errCode string) func(int, putRequest, http.ResponseWriter) int {
		return func(_ int, _ putRequest, w http.ResponseWriter) int {
			writeError(w, code, errCode)
			return code
		}
	}
	slowFirst := func(n int, _ putRequest, _ http.ResponseWriter) int {
		if n == 0 {
			time.Sleep(time.Second) // > HTTPTimeout below; the handler's own wait is bounded
		}
		return 0
	}
	tests := []struct {
		name         string
		autoRetry    bool
		respond      func(int, putRequest, http.ResponseWriter) int
		wantRequests int32
		wantOK       bool
		wantNetwork  bool // the final error is a network error
	}{
		{name: "hang up, auto retry", autoRetry: true, respond: hangUp, wantRequests: 2, wantOK: true},
		{name: "hang up, no auto retry", autoRetry: false, respond: hangUp, wantRequests: 1, wantNetwork: true},
		{name: "hang up twice, auto retry", autoRetry: true, respond: alwaysHangUp, wantRequests: 2, wantNetwork: true},
		{name: "timeout, auto retry", autoRetry: true, respond: slowFirst, wantRequests: 2, wantOK: true},
		{name: "timeout, no auto retry", autoRetry: false, respond: slowFirst, wantRequests: 1, wantNetwork: true},
		{name: "500, auto retry", autoRetry: true, respond: status(500, "InternalFailure"), wantRequests: 1},
		{name: "503, auto retry", autoRetry: true, respond: status(503, "ServiceUnavailable"), wantRequests: 1},
		{name: "throttled, auto retry", autoRetry: true, respond: status(400, CodeThroughputExceeded), wantRequests: 1},
		{name: "KMS throttled, auto retry", autoRetry: true, respond: status(400, "KMSThrottlingException"), wantRequests: 1},
		{name: "throttled, no auto retry", autoRetry: false, respond: status(400, CodeThroughputExceeded), wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			t.Setenv("AWS_MAX_ATTEMPTS", "5")
			t.Setenv("AWS_RETRY_MODE", "standard")
			srv := newFakeKinesis(t, tt.respond)
			c := newTestClient(t, Options{Endpoint: srv.URL, AutoRetry: tt.autoRetry, HTTPTimeout: 300 * time.Millisecond})
			start := time.Now()
			_, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}})
			elapsed := time.Since(start)
			if got := srv.calls.Load(); got != tt.wantRequests {
				t.Errorf("server got %d requests, want %d (err %v)", got, tt.wantRequests, err)
			}
			if tt.wantOK != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.wantOK)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "kinesis: put records: ") {
					t.Errorf("err = %q, want the kinesis: put records: prefix", err)
				}
				if got := IsNetworkError(err); got != tt.wantNetwork {
					t.Errorf("IsNetworkError(%v) = %v, want %v", err, got, tt.wantNetwork)
				}
				if !IsRetryable(err) {
					t.Errorf("IsRetryable(%v) = false, want true", err)
				}
			}
			// No backoff: at most the timeouts of the attempts, plus scheduling slack.
			if limit := time.Duration(tt.wantRequests)*300*time.Millisecond + 500*time.Millisecond; elapsed > limit {
				t.Errorf("PutRecords took %v, want under %v (no retry delay)", elapsed, limit)
			}
		})
	}
}

func TestRetryerPolicy(t *testing.T) {
	r := NewRetryer(true)
	if r.MaxAttempts() != 2 {
		t.Errorf("MaxAttempts = %d, want 2", r.MaxAttempts())
	}
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	if !r.IsErrorRetryable(netErr) {
		t.Errorf("network error not retryable")
	}
	for _, err := range []error{
		&types.ProvisionedThroughputExceededException{},
		&types.InternalFailureException{},
		&types.ValidationException{},
		context.Canceled,
	} {
		if r.IsErrorRetryable(err) {
			t.Errorf("%T retried by the SDK", err)
		}
	}
	for attempt := 1; attempt <= 3; attempt++ {
		if d, err := r.RetryDelay(attempt, netErr); d != 0 || err != nil {
			t.Errorf("RetryDelay(%d) = %v, %v; want 0", attempt, d, err)
		}
	}
	if n := NewRetryer(false).MaxAttempts(); n != 1 {
		t.Errorf("without auto retry: MaxAttempts = %d, want 1", n)
	}
}

// recordingHTTP answers every request with an accepted PutRecords result and remembers the URLs,
// so that endpoint resolution can be tested without any network.
type recordingHTTP struct {
	mu   sync.Mutex
	urls []*url.URL
}

func (h *recordingHTTP) Do(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.urls = append(h.urls, r.URL)
	h.mu.Unlock()
	rec := httptest.NewRecorder()
	writeResult(rec, []string{""})
	return rec.Result(), nil
}

func TestEndpointResolution(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		endpoint string
		wantURL  string
	}{
		{name: "aws, name", stream: "s", wantURL: "https://kinesis.eu-west-3.amazonaws.com/"},
		{name: "aws, arn", stream: "arn:aws:kinesis:eu-west-3:123456789012:stream/s",
			wantURL: "https://123456789012.data-kinesis.eu-west-3.amazonaws.com/"},
		{name: "custom https", stream: "s", endpoint: "https://kinesis.example.com", wantURL: "https://kinesis.example.com/"},
		{name: "custom http with port", stream: "s", endpoint: "http://127.0.0.1:4567", wantURL: "http://127.0.0.1:4567/"},
		{name: "custom with arn", stream: "arn:aws:kinesis:eu-west-3:123456789012:stream/s",
			endpoint: "http://127.0.0.1:4567", wantURL: "http://127.0.0.1:4567/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			h := &recordingHTTP{}
			c, err := newClient(context.Background(), Options{Region: "eu-west-3", Stream: tt.stream, Endpoint: tt.endpoint},
				func(o *kinesissdk.Options) { o.HTTPClient = h })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
				t.Fatalf("PutRecords: %v", err)
			}
			if len(h.urls) != 1 || h.urls[0].String() != tt.wantURL {
				t.Errorf("requests went to %v, want %s", h.urls, tt.wantURL)
			}
		})
	}
}

// TestCABundle checks that AWS_CA_BUNDLE reaches the frozen HTTP client: an HTTPS endpoint with a
// self-signed certificate works with the bundle and fails (without a retry) without it.
func TestCABundle(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodePut(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeResult(w, make([]string, len(req.Records)))
	}))
	t.Cleanup(srv.Close)
	bundle := filepath.Join(tempDir(t), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	entries := []Entry{{Data: []byte("d"), PartitionKey: "k"}}

	t.Run("with bundle", func(t *testing.T) {
		isolateEnv(t)
		t.Setenv("AWS_CA_BUNDLE", bundle)
		c := newTestClient(t, Options{Endpoint: srv.URL, AutoRetry: true})
		if _, err := c.PutRecords(context.Background(), entries); err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
	})
	t.Run("without bundle", func(t *testing.T) {
		isolateEnv(t)
		c := newTestClient(t, Options{Endpoint: srv.URL, AutoRetry: true})
		_, err := c.PutRecords(context.Background(), entries)
		if err == nil {
			t.Fatal("PutRecords trusted a self-signed certificate")
		}
		if IsNetworkError(err) || IsRetryable(err) {
			t.Errorf("certificate error %v classified as network/retryable", err)
		}
	})
	t.Run("bundle with a plain HTTP endpoint", func(t *testing.T) {
		// Machines often set AWS_CA_BUNDLE for everything: the client must still build and send
		// to a plain HTTP endpoint.
		isolateEnv(t)
		t.Setenv("AWS_CA_BUNDLE", bundle)
		plain := newFakeKinesis(t, nil)
		c := newTestClient(t, Options{Endpoint: plain.URL})
		if _, err := c.PutRecords(context.Background(), entries); err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
	})
}

func TestProfile(t *testing.T) {
	isolateEnv(t)
	dir := tempDir(t)
	configFile := filepath.Join(dir, "config")
	credsFile := filepath.Join(dir, "credentials")
	if err := os.WriteFile(configFile, []byte("[profile logs]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := "[default]\naws_access_key_id = AKIAFAKEDEFAULT00001\naws_secret_access_key = s0\n" +
		"[logs]\naws_access_key_id = AKIAFAKEPROFILE00001\naws_secret_access_key = s1\n"
	if err := os.WriteFile(credsFile, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", configFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credsFile)
	srv := newFakeKinesis(t, nil)

	c := newTestClient(t, Options{Endpoint: srv.URL, Profile: "logs"})
	if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if auth := srv.recorded()[0].Auth; !strings.Contains(auth, "Credential=AKIAFAKEPROFILE00001/") {
		t.Errorf("Authorization = %q, want the profile's key id", auth)
	}

	if _, err := New(context.Background(), Options{Region: "us-east-1", Stream: "s", Profile: "missing"}); err == nil {
		t.Error("New with a missing profile succeeded")
	}
}

func TestAssumeRole(t *testing.T) {
	isolateEnv(t)
	const (
		roleARN    = "arn:aws:iam::123456789012:role/logs-writer"
		externalID = "ext-1234"
		assumedKey = "ASIAFAKEASSUMED00001"
		token      = "fake-session-token"
	)
	var stsCalls atomic.Int32
	// Guarded: the client's sockets read and write with raw system calls, which give the race
	// detector no happens-before from the server's answer to the test's reads.
	var stsMu sync.Mutex
	var stsForm url.Values
	var stsAuth string
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stsCalls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		stsMu.Lock()
		stsForm, stsAuth = r.PostForm, r.Header.Get("Authorization")
		stsMu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>assumed-secret</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/logs-writer/s</Arn>
      <AssumedRoleId>AROAFAKE:s</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, assumedKey, token, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(sts.Close)
	srv := newFakeKinesis(t, nil)

	c := newTestClient(t, Options{Endpoint: srv.URL, STSEndpoint: sts.URL, RoleARN: roleARN, ExternalID: externalID})
	for range 2 {
		if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
	}
	if n := stsCalls.Load(); n != 1 {
		t.Errorf("STS got %d calls, want 1 (credentials cached)", n)
	}
	stsMu.Lock()
	defer stsMu.Unlock()
	if got := stsForm.Get("Action"); got != "AssumeRole" {
		t.Errorf("STS Action = %q", got)
	}
	if got := stsForm.Get("RoleArn"); got != roleARN {
		t.Errorf("STS RoleArn = %q, want %q", got, roleARN)
	}
	if got := stsForm.Get("ExternalId"); got != externalID {
		t.Errorf("STS ExternalId = %q, want %q", got, externalID)
	}
	if !strings.Contains(stsAuth, "Credential="+fakeKeyID+"/") {
		t.Errorf("STS Authorization = %q, want the environment's key id", stsAuth)
	}
	for i, req := range srv.recorded() {
		if !strings.Contains(req.Auth, "Credential="+assumedKey+"/") {
			t.Errorf("request %d Authorization = %q, want the assumed key id", i, req.Auth)
		}
		if req.Token != token {
			t.Errorf("request %d X-Amz-Security-Token = %q, want %q", i, req.Token, token)
		}
	}
}

func TestNewRequiresRegionAndStream(t *testing.T) {
	isolateEnv(t)
	if _, err := New(context.Background(), Options{Stream: "s"}); err == nil || !strings.Contains(err.Error(), `"region"`) {
		t.Errorf("no region: err = %v", err)
	}
	if _, err := New(context.Background(), Options{Region: "us-east-1"}); err == nil || !strings.Contains(err.Error(), `"stream"`) {
		t.Errorf("no stream: err = %v", err)
	}
}

// TestClose checks that Close releases the kept-alive connection.
func TestClose(t *testing.T) {
	isolateEnv(t)
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodePut(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeResult(w, make([]string, len(req.Records)))
	}))
	srv.Config.ConnState = func(cn net.Conn, s http.ConnState) {
		t.Logf("%v %v %v", time.Now().Format("05.000000"), cn.RemoteAddr(), s)
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := newTestClient(t, Options{Endpoint: srv.URL})
	if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	select {
	case <-closed:
		t.Fatal("connection closed before Close")
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open 5s after Close")
	}
	var nilClient *Client
	nilClient.Close() // must not panic
}

// TestConnectionReuse sends requests one after another to a local endpoint, where the answer can
// arrive before net/http has finished with the request body: every request must reuse the one
// connection (see package transport, plainBodyTransport).
func TestConnectionReuse(t *testing.T) {
	isolateEnv(t)
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodePut(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeResult(w, make([]string, len(req.Records)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := newTestClient(t, Options{Endpoint: srv.URL})
	const n = 50
	for i := range n {
		data := bytes.Repeat([]byte{'x'}, 1+i*997)
		if _, err := c.PutRecords(context.Background(), []Entry{{Data: data, PartitionKey: "k"}}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("%d requests used %d connections, want 1", n, got)
	}
}

// TestConnectionsKeptForMaxConns sends waves of requests in flight together: with MaxConns as large
// as a wave, the second wave reuses the first's connections; with the default, connections beyond
// the SDK's 10 idle ones are opened again.
func TestConnectionsKeptForMaxConns(t *testing.T) {
	isolateEnv(t)
	const wave = 16
	for _, tt := range []struct {
		maxConns int
		wantNew  int32 // connections the second wave opens
	}{{wave, 0}, {0, wave - 10}} {
		t.Run(fmt.Sprint("MaxConns=", tt.maxConns), func(t *testing.T) {
			var conns atomic.Int32
			gate := make(chan struct{})
			var arrived atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req, err := decodePut(r)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				// Answer once the whole wave is in flight, so that it needs wave connections.
				if arrived.Add(1)%wave == 0 {
					gate <- struct{}{}
				}
				<-gate
				if arrived.Add(-1)%wave != 0 {
					gate <- struct{}{}
				}
				writeResult(w, make([]string, len(req.Records)))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c := newTestClient(t, Options{Endpoint: srv.URL, MaxConns: tt.maxConns})
			sendWave := func() {
				var wg sync.WaitGroup
				for range wave {
					wg.Go(func() {
						if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("x"), PartitionKey: "k"}}); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			sendWave()
			first := conns.Load()
			sendWave()
			if first != wave || conns.Load()-first != tt.wantNew {
				t.Errorf("waves of %d requests opened %d, then %d connections; want %d, then %d", wave, first, conns.Load()-first, wave, tt.wantNew)
			}
		})
	}
}

// TestSpeaksHTTP1 checks that requests go over HTTP/1.1 even to a TLS server that offers HTTP/2,
// and that they reuse one connection.
func TestSpeaksHTTP1(t *testing.T) {
	isolateEnv(t)
	var protos sync.Map
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		req, err := decodePut(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeResult(w, make([]string, len(req.Records)))
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	bundle := filepath.Join(tempDir(t), "ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)

	c := newTestClient(t, Options{Endpoint: srv.URL})
	for i := range 3 {
		data := bytes.Repeat([]byte{'x'}, 100_000+i)
		if _, err := c.PutRecords(context.Background(), []Entry{{Data: data, PartitionKey: "k"}}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var seen []string
	protos.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	if len(seen) != 1 || seen[0] != "HTTP/1.1" {
		t.Errorf("requests used %v, want only HTTP/1.1", seen)
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("3 requests used %d connections, want 1", got)
	}
}
