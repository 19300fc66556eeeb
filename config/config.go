// Package config parses and validates the properties of one [OUTPUT] section.
//
// It owns every key's name, default and accepted forms (see Keys and Parse),
// and reports all problems of a section in one error. It does not read
// Fluent Bit's properties itself (package main adapts them to Getter), and it
// does not build clients: other packages take the values they need from
// Config.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// Getter returns a property's value, or "" when it is not set. Parse asks for
// keys in lower case; Fluent Bit's own lookup ignores case.
type Getter interface{ Get(key string) string }

// MapGetter is a Getter over a map whose keys match case-insensitively, for
// tests and tools.
type MapGetter map[string]string

// Get returns the value of key, matched case-insensitively, or "".
func (m MapGetter) Get(key string) string {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Keys lists every key Parse reads, in the order String prints them.
var Keys = []string{
	"region",
	"stream",
	"endpoint",
	"sts_endpoint",
	"role_arn",
	"external_id",
	"profile",
	"auto_retry_requests",
	"http_request_timeout",
	"protocol",
	"time_key",
	"time_key_format",
	"log_key",
	"data_keys",
	"replace_dots",
	"append_newline",
	"partition_key",
	"compression",
	"aggregation",
	"simple_aggregation",
	"max_record_size",
	"max_in_flight",
	"summary_interval",
	"startup_check",
	"use_fips_endpoint",
	"use_dualstack_endpoint",
}

// Defaults of the keys that have one.
const (
	DefaultAutoRetryRequests  = true
	DefaultHTTPRequestTimeout = 60 * time.Second
	DefaultProtocol           = ProtocolCBOR
	DefaultTimeKeyFormat      = "%Y-%m-%dT%H:%M:%S"
	DefaultAppendNewline      = true
	DefaultCompression        = compress.None
	DefaultAggregation        = false
	DefaultSimpleAggregation  = false
	DefaultMaxRecordSize      = MaxRecordSizeAuto
	DefaultMaxInFlight        = 32
	DefaultSummaryInterval    = time.Minute
	DefaultStartupCheck       = StartupCheckWarn
)

// MaxRecordSizeAuto is the MaxRecordSize of max_record_size auto: the stream's own maximum record
// size, which the start-up check reads (limits.DefaultMaxRecordSize until it is known).
const MaxRecordSizeAuto = 0

// StartupCheck is what Init does with the start-up check (startup_check): resolve the credentials
// and describe the stream, and log what it found.
type StartupCheck string

// The values of startup_check.
const (
	// StartupCheckWarn logs what is wrong, and starts anyway: records are retried as usual.
	StartupCheckWarn StartupCheck = "warn"
	// StartupCheckFail makes Init fail when the stream cannot be confirmed usable.
	StartupCheckFail StartupCheck = "fail"
	// StartupCheckOff makes no call at Init.
	StartupCheckOff StartupCheck = "off"
)

// Bounds of max_in_flight: each request in flight may hold up to 10 MiB of
// data and a connection.
const (
	MinMaxInFlight = 1
	MaxMaxInFlight = 256
)

// Protocols of PutRecords on the wire (protocol).
const (
	// ProtocolCBOR: application/x-amz-cbor-1.1, each record's data as raw bytes.
	ProtocolCBOR = "cbor"
	// ProtocolJSON: application/x-amz-json-1.1, each record's data in base64, a third larger.
	ProtocolJSON = "json"
)

// Bounds of max_record_size. Kinesis accepts records of up to 1 MiB by
// default, and up to 10 MiB on a stream whose MaxRecordSizeInKiB was raised.
const (
	MinMaxRecordSize = limits.DefaultMaxRecordSize
	MaxMaxRecordSize = limits.MaxMaxRecordSize
)

// Kinesis stream names: 1-128 characters of [a-zA-Z0-9_.-] (StreamName in
// the Kinesis API reference).
const maxStreamNameLen = 128

// AWS external IDs: 2-1224 characters of [\w+=,.@:/-] (ExternalId in the STS
// AssumeRole API reference).
const (
	minExternalIDLen = 2
	maxExternalIDLen = 1224
)

// retiredKeys are keys of the older Go plugin (kinesis) that this one does not
// take. Fluent Bit does not check a Go plugin's keys, so without this a user
// migrating would never learn that a key is ignored.
var retiredKeys = []struct{ name, instead string }{
	{"experimental_concurrency", "set workers on the output instead"},
	{"experimental_concurrency_retries", "set workers on the output instead; failed records are resent within each flush"},
}

// Config is the parsed, validated configuration of one instance.
type Config struct {
	Region             string
	Stream             string // a name, or an ARN (starts with "arn:") sent as StreamARN
	Endpoint           string // normalised "scheme://host[:port]", or "" for AWS's
	STSEndpoint        string // same form as Endpoint
	RoleARN            string
	ExternalID         string // a secret of sorts: never printed
	Profile            string
	AutoRetryRequests  bool
	HTTPRequestTimeout time.Duration
	Protocol           string // ProtocolCBOR or ProtocolJSON
	TimeKey            string
	TimeKeyFormat      string
	TimeFormat         *timefmt.Formatter // TimeKeyFormat, compiled
	LogKey             string
	// DataKeys are the top-level keys to keep (data_keys), trimmed, without
	// empty or repeated names; nil keeps all. Names are matched as they are in
	// the record, before replace_dots. Not allowed with log_key.
	DataKeys []string
	// ReplaceDots replaces each '.' in every map key (replace_dots), trimmed.
	// "" is off: Fluent Bit gives an unset and an empty property alike, so dots
	// cannot be configured to be removed outright.
	ReplaceDots   string
	AppendNewline bool
	// PartitionKey is the record field whose value is the partition key
	// (partition_key), compiled; the zero KeyPath means random keys. See
	// record.KeyPath.Append for the values that give a key.
	PartitionKey record.KeyPath
	Compression  compress.Kind // of each Kinesis record's data; compress.None is off
	// Aggregation packs records as KPL aggregated records (aggregation);
	// SimpleAggregation joins them into one Kinesis record, as the C plugin's
	// simple_aggregation. At most one of them is true.
	Aggregation       bool
	SimpleAggregation bool
	// MaxRecordSize is the stream's maximum record size in bytes, or MaxRecordSizeAuto (0) to
	// take the stream's own.
	MaxRecordSize int
	// MaxInFlight bounds the PutRecords requests the instance has in flight
	// together, all its workers included (max_in_flight).
	MaxInFlight int
	// SummaryInterval is how often an instance logs a summary line while records flow; 0 is never.
	SummaryInterval time.Duration
	StartupCheck    StartupCheck
	// UseFIPSEndpoint and UseDualStackEndpoint choose among the AWS endpoints of Kinesis and STS;
	// nil leaves the choice to the SDK's settings (AWS_USE_FIPS_ENDPOINT,
	// AWS_USE_DUALSTACK_ENDPOINT, the profile). A custom endpoint is used as given.
	UseFIPSEndpoint      *bool
	UseDualStackEndpoint *bool

	// Warnings are problems that do not stop the plugin, for the Init log.
	Warnings []string
}

// Parse reads and validates every key. Unset keys take their defaults. It
// returns every problem at once, joined with errors.Join, each naming the
// key, the bad value and what is allowed.
func Parse(g Getter) (Config, error) {
	p := parser{g: g}
	c := Config{
		Region:               p.region("region"),
		Stream:               p.stream("stream"),
		Endpoint:             p.endpoint("endpoint"),
		STSEndpoint:          p.endpoint("sts_endpoint"),
		RoleARN:              p.roleARN("role_arn"),
		ExternalID:           p.externalID("external_id"),
		Profile:              p.get("profile"),
		AutoRetryRequests:    p.boolean("auto_retry_requests", DefaultAutoRetryRequests),
		HTTPRequestTimeout:   p.duration("http_request_timeout", DefaultHTTPRequestTimeout),
		Protocol:             p.protocol("protocol"),
		TimeKey:              p.get("time_key"),
		LogKey:               p.get("log_key"),
		DataKeys:             p.names("data_keys"),
		ReplaceDots:          p.get("replace_dots"),
		AppendNewline:        p.boolean("append_newline", DefaultAppendNewline),
		PartitionKey:         p.keyPath("partition_key"),
		Compression:          p.compression("compression"),
		Aggregation:          p.boolean("aggregation", DefaultAggregation),
		SimpleAggregation:    p.boolean("simple_aggregation", DefaultSimpleAggregation),
		MaxRecordSize:        p.recordSize("max_record_size"),
		MaxInFlight:          p.count("max_in_flight", DefaultMaxInFlight, MinMaxInFlight, MaxMaxInFlight),
		SummaryInterval:      p.durationOrOff("summary_interval", DefaultSummaryInterval),
		StartupCheck:         p.startupCheck("startup_check"),
		UseFIPSEndpoint:      p.optionalBoolean("use_fips_endpoint"),
		UseDualStackEndpoint: p.optionalBoolean("use_dualstack_endpoint"),
	}
	c.TimeKeyFormat, c.TimeFormat = p.timeFormat("time_key_format")
	for _, k := range retiredKeys {
		if v := p.get(k.name); v != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("config: %q has no effect in this plugin (%s)", k.name, k.instead))
		}
	}
	if c.ExternalID != "" && c.RoleARN == "" {
		p.fail(errors.New(`config: "external_id" needs "role_arn": it is only used to assume that role`))
	}
	if c.TimeKey != "" && c.LogKey != "" {
		p.fail(errors.New(`config: "time_key" has no effect with "log_key", which sends only that key's value: remove one of them`))
	}
	if c.DataKeys != nil && c.LogKey != "" {
		p.fail(errors.New(`config: "data_keys" has no effect with "log_key", which sends only that key's value: remove one of them`))
	}
	if c.Aggregation && c.SimpleAggregation {
		p.fail(errors.New(`config: "aggregation" and "simple_aggregation" are two ways of packing records into one Kinesis record: ` +
			`pick one (aggregation for consumers that deaggregate KPL records, such as the KCL; simple_aggregation for newline-joined records)`))
	}
	if c.SimpleAggregation && !c.PartitionKey.IsZero() {
		p.fail(errors.New(`config: "partition_key" has no effect with "simple_aggregation", which joins records of any key into one Kinesis record with a random key: ` +
			`remove one of them (use "aggregation" to keep each record's key)`))
	}
	for _, k := range []struct {
		name string
		on   *bool
	}{{"use_fips_endpoint", c.UseFIPSEndpoint}, {"use_dualstack_endpoint", c.UseDualStackEndpoint}} {
		if k.on != nil && *k.on && c.Endpoint != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf(`config: %q does not change "endpoint", which is used as given`, k.name))
		}
	}
	if arnRegion, ok := streamARNRegion(c.Stream); ok && isHostLabel(c.Region) && arnRegion != fipsFree(c.Region) {
		p.fail(fmt.Errorf(`config: "stream" is an ARN in region %q but "region" is %q: Kinesis takes a stream ARN only in its own region, set "region" to %q`,
			arnRegion, c.Region, arnRegion))
	}
	if err := errors.Join(p.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// String gives the effective configuration, for the log line at Init. Keys
// that are off are left out (compression none, aggregation and
// simple_aggregation false among them); the external ID is never shown.
func (c Config) String() string {
	var b strings.Builder
	add := func(key, value string) {
		if value == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key)
		b.WriteByte('=')
		if strings.ContainsAny(value, " \t\n\"=\\") || !strconv.CanBackquote(value) {
			value = strconv.Quote(value)
		}
		b.WriteString(value)
	}
	add("region", c.Region)
	add("stream", c.Stream)
	add("endpoint", c.Endpoint)
	add("sts_endpoint", c.STSEndpoint)
	add("role_arn", c.RoleARN)
	if c.ExternalID != "" {
		add("external_id", "(set)")
	}
	add("profile", c.Profile)
	add("auto_retry_requests", strconv.FormatBool(c.AutoRetryRequests))
	add("http_request_timeout", c.HTTPRequestTimeout.String())
	add("protocol", c.Protocol)
	add("time_key", c.TimeKey)
	if c.TimeKey != "" {
		add("time_key_format", c.TimeKeyFormat)
	}
	add("log_key", c.LogKey)
	add("data_keys", strings.Join(c.DataKeys, ","))
	add("replace_dots", c.ReplaceDots)
	add("append_newline", strconv.FormatBool(c.AppendNewline))
	add("partition_key", c.PartitionKey.String())
	if c.Compression != compress.None {
		add("compression", c.Compression.String())
	}
	if c.Aggregation {
		add("aggregation", "true")
	}
	if c.SimpleAggregation {
		add("simple_aggregation", "true")
	}
	if c.MaxRecordSize == MaxRecordSizeAuto {
		add("max_record_size", "auto")
	} else {
		add("max_record_size", strconv.Itoa(c.MaxRecordSize))
	}
	add("max_in_flight", strconv.Itoa(c.MaxInFlight))
	if c.StartupCheck != DefaultStartupCheck {
		add("startup_check", string(c.StartupCheck))
	}
	if c.UseFIPSEndpoint != nil {
		add("use_fips_endpoint", strconv.FormatBool(*c.UseFIPSEndpoint))
	}
	if c.UseDualStackEndpoint != nil {
		add("use_dualstack_endpoint", strconv.FormatBool(*c.UseDualStackEndpoint))
	}
	if c.SummaryInterval != DefaultSummaryInterval {
		summary := "off"
		if c.SummaryInterval > 0 {
			summary = c.SummaryInterval.String()
		}
		add("summary_interval", summary)
	}
	return b.String()
}

