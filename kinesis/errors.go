package kinesis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/aws/smithy-go"
)

// retryableCodes are the API error codes (of a whole request, or of one entry) worth sending again:
// throttling and server-side failures.
var retryableCodes = map[string]struct{}{
	CodeThroughputExceeded:        {},
	CodeInternalFailure:           {},
	"InternalFailureException":    {},
	"InternalServerError":         {},
	"ServiceUnavailable":          {},
	"ServiceUnavailableException": {},
	"KMSThrottlingException":      {},
	"LimitExceededException":      {},
	"Throttling":                  {},
	"ThrottlingException":         {},
	"ThrottledException":          {},
	"RequestThrottled":            {},
	"RequestThrottledException":   {},
	"TooManyRequestsException":    {},
	"SlowDown":                    {},
	"RequestTimeout":              {},
	"RequestTimeoutException":     {},
}

// IsRetryableCode reports whether an error code (PutRecordsResultEntry.ErrorCode, or an API error's
// code) names a transient failure: throttling or a failure on the service's side.
func IsRetryableCode(code string) bool {
	_, ok := retryableCodes[code]
	return ok
}

// IsRetryable reports whether sending the same request again later may succeed: throttling
// (including KMS throttling), InternalFailure, any 5xx or 429 answer, timeouts and network errors.
// Client errors such as ValidationException, InvalidArgumentException, ResourceNotFoundException or
// AccessDeniedException are not retryable in this sense (the plugin may still choose to retry the
// chunk later, since such causes are often fixed outside it). A cancelled context is not retryable;
// an expired deadline is a timeout and is.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if IsRetryableCode(apiErr.ErrorCode()) {
			return true
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if code := status.HTTPStatusCode(); code >= 500 || code == 429 {
			return true
		}
	}
	if apiErr != nil {
		return false
	}
	if IsNetworkError(err) {
		return true
	}
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

// IsNetworkError reports whether err is a failure of the transport rather than an answer of the
// service: a refused or reset connection, a connection closed before the whole answer was read
// (EOF), a dial error or a transport timeout. A cancelled context, an unknown host and a TLS
// certificate error are not: sending again at once cannot help. It is the only condition under
// which the SDK re-sends a request (once, with AutoRetry).
func IsNetworkError(err error) bool {
	if err == nil {
		return false
	}
	var canceled interface{ CanceledError() bool }
	if errors.As(err, &canceled) && canceled.CanceledError() {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	if isCertificateError(err) {
		return false
	}
	// A body cut short is a transport failure too: the SDK reports it as a deserialization error
	// wrapping io.ErrUnexpectedEOF or a net error, which the checks below accept.
	var conn interface{ ConnectionError() bool }
	if errors.As(err, &conn) && conn.ConnectionError() {
		return true // smithy's RequestSendError: http.Client.Do failed
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's deadline, not the transport's
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

func isCertificateError(err error) bool {
	var (
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	return errors.As(err, &verifyErr) || errors.As(err, &unknownCA) ||
		errors.As(err, &hostErr) || errors.As(err, &invalidErr)
}
