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
