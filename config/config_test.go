package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/compress"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/record"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// base is the smallest valid configuration.
func base() MapGetter { return MapGetter{"region": "us-east-1", "stream": "logs"} }

// with returns base plus kv (key, value, key, value...).
func with(kv ...string) MapGetter {
	m := base()
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(base())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Region:             "us-east-1",
		Stream:             "logs",
		AutoRetryRequests:  true,
		HTTPRequestTimeout: 60 * time.Second,
		Protocol:           "cbor",
		TimeKeyFormat:      "%Y-%m-%dT%H:%M:%S",
		AppendNewline:      true,
		MaxRecordSize:      MaxRecordSizeAuto,
		MaxInFlight:        DefaultMaxInFlight,
		SummaryInterval:    time.Minute,
		StartupCheck:       StartupCheckWarn,
	}
	if c.TimeFormat == nil {
		t.Fatal("TimeFormat is nil")
	}
	if got := string(c.TimeFormat.Append(nil, 1700000000, 0)); got != "2023-11-14T22:13:20" {
		t.Errorf("default TimeFormat gives %q, want 2023-11-14T22:13:20", got)
	}
	c.TimeFormat = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse(defaults) =\n%#v\nwant\n%#v", c, want)
	}
}

// TestParseValid checks every key's accepted forms: each case changes base
// and says which field must hold what.
func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    MapGetter
		check func(Config) any // the field under test
		want  any
	}{
		{"region", with("region", "eu-west-3"), func(c Config) any { return c.Region }, "eu-west-3"},
		{"region trimmed", with("region", "  ap-south-1 "), func(c Config) any { return c.Region }, "ap-south-1"},
		{"stream name charset", with("stream", "My_stream.v2-prod"), func(c Config) any { return c.Stream }, "My_stream.v2-prod"},
		{"stream name of 128", with("stream", strings.Repeat("s", 128)), func(c Config) any { return c.Stream }, strings.Repeat("s", 128)},
		{"stream ARN", with("stream", "arn:aws:kinesis:us-east-1:123456789012:stream/logs"),
			func(c Config) any { return c.Stream }, "arn:aws:kinesis:us-east-1:123456789012:stream/logs"},
		{"stream ARN in China", with("region", "cn-north-1", "stream", "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b"),
			func(c Config) any { return c.Stream }, "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b"},
		{"stream ARN with a FIPS region", with("region", "fips-us-gov-west-1", "stream", "arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/s"),
			func(c Config) any { return c.Stream }, "arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/s"},
		{"stream ARN with a -fips region", with("region", "us-east-1-fips", "stream", "arn:aws:kinesis:us-east-1:123456789012:stream/s"),
			func(c Config) any { return c.Region }, "us-east-1-fips"},
		{"endpoint https", with("endpoint", "https://kinesis.example.com"), func(c Config) any { return c.Endpoint }, "https://kinesis.example.com"},
		{"endpoint http with port", with("endpoint", "http://127.0.0.1:4567"), func(c Config) any { return c.Endpoint }, "http://127.0.0.1:4567"},
		{"endpoint trailing slash", with("endpoint", "https://kinesis.example.com/"), func(c Config) any { return c.Endpoint }, "https://kinesis.example.com"},
		{"endpoint upper case", with("endpoint", "HTTPS://Kinesis.Example.COM:8443"), func(c Config) any { return c.Endpoint }, "https://kinesis.example.com:8443"},
		{"endpoint bare host", with("endpoint", "kinesis.example.com"), func(c Config) any { return c.Endpoint }, "https://kinesis.example.com"},
		{"endpoint bare host and port", with("endpoint", "localhost:4567"), func(c Config) any { return c.Endpoint }, "https://localhost:4567"},
		{"endpoint bare IPv4", with("endpoint", "10.0.0.1"), func(c Config) any { return c.Endpoint }, "https://10.0.0.1"},
		{"endpoint IPv6", with("endpoint", "http://[::1]:4567"), func(c Config) any { return c.Endpoint }, "http://[::1]:4567"},
		{"endpoint bare IPv6", with("endpoint", "[2001:DB8::1]"), func(c Config) any { return c.Endpoint }, "https://[2001:db8::1]"},
		{"endpoint underscore", with("endpoint", "http://kinesis_mock:4567"), func(c Config) any { return c.Endpoint }, "http://kinesis_mock:4567"},
		{"endpoint fully qualified", with("endpoint", "kinesis.example.com."), func(c Config) any { return c.Endpoint }, "https://kinesis.example.com."},
		{"sts_endpoint", with("sts_endpoint", "sts.us-east-1.amazonaws.com"), func(c Config) any { return c.STSEndpoint }, "https://sts.us-east-1.amazonaws.com"},
		{"sts_endpoint http", with("sts_endpoint", "http://127.0.0.1:9000"), func(c Config) any { return c.STSEndpoint }, "http://127.0.0.1:9000"},
		{"role_arn", with("role_arn", "arn:aws:iam::123456789012:role/writer"), func(c Config) any { return c.RoleARN }, "arn:aws:iam::123456789012:role/writer"},
		{"external_id", with("role_arn", "arn:aws:iam::123456789012:role/w", "external_id", "a1+=,.@:/-_"),
			func(c Config) any { return c.ExternalID }, "a1+=,.@:/-_"},
		{"profile", with("profile", "prod"), func(c Config) any { return c.Profile }, "prod"},
		{"auto_retry_requests off", with("auto_retry_requests", "off"), func(c Config) any { return c.AutoRetryRequests }, false},
		{"auto_retry_requests false", with("auto_retry_requests", "False"), func(c Config) any { return c.AutoRetryRequests }, false},
		{"auto_retry_requests no", with("auto_retry_requests", "NO"), func(c Config) any { return c.AutoRetryRequests }, false},
		{"auto_retry_requests on", with("auto_retry_requests", "On"), func(c Config) any { return c.AutoRetryRequests }, true},
		{"auto_retry_requests yes", with("auto_retry_requests", "yes"), func(c Config) any { return c.AutoRetryRequests }, true},
		{"auto_retry_requests true", with("auto_retry_requests", "TRUE"), func(c Config) any { return c.AutoRetryRequests }, true},
		{"max_in_flight", with("max_in_flight", "64"), func(c Config) any { return c.MaxInFlight }, 64},
		{"max_in_flight one", with("max_in_flight", "1"), func(c Config) any { return c.MaxInFlight }, 1},
		{"max_in_flight most", with("max_in_flight", " 256 "), func(c Config) any { return c.MaxInFlight }, 256},
		{"http_request_timeout seconds", with("http_request_timeout", "30s"), func(c Config) any { return c.HTTPRequestTimeout }, 30 * time.Second},
		{"http_request_timeout compound", with("http_request_timeout", "1m30s"), func(c Config) any { return c.HTTPRequestTimeout }, 90 * time.Second},
		{"http_request_timeout ms", with("http_request_timeout", "500ms"), func(c Config) any { return c.HTTPRequestTimeout }, 500 * time.Millisecond},
		{"http_request_timeout plain number", with("http_request_timeout", "60"), func(c Config) any { return c.HTTPRequestTimeout }, 60 * time.Second},
		{"http_request_timeout 1", with("http_request_timeout", "1"), func(c Config) any { return c.HTTPRequestTimeout }, time.Second},
		{"summary_interval 10s", with("summary_interval", "10s"), func(c Config) any { return c.SummaryInterval }, 10 * time.Second},
		{"summary_interval seconds", with("summary_interval", "300"), func(c Config) any { return c.SummaryInterval }, 5 * time.Minute},
		{"summary_interval off", with("summary_interval", "Off"), func(c Config) any { return c.SummaryInterval }, time.Duration(0)},
		{"summary_interval 0", with("summary_interval", "0"), func(c Config) any { return c.SummaryInterval }, time.Duration(0)},
		{"protocol default", base(), func(c Config) any { return c.Protocol }, DefaultProtocol},
		{"protocol cbor", with("protocol", "cbor"), func(c Config) any { return c.Protocol }, ProtocolCBOR},
		{"protocol json, upper case, spaces", with("protocol", " JSON "), func(c Config) any { return c.Protocol }, ProtocolJSON},
		{"protocol blank is the default", with("protocol", " "), func(c Config) any { return c.Protocol }, DefaultProtocol},
		{"time_key", with("time_key", "@timestamp"), func(c Config) any { return c.TimeKey }, "@timestamp"},
		{"time_key_format", with("time_key_format", "%s.%3N"), func(c Config) any { return c.TimeKeyFormat }, "%s.%3N"},
		{"time_key_format compiled", with("time_key_format", "%Y %L"),
			func(c Config) any { return string(c.TimeFormat.Append(nil, 0, 7)) }, "1970 000000007"},
		{"log_key", with("log_key", "log"), func(c Config) any { return c.LogKey }, "log"},
		{"data_keys one", with("data_keys", "log"), func(c Config) any { return fmt.Sprintf("%q", c.DataKeys) }, `["log"]`},
		{"data_keys trimmed, empty names ignored", with("data_keys", " log , kubernetes,,\tstream ,"),
			func(c Config) any { return fmt.Sprintf("%q", c.DataKeys) }, `["log" "kubernetes" "stream"]`},
		{"data_keys repeated name kept once", with("data_keys", "a,b,a"), func(c Config) any { return fmt.Sprintf("%q", c.DataKeys) }, `["a" "b"]`},
		{"data_keys inner spaces kept", with("data_keys", "a b,@timestamp,k.8s"),
			func(c Config) any { return fmt.Sprintf("%q", c.DataKeys) }, `["a b" "@timestamp" "k.8s"]`},
		{"data_keys blank is all", with("data_keys", "  "), func(c Config) any { return c.DataKeys == nil }, true},
		{"data_keys with time_key", with("data_keys", "log", "time_key", "ts"),
			func(c Config) any { return fmt.Sprintf("%q %s", c.DataKeys, c.TimeKey) }, `["log"] ts`},
		{"replace_dots", with("replace_dots", "_"), func(c Config) any { return c.ReplaceDots }, "_"},
		{"replace_dots longer", with("replace_dots", " __dot__ "), func(c Config) any { return c.ReplaceDots }, "__dot__"},
		{"replace_dots blank is off", with("replace_dots", " "), func(c Config) any { return c.ReplaceDots }, ""},
		{"replace_dots with log_key", with("replace_dots", "-", "log_key", "log"),
			func(c Config) any { return c.ReplaceDots + c.LogKey }, "-log"},
		{"append_newline off", with("append_newline", "off"), func(c Config) any { return c.AppendNewline }, false},
		{"append_newline yes", with("append_newline", "Yes"), func(c Config) any { return c.AppendNewline }, true},
		{"partition_key top level", with("partition_key", "pod"), func(c Config) any { return c.PartitionKey.String() }, "pod"},
		{"partition_key nested", with("partition_key", "kubernetes->pod_name"),
			func(c Config) any { return c.PartitionKey.String() }, "kubernetes->pod_name"},
		{"partition_key spaces trimmed", with("partition_key", "  kubernetes ->  labels-> app name  "),
			func(c Config) any { return c.PartitionKey.String() }, "kubernetes->labels->app name"},
		{"partition_key compiled", with("partition_key", "a -> b"), func(c Config) any {
			key, ok := c.PartitionKey.Append(nil, []byte{0x81, 0xa1, 'a', 0x81, 0xa1, 'b', 0xa2, 'p', '1'}) // {"a":{"b":"p1"}}
			return fmt.Sprintf("%s %v", key, ok)
		}, "p1 true"},
		{"partition_key blank is random", with("partition_key", "  "), func(c Config) any { return c.PartitionKey.IsZero() }, true},
		{"compression none", with("compression", "none"), func(c Config) any { return c.Compression }, compress.None},
		{"compression gzip", with("compression", "gzip"), func(c Config) any { return c.Compression }, compress.Gzip},
		{"compression zlib", with("compression", " zlib "), func(c Config) any { return c.Compression }, compress.Zlib},
		{"compression zstd upper case", with("compression", "ZSTD"), func(c Config) any { return c.Compression }, compress.Zstd},
		{"compression blank is none", with("compression", " "), func(c Config) any { return c.Compression }, compress.None},
		{"aggregation on", with("aggregation", "on"), func(c Config) any { return fmt.Sprint(c.Aggregation, c.SimpleAggregation) }, "true false"},
		{"aggregation false", with("aggregation", "false"), func(c Config) any { return c.Aggregation }, false},
		{"simple_aggregation true", with("simple_aggregation", "true"),
			func(c Config) any { return fmt.Sprint(c.Aggregation, c.SimpleAggregation) }, "false true"},
		{"simple_aggregation no", with("simple_aggregation", "no"), func(c Config) any { return c.SimpleAggregation }, false},
		{"aggregation on, simple_aggregation off", with("aggregation", "yes", "simple_aggregation", "off"),
			func(c Config) any { return fmt.Sprint(c.Aggregation, c.SimpleAggregation) }, "true false"},
		{"aggregation with compression and partition_key", with("aggregation", "true", "compression", "zstd", "partition_key", "a"),
			func(c Config) any { return fmt.Sprint(c.Aggregation, c.Compression, c.PartitionKey) }, "true zstd a"},
		{"max_record_size 1M", with("max_record_size", "1M"), func(c Config) any { return c.MaxRecordSize }, 1 << 20},
		{"max_record_size 5MB", with("max_record_size", "5MB"), func(c Config) any { return c.MaxRecordSize }, 5 << 20},
		{"max_record_size 10m", with("max_record_size", "10m"), func(c Config) any { return c.MaxRecordSize }, 10 << 20},
		{"max_record_size 2MiB", with("max_record_size", "2MiB"), func(c Config) any { return c.MaxRecordSize }, 2 << 20},
		{"max_record_size 1024K", with("max_record_size", "1024K"), func(c Config) any { return c.MaxRecordSize }, 1 << 20},
		{"max_record_size 4096kb", with("max_record_size", "4096kb"), func(c Config) any { return c.MaxRecordSize }, 4 << 20},
		{"max_record_size 10240KiB", with("max_record_size", "10240KiB"), func(c Config) any { return c.MaxRecordSize }, 10 << 20},
		{"max_record_size bytes", with("max_record_size", "2097152"), func(c Config) any { return c.MaxRecordSize }, 2097152},
		{"max_record_size lowest", with("max_record_size", "1048576"), func(c Config) any { return c.MaxRecordSize }, 1048576},
		{"max_record_size highest", with("max_record_size", "10485760"), func(c Config) any { return c.MaxRecordSize }, 10485760},
		{"max_record_size auto", with("max_record_size", " Auto "), func(c Config) any { return c.MaxRecordSize }, MaxRecordSizeAuto},
		{"max_record_size unset is auto", with("max_record_size", ""), func(c Config) any { return c.MaxRecordSize }, MaxRecordSizeAuto},
		{"startup_check fail", with("startup_check", "FAIL"), func(c Config) any { return c.StartupCheck }, StartupCheckFail},
		{"startup_check off", with("startup_check", " off"), func(c Config) any { return c.StartupCheck }, StartupCheckOff},
		{"startup_check warn", with("startup_check", "warn"), func(c Config) any { return c.StartupCheck }, StartupCheckWarn},
		{"use_fips_endpoint unset", base(), func(c Config) any { return c.UseFIPSEndpoint == nil && c.UseDualStackEndpoint == nil }, true},
		{"use_fips_endpoint on", with("use_fips_endpoint", "on"), func(c Config) any { return *c.UseFIPSEndpoint }, true},
		{"use_fips_endpoint false", with("use_fips_endpoint", "false"), func(c Config) any { return *c.UseFIPSEndpoint }, false},
		{"use_dualstack_endpoint yes", with("use_dualstack_endpoint", "Yes"), func(c Config) any { return *c.UseDualStackEndpoint }, true},
		{"use_dualstack_endpoint off", with("use_dualstack_endpoint", "off"), func(c Config) any { return *c.UseDualStackEndpoint }, false},
		{"use_fips_endpoint with endpoint warns", with("use_fips_endpoint", "true", "use_dualstack_endpoint", "true", "endpoint", "http://127.0.0.1:4567"),
			func(c Config) any { return strings.Join(c.Warnings, "\n") },
			"config: \"use_fips_endpoint\" does not change \"endpoint\", which is used as given\n" +
				"config: \"use_dualstack_endpoint\" does not change \"endpoint\", which is used as given"},
		{"use_fips_endpoint false with endpoint is quiet", with("use_fips_endpoint", "false", "endpoint", "http://127.0.0.1:4567"),
			func(c Config) any { return len(c.Warnings) }, 0},
		{"keys are case-insensitive", MapGetter{"Region": "us-west-2", "STREAM": "s", "Max_Record_Size": "3M"},
			func(c Config) any { return fmt.Sprint(c.Region, c.Stream, c.MaxRecordSize) }, "us-west-2s3145728"},
		{"empty values are unset", with("endpoint", "", "http_request_timeout", "  ", "append_newline", ""),
			func(c Config) any { return fmt.Sprint(c.Endpoint == "", c.HTTPRequestTimeout, c.AppendNewline) }, "true 1m0s true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%v): %v", tt.in, err)
			}
			if got := tt.check(c); got != tt.want {
				t.Errorf("Parse(%v): got %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseInvalid checks every bad form: the error must be the exact message.
func TestParseInvalid(t *testing.T) {
	t.Parallel()
	const (
		wantRegion   = `want an AWS region such as us-east-1 (letters, digits and hyphens)`
		wantName     = `want a stream name of 1 to 128 letters, digits, '_', '.' and '-', or a stream ARN`
		wantARN      = `want a stream name or a stream ARN such as arn:aws:kinesis:us-east-1:123456789012:stream/name`
		wantEndpoint = `want a URL such as https://host, https://host:port or http://127.0.0.1:4567, or a bare host[:port] (HTTPS)`
		wantBool     = `want true, false, on, off, yes or no`
		wantDuration = `want a positive duration such as 60s, 1m30s or 500ms, or a whole number of seconds`
		wantSize     = `want auto, or a size from 1M to 10M (1048576 to 10485760 bytes), such as 1M, 5MB or 2097152`
		wantRole     = `want an IAM role ARN such as arn:aws:iam::123456789012:role/name`
		wantKeyPath  = `want a top-level key name, or key names joined by -> for nested maps, such as kubernetes->pod_name`
		wantInFlight = `want a whole number from 1 to 256`
	)
	bad := func(key, value, want string) string {
		return fmt.Sprintf("config: invalid %q value %q: %s", key, value, want)
	}
	role := "arn:aws:iam::123456789012:role/w"
	tests := []struct {
		name string
		in   MapGetter
		want string
	}{
		{"no keys", MapGetter{}, "config: \"region\" is required\nconfig: \"stream\" is required"},
		{"region missing", MapGetter{"stream": "s"}, `config: "region" is required`},
		{"region blank", with("region", "   "), `config: "region" is required`},
		{"region with a dot", with("region", "us.east"), bad("region", "us.east", wantRegion)},
		{"region with a slash", with("region", "us-east-1/"), bad("region", "us-east-1/", wantRegion)},
		{"region too long", with("region", strings.Repeat("a", 64)), bad("region", strings.Repeat("a", 64), wantRegion)},
		{"stream missing", MapGetter{"region": "us-east-1"}, `config: "stream" is required`},
		{"stream with a space", with("stream", "my stream"), bad("stream", "my stream", wantName)},
		{"stream with a slash", with("stream", "a/b"), bad("stream", "a/b", wantName)},
		{"stream too long", with("stream", strings.Repeat("s", 129)), bad("stream", strings.Repeat("s", 129), wantName)},
		{"stream non-ASCII", with("stream", "flüsse"), bad("stream", "flüsse", wantName)},
		{"stream ARN truncated", with("stream", "arn:aws:kinesis"), bad("stream", "arn:aws:kinesis", wantARN)},
		{"stream ARN of another service", with("stream", "arn:aws:sqs:us-east-1:123456789012:stream/x"),
			bad("stream", "arn:aws:sqs:us-east-1:123456789012:stream/x", wantARN)},
		{"stream ARN bad account", with("stream", "arn:aws:kinesis:us-east-1:1234:stream/x"),
			bad("stream", "arn:aws:kinesis:us-east-1:1234:stream/x", wantARN)},
		{"stream ARN not a stream", with("stream", "arn:aws:kinesis:us-east-1:123456789012:consumer/x"),
			bad("stream", "arn:aws:kinesis:us-east-1:123456789012:consumer/x", wantARN)},
		{"stream ARN bad name", with("stream", "arn:aws:kinesis:us-east-1:123456789012:stream/a b"),
			bad("stream", "arn:aws:kinesis:us-east-1:123456789012:stream/a b", wantARN)},
		{"stream ARN bad partition", with("stream", "arn:gcp:kinesis:us-east-1:123456789012:stream/x"),
			bad("stream", "arn:gcp:kinesis:us-east-1:123456789012:stream/x", wantARN)},
		{"stream ARN without a region", with("stream", "arn:aws:kinesis::123456789012:stream/x"),
			bad("stream", "arn:aws:kinesis::123456789012:stream/x", wantARN)},
		{"stream ARN of another region", with("stream", "arn:aws:kinesis:eu-west-1:123456789012:stream/x"),
			`config: "stream" is an ARN in region "eu-west-1" but "region" is "us-east-1": Kinesis takes a stream ARN only in its own region, set "region" to "eu-west-1"`},
		{"stream ARN of another partition", with("stream", "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/x"),
			`config: "stream" is an ARN in region "cn-north-1" but "region" is "us-east-1": Kinesis takes a stream ARN only in its own region, set "region" to "cn-north-1"`},
		{"endpoint bad scheme", with("endpoint", "ftp://host"), bad("endpoint", "ftp://host", wantEndpoint)},
		{"endpoint no host", with("endpoint", "https://"), bad("endpoint", "https://", wantEndpoint)},
		{"endpoint only port", with("endpoint", ":4567"), bad("endpoint", ":4567", wantEndpoint)},
		{"endpoint path", with("endpoint", "https://host/kinesis"), bad("endpoint", "https://host/kinesis", wantEndpoint)},
		{"endpoint query", with("endpoint", "https://host?a=b"), bad("endpoint", "https://host?a=b", wantEndpoint)},
		{"endpoint empty query", with("endpoint", "https://host?"), bad("endpoint", "https://host?", wantEndpoint)},
		{"endpoint fragment", with("endpoint", "https://host#x"), bad("endpoint", "https://host#x", wantEndpoint)},
		{"endpoint empty fragment", with("endpoint", "host#"), bad("endpoint", "host#", wantEndpoint)},
		{"endpoint port zero", with("endpoint", "http://host:0"), bad("endpoint", "http://host:0", wantEndpoint)},
		{"endpoint port too big", with("endpoint", "http://host:65536"), bad("endpoint", "http://host:65536", wantEndpoint)},
		{"endpoint port not a number", with("endpoint", "host:http"), bad("endpoint", "host:http", wantEndpoint)},
		{"endpoint empty port", with("endpoint", "http://host:"), bad("endpoint", "http://host:", wantEndpoint)},
		{"endpoint space in host", with("endpoint", "https://ho st"), bad("endpoint", "https://ho st", wantEndpoint)},
		{"endpoint bad IPv4", with("endpoint", "999.0.0.1"), bad("endpoint", "999.0.0.1", wantEndpoint)},
		{"endpoint IPv6 without brackets", with("endpoint", "::1"), bad("endpoint", "::1", wantEndpoint)},
		{"endpoint IPv6 zone", with("endpoint", "http://[fe80::1%25eth0]:80"), bad("endpoint", "http://[fe80::1%25eth0]:80", wantEndpoint)},
		{"endpoint empty label", with("endpoint", "a..b"), bad("endpoint", "a..b", wantEndpoint)},
		{"endpoint user", with("endpoint", "https://user@host"), bad("endpoint", "https://user@host", wantEndpoint)},
		{"endpoint password not echoed", with("endpoint", "https://user:hunter2@host"), bad("endpoint", "https://user:xxxxx@host", wantEndpoint)},
		{"endpoint scheme only", with("endpoint", "https:host"), bad("endpoint", "https:host", wantEndpoint)},
		{"sts_endpoint bad", with("sts_endpoint", "tcp://sts"), bad("sts_endpoint", "tcp://sts", wantEndpoint)},
		{"role_arn not an ARN", with("role_arn", "writer"), bad("role_arn", "writer", wantRole)},
		{"external_id without role_arn", with("external_id", "abc123"),
			`config: "external_id" needs "role_arn": it is only used to assume that role`},
		{"external_id too short", with("role_arn", role, "external_id", "x"),
			`config: invalid "external_id" value (not shown, 1 bytes): want 2 to 1224 letters, digits and any of _+=,.@:/-`},
		{"external_id bad character", with("role_arn", role, "external_id", "se cret"),
			`config: invalid "external_id" value (not shown, 7 bytes): want 2 to 1224 letters, digits and any of _+=,.@:/-`},
		{"external_id too long", with("role_arn", role, "external_id", strings.Repeat("x", 1225)),
			`config: invalid "external_id" value (not shown, 1225 bytes): want 2 to 1224 letters, digits and any of _+=,.@:/-`},
		{"auto_retry_requests 1", with("auto_retry_requests", "1"), bad("auto_retry_requests", "1", wantBool)},
		{"auto_retry_requests y", with("auto_retry_requests", "y"), bad("auto_retry_requests", "y", wantBool)},
		{"auto_retry_requests word", with("auto_retry_requests", "enabled"), bad("auto_retry_requests", "enabled", wantBool)},
		{"append_newline 0", with("append_newline", "0"), bad("append_newline", "0", wantBool)},
		{"max_in_flight zero", with("max_in_flight", "0"), bad("max_in_flight", "0", wantInFlight)},
		{"max_in_flight too many", with("max_in_flight", "257"), bad("max_in_flight", "257", wantInFlight)},
		{"max_in_flight negative", with("max_in_flight", "-1"), bad("max_in_flight", "-1", wantInFlight)},
		{"max_in_flight plus", with("max_in_flight", "+8"), bad("max_in_flight", "+8", wantInFlight)},
		{"max_in_flight word", with("max_in_flight", "many"), bad("max_in_flight", "many", wantInFlight)},
		{"max_in_flight huge", with("max_in_flight", "99999999999999999999"), bad("max_in_flight", "99999999999999999999", wantInFlight)},
		{"http_request_timeout word", with("http_request_timeout", "abc"), bad("http_request_timeout", "abc", wantDuration)},
		{"summary_interval word", with("summary_interval", "never"), bad("summary_interval", "never", "want a positive duration such as 1m or 30s, a whole number of seconds, or off")},
		{"summary_interval negative", with("summary_interval", "-1m"), bad("summary_interval", "-1m", "want a positive duration such as 1m or 30s, a whole number of seconds, or off")},
		{"http_request_timeout zero", with("http_request_timeout", "0"), bad("http_request_timeout", "0", wantDuration)},
		{"http_request_timeout zero s", with("http_request_timeout", "0s"), bad("http_request_timeout", "0s", wantDuration)},
		{"http_request_timeout negative", with("http_request_timeout", "-5s"), bad("http_request_timeout", "-5s", wantDuration)},
		{"http_request_timeout negative number", with("http_request_timeout", "-5"), bad("http_request_timeout", "-5", wantDuration)},
		{"http_request_timeout fraction", with("http_request_timeout", "1.5"), bad("http_request_timeout", "1.5", wantDuration)},
		{"http_request_timeout bad unit", with("http_request_timeout", "5 sec"), bad("http_request_timeout", "5 sec", wantDuration)},
		{"http_request_timeout overflow", with("http_request_timeout", "9223372037"), bad("http_request_timeout", "9223372037", wantDuration)},
		{"http_request_timeout huge", with("http_request_timeout", "99999999999999999999"), bad("http_request_timeout", "99999999999999999999", wantDuration)},
		{"time_key_format unknown verb", with("time_key_format", "%Y %Q"),
			`config: invalid "time_key_format" value "%Y %Q": want a strftime pattern (%3N milliseconds, %9N or %L nanoseconds, %% for %): timefmt: unknown verb "%Q" (byte 3)`},
		{"time_key_format trailing percent", with("time_key_format", "%H%"),
			`config: invalid "time_key_format" value "%H%": want a strftime pattern (%3N milliseconds, %9N or %L nanoseconds, %% for %): timefmt: lone % at the end of the pattern (byte 2)`},
		{"time_key with log_key", with("time_key", "time", "log_key", "log"),
			`config: "time_key" has no effect with "log_key", which sends only that key's value: remove one of them`},
		{"data_keys without a name", with("data_keys", " , "),
			bad("data_keys", ",", "want a comma-separated list of top-level key names, such as log,kubernetes")},
		{"data_keys only commas", with("data_keys", ",,,"),
			bad("data_keys", ",,,", "want a comma-separated list of top-level key names, such as log,kubernetes")},
		{"data_keys with log_key", with("data_keys", "log,stream", "log_key", "log"),
			`config: "data_keys" has no effect with "log_key", which sends only that key's value: remove one of them`},
		{"partition_key trailing arrow", with("partition_key", "a->"),
			bad("partition_key", "a->", wantKeyPath+": record: malformed key path: key 2 of 2 is empty")},
		{"partition_key leading arrow", with("partition_key", "->b"),
			bad("partition_key", "->b", wantKeyPath+": record: malformed key path: key 1 of 2 is empty")},
		{"partition_key empty middle", with("partition_key", "a->->b"),
			bad("partition_key", "a->->b", wantKeyPath+": record: malformed key path: key 2 of 3 is empty")},
		{"partition_key blank middle", with("partition_key", "a ->  -> b"),
			bad("partition_key", "a ->  -> b", wantKeyPath+": record: malformed key path: key 2 of 3 is empty")},
		{"partition_key arrow only", with("partition_key", " -> "),
			bad("partition_key", "->", wantKeyPath+": record: malformed key path: key 1 of 2 is empty")},
		{"protocol xml", with("protocol", "xml"), `config: invalid "protocol" value "xml": want cbor or json`},
		{"protocol json-1.1", with("protocol", " json-1.1"), `config: invalid "protocol" value "json-1.1": want cbor or json`},
		{"compression lz4", with("compression", "lz4"), `config: invalid "compression" value "lz4": want none, gzip, zlib or zstd`},
		{"compression snappy", with("compression", " Snappy "), `config: invalid "compression" value "Snappy": want none, gzip, zlib or zstd`},
		{"compression off", with("compression", "off"), `config: invalid "compression" value "off": want none, gzip, zlib or zstd`},
		{"aggregation 1", with("aggregation", "1"), bad("aggregation", "1", wantBool)},
		{"simple_aggregation word", with("simple_aggregation", "kpl"), bad("simple_aggregation", "kpl", wantBool)},
		{"aggregation and simple_aggregation", with("aggregation", "on", "simple_aggregation", "true"), wantBothAggregations},
		{"partition_key and simple_aggregation", with("partition_key", "host", "simple_aggregation", "true"),
			`config: "partition_key" has no effect with "simple_aggregation", which joins records of any key into one Kinesis record with a random key: ` +
				`remove one of them (use "aggregation" to keep each record's key)`},
		{"max_record_size too small", with("max_record_size", "512K"), bad("max_record_size", "512K", wantSize)},
		{"max_record_size one byte short", with("max_record_size", "1048575"), bad("max_record_size", "1048575", wantSize)},
		{"max_record_size one byte over", with("max_record_size", "10485761"), bad("max_record_size", "10485761", wantSize)},
		{"max_record_size too big", with("max_record_size", "11M"), bad("max_record_size", "11M", wantSize)},
		{"max_record_size gigabyte", with("max_record_size", "1G"), bad("max_record_size", "1G", wantSize)},
		{"max_record_size zero", with("max_record_size", "0"), bad("max_record_size", "0", wantSize)},
		{"max_record_size negative", with("max_record_size", "-1M"), bad("max_record_size", "-1M", wantSize)},
		{"max_record_size fraction", with("max_record_size", "1.5M"), bad("max_record_size", "1.5M", wantSize)},
		{"max_record_size space", with("max_record_size", "2 M"), bad("max_record_size", "2 M", wantSize)},
		{"max_record_size unit only", with("max_record_size", "M"), bad("max_record_size", "M", wantSize)},
		{"max_record_size bad unit", with("max_record_size", "2MBs"), bad("max_record_size", "2MBs", wantSize)},
		{"max_record_size bytes unit", with("max_record_size", "2097152B"), bad("max_record_size", "2097152B", wantSize)},
		{"max_record_size automatic", with("max_record_size", "automatic"), bad("max_record_size", "automatic", wantSize)},
		{"startup_check", with("startup_check", "error"), bad("startup_check", "error", "want warn, fail or off")},
		{"startup_check bool", with("startup_check", "true"), bad("startup_check", "true", "want warn, fail or off")},
		{"use_fips_endpoint", with("use_fips_endpoint", "fips"), bad("use_fips_endpoint", "fips", wantBool)},
		{"use_dualstack_endpoint", with("use_dualstack_endpoint", "1"), bad("use_dualstack_endpoint", "1", wantBool)},
		{"max_record_size overflow", with("max_record_size", "99999999999999999999999M"), bad("max_record_size", "99999999999999999999999M", wantSize)},
		{"max_record_size multiply overflow", with("max_record_size", "9223372036854775807K"), bad("max_record_size", "9223372036854775807K", wantSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%v) = %v, want an error", tt.in, c)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%v) error:\n%s\nwant:\n%s", tt.in, err, tt.want)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Parse(%v) returned %v with its error, want the zero Config", tt.in, c)
			}
		})
	}
}

