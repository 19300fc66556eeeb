package kinesis

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// TestDirectRequestMatchesSDK sends the same entries on both paths and compares what reached the
// HTTP client: the body, byte for byte, the URL, the headers Kinesis reads, and the signature's
// headers and scope (signingHTTP checks each signature against the body).
func TestDirectRequestMatchesSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	entries := randomEntries(r, limits.MaxRecordsPerRequest)
	entries[3].ExplicitHashKey = "170141183460469231731687303715884105728"
	tests := []struct {
		name  string
		o     Options
		token string
	}{
		{name: "json, stream name", o: Options{Stream: "my-stream", Protocol: ProtocolJSON}},
		{name: "cbor, stream name", o: Options{Stream: "my-stream", Protocol: ProtocolCBOR}},
		{name: "cbor, stream ARN", o: Options{Stream: "arn:aws:kinesis:us-east-1:123456789012:stream/s", Protocol: ProtocolCBOR}},
		{name: "session token", o: Options{Stream: "s"}, token: "FwoGZXIvYXdzEFAKE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			if tt.token != "" {
				t.Setenv("AWS_SESSION_TOKEN", tt.token)
			}
			sdkOpts, directOpts := tt.o, tt.o
			sdkOpts.PutRecordsPath, directOpts.PutRecordsPath = PathSDK, PathDirect
			sdk := sendOnceWith(t, sdkOpts, entries, 0)
			direct := sendOnceWith(t, directOpts, entries, 0)
			if len(sdk) != 1 || len(direct) != 1 {
				t.Fatalf("requests: SDK %d, direct %d, want 1", len(sdk), len(direct))
			}
			want, got := sdk[0], direct[0]
			if !bytes.Equal(got.Body, want.Body) {
				t.Errorf("body differs from the SDK path's:\n got %.200q\nwant %.200q", got.Body, want.Body)
			}
			gotBody, wantBody := got.Body, want.Body
			got.Body, want.Body = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("request differs from the SDK path's:\n got %+v\nwant %+v", got, want)
			}
			if want.Token != tt.token || !strings.Contains(want.SignedHeaders, "x-amz-target") {
				t.Errorf("SDK path sent token %q, signed %q: the comparison checks nothing", want.Token, want.SignedHeaders)
			}
			if len(gotBody) != len(wantBody) || len(gotBody) < 1000 {
				t.Errorf("bodies of %d and %d bytes", len(gotBody), len(wantBody))
			}
		})
	}
}

// TestDirectRetrySendsSameBody: with AutoRetry, a network error sends the same request once
// more, signed again, as the SDK path does (the Amz-Sdk-Request header counts the attempts).
func TestDirectRetrySendsSameBody(t *testing.T) {
	isolateEnv(t)
	entries := randomEntries(rand.New(rand.NewPCG(7, 8)), 50)
	want := sendOnceWith(t, Options{Stream: "s", PutRecordsPath: PathSDK, AutoRetry: true}, entries, 1)
	got := sendOnceWith(t, Options{Stream: "s", PutRecordsPath: PathDirect, AutoRetry: true}, entries, 1)
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("%d requests, SDK path %d, want 2 (one retry)", len(got), len(want))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("direct path sent\n%+v\nSDK path\n%+v", got, want)
	}
	if want[1].SDKRequest != "attempt=2; max=2" {
		t.Errorf("second attempt's Amz-Sdk-Request %q", want[1].SDKRequest)
	}
}