// GoString is String, so that %#v does not print the external ID either.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// parser reads keys from a Getter and collects what is wrong with them.
type parser struct {
	g    Getter
	errs []error
}

func (p *parser) fail(err error) { p.errs = append(p.errs, err) }

// invalid records a bad value of key; want says what is allowed.
func (p *parser) invalid(key, value, want string) {
	p.fail(fmt.Errorf("config: invalid %q value %q: want %s", key, value, want))
}

// get returns key's value with surrounding white space removed.
func (p *parser) get(key string) string { return strings.TrimSpace(p.g.Get(key)) }

// names reads a comma-separated list of key names: spaces around names are
// trimmed, empty names ignored, and a repeated name kept once. An unset or
// blank value is nil; a value with commas but no name (" , ") is an error.
func (p *parser) names(key string) []string {
	v := p.get(key)
	if v == "" {
		return nil
	}
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if names == nil {
		p.invalid(key, v, "a comma-separated list of top-level key names, such as log,kubernetes")
	}
	return names
}

// keyPath compiles a record field path such as kubernetes->pod_name. An unset
// or blank value is the zero KeyPath: random partition keys.
func (p *parser) keyPath(key string) record.KeyPath {
	v := p.get(key)
	if v == "" {
		return record.KeyPath{}
	}
	path, err := record.ParseKeyPath(v)
	if err != nil {
		p.fail(fmt.Errorf("config: invalid %q value %q: want a top-level key name, or key names joined by -> for nested maps, such as kubernetes->pod_name: %w", key, v, err))
	}
	return path
}