const wantBothAggregations = `config: "aggregation" and "simple_aggregation" are two ways of packing records into one Kinesis record: ` +
	`pick one (aggregation for consumers that deaggregate KPL records, such as the KCL; simple_aggregation for newline-joined records)`

// TestParseKeyPathError checks that a bad partition_key's error wraps
// record.ErrKeyPath.
func TestParseKeyPathError(t *testing.T) {
	t.Parallel()
	_, err := Parse(with("partition_key", "a->->b"))
	if !errors.Is(err, record.ErrKeyPath) {
		t.Errorf("error %v does not wrap record.ErrKeyPath", err)
	}
}

// TestParseReportsEveryProblem checks that several bad keys give one error
// naming each of them. A key with a bad value takes its default, so the bad
// aggregation does not also conflict with simple_aggregation.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Parse(MapGetter{
		"stream":               "bad stream",
		"endpoint":             "ftp://x",
		"http_request_timeout": "abc",
		"auto_retry_requests":  "maybe",
		"time_key_format":      "%Q",
		"max_record_size":      "20M",
		"external_id":          "s3cr3t-value",
		"data_keys":            ",",
		"partition_key":        "a->",
		"compression":          "lz4",
		"protocol":             "smoke signals",
		"aggregation":          "maybe",
		"simple_aggregation":   "on",
	})
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	msg := err.Error()
	for _, want := range []string{
		`"region" is required`,
		`invalid "stream" value "bad stream"`,
		`invalid "endpoint" value "ftp://x"`,
		`invalid "http_request_timeout" value "abc"`,
		`invalid "auto_retry_requests" value "maybe"`,
		`invalid "time_key_format" value "%Q"`,
		`invalid "max_record_size" value "20M"`,
		`"external_id" needs "role_arn"`,
		`invalid "data_keys" value ","`,
		`invalid "partition_key" value "a->"`,
		`config: invalid "compression" value "lz4": want none, gzip, zlib or zstd`,
		`config: invalid "protocol" value "smoke signals": want cbor or json`,
		`invalid "aggregation" value "maybe"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %s:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 13 {
		t.Errorf("error has %d lines, want 13:\n%s", n, msg)
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Errorf("error shows the external ID:\n%s", msg)
	}
	if !errors.Is(err, timefmt.ErrUnknownVerb) {
		t.Errorf("error does not wrap timefmt.ErrUnknownVerb")
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   MapGetter
		want string
	}{
		{"defaults", base(),
			"region=us-east-1 stream=logs auto_retry_requests=true http_request_timeout=1m0s protocol=cbor append_newline=true max_record_size=auto max_in_flight=32"},
		{"everything", MapGetter{
			"region": "eu-west-1", "stream": "arn:aws:kinesis:eu-west-1:123456789012:stream/s",
			"endpoint": "localhost:4567", "sts_endpoint": "http://sts:80",
			"role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "s3cr3t-value",
			"profile": "prod", "auto_retry_requests": "off", "http_request_timeout": "90", "protocol": "JSON",
			"time_key": "ts", "time_key_format": "%Y %3N", "append_newline": "no", "max_record_size": "5M",
			"data_keys": " log, kubernetes ", "replace_dots": "_",
			"partition_key": " kubernetes -> pod_name ", "compression": "GZIP", "simple_aggregation": "off", "aggregation": "on",
			"startup_check": "Fail", "use_fips_endpoint": "yes", "use_dualstack_endpoint": "off",
		}, "region=eu-west-1 stream=arn:aws:kinesis:eu-west-1:123456789012:stream/s endpoint=https://localhost:4567 " +
			"sts_endpoint=http://sts:80 role_arn=arn:aws:iam::123456789012:role/r external_id=(set) profile=prod " +
			"auto_retry_requests=false http_request_timeout=1m30s protocol=json time_key=ts time_key_format=\"%Y %3N\" " +
			"data_keys=log,kubernetes replace_dots=_ append_newline=false partition_key=kubernetes->pod_name " +
			"compression=gzip aggregation=true max_record_size=5242880 max_in_flight=32 startup_check=fail use_fips_endpoint=true use_dualstack_endpoint=false"},
		{"aggregation, compression none", with("aggregation", "yes", "compression", "none"),
			"region=us-east-1 stream=logs auto_retry_requests=true http_request_timeout=1m0s protocol=cbor append_newline=true aggregation=true max_record_size=auto max_in_flight=32"},
		{"partition_key with a space", with("partition_key", "kubernetes->pod name", "compression", "zstd"),
			"region=us-east-1 stream=logs auto_retry_requests=true http_request_timeout=1m0s protocol=cbor append_newline=true " +
				`partition_key="kubernetes->pod name" compression=zstd max_record_size=auto max_in_flight=32`},
		{"data_keys with a space, replace_dots with a quote", with("data_keys", "a b,c", "replace_dots", `"`),
			"region=us-east-1 stream=logs auto_retry_requests=true http_request_timeout=1m0s protocol=cbor data_keys=\"a b,c\" " +
				`replace_dots="\"" append_newline=true max_record_size=auto max_in_flight=32`},
		{"log_key", with("log_key", "message"),
			"region=us-east-1 stream=logs auto_retry_requests=true http_request_timeout=1m0s protocol=cbor log_key=message append_newline=true max_record_size=auto max_in_flight=32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
			for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
				if strings.Contains(s, "s3cr3t") {
					t.Errorf("formatting shows the external ID: %s", s)
				}
			}
		})
	}
}

