package kinesis

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// roundTripFunc is a RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ctxBody is a response body whose reads block until its request's context ends.
type ctxBody struct{ ctx context.Context }

func (b ctxBody) Read([]byte) (int, error) { <-b.ctx.Done(); return 0, b.ctx.Err() }
func (b ctxBody) Close() error             { return nil }

func TestDeadlineClient(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	hang := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, context.Cause(r.Context())
	})
	var seen context.Context
	slowBody := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Context()
		return &http.Response{StatusCode: 200, Body: ctxBody{r.Context()}, Request: r}, nil
	})
	fast := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Context()
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	})
	newReq := func(ctx context.Context) *http.Request {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://kinesis.example/", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	client := func(rt http.RoundTripper) aws.HTTPClient {
		c := withRequestDeadline(&http.Client{Transport: rt, Timeout: timeout})
		if _, ok := c.(deadlineClient); !ok {
			t.Fatalf("withRequestDeadline returned %T, want deadlineClient", c)
		}
		return c
	}

	t.Run("awaiting the response", func(t *testing.T) {
		start := time.Now()
		_, err := client(hang).Do(newReq(context.Background()))
		var uerr *url.Error
		if !errors.As(err, &uerr) || !uerr.Timeout() || uerr.Op != "Post" {
			t.Fatalf("error %v (%T), want a *url.Error of Post that is a timeout", err, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v is context.DeadlineExceeded: that is the caller's deadline", err)
		}
		if !IsNetworkError(err) || ErrorCode(err) != "timeout" {
			t.Errorf("IsNetworkError %v, ErrorCode %q; want true, timeout (as http.Client.Timeout's)", IsNetworkError(err), ErrorCode(err))
		}
		if d := time.Since(start); d < timeout || d > 5*time.Second {
			t.Errorf("returned after %v, want the timeout, %v", d, timeout)
		}
	})
	t.Run("reading the body", func(t *testing.T) {
		resp, err := client(slowBody).Do(newReq(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		var te interface{ Timeout() bool }
		if !errors.As(err, &te) || !te.Timeout() || !IsNetworkError(err) {
			t.Fatalf("read error %v, want a timeout", err)
		}
	})
	t.Run("close ends the deadline", func(t *testing.T) {
		resp, err := client(fast).Do(newReq(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
			t.Fatalf("body %q, %v", b, err)
		}
		if seen.Err() != nil {
			t.Fatalf("the request's context ended before the body was closed: %v", seen.Err())
		}
		resp.Body.Close()
		if seen.Err() == nil {
			t.Error("the request's context lives on after the body was closed")
		}
	})
	t.Run("the caller's cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := client(hang).Do(newReq(ctx))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
	t.Run("other clients as they are", func(t *testing.T) {
		noTimeout := &http.Client{Transport: fast}
		if c := withRequestDeadline(noTimeout); c != aws.HTTPClient(noTimeout) {
			t.Errorf("a client without Timeout became %T", c)
		}
	})
}