// compression accepts none, gzip, zlib or zstd, in any case.
func (p *parser) compression(key string) compress.Kind {
	v := p.get(key)
	k, err := compress.Parse(v)
	if err != nil {
		p.invalid(key, v, "none, gzip, zlib or zstd")
		return DefaultCompression
	}
	return k
}

// protocol accepts cbor or json, in any case; unset is DefaultProtocol.
func (p *parser) protocol(key string) string {
	switch v := p.get(key); strings.ToLower(v) {
	case "":
		return DefaultProtocol
	case ProtocolCBOR:
		return ProtocolCBOR
	case ProtocolJSON:
		return ProtocolJSON
	default:
		p.invalid(key, v, "cbor or json")
		return DefaultProtocol
	}
}

func (p *parser) required(key string) string {
	v := p.get(key)
	if v == "" {
		p.fail(fmt.Errorf("config: %q is required", key))
	}
	return v
}

// region accepts what AWS SDK endpoint resolution accepts as a region: a
// host label.
func (p *parser) region(key string) string {
	v := p.required(key)
	if v != "" && !isHostLabel(v) {
		p.invalid(key, v, "an AWS region such as us-east-1 (letters, digits and hyphens)")
	}
	return v
}

func (p *parser) stream(key string) string {
	v := p.required(key)
	switch {
	case v == "":
	case strings.HasPrefix(v, "arn:"):
		if !isStreamARN(v) {
			p.invalid(key, v, "a stream name or a stream ARN such as arn:aws:kinesis:us-east-1:123456789012:stream/name")
		}
	case !isStreamName(v):
		p.invalid(key, v, "a stream name of 1 to 128 letters, digits, '_', '.' and '-', or a stream ARN")
	}
	return v
}

