package kinesis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// serverFailureCodes are the API error codes (of a whole request, or of one entry) that mean a
// failure on the service's side; with throttlingCodes, they are the codes worth sending again.
var serverFailureCodes = map[string]struct{}{
	CodeInternalFailure:           {},
	"InternalFailureException":    {},
	"InternalServerError":         {},
	"ServiceUnavailable":          {},
	"ServiceUnavailableException": {},
	"RequestTimeout":              {},
	"RequestTimeoutException":     {},
}

// IsRetryableCode reports whether an error code (PutRecordsResultEntry.ErrorCode, or an API error's
// code) names a transient failure: throttling or a failure on the service's side.
func IsRetryableCode(code string) bool {
	_, ok := serverFailureCodes[code]
	return ok || IsThrottlingCode(code)
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

// ErrorClass says what a failed request, or a failed entry of a request, means for delivery.
// Classify and ClassifyCode compute it; package internal/requests decides what to do with each
// class (its Retry policy), and package batcher what a flush returns.
type ErrorClass int

const (
	// ClassRetryable: throttling (ProvisionedThroughputExceededException, KMS throttling), a failure
	// on the service's side (InternalFailure, any 5xx), a timeout or a network error. Sending again
	// after a while may succeed. Whatever is not recognised is retryable too: resending is safe,
	// dropping on a guess loses data.
	ClassRetryable ErrorClass = iota
	// ClassCredentials: credentials are missing, invalid or expired, or do not allow the call
	// (access denied, the stream's KMS key disabled or not accessible). Fixed outside the plugin.
	ClassCredentials
	// ClassNotFound: the stream, or its KMS key, does not exist. Fixed outside the plugin.
	ClassNotFound
	// ClassRejected: Kinesis refused the request as invalid (ValidationException,
	// InvalidArgumentException, a 413): the caller's bug. The same request will be refused again.
	ClassRejected
	// ClassCanceled: the caller's context was cancelled; nothing more should be sent.
	ClassCanceled
)

var classNames = [...]string{"retryable", "credentials", "not found", "rejected", "canceled"}

func (c ErrorClass) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// codeClasses are the API error codes (of a request or of an entry) that are not retryable.
var codeClasses = map[string]ErrorClass{
	"AccessDenied":                        ClassCredentials,
	"AccessDeniedException":               ClassCredentials,
	"ExpiredToken":                        ClassCredentials,
	"ExpiredTokenException":               ClassCredentials,
	"IncompleteSignature":                 ClassCredentials,
	"IncompleteSignatureException":        ClassCredentials,
	"InvalidAccessKeyId":                  ClassCredentials,
	"InvalidClientTokenId":                ClassCredentials,
	"InvalidSignatureException":           ClassCredentials,
	"MissingAuthenticationToken":          ClassCredentials,
	"MissingAuthenticationTokenException": ClassCredentials,
	"NotAuthorized":                       ClassCredentials,
	"RequestExpired":                      ClassCredentials, // clock skew: fixed outside too
	"SignatureDoesNotMatch":               ClassCredentials,
	"UnrecognizedClientException":         ClassCredentials,
	"KMSAccessDeniedException":            ClassCredentials,
	"KMSDisabledException":                ClassCredentials,
	"KMSInvalidStateException":            ClassCredentials,
	"KMSOptInRequired":                    ClassCredentials,

	"ResourceNotFoundException": ClassNotFound,
	"KMSNotFoundException":      ClassNotFound,

	"ValidationException":         ClassRejected,
	"ValidationError":             ClassRejected,
	"InvalidArgumentException":    ClassRejected,
	"InvalidParameterException":   ClassRejected,
	"InvalidParameterValue":       ClassRejected,
	"InvalidParameterCombination": ClassRejected,
	"MissingParameter":            ClassRejected,
	"SerializationException":      ClassRejected,
	"RequestEntityTooLarge":       ClassRejected,
	"UnknownOperationException":   ClassRejected,
}

// ClassifyCode classifies the error code of one PutRecords result entry (or of a request):
// ProvisionedThroughputExceededException and InternalFailure are retryable, as is any code it does
// not know.
func ClassifyCode(code string) ErrorClass {
	if c, ok := codeClasses[code]; ok {
		return c
	}
	return ClassRetryable
}

// CredentialsError is a failure to obtain credentials (the default chain found none, STS refused
// AssumeRole, the instance metadata service did not answer...). The client wraps every error of its
// credentials provider in one, so that Classify can tell it from other failures.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return "kinesis: credentials: " + e.Err.Error() }

// Unwrap returns the provider's error.
func (e *CredentialsError) Unwrap() error { return e.Err }

// Classify says what a failed PutRecords call means; err must not be nil.
//
//	ClassCanceled     the caller's context was cancelled (an expired deadline is a timeout)
//	ClassRejected     ErrRequestTooLarge; ValidationException, InvalidArgumentException and other
//	                  invalid-request codes; HTTP 413
//	ClassCredentials  no credentials (CredentialsError, a signing error); UnrecognizedClient,
//	                  ExpiredToken, AccessDenied, KMS access and state codes; HTTP 401 and 403
//	ClassNotFound     ResourceNotFoundException, KMSNotFoundException; HTTP 404 without a code
//	ClassRetryable    everything else: throttling, InternalFailure, 5xx, 429, timeouts, network
//	                  errors, ErrMalformedResponse, unknown codes and errors
func Classify(err error) ErrorClass {
	if errors.Is(err, context.Canceled) {
		return ClassCanceled
	}
	if errors.Is(err, ErrRequestTooLarge) {
		return ClassRejected
	}
	var credErr *CredentialsError
	var signErr *v4.SigningError
	if errors.As(err, &credErr) || errors.As(err, &signErr) {
		return ClassCredentials
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if c, ok := codeClasses[apiErr.ErrorCode()]; ok {
			return c
		}
		if IsRetryableCode(apiErr.ErrorCode()) {
			return ClassRetryable
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		switch status.HTTPStatusCode() {
		case 401, 403:
			return ClassCredentials
		case 404:
			return ClassNotFound
		case 413:
			return ClassRejected
		}
	}
	return ClassRetryable
}

// ErrorCode names what err is, briefly, for log lines and counters: the API error code
// ("ValidationException"), "HTTP 502" for an answer without a code, "timeout", "network error",
// "credentials", "canceled", or "error". It never includes data.
func ErrorCode(err error) string {
	var apiErr smithy.APIError
	var credErr *CredentialsError
	var signErr *v4.SigningError
	var status interface{ HTTPStatusCode() int }
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrRequestTooLarge):
		return "request too large"
	case errors.Is(err, ErrMalformedResponse):
		return "malformed response"
	case errors.As(err, &credErr), errors.As(err, &signErr):
		return "credentials"
	case errors.As(err, &apiErr) && apiErr.ErrorCode() != "" && apiErr.ErrorCode() != "UnknownError":
		return apiErr.ErrorCode() // the SDK says UnknownError for an answer without a code
	case errors.As(err, &status) && status.HTTPStatusCode() != 0:
		return "HTTP " + strconv.Itoa(status.HTTPStatusCode())
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case IsNetworkError(err):
		return "network error"
	}
	return "error"
}

// RequestID returns the request ID Kinesis gave its answer, or "".
func RequestID(err error) string {
	var withID interface{ ServiceRequestID() string }
	if errors.As(err, &withID) {
		return withID.ServiceRequestID()
	}
	return ""
}

// throttlingCodes are the error codes that mean "too much, slow down".
var throttlingCodes = map[string]struct{}{
	CodeThroughputExceeded:      {},
	"KMSThrottlingException":    {},
	"LimitExceededException":    {},
	"Throttling":                {},
	"ThrottlingException":       {},
	"ThrottledException":        {},
	"RequestThrottled":          {},
	"RequestThrottledException": {},
	"TooManyRequestsException":  {},
	"SlowDown":                  {},
}

// IsThrottlingCode reports whether an error code (of an entry or of a request) means that the
// stream, its shard or its KMS key is throttling the caller.
func IsThrottlingCode(code string) bool {
	_, ok := throttlingCodes[code]
	return ok
}