// TestDirectErrorsMatchSDK answers both paths alike, failures of every kind, and compares the
// errors: message, class, code, request ID, retryability, and the requests the server got.
func TestDirectErrorsMatchSDK(t *testing.T) {
	type respond = func(int, putRequest, http.ResponseWriter) int
	apiError := func(code int, errCode string) respond {
		return func(_ int, _ putRequest, w http.ResponseWriter) int {
			w.Header().Set("X-Amzn-Requestid", "req-"+errCode)
			writeError(w, code, errCode)
			return code
		}
	}
	cborError := func(_ int, _ putRequest, w http.ResponseWriter) int {
		w.Header().Set("Content-Type", "application/x-amz-cbor-1.1")
		w.Header().Set("X-Amzn-Requestid", "req-cbor")
		w.WriteHeader(http.StatusBadRequest)
		// {"__type": "ResourceNotFoundException", "message": "no stream"}
		w.Write([]byte("\xa2\x66__type\x78\x19ResourceNotFoundException\x67message\x69no stream"))
		return http.StatusBadRequest
	}
	hangUp := func(_ int, _ putRequest, w http.ResponseWriter) int {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return -1
	}
	tests := []struct {
		name      string
		respond   respond
		autoRetry bool
		cancel    bool
	}{
		{name: "not found", respond: apiError(400, "ResourceNotFoundException")},
		{name: "throttled", respond: apiError(400, CodeThroughputExceeded)},
		{name: "KMS", respond: apiError(400, "KMSAccessDeniedException")},
		{name: "unknown code", respond: apiError(400, "SomethingNewException")},
		{name: "500", respond: apiError(500, "InternalFailure")},
		{name: "413 without a body", respond: func(_ int, _ putRequest, w http.ResponseWriter) int {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return http.StatusRequestEntityTooLarge
		}},
		{name: "403 HTML", respond: func(_ int, _ putRequest, w http.ResponseWriter) int {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("<html>denied</html>"))
			return http.StatusForbidden
		}},
		{name: "CBOR error", respond: cborError},
		{name: "malformed success", respond: func(_ int, _ putRequest, w http.ResponseWriter) int {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Write([]byte(`{"Records":[{"SequenceNumber":`))
			return http.StatusOK
		}},
		{name: "hang-up", respond: hangUp},
		{name: "hang-up, auto retry", respond: hangUp, autoRetry: true},
		{name: "canceled", cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				msg, class, code, id string
				retryable, network   bool
				calls                int32
			}
			run := func(path string) result {
				isolateEnv(t)
				srv := newFakeKinesis(t, tt.respond)
				c := newTestClient(t, Options{Endpoint: srv.URL, AutoRetry: tt.autoRetry, PutRecordsPath: path})
				if c.PutRecordsPath() != path {
					t.Fatalf("client took path %s, want %s", c.PutRecordsPath(), path)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tt.cancel {
					cancel()
				}
				_, err := c.PutRecords(ctx, []Entry{{Data: []byte("d"), PartitionKey: "k"}})
				if err == nil {
					t.Fatalf("%s: PutRecords succeeded", path)
				}
				// The messages name the server's address, which differs between the two.
				msg := strings.ReplaceAll(err.Error(), strings.TrimPrefix(srv.URL, "http://"), "SERVER")
				return result{msg: msg, class: Classify(err).String(), code: ErrorCode(err), id: RequestID(err),
					retryable: IsRetryable(err), network: IsNetworkError(err), calls: srv.calls.Load()}
			}
			sdk, direct := run(PathSDK), run(PathDirect)
			if direct != sdk {
				t.Errorf("direct path:\n%+v\nSDK path:\n%+v", direct, sdk)
			}
		})
	}
}

// TestPutRecordsPathSelection: the option, then the environment, choose the path; anything else
// is refused when the client is built.
func TestPutRecordsPathSelection(t *testing.T) {
	isolateEnv(t)
	if c := newTestClient(t, Options{}); c.PutRecordsPath() != PathDirect {
		t.Errorf("default path %s, want %s", c.PutRecordsPath(), PathDirect)
	}
	t.Setenv(PutRecordsPathEnv, PathSDK)
	if c := newTestClient(t, Options{}); c.PutRecordsPath() != PathSDK {
		t.Errorf("with %s=sdk: path %s", PutRecordsPathEnv, c.PutRecordsPath())
	}
	if c := newTestClient(t, Options{PutRecordsPath: PathDirect}); c.PutRecordsPath() != PathDirect {
		t.Errorf("option direct over the environment: path %s", c.PutRecordsPath())
	}
	t.Setenv(PutRecordsPathEnv, "fast")
	_, err := New(context.Background(), Options{Region: "us-east-1", Stream: "s"})
	if err == nil || !strings.Contains(err.Error(), PutRecordsPathEnv) {
		t.Errorf("New with %s=fast: %v, want an error naming it", PutRecordsPathEnv, err)
	}
}