func (p *parser) roleARN(key string) string {
	v := p.get(key)
	if v != "" && !strings.HasPrefix(v, "arn:") {
		p.invalid(key, v, "an IAM role ARN such as arn:aws:iam::123456789012:role/name")
	}
	return v
}

// externalID validates the external ID without ever echoing it.
func (p *parser) externalID(key string) string {
	v := p.get(key)
	if v != "" && !isExternalID(v) {
		p.fail(fmt.Errorf("config: invalid %q value (not shown, %d bytes): want 2 to 1224 letters, digits and any of _+=,.@:/-", key, len(v)))
	}
	return v
}

// boolean accepts the forms Fluent Bit accepts: true/false, on/off, yes/no.
func (p *parser) boolean(key string, def bool) bool {
	v := p.get(key)
	switch strings.ToLower(v) {
	case "":
		return def
	case "true", "on", "yes":
		return true
	case "false", "off", "no":
		return false
	}
	p.invalid(key, v, "true, false, on, off, yes or no")
	return def
}

// optionalBoolean is boolean without a default: nil when the key is unset.
func (p *parser) optionalBoolean(key string) *bool {
	if p.get(key) == "" {
		return nil
	}
	v := p.boolean(key, false)
	return &v
}

// startupCheck accepts warn, fail or off, in any case.
func (p *parser) startupCheck(key string) StartupCheck {
	v := p.get(key)
	switch c := StartupCheck(strings.ToLower(v)); c {
	case "":
		return DefaultStartupCheck
	case StartupCheckWarn, StartupCheckFail, StartupCheckOff:
		return c
	}
	p.invalid(key, v, "warn, fail or off")
	return DefaultStartupCheck
}

