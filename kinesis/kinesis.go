// Package kinesis is the AWS side of the plugin: the Kinesis Data Streams client (AWS SDK v2), its
// credentials (default chain, profile, AssumeRole through STS), custom endpoints, the retry policy
// of one request, the classification of errors, random partition keys, and the calls the plugin
// makes: PutRecords (signed and sent without the SDK's per-request middleware, see direct.go), and
// ListShards for shard-aware aggregation.
//
// It sends the entries it is given in one request and reports per entry what Kinesis answered. It
// does not know about Fluent Bit, chunks or records; batching belongs to package batcher, and
// resending failed entries and backoff to package internal/requests. The bytes of a PutRecords
// request and response are package internal/wire's, the connections package internal/transport's,
// the limits package kinesis/limits's, and the KPL format and shard map package kpl's.
package kinesis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/transport"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/wire"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// DefaultHTTPTimeout is the timeout of one HTTP request when Options.HTTPTimeout is not set.
const DefaultHTTPTimeout = 60 * time.Second

// Error codes Kinesis gives to one entry of a PutRecords response (PutRecordsResultEntry.ErrorCode).
const (
	// CodeThroughputExceeded: the shard's write throughput was exceeded.
	CodeThroughputExceeded = "ProvisionedThroughputExceededException"
	// CodeInternalFailure: Kinesis failed to process the entry.
	CodeInternalFailure = "InternalFailure"
)

var (
	// ErrRequestTooLarge: PutRecords was called with more entries or bytes than one request may
	// carry (limits.MaxRecordsPerRequest, limits.MaxRequestBytes). Nothing was sent. It is a caller bug.
	ErrRequestTooLarge = errors.New("kinesis: request exceeds the PutRecords limits")
	// ErrMalformedResponse: Kinesis answered with a number of results that does not match the
	// number of entries sent, so they cannot be matched by index. Which entries were accepted is
	// unknown; the caller should treat them all as not delivered.
	ErrMalformedResponse = errors.New("kinesis: malformed PutRecords response")
)

// Entry is one Kinesis record to put: its Data, PartitionKey and, when not "", ExplicitHashKey
// (the hash key, in decimal, that routes it instead of its partition key's MD5). Its Size is what
// Kinesis counts against every limit: data and partition key. It is the wire package's record, so
// that the direct path writes a request body from the entries as they are.
type Entry = wire.Record

// PutResult is Kinesis's answer to one PutRecords request.
type PutResult struct {
	// FailedCount is the number of entries that were not accepted: the non-empty ErrorCodes.
	FailedCount int
	// ErrorCodes has one element per entry sent, in order; "" means accepted. It is read-only:
	// when every entry was accepted, results share it.
	ErrorCodes []string
	// ShardIDs has one element per entry sent, in order: the shard Kinesis put the entry in, ""
	// for an entry not accepted (or when Kinesis did not say). Shard-aware aggregation compares
	// it with the shard it meant the entry for (the one of its ExplicitHashKey), to learn that the
	// stream's shards changed; it is nil when no entry had an ExplicitHashKey, as nothing reads
	// it then (a list per request was 1.4% of the plugin's CPU).
	ShardIDs []string
}

