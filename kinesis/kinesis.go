// Package kinesis is the AWS client.
// STUB: replaced by the real implementation.
package kinesis

import (
	"context"
	"time"
)

// PutRecords limits, from the Kinesis Data Streams API reference.
const (
	MaxRecordsPerRequest = 500
	MaxRequestBytes      = 10 << 20
	MaxPartitionKeyLen   = 256
)

// Entry is one Kinesis record to put.
type Entry struct {
	Data         []byte
	PartitionKey string
}

// Size is the record's size as Kinesis counts it against every limit.
func (e Entry) Size() int { return len(e.Data) + len(e.PartitionKey) }

// PutResult is Kinesis's answer to one PutRecords request.
type PutResult struct {
	FailedCount int
	// ErrorCodes has one element per entry sent, in order; "" means accepted.
	ErrorCodes []string
}

// Options configure a Client.
type Options struct {
	Region      string
	Stream      string // a name, or an ARN (sent as StreamARN)
	Endpoint    string
	STSEndpoint string
	RoleARN     string
	ExternalID  string
	Profile     string
	AutoRetry   bool
	HTTPTimeout time.Duration
}

// Client sends records to one stream.
type Client struct{}

// New builds a client.
func New(ctx context.Context, o Options) (*Client, error) { return &Client{}, nil }

// PutRecords sends entries in one request.
func (c *Client) PutRecords(ctx context.Context, entries []Entry) (PutResult, error) {
	return PutResult{}, nil
}

// Close releases idle connections.
func (c *Client) Close() {}

// KeyGen generates random partition keys; one per goroutine.
type KeyGen struct{}

// NewKeyGen returns a generator seeded with seed.
func NewKeyGen(seed uint64) *KeyGen { return &KeyGen{} }

// Next returns a new random partition key.
func (g *KeyGen) Next() string { return "0" }