// recordSize is size, or MaxRecordSizeAuto for auto (in any case) or an unset key.
func (p *parser) recordSize(key string) int {
	if strings.EqualFold(p.get(key), "auto") {
		return MaxRecordSizeAuto
	}
	return p.size(key, DefaultMaxRecordSize)
}

// duration accepts a Go duration (30s, 1m30s, 500ms) or, as Fluent Bit, a
// whole number of seconds.
func (p *parser) duration(key string, def time.Duration) time.Duration {
	v := p.get(key)
	if v == "" {
		return def
	}
	d, ok := parseDuration(v)
	if !ok {
		p.invalid(key, v, "a positive duration such as 60s, 1m30s or 500ms, or a whole number of seconds")
		return def
	}
	return d
}

// durationOrOff is duration, or 0 for "off" (or "0").
func (p *parser) durationOrOff(key string, def time.Duration) time.Duration {
	switch v := strings.ToLower(p.get(key)); v {
	case "off", "0":
		return 0
	case "":
		return def
	default:
		d, ok := parseDuration(v)
		if !ok {
			p.invalid(key, p.get(key), "a positive duration such as 1m or 30s, a whole number of seconds, or off")
			return def
		}
		return d
	}
}

func parseDuration(v string) (time.Duration, bool) {
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
}