// Options configure a Client.
type Options struct {
	Region      string
	Stream      string // a name, or an ARN (sent as StreamARN)
	Endpoint    string // a URL; "" means the AWS endpoint of Region
	STSEndpoint string // a URL; "" means the AWS STS endpoint of Region
	RoleARN     string
	ExternalID  string
	Profile     string
	// AutoRetry re-sends a request once, at once, when it failed with a network error.
	AutoRetry bool
	// HTTPTimeout bounds one HTTP request; 0 means DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// HTTPTransport selects the code that makes the HTTP requests: "sync" (package transport's
	// own) or "std" (net/http's). "" means the environment variable
	// KINESIS_STREAMS_GO_HTTP_TRANSPORT, and "sync" when that is unset or empty.
	HTTPTransport string
	// PutRecordsPath selects how PutRecords requests are made: PathDirect or PathSDK. "" means the
	// environment variable KINESIS_STREAMS_GO_PUTRECORDS, and PathDirect when that is unset or
	// empty.
	PutRecordsPath string
	// Protocol is how PutRecords travels: ProtocolCBOR or ProtocolJSON; "" means ProtocolJSON.
	Protocol string
	// MaxConns is how many requests the caller may have in flight at once: the client keeps as
	// many idle connections per endpoint (at least the SDK's 10), so that none is closed after a
	// request only to be opened again, TLS handshake included, for the next.
	MaxConns int
	// UseFIPSEndpoint and UseDualStackEndpoint choose the FIPS or dual-stack (IPv4 and IPv6)
	// endpoints of Kinesis and STS, through the SDK's endpoint resolution; nil leaves the choice
	// to the SDK's shared settings (AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT,
	// use_fips_endpoint and use_dualstack_endpoint in the profile). They do not apply to
	// Endpoint or STSEndpoint, which are used as given: the SDK refuses a custom endpoint with
	// either, so the client turns both off for a service whose endpoint is custom.
	UseFIPSEndpoint      *bool
	UseDualStackEndpoint *bool

	// httpClient, when set, makes every request of STS and Kinesis, for tests that look at the
	// requests without any network.
	httpClient aws.HTTPClient
	// dial, when set, opens the client's connections, for tests that give a name an address.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Protocols of PutRecords (Options.Protocol). Responses are read in either, as their
// Content-Type says, whichever was sent.
const (
	// ProtocolCBOR sends application/x-amz-cbor-1.1 (the AWS SDK for Java's default for
	// Kinesis): each record's data as raw bytes.
	ProtocolCBOR = "cbor"
	// ProtocolJSON sends application/x-amz-json-1.1 (the AWS SDK for Go's and the C plugin's):
	// each record's data in base64, a third larger to hash, encrypt and send.
	ProtocolJSON = "json"
)

// API is the part of the SDK client that Client uses.
type API interface {
	PutRecords(ctx context.Context, in *kinesissdk.PutRecordsInput, optFns ...func(*kinesissdk.Options)) (*kinesissdk.PutRecordsOutput, error)
}

var _ API = (*kinesissdk.Client)(nil)

// idleCloser is the part of *http.Transport that Close uses.
type idleCloser interface{ CloseIdleConnections() }

// noRedirect returns a redirect's response as it is: Kinesis and STS do not redirect, and a POST
// must not be re-sent elsewhere (or turned into a GET).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Client sends records to one stream. It is safe for concurrent use.
type Client struct {
	api        API
	streamName *string
	streamARN  *string
	http       idleCloser // nil when the HTTP client cannot close idle connections
	bufs       sync.Pool  // *requestBuf
	bodies     wire.RequestBodies
	transport  string     // see HTTPTransport
	direct     *directPut // nil on the SDK path

	// What the start-up check (Check) needs: the credentials and where they may come from.
	creds   aws.CredentialsProvider // nil when the SDK found no source at all
	opts    Options                 // as given, for the check's messages (ExternalID never shown)
	sources credentialSources
}

// requestBuf holds the SDK's view of one request, reused across requests to avoid allocating the
// entries and one partition key pointer per record.
type requestBuf struct {
	records []types.PutRecordsRequestEntry
	keys    []string
	hashes  []string // explicit hash keys
}

// New builds a client. It does not contact AWS: credentials are resolved at the first request.
func New(ctx context.Context, o Options) (*Client, error) {
	return newClient(ctx, o)
}

// newClient is New with extra SDK options, for tests (e.g. an HTTP client that records requests).
func newClient(ctx context.Context, o Options, extra ...func(*kinesissdk.Options)) (*Client, error) {
	if o.Region == "" {
		return nil, errors.New(`kinesis: "region" is required`)
	}
	if o.Stream == "" {
		return nil, errors.New(`kinesis: "stream" is required`)
	}
	if o.Protocol != "" && o.Protocol != ProtocolCBOR && o.Protocol != ProtocolJSON {
		return nil, fmt.Errorf("kinesis: invalid protocol %q: want %q or %q", o.Protocol, ProtocolCBOR, ProtocolJSON)
	}
	timeout := o.HTTPTimeout
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	mode, err := transport.SelectMode(o.HTTPTransport)
	if err != nil {
		return nil, fmt.Errorf("kinesis: %w", err)
	}
	path, err := selectPutRecordsPath(o.PutRecordsPath)
	if err != nil {
		return nil, fmt.Errorf("kinesis: %w", err)
	}

	// The buildable client lets LoadDefaultConfig apply AWS_CA_BUNDLE and keeps the proxy
	// environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) of the default transport.
	httpClient := awshttp.NewBuildableClient().WithTimeout(timeout)
	if o.dial != nil {
		httpClient = httpClient.WithTransportOptions(func(tr *http.Transport) { tr.DialContext = o.dial })
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(o.Region),
		config.WithHTTPClient(httpClient),
	}
	if o.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.UseFIPSEndpoint != nil {
		state := aws.FIPSEndpointStateDisabled
		if *o.UseFIPSEndpoint {
			state = aws.FIPSEndpointStateEnabled
		}
		loadOpts = append(loadOpts, config.WithUseFIPSEndpoint(state))
	}
	if o.UseDualStackEndpoint != nil {
		state := aws.DualStackEndpointStateDisabled
		if *o.UseDualStackEndpoint {
			state = aws.DualStackEndpointStateEnabled
		}
		loadOpts = append(loadOpts, config.WithUseDualStackEndpoint(state))
	}
	sources := findCredentialSources(o.Profile)
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("kinesis: load aws config: %w", err)
	}

	// Build the one *http.Client shared by STS and Kinesis from the transport the SDK configured
	// (custom CA bundle, proxy, TLS and dial settings), so that Close can release its connections:
	// a BuildableClient clones its transport at every change, and the client it builds wraps the
	// transport in a type that hides CloseIdleConnections. Package transport says which requests
	// it makes itself and which go through that transport.
	c := &Client{transport: string(mode), opts: o, sources: sources}
	c.opts.ExternalID = ""
	c.bodies.CBOR = o.Protocol == ProtocolCBOR
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr := b.GetTransport() // a copy
		if o.MaxConns > tr.MaxIdleConnsPerHost {
			tr.MaxIdleConnsPerHost = o.MaxConns
			tr.MaxIdleConns = max(tr.MaxIdleConns, o.MaxConns)
		}
		st := transport.New(tr, transport.WithMode(mode))
		cfg.HTTPClient = &http.Client{Transport: st, Timeout: b.GetTimeout(), CheckRedirect: noRedirect}
		c.http = st
	}
	if o.httpClient != nil {
		cfg.HTTPClient = o.httpClient
	}
	cfg.HTTPClient = withRequestDeadline(cfg.HTTPClient)

	if o.RoleARN != "" {
		stsClient := sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(o.STSEndpoint)
				so.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
				so.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
			}
		})
		provider := stscreds.NewAssumeRoleProvider(stsClient, o.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
			if o.ExternalID != "" {
				ao.ExternalID = aws.String(o.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}

	if cfg.Credentials != nil {
		cfg.Credentials = credentialsProvider{cfg.Credentials}
		c.creds = cfg.Credentials
	}

	optFns := append([]func(*kinesissdk.Options){func(ko *kinesissdk.Options) {
		if o.Endpoint != "" {
			ko.BaseEndpoint = aws.String(o.Endpoint)
			ko.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
			ko.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
		}
		ko.Retryer = NewRetryer(o.AutoRetry)
		// AWS_MAX_ATTEMPTS or max_attempts in a profile would wrap the retryer and re-enable
		// hidden retries: the batcher owns retries.
		ko.RetryMaxAttempts = 0
		// Clipped: cfg.APIOptions may share its array with the STS client.
		ko.APIOptions = append(ko.APIOptions[:len(ko.APIOptions):len(ko.APIOptions)], c.bodies.Install, wire.InstallResponseDecoder)
	}}, extra...)
	api := kinesissdk.NewFromConfig(cfg, optFns...)
	c.api = api

	if strings.HasPrefix(o.Stream, "arn:") {
		c.streamARN = aws.String(o.Stream)
	} else {
		c.streamName = aws.String(o.Stream)
	}
	if path == PathDirect {
		if c.direct, err = newDirectPut(ctx, api, c.streamARN, c.creds, &c.bodies, o.AutoRetry); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// credentialsProvider wraps every error of the provider it wraps (after its cache) in a
// *CredentialsError, so that a request that failed for want of credentials is classified as such.
type credentialsProvider struct{ aws.CredentialsProvider }

func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &CredentialsError{Err: err}
	}
	return c, err
}

// ProviderSources passes the wrapped provider's sources on (the SDK reports them in its user agent).
func (p credentialsProvider) ProviderSources() []aws.CredentialSource {
	if s, ok := p.CredentialsProvider.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// NewRetryer returns the retry policy of one PutRecords request: with autoRetry, exactly one
// immediate re-send (no delay, no retry quota) when the request failed with a network error, and
// nothing else; without it, no retry at all. Throttling, 5xx and every other API error are returned
// at once: the batcher resends only the entries that failed, with its own backoff.
func NewRetryer(autoRetry bool) aws.Retryer {
	if !autoRetry {
		return aws.NopRetryer{}
	}
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = 2
		so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		so.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(IsNetworkError(err))
		})}
		so.RateLimiter = ratelimit.None
	})
}

