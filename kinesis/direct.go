package kinesis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/middleware"
	smithyrand "github.com/aws/smithy-go/rand"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/wire"
)

// PutRecordsPathEnv names the environment variable that selects how PutRecords requests are made:
// "direct" (the default) or "sdk". Any other value is an error of New.
const PutRecordsPathEnv = "KINESIS_STREAMS_GO_PUTRECORDS"

// directPut makes PutRecords requests without the SDK's per-request middleware stack: it signs
// the body (SigV4, the SDK's signer and credentials), sends it with the SDK client's HTTP client to
// the endpoint the SDK's resolver gave once, and reads the answer with package wire, an error
// through the SDK's own deserializer. What it leaves out is per-request work whose result never
// changes for this client (endpoint rules, auth scheme resolution, user agent, middleware stack
// assembly): in real Fluent Bit, that work and the deep stacks it grows on each request's
// goroutine were about a sixth of the plugin's CPU (docs/performance.md).
//
// Its errors are the SDK's, wrapped as the SDK wraps them (*smithy.OperationError around
// *awshttp.ResponseError around the API error, *smithyhttp.RequestSendError or
// *smithy.DeserializationError; *retry.MaxAttemptsError when a retried request failed again), so
// that Classify, ErrorCode, RequestID and the log lines are the same on both paths.
type directPut struct {
	http        aws.HTTPClient
	options     kinesissdk.Options // the SDK client's, for the endpoint
	streamARN   *string
	header      http.Header // every request's, but Content-Type and the signature's
	creds       aws.CredentialsProvider
	signer      *v4.Signer
	maxAttempts int // 2 with AutoRetry: one immediate re-send after a network error
	deserialize middleware.DeserializeMiddleware
	bodies      *wire.RequestBodies
	endpoint    atomic.Pointer[endpoint] // the last one resolved
}

// endpoint is where requests go and how they are signed, as the SDK's rules resolved them for the
// account of the credentials (AccountIDEndpointMode).
type endpoint struct {
	accountID   string
	url         url.URL // path included
	header      http.Header
	signingName string
	region      string
}

// newDirectPut builds the direct path for api, or returns nil when its requests need the SDK's
// middleware: no credentials provider.
func newDirectPut(ctx context.Context, api *kinesissdk.Client, streamARN *string, creds aws.CredentialsProvider,
	bodies *wire.RequestBodies, autoRetry bool) (*directPut, error) {
	if creds == nil {
		return nil, nil
	}
	o := api.Options()
	d := &directPut{
		http:        o.HTTPClient,
		options:     o,
		streamARN:   streamARN,
		header:      http.Header{},
		creds:       creds,
		signer:      v4.NewSigner(),
		maxAttempts: 1,
		bodies:      bodies,
	}
	if autoRetry {
		d.maxAttempts = 2
	}
	d.header.Set("X-Amz-Target", wire.Target)
	d.header.Set("User-Agent", userAgent())
	var err error
	if d.deserialize, err = sdkDeserializer(ctx, api); err != nil {
		return nil, err
	}
	return d, nil
}

// resolve returns the endpoint of the requests made with creds: the one resolved last, or the
// SDK's rules' answer when the credentials' account changed.
func (d *directPut) resolve(ctx context.Context, creds aws.Credentials) (*endpoint, error) {
	mode := d.options.AccountIDEndpointMode
	var accountID *string
	if mode != aws.AccountIDEndpointModeDisabled && creds.AccountID != "" {
		accountID = aws.String(creds.AccountID)
	}
	if mode == aws.AccountIDEndpointModeRequired && accountID == nil {
		return nil, errors.New("invalid accountID set: accountID is required but not set")
	}
	if ep := d.endpoint.Load(); ep != nil && ep.accountID == aws.ToString(accountID) {
		return ep, nil
	}
	o := &d.options
	resolved, err := o.EndpointResolverV2.ResolveEndpoint(ctx, kinesissdk.EndpointParameters{
		Region:                aws.String(o.Region),
		UseDualStack:          aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		UseFIPS:               aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		Endpoint:              o.BaseEndpoint,
		AccountId:             accountID,
		AccountIdEndpointMode: aws.String(string(mode)),
		StreamARN:             d.streamARN,
		OperationType:         aws.String("data"),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to resolve service endpoint, %w", err)
	}
	ep := &endpoint{accountID: aws.ToString(accountID), url: resolved.URI, header: resolved.Headers,
		signingName: "kinesis", region: o.Region}
	ep.url.Path = smithyhttp.JoinPath(resolved.URI.Path, "/")
	ep.url.RawPath = ""
	options, _ := smithyauth.GetAuthOptions(&resolved.Properties)
	for _, opt := range options {
		if name, ok := smithyhttp.GetSigV4SigningName(&opt.SignerProperties); ok {
			ep.signingName = name
		}
		if region, ok := smithyhttp.GetSigV4SigningRegion(&opt.SignerProperties); ok {
			ep.region = region
		}
	}
	d.endpoint.Store(ep)
	return ep, nil
}

// userAgent is the User-Agent header of the direct path's requests: the SDK's product and
// platform, then this plugin.
func userAgent() string {
	return "aws-sdk-go-v2/" + aws.SDKVersion + " ua/2.1 os/" + runtime.GOOS + " lang/go#" + runtime.Version() +
		" md/GOOS#" + runtime.GOOS + " md/GOARCH#" + runtime.GOARCH + " api/kinesis#" + kinesissdk.ServiceAPIVersion +
		" app/fluent-bit-kinesis-streams-go"
}

// errCaptured stops the SDK call that sdkDeserializer makes, before anything is sent.
var errCaptured = errors.New("kinesis: deserializer captured")

// sdkDeserializer returns the SDK's deserializer of PutRecords responses, from the middleware
// stack of a call that it stops before anything is sent.
func sdkDeserializer(ctx context.Context, api *kinesissdk.Client) (middleware.DeserializeMiddleware, error) {
	var m middleware.DeserializeMiddleware
	var found bool
	_, err := api.PutRecords(ctx, &kinesissdk.PutRecordsInput{}, func(o *kinesissdk.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			m, found = wire.SDKDeserializer(stack)
			return errCaptured
		})
	})
	if !found || !errors.Is(err, errCaptured) {
		return nil, fmt.Errorf("kinesis: no PutRecords deserializer in the SDK's stack (%v)", err)
	}
	return m, nil
}