// count accepts a whole number from lo to hi.
func (p *parser) count(key string, def, lo, hi int) int {
	v := p.get(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi || !isDigits(v) {
		p.invalid(key, v, fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

// size accepts a number of bytes, optionally with a K or M suffix (powers of
// 1024) followed by an optional B or iB, case-insensitive: 1M, 5MB, 10m,
// 1024KiB, 2097152.
func (p *parser) size(key string, def int) int {
	v := p.get(key)
	if v == "" {
		return def
	}
	n, ok := parseSize(v)
	if !ok || n < MinMaxRecordSize || n > MaxMaxRecordSize {
		p.invalid(key, v, "auto, or a size from 1M to 10M (1048576 to 10485760 bytes), such as 1M, 5MB or 2097152")
		return def
	}
	return n
}

// parseSize returns the bytes v means, or false when v is malformed. Values
// above MaxMaxRecordSize may be clamped: they are out of range anyway.
func parseSize(v string) (int, bool) {
	digits := len(v) - len(strings.TrimLeft(v, "0123456789"))
	if digits == 0 {
		return 0, false
	}
	unit := 1
	switch strings.ToLower(v[digits:]) {
	case "":
	case "k", "kb", "kib":
		unit = 1 << 10
	case "m", "mb", "mib":
		unit = 1 << 20
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(v[:digits], 10, 64)
	if err != nil || n > MaxMaxRecordSize/int64(unit) {
		return MaxMaxRecordSize + 1, true // too many digits to be in range
	}
	return int(n) * unit, true
}

// endpoint accepts http(s)://host[:port] or a bare host[:port] (HTTPS) and
// returns the normalised URL.
func (p *parser) endpoint(key string) string {
	v := p.get(key)
	if v == "" {
		return ""
	}
	u, ok := parseEndpoint(v)
	if !ok {
		p.invalid(key, redactUserinfo(v), "a URL such as https://host, https://host:port or http://127.0.0.1:4567, or a bare host[:port] (HTTPS)")
		return ""
	}
	return u
}

func parseEndpoint(v string) (string, bool) {
	raw := v
	if !strings.Contains(v, "://") {
		raw = "https://" + v
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.Contains(raw, "#") || (u.Path != "" && u.Path != "/") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := u.Hostname(), u.Port()
	if !isHost(host) {
		return "", false
	}
	if strings.HasSuffix(u.Host, ":") { // "host:" with an empty port
		return "", false
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || !isDigits(port) {
			return "", false
		}
	}
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// redactUserinfo hides a password given in a URL before it goes in an error.
func redactUserinfo(v string) string {
	raw := v
	if !strings.Contains(v, "://") {
		raw = "https://" + v
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return v
}

func (p *parser) timeFormat(key string) (string, *timefmt.Formatter) {
	v := p.g.Get(key) // not trimmed: spaces may be part of the pattern
	if strings.TrimSpace(v) == "" {
		v = DefaultTimeKeyFormat
	}
	f, err := timefmt.Compile(v)
	if err != nil {
		p.fail(fmt.Errorf("config: invalid %q value %q: want a strftime pattern (%%3N milliseconds, %%9N or %%L nanoseconds, %%%% for %%): %w", key, v, err))
		f, _ = timefmt.Compile(DefaultTimeKeyFormat)
		return DefaultTimeKeyFormat, f
	}
	return v, f
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isStreamName(s string) bool {
	if len(s) == 0 || len(s) > maxStreamNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// isStreamARN checks the StreamARN pattern of the Kinesis API,
// arn:aws.*:kinesis:.*:\d{12}:stream/\S+, with a valid stream name and a
// region: the SDK resolves the endpoint of an ARN without one to an error
// ("Invalid ARN: Invalid region").
func isStreamARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || len(s) > 2048 {
		return false
	}
	partition, service, region, account, resource := parts[1], parts[2], parts[3], parts[4], parts[5]
	name, ok := strings.CutPrefix(resource, "stream/")
	return strings.HasPrefix(partition, "aws") && service == "kinesis" &&
		isHostLabel(region) && len(account) == 12 && isDigits(account) &&
		ok && isStreamName(name)
}

// streamARNRegion returns the region of a valid stream ARN.
func streamARNRegion(s string) (string, bool) {
	if !strings.HasPrefix(s, "arn:") || !isStreamARN(s) {
		return "", false
	}
	return strings.SplitN(s, ":", 6)[3], true
}

// fipsFree is region without the FIPS markers the AWS SDK removes from a
// region name before it resolves an endpoint (fips-us-east-1, us-east-1-fips,
// us-gov-fips-west-1), so that it compares with the region of an ARN.
func fipsFree(region string) string {
	region = strings.ReplaceAll(region, "-fips-", "-")
	region = strings.ReplaceAll(region, "fips-", "")
	return strings.ReplaceAll(region, "-fips", "")
}

func isExternalID(s string) bool {
	if len(s) < minExternalIDLen || len(s) > maxExternalIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("_+=,.@:/-", c) < 0 {
			return false
		}
	}
	return true
}

// isHost accepts an IP address or a DNS name: labels of letters, digits,
// '-' and '_' (seen in some internal names), the last one possibly followed
// by a dot. A name of numbers only must be an IPv4 address.
func isHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if ip := net.ParseIP(s); ip != nil {
		return true
	}
	if strings.Trim(s, "0123456789.") == "" {
		return false // looks like an IPv4 address but is not one
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !isLabel(label, "-_") {
			return false
		}
	}
	return true
}

// isHostLabel reports whether s is 1-63 letters, digits and hyphens, as AWS
// SDK endpoint resolution wants a region to be.
func isHostLabel(s string) bool { return isLabel(s, "-") }

// isLabel reports whether s is 1-63 letters, digits and bytes of extra.
func isLabel(s, extra string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte(extra, c) < 0 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