// PutRecords sends entries in one request and reports, by index, which ones Kinesis accepted.
// It returns an error, and sends nothing, when entries break a request limit.
func (c *Client) PutRecords(ctx context.Context, entries []Entry) (PutResult, error) {
	if len(entries) == 0 {
		return PutResult{}, nil
	}
	if len(entries) > limits.MaxRecordsPerRequest {
		return PutResult{}, fmt.Errorf("kinesis: put records: %d records: %w", len(entries), ErrRequestTooLarge)
	}
	size := 0
	for i := range entries {
		size += entries[i].Size()
	}
	if size > limits.MaxRequestBytes {
		return PutResult{}, fmt.Errorf("kinesis: put records: %d bytes: %w", size, ErrRequestTooLarge)
	}

	n := len(entries)
	var out *kinesissdk.PutRecordsOutput
	var err error
	if c.direct != nil {
		out, err = c.direct.put(ctx, entries, c.streamName)
	} else {
		out, err = c.putSDK(ctx, entries)
	}
	if err != nil {
		return PutResult{}, fmt.Errorf("kinesis: put records: %w", err)
	}
	if len(out.Records) != n {
		return PutResult{}, fmt.Errorf("kinesis: put records: %d results for %d records: %w",
			len(out.Records), n, ErrMalformedResponse)
	}
	// The result outlives the request, so its lists cannot come from c.bufs; the strings are
	// the decoder's, not copies. Most answers accept every entry: their ErrorCodes are all "".
	res := PutResult{ErrorCodes: noErrorCodes[:n:n]}
	for i := range entries {
		if entries[i].ExplicitHashKey != "" {
			res.ShardIDs = make([]string, n)
			break
		}
	}
	for i := range out.Records {
		r := &out.Records[i]
		if code := r.ErrorCode; code != nil && *code != "" {
			if res.FailedCount == 0 {
				res.ErrorCodes = make([]string, n)
			}
			res.ErrorCodes[i] = *code
			res.FailedCount++
			continue
		}
		if r.ShardId != nil && res.ShardIDs != nil {
			res.ShardIDs[i] = *r.ShardId
		}
	}
	wire.ReleaseResultEntries(out.Records)
	return res, nil
}