// TestKeys checks that Keys lists exactly the keys Parse reads, besides the
// retired keys it only reads to warn about.
func TestKeys(t *testing.T) {
	t.Parallel()
	var asked []string
	_, _ = Parse(recordingGetter{&asked})
	seen := map[string]bool{}
	for _, k := range asked {
		seen[k] = true
	}
	for _, k := range retiredKeys {
		delete(seen, k.name)
	}
	for _, k := range Keys {
		if !seen[k] {
			t.Errorf("Keys lists %q, which Parse never reads", k)
		}
		delete(seen, k)
		if k != strings.ToLower(k) {
			t.Errorf("key %q is not lower case", k)
		}
	}
	for k := range seen {
		t.Errorf("Parse reads %q, which Keys does not list", k)
	}
}

type recordingGetter struct{ keys *[]string }

func (g recordingGetter) Get(key string) string {
	*g.keys = append(*g.keys, key)
	return ""
}

func TestMapGetter(t *testing.T) {
	t.Parallel()
	m := MapGetter{"Region": "a", "stream": "b", "LOG_KEY": "c"}
	for _, tt := range []struct{ key, want string }{
		{"region", "a"}, {"REGION", "a"}, {"stream", "b"}, {"Stream", "b"}, {"log_key", "c"}, {"missing", ""},
	} {
		if got := m.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("us-east-1", "logs", "http://127.0.0.1:4567", "60", "1M", "%Y %3N", "on", "", "", "", "", "", "", "", "")
	f.Add("", "arn:aws:kinesis:us-east-1:123456789012:stream/s", "[::1]:1", "1m", "10MiB", "%", "x", "ts", "log", "log", "_",
		"a->b", "gzip", "on", "off")
	f.Add("a", "arn:", "https://u:p@h?#", "-1", "99999999999999999999K", "%-", "", "", "", " a ,, b,", " ", "a->->b", "lz4", "on", "on")
	f.Add("us-east-1-fips", "arn:aws:kinesis:us-east-1:123456789012:stream/s", "", "", "", "", "", "", "", "", "", " -> ", "ZSTD", "", "yes")
	f.Fuzz(func(t *testing.T, region, stream, endpoint, timeout, size, format, boolean, timeKey, logKey, dataKeys, dots,
		partitionKey, compression, aggregation, simpleAggregation string) {
		g := MapGetter{
			"region": region, "stream": stream, "endpoint": endpoint, "sts_endpoint": endpoint,
			"http_request_timeout": timeout, "max_record_size": size, "time_key_format": format,
			"auto_retry_requests": boolean, "append_newline": boolean,
			"time_key": timeKey, "log_key": logKey, "role_arn": "arn:" + region, "external_id": stream,
			"data_keys": dataKeys, "replace_dots": dots, "partition_key": partitionKey, "compression": compression,
			"aggregation": aggregation, "simple_aggregation": simpleAggregation,
		}
		c, err := Parse(g)
		if err != nil {
			if !reflect.DeepEqual(c, Config{}) {
				t.Fatalf("Parse returned %v with its error", c)
			}
			return
		}
		if c.Region == "" || c.Stream == "" || c.TimeFormat == nil || c.HTTPRequestTimeout <= 0 ||
			c.MaxRecordSize < MinMaxRecordSize || c.MaxRecordSize > MaxMaxRecordSize {
			t.Fatalf("Parse accepted an invalid configuration: %v", c)
		}
		for _, e := range []string{c.Endpoint, c.STSEndpoint} {
			if e == "" {
				continue
			}
			// A normalised endpoint parses to itself.
			if again, ok := parseEndpoint(e); !ok || again != e {
				t.Fatalf("endpoint %q normalises to %q, which normalises to %q (ok %v)", endpoint, e, again, ok)
			}
		}
		for _, k := range c.DataKeys {
			if k == "" || k != strings.TrimSpace(k) || strings.Contains(k, ",") {
				t.Fatalf("data_keys %q gives the name %q", dataKeys, k)
			}
		}
		if c.DataKeys != nil && c.LogKey != "" {
			t.Fatalf("Parse accepted data_keys %q with log_key %q", dataKeys, logKey)
		}
		if c.Aggregation && c.SimpleAggregation {
			t.Fatalf("Parse accepted aggregation %q with simple_aggregation %q", aggregation, simpleAggregation)
		}
		if c.Compression.String() != strings.ToLower(strings.TrimSpace(compression)) &&
			(c.Compression != compress.None || strings.TrimSpace(compression) != "") {
			t.Fatalf("compression %q gives %v", compression, c.Compression)
		}
		if strings.TrimSpace(partitionKey) == "" != c.PartitionKey.IsZero() {
			t.Fatalf("partition_key %q gives %q", partitionKey, c.PartitionKey)
		}
		if !c.PartitionKey.IsZero() {
			for _, name := range strings.Split(c.PartitionKey.String(), "->") {
				if name == "" || name != strings.TrimSpace(name) {
					t.Fatalf("partition_key %q gives the name %q", partitionKey, name)
				}
			}
		}
		if arnRegion, ok := streamARNRegion(c.Stream); ok && arnRegion != fipsFree(c.Region) {
			t.Fatalf("Parse accepted stream %q with region %q", c.Stream, c.Region)
		}
		_ = c.String()
		_ = c.TimeFormat.Append(nil, 0, 0)
	})
}

func TestRetiredKeysWarn(t *testing.T) {
	t.Parallel()
	c, err := Parse(MapGetter{"region": "us-east-1", "stream": "s", "Experimental_Concurrency": "4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`config: "experimental_concurrency" has no effect in this plugin (set workers on the output instead)`}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", c.Warnings, want)
	}
	c, err = Parse(MapGetter{"region": "us-east-1", "stream": "s"})
	if err != nil || c.Warnings != nil {
		t.Errorf("no retired key: Warnings = %q, err = %v", c.Warnings, err)
	}
}