// put sends entries to the stream named streamName (nil when it is named by its ARN) as one
// PutRecords request, again once at once after a network error with AutoRetry.
func (d *directPut) put(ctx context.Context, entries []Entry, streamName *string) (out *kinesissdk.PutRecordsOutput, err error) {
	if err := ctx.Err(); err != nil {
		return nil, &smithy.OperationError{ServiceID: kinesissdk.ServiceID, OperationName: "PutRecords", Err: err}
	}
	body, contentType, err := d.bodies.BodyOf(entries, streamName, d.streamARN)
	if err != nil {
		return nil, err
	}
	defer body.Release()
	sum := sha256.Sum256(body.Bytes())
	payloadHash := hex.EncodeToString(sum[:])
	invocationID, err := smithyrand.NewUUID(rand.Reader).GetUUID()
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: kinesissdk.ServiceID, OperationName: "PutRecords", Err: err}
	}
	for attempt := 1; ; attempt++ {
		out, err = d.attempt(ctx, body, contentType, payloadHash, invocationID, attempt)
		if err == nil {
			return out, nil
		}
		if !IsNetworkError(err) || ctx.Err() != nil {
			break
		}
		if attempt == d.maxAttempts {
			if attempt > 1 {
				err = &retry.MaxAttemptsError{Attempt: attempt, Err: err}
			}
			break
		}
	}
	return nil, &smithy.OperationError{ServiceID: kinesissdk.ServiceID, OperationName: "PutRecords", Err: err}
}

// attempt makes one request.
func (d *directPut) attempt(ctx context.Context, body *wire.Body, contentType, payloadHash, invocationID string, attempt int) (*kinesissdk.PutRecordsOutput, error) {
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("get identity: %w", err)
	}
	ep, err := d.resolve(ctx, creds)
	if err != nil {
		return nil, err
	}
	u := ep.url
	req := (&http.Request{
		Method:     http.MethodPost,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     d.header.Clone(),
	}).WithContext(ctx)
	for k, v := range ep.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	// The SDK's two headers that tell AWS which call and which attempt a request is.
	req.Header["Amz-Sdk-Invocation-Id"] = []string{invocationID}
	req.Header["Amz-Sdk-Request"] = []string{"attempt=" + strconv.Itoa(attempt) + "; max=" + strconv.Itoa(d.maxAttempts)}
	req.ContentLength = int64(len(body.Bytes()))
	if err := d.signer.SignHTTP(ctx, creds, req, payloadHash, ep.signingName, ep.region, time.Now().UTC()); err != nil {
		return nil, &v4.SigningError{Err: err}
	}
	if req.ContentLength > 0 {
		req.Body = body.Reader()
	} else {
		req.Body = http.NoBody
	}

	resp, err := d.http.Do(req)
	if err != nil {
		if req.Body != http.NoBody {
			req.Body.Close() // an http.Client closes it; a test's client may not
		}
		err = &smithyhttp.RequestSendError{Err: err}
		if ctx.Err() != nil {
			err = &smithy.CanceledError{Err: ctx.Err()}
		}
		return nil, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{Header: http.Header{}}}, Err: err}}
	}
	var out *kinesissdk.PutRecordsOutput
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		err = wire.ReadError(ctx, d.deserialize, req, resp)
	} else {
		out, err = wire.ReadPutRecords(resp)
		resp.Body.Close()
	}
	if err != nil {
		return nil, &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
			RequestID:     requestID(resp.Header),
		}
	}
	return out, nil
}

// requestID is the request ID of an answer, as the SDK reads it.
func requestID(h http.Header) string {
	if v := h.Get("X-Amzn-Requestid"); v != "" {
		return v
	}
	return h.Get("X-Amz-Request-Id")
}

// Paths of PutRecords requests (Options.PutRecordsPath).
const (
	// PathDirect: signed and sent by directPut, without the SDK's per-request middleware.
	PathDirect = "direct"
	// PathSDK: through the SDK client's PutRecords, its middleware stack and all.
	PathSDK = "sdk"
)

// selectPutRecordsPath returns the path PutRecords requests take: path when set, else the
// environment variable PutRecordsPathEnv, else PathDirect.
func selectPutRecordsPath(path string) (string, error) {
	if path == "" {
		path = os.Getenv(PutRecordsPathEnv)
	}
	switch path {
	case "", PathDirect:
		return PathDirect, nil
	case PathSDK:
		return PathSDK, nil
	default:
		return "", fmt.Errorf("invalid PutRecords path %q (%s): want %q or %q", path, PutRecordsPathEnv, PathDirect, PathSDK)
	}
}
