// Package config parses an [OUTPUT] section's properties.
// STUB: replaced by the real implementation.
package config

import (
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// Getter returns a property's value, or "" when it is not set.
type Getter interface{ Get(key string) string }

// Config is the parsed, validated configuration of one instance.
type Config struct {
	Region             string
	Stream             string
	Endpoint           string
	STSEndpoint        string
	RoleARN            string
	ExternalID         string
	Profile            string
	AutoRetryRequests  bool
	HTTPRequestTimeout time.Duration
	TimeKey            string
	TimeKeyFormat      string
	TimeFormat         *timefmt.Formatter // TimeKeyFormat, compiled
	LogKey             string
	AppendNewline      bool
	MaxRecordSize      int
}

// Parse reads and validates every key.
func Parse(g Getter) (Config, error) { return Config{}, nil }