// putSDK sends entries with the SDK's PutRecords.
func (c *Client) putSDK(ctx context.Context, entries []Entry) (*kinesissdk.PutRecordsOutput, error) {
	buf, _ := c.bufs.Get().(*requestBuf)
	if buf == nil {
		buf = &requestBuf{}
	}
	defer c.putBuf(buf)
	n := len(entries)
	buf.records = grow(buf.records, n)
	buf.keys = grow(buf.keys, n)
	buf.hashes = grow(buf.hashes, n)
	for i := range entries {
		buf.keys[i] = entries[i].PartitionKey
		data := entries[i].Data
		if data == nil {
			data = []byte{} // the SDK rejects a nil blob; an empty one is Kinesis's to judge
		}
		buf.records[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: &buf.keys[i]}
		if h := entries[i].ExplicitHashKey; h != "" {
			buf.hashes[i] = h
			buf.records[i].ExplicitHashKey = &buf.hashes[i]
		}
	}
	return c.api.PutRecords(ctx, &kinesissdk.PutRecordsInput{Records: buf.records, StreamName: c.streamName, StreamARN: c.streamARN})
}

// noErrorCodes is the ErrorCodes of every result that accepted all of its entries (read-only).
var noErrorCodes = make([]string, limits.MaxRecordsPerRequest)

func (c *Client) putBuf(buf *requestBuf) {
	// Drop references to the caller's data before the buffer waits in the pool.
	clear(buf.records)
	clear(buf.keys)
	clear(buf.hashes)
	c.bufs.Put(buf)
}

// grow returns s with length n, reusing its array when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// PutRecordsPath names how the client makes PutRecords requests: PathDirect or PathSDK (see
// Options.PutRecordsPath).
func (c *Client) PutRecordsPath() string {
	if c.direct != nil {
		return PathDirect
	}
	return PathSDK
}

// HTTPTransport names the code that makes the client's HTTP requests: "sync" or "std" (see
// Options.HTTPTransport).
func (c *Client) HTTPTransport() string { return c.transport }

// Close releases the idle connections of the HTTP client. Requests in flight are not interrupted;
// the client stays usable (a later request opens a new connection).
func (c *Client) Close() {
	if c != nil && c.http != nil {
		c.http.CloseIdleConnections()
	}
}
