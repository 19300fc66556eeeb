package kinesis

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// deadlineClient bounds each request with a deadline on its context, where http.Client.Timeout
// would start a goroutine and a timer per request (net/http's setRequestCancel): starting that
// goroutine, and stopping it when the response arrives, can each wake a thread of the Go runtime,
// and while a timer is pending an idle runtime thread wakes at every packet. The timeout covers the request and the
// reading of the response's body, as http.Client.Timeout does, and fails them with the same kind
// of error: a *url.Error whose Timeout is true, which is not context.DeadlineExceeded (that is the
// caller's own deadline).
type deadlineClient struct {
	client  *http.Client // without Timeout
	timeout time.Duration
}

// withRequestDeadline returns c with its Timeout applied as deadlineClient does, or c itself when
// it is not an *http.Client with a Timeout.
func withRequestDeadline(c aws.HTTPClient) aws.HTTPClient {
	hc, ok := c.(*http.Client)
	if !ok || hc.Timeout <= 0 {
		return c
	}
	plain := *hc
	plain.Timeout = 0
	return deadlineClient{client: &plain, timeout: hc.Timeout}
}

// CloseIdleConnections passes the call on, as http.Client has it.
func (c deadlineClient) CloseIdleConnections() { c.client.CloseIdleConnections() }

// errRequestTimeout is the cause of a request's context when its timeout expires.
var errRequestTimeout error = &timeoutError{"Client.Timeout exceeded"}

// timeoutError is the error of a request whose timeout expired, as net/http words it. It wraps
// nothing: the error it replaces is the deadline's, and context.DeadlineExceeded would say that
// the caller's own deadline expired.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

func (c deadlineClient) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeoutCause(req.Context(), c.timeout, errRequestTimeout)
	resp, err := c.client.Do(req.WithContext(ctx))
	if err != nil {
		timedOut := context.Cause(ctx) == errRequestTimeout
		cancel()
		if timedOut {
			return nil, &url.Error{Op: urlOp(req.Method), URL: req.URL.String(), Err: errRequestTimeout}
		}
		return nil, err
	}
	resp.Body = &deadlineBody{body: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
}

// urlOp is the Op of a *url.Error for a request of method, as net/http writes it.
func urlOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// deadlineBody is a response body read under its request's deadline; closing it ends the deadline.
type deadlineBody struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errRequestTimeout {
		err = &timeoutError{err.Error() + " (Client.Timeout exceeded while reading body)"}
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	err := b.body.Close()
	b.cancel()
	return err
}
