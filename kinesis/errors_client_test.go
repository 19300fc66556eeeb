package kinesis

import (
	"context"
	"net/http"
	"os"
	"testing"
)

// TestClassifyClientErrors sends through the real client to a fake server (or with no credentials
// at all) and classifies what PutRecords returns: the classes the batcher acts on must survive the
// SDK's wrapping. Each request is sent once: only network errors are retried by the client.
func TestClassifyClientErrors(t *testing.T) {
	status := func(code int, errCode string) func(int, putRequest, http.ResponseWriter) int {
		return func(_ int, _ putRequest, w http.ResponseWriter) int {
			writeError(w, code, errCode)
			return code
		}
	}
	tests := []struct {
		name          string
		noCredentials bool
		respond       func(int, putRequest, http.ResponseWriter) int
		class         ErrorClass
		code          string
		requests      int32
	}{
		{name: "no credentials", noCredentials: true, class: ClassCredentials, code: "credentials"},
		{name: "unrecognized client", respond: status(400, "UnrecognizedClientException"), class: ClassCredentials,
			code: "UnrecognizedClientException", requests: 1},
		{name: "access denied", respond: status(400, "AccessDeniedException"), class: ClassCredentials,
			code: "AccessDeniedException", requests: 1},
		{name: "stream not found", respond: status(400, "ResourceNotFoundException"), class: ClassNotFound,
			code: "ResourceNotFoundException", requests: 1},
		{name: "validation", respond: status(400, "ValidationException"), class: ClassRejected,
			code: "ValidationException", requests: 1},
		{name: "throttled", respond: status(400, CodeThroughputExceeded), class: ClassRetryable,
			code: CodeThroughputExceeded, requests: 1},
		{name: "500", respond: status(500, "InternalFailure"), class: ClassRetryable, code: "InternalFailure", requests: 1},
		{name: "503 without a body code", respond: func(_ int, _ putRequest, w http.ResponseWriter) int {
			w.WriteHeader(http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}, class: ClassRetryable, code: "HTTP 503", requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			if tt.noCredentials {
				os.Unsetenv("AWS_ACCESS_KEY_ID")
				os.Unsetenv("AWS_SECRET_ACCESS_KEY")
			}
			srv := newFakeKinesis(t, tt.respond)
			c := newTestClient(t, Options{Endpoint: srv.URL, AutoRetry: true})
			_, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}})
			if err == nil {
				t.Fatal("PutRecords succeeded")
			}
			if got := Classify(err); got != tt.class {
				t.Errorf("Classify(%v) = %s, want %s", err, got, tt.class)
			}
			if got := ErrorCode(err); got != tt.code {
				t.Errorf("ErrorCode(%v) = %q, want %q", err, got, tt.code)
			}
			if got := srv.calls.Load(); got != tt.requests {
				t.Errorf("server got %d requests, want %d", got, tt.requests)
			}
		})
	}
}
