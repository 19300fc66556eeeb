package kinesis

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func httpStatusError(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      err,
	}}
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name      string
		err       error
		retryable bool
		network   bool
	}{
		{name: "nil"},
		{name: "throughput exceeded", err: &types.ProvisionedThroughputExceededException{}, retryable: true},
		{name: "throughput exceeded, wrapped in 400", err: httpStatusError(400, &types.ProvisionedThroughputExceededException{}), retryable: true},
		{name: "KMS throttling", err: &types.KMSThrottlingException{}, retryable: true},
		{name: "internal failure exception", err: &types.InternalFailureException{}, retryable: true},
		{name: "generic InternalFailure", err: &smithy.GenericAPIError{Code: "InternalFailure"}, retryable: true},
		{name: "503 without a known code", err: httpStatusError(503, &smithy.GenericAPIError{Code: "Whatever"}), retryable: true},
		{name: "500", err: httpStatusError(500, errors.New("boom")), retryable: true},
		{name: "429", err: httpStatusError(429, errors.New("slow down")), retryable: true},
		{name: "validation", err: httpStatusError(400, &types.ValidationException{})},
		{name: "invalid argument", err: &types.InvalidArgumentException{}},
		{name: "not found", err: &types.ResourceNotFoundException{}},
		{name: "access denied", err: &types.AccessDeniedException{}},
		{name: "KMS access denied", err: &types.KMSAccessDeniedException{}},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded), retryable: true},
		{name: "canceled", err: &smithy.CanceledError{Err: context.Canceled}},
		{name: "canceled deadline", err: &smithy.CanceledError{Err: context.DeadlineExceeded}, retryable: true},
		{name: "send error", err: &smithyhttp.RequestSendError{Err: io.EOF}, retryable: true, network: true},
		{name: "EOF", err: &url.Error{Op: "Post", URL: "http://x", Err: io.EOF}, retryable: true, network: true},
		{name: "cut body", err: &smithy.DeserializationError{Err: io.ErrUnexpectedEOF}, retryable: true, network: true},
		{name: "reset", err: reset, retryable: true, network: true},
		{name: "dial refused", err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, retryable: true, network: true},
		{name: "unknown host", err: &smithyhttp.RequestSendError{Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}},
		{name: "unknown CA", err: &smithyhttp.RequestSendError{Err: x509.UnknownAuthorityError{}}},
		{name: "plain error", err: errors.New("something")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsRetryable(tt.err); got != tt.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.retryable)
			}
			if got := IsNetworkError(tt.err); got != tt.network {
				t.Errorf("IsNetworkError(%v) = %v, want %v", tt.err, got, tt.network)
			}
		})
	}
}

func TestIsRetryableCode(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		CodeThroughputExceeded:     true,
		CodeInternalFailure:        true,
		"KMSThrottlingException":   true,
		"KMSAccessDeniedException": false,
		"ValidationException":      false,
		"":                         false,
	} {
		if got := IsRetryableCode(code); got != want {
			t.Errorf("IsRetryableCode(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name  string
		err   error
		class ErrorClass
		code  string
	}{
		{"throughput exceeded", httpStatusError(400, &types.ProvisionedThroughputExceededException{}), ClassRetryable, CodeThroughputExceeded},
		{"KMS throttling", &types.KMSThrottlingException{}, ClassRetryable, "KMSThrottlingException"},
		{"internal failure", httpStatusError(500, &smithy.GenericAPIError{Code: "InternalFailure"}), ClassRetryable, "InternalFailure"},
		{"502 without a code", httpStatusError(502, errors.New("bad gateway")), ClassRetryable, "HTTP 502"},
		{"429", httpStatusError(429, errors.New("slow down")), ClassRetryable, "HTTP 429"},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassRetryable, "timeout"},
		{"reset", reset, ClassRetryable, "network error"},
		{"EOF", &smithyhttp.RequestSendError{Err: io.EOF}, ClassRetryable, "network error"},
		{"malformed response", fmt.Errorf("x: %w", ErrMalformedResponse), ClassRetryable, "malformed response"},
		{"unknown code, 400", httpStatusError(400, &smithy.GenericAPIError{Code: "SomethingNew"}), ClassRetryable, "SomethingNew"},
		{"plain error", errors.New("something"), ClassRetryable, "error"},
		{"no credentials", &CredentialsError{Err: errors.New("no EC2 IMDS role found")}, ClassCredentials, "credentials"},
		{"unrecognized client", httpStatusError(400, &smithy.GenericAPIError{Code: "UnrecognizedClientException"}), ClassCredentials, "UnrecognizedClientException"},
		{"expired token", &smithy.GenericAPIError{Code: "ExpiredTokenException"}, ClassCredentials, "ExpiredTokenException"},
		{"access denied", &types.AccessDeniedException{}, ClassCredentials, "AccessDeniedException"},
		{"KMS access denied", &types.KMSAccessDeniedException{}, ClassCredentials, "KMSAccessDeniedException"},
		{"KMS disabled", &types.KMSDisabledException{}, ClassCredentials, "KMSDisabledException"},
		{"403 without a code", httpStatusError(403, errors.New("forbidden")), ClassCredentials, "HTTP 403"},
		{"stream not found", &types.ResourceNotFoundException{}, ClassNotFound, "ResourceNotFoundException"},
		{"KMS key not found", &types.KMSNotFoundException{}, ClassNotFound, "KMSNotFoundException"},
		{"404 without a code", httpStatusError(404, errors.New("not found")), ClassNotFound, "HTTP 404"},
		{"validation", httpStatusError(400, &types.ValidationException{}), ClassRejected, "ValidationException"},
		{"invalid argument", &types.InvalidArgumentException{}, ClassRejected, "InvalidArgumentException"},
		{"413", httpStatusError(413, errors.New("too large")), ClassRejected, "HTTP 413"},
		{"request too large", fmt.Errorf("x: %w", ErrRequestTooLarge), ClassRejected, "request too large"},
		{"canceled", &smithy.CanceledError{Err: context.Canceled}, ClassCanceled, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.err); got != tt.class {
				t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.class)
			}
			if got := ErrorCode(tt.err); got != tt.code {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.code)
			}
		})
	}
	if ErrorCode(nil) != "" {
		t.Error("ErrorCode(nil) is not empty")
	}
}

func TestClassifyCode(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]ErrorClass{
		CodeThroughputExceeded:     ClassRetryable,
		CodeInternalFailure:        ClassRetryable,
		"KMSThrottlingException":   ClassRetryable,
		"SomethingNew":             ClassRetryable,
		"KMSAccessDeniedException": ClassCredentials,
		"KMSNotFoundException":     ClassNotFound,
		"ValidationException":      ClassRejected,
	} {
		if got := ClassifyCode(code); got != want {
			t.Errorf("ClassifyCode(%q) = %s, want %s", code, got, want)
		}
	}
	for code, want := range map[string]bool{
		CodeThroughputExceeded:   true,
		"KMSThrottlingException": true,
		"ThrottlingException":    true,
		CodeInternalFailure:      false,
		"":                       false,
	} {
		if got := IsThrottlingCode(code); got != want {
			t.Errorf("IsThrottlingCode(%q) = %v, want %v", code, got, want)
		}
	}
	if s := ErrorClass(42).String(); s != "class(42)" {
		t.Errorf("String of an unknown class = %q", s)
	}
}
