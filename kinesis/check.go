package kinesis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// CheckTimeout bounds the start-up check as a whole: resolving the credentials (the instance
// metadata service or STS included) and one DescribeStreamSummary call, which the SDK does not
// retry. When the network is down, Init waits this long at most.
const CheckTimeout = 5 * time.Second

// checkTimeout is CheckTimeout, shortened by tests of what each stage does when it gets no answer.
var checkTimeout = CheckTimeout

// StreamSummary is what DescribeStreamSummary says of the stream.
type StreamSummary struct {
	Name, ARN      string
	Status         string // ACTIVE, CREATING, UPDATING or DELETING
	Mode           string // PROVISIONED or ON_DEMAND; "" when Kinesis does not say
	OpenShards     int
	RetentionHours int
	Encryption     string // NONE or KMS
	KMSKeyID       string // the key's ID, ARN or alias with KMS (not a secret)
	// MaxRecordSize is the stream's maximum record size in bytes (MaxRecordSizeInKiB), or 0 when
	// Kinesis does not say (a service or emulator that predates it): the default, 1 MiB, then.
	MaxRecordSize int
}

// RecordSizeLimit is the maximum record size to pack records under: MaxRecordSize within the
// bounds Kinesis allows, or limits.DefaultMaxRecordSize when it is unknown.
func (s StreamSummary) RecordSizeLimit() int {
	if s.MaxRecordSize <= 0 {
		return limits.DefaultMaxRecordSize
	}
	return min(max(s.MaxRecordSize, limits.DefaultMaxRecordSize), limits.MaxMaxRecordSize)
}

// String describes the stream in one line, without secrets: what the start-up check logs.
func (s StreamSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stream %q is %s", s.Name, s.Status)
	switch s.Mode {
	case string(types.StreamModeOnDemand):
		b.WriteString(", on-demand")
	case string(types.StreamModeProvisioned):
		b.WriteString(", provisioned")
	case "":
	default:
		b.WriteString(", mode " + s.Mode)
	}
	fmt.Fprintf(&b, ", %d open shards, retention %dh", s.OpenShards, s.RetentionHours)
	switch {
	case s.Encryption == string(types.EncryptionTypeKms) && s.KMSKeyID != "":
		fmt.Fprintf(&b, ", encryption KMS (key %s)", s.KMSKeyID)
	case s.Encryption != "":
		b.WriteString(", encryption " + s.Encryption)
	}
	if s.MaxRecordSize > 0 {
		fmt.Fprintf(&b, ", max record size %d KiB", s.MaxRecordSize>>10)
	} else {
		b.WriteString(", max record size not reported (1024 KiB assumed)")
	}
	return b.String()
}

// streamDescriber is the part of the SDK client that DescribeStream uses.
type streamDescriber interface {
	DescribeStreamSummary(ctx context.Context, in *kinesissdk.DescribeStreamSummaryInput, optFns ...func(*kinesissdk.Options)) (*kinesissdk.DescribeStreamSummaryOutput, error)
}

var _ streamDescriber = (*kinesissdk.Client)(nil)

// ErrDescribeUnsupported: the client's API does not implement DescribeStreamSummary.
var ErrDescribeUnsupported = errors.New("kinesis: describe stream summary not supported by this client")

// DescribeStream calls DescribeStreamSummary once, without any retry by the SDK: the caller
// bounds it with ctx. An error that IsAccessDenied means the credentials may not call it
// (kinesis:DescribeStreamSummary).
func (c *Client) DescribeStream(ctx context.Context) (StreamSummary, error) {
	d, ok := c.api.(streamDescriber)
	if !ok {
		return StreamSummary{}, ErrDescribeUnsupported
	}
	out, err := d.DescribeStreamSummary(ctx, &kinesissdk.DescribeStreamSummaryInput{StreamName: c.streamName, StreamARN: c.streamARN},
		func(o *kinesissdk.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		return StreamSummary{}, fmt.Errorf("kinesis: describe stream summary: %w", err)
	}
	sum := out.StreamDescriptionSummary
	if sum == nil {
		return StreamSummary{}, fmt.Errorf("kinesis: describe stream summary: no StreamDescriptionSummary: %w", ErrMalformedResponse)
	}
	s := StreamSummary{
		Name:           aws.ToString(sum.StreamName),
		ARN:            aws.ToString(sum.StreamARN),
		Status:         string(sum.StreamStatus),
		OpenShards:     int(aws.ToInt32(sum.OpenShardCount)),
		RetentionHours: int(aws.ToInt32(sum.RetentionPeriodHours)),
		Encryption:     string(sum.EncryptionType),
		KMSKeyID:       aws.ToString(sum.KeyId),
		MaxRecordSize:  int(aws.ToInt32(sum.MaxRecordSizeInKiB)) << 10,
	}
	if sum.StreamModeDetails != nil {
		s.Mode = string(sum.StreamModeDetails.StreamMode)
	}
	if s.Name == "" {
		s.Name = c.streamLabel()
	}
	return s, nil
}

// streamLabel is the stream as configured: its name or ARN.
func (c *Client) streamLabel() string {
	if c.streamARN != nil {
		return *c.streamARN
	}
	return aws.ToString(c.streamName)
}

// CheckProblem is what the start-up check found wrong.
type CheckProblem int

const (
	// CheckNoCredentials: no credentials could be resolved (none configured, or assuming the role
	// failed).
	CheckNoCredentials CheckProblem = iota + 1
	// CheckBadCredentials: Kinesis does not accept the credentials (unknown key, bad signature,
	// expired token, clock skew), or the stream's KMS key refuses them.
	CheckBadCredentials
	// CheckNotFound: the stream does not exist in the region (or its KMS key does not).
	CheckNotFound
	// CheckDescribeDenied: the credentials may not call DescribeStreamSummary. Nothing is known of
	// the stream; PutRecords may still be allowed.
	CheckDescribeDenied
	// CheckUnreachable: no answer in time, or a network or TLS failure.
	CheckUnreachable
	// CheckOther: any other error.
	CheckOther
)

// CheckError is a failed start-up check. Its message says what is wrong and what to fix; it never
// holds a secret.
type CheckError struct {
	Problem CheckProblem
	msg     string
	Err     error
}

func (e *CheckError) Error() string { return e.msg }

// Unwrap returns the SDK's error.
func (e *CheckError) Unwrap() error { return e.Err }

// CheckResult is what a successful start-up check found.
type CheckResult struct {
	Credentials string // where the credentials came from, as the SDK names it (EnvConfigCredentials...)
	Stream      StreamSummary
}

// Check is the start-up check: it resolves the credentials, then describes the stream, within
// CheckTimeout (less if ctx ends sooner). A failure is a *CheckError.
func (c *Client) Check(ctx context.Context) (CheckResult, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	var res CheckResult
	if c.creds == nil {
		return res, &CheckError{Problem: CheckNoCredentials, msg: "no AWS credentials: " + c.sources.String()}
	}
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return res, c.credentialsError(err, time.Since(start))
	}
	res.Credentials = creds.Source
	res.Stream, err = c.DescribeStream(ctx)
	if err != nil {
		return res, c.describeError(err, creds.Source, time.Since(start))
	}
	return res, nil
}

// credentialsError explains a failure to resolve the credentials.
func (c *Client) credentialsError(err error, took time.Duration) *CheckError {
	switch {
	case errors.Is(err, context.DeadlineExceeded) && c.opts.RoleARN != "":
		return &CheckError{Problem: CheckUnreachable, Err: err, msg: fmt.Sprintf(
			"no credentials for role %q after %v: no answer from STS (or from the node's own credentials' source); check the network, "+
				"\"sts_endpoint\" and any proxy (HTTPS_PROXY): %v", c.opts.RoleARN, took.Round(time.Millisecond), err)}
	case errors.Is(err, context.DeadlineExceeded):
		return &CheckError{Problem: CheckUnreachable, Err: err, msg: fmt.Sprintf(
			"no AWS credentials after %v (%s): %v", took.Round(time.Millisecond), c.sources.String(), err)}
	case c.opts.RoleARN != "" && IsAccessDenied(err):
		return &CheckError{Problem: CheckNoCredentials, Err: err, msg: fmt.Sprintf(
			"not allowed to assume role %q: allow sts:AssumeRole on it to the node's credentials, and make the role's trust "+
				"policy trust them (and the external ID, if set): %v", c.opts.RoleARN, err)}
	case c.opts.RoleARN != "":
		return &CheckError{Problem: CheckNoCredentials, Err: err, msg: fmt.Sprintf(
			"cannot assume role %q (%s): %v", c.opts.RoleARN, c.sources.String(), err)}
	}
	return &CheckError{Problem: CheckNoCredentials, Err: err, msg: fmt.Sprintf(
		"no AWS credentials (%s): %v", c.sources.String(), err)}
}

// describeError explains a failed DescribeStreamSummary.
func (c *Client) describeError(err error, source string, took time.Duration) *CheckError {
	code := ErrorCode(err)
	stream := c.streamLabel()
	switch {
	case IsAccessDenied(err):
		return &CheckError{Problem: CheckDescribeDenied, Err: err, msg: fmt.Sprintf(
			"not allowed to describe stream %q (kinesis:DescribeStreamSummary on %s), so it is not checked and its maximum "+
				"record size is not known: allow kinesis:DescribeStreamSummary there (records need kinesis:PutRecords on it): %v",
			stream, c.iamResource(), err)}
	}
	switch Classify(err) {
	case ClassNotFound:
		if strings.HasPrefix(code, "KMS") {
			return &CheckError{Problem: CheckNotFound, Err: err, msg: fmt.Sprintf(
				"the KMS key of stream %q was not found (%s): the stream cannot take records until its key exists: %v", stream, code, err)}
		}
		return &CheckError{Problem: CheckNotFound, Err: err, msg: fmt.Sprintf(
			"stream %q not found in region %q (%s): create it, or correct \"stream\" and \"region\"; credentials from %s",
			stream, c.opts.Region, code, source)}
	case ClassCredentials:
		if strings.HasPrefix(code, "KMS") {
			return &CheckError{Problem: CheckBadCredentials, Err: err, msg: fmt.Sprintf(
				"the stream's KMS key refuses the credentials from %s (%s): writing to it needs kms:GenerateDataKey on the key, "+
					"and the key enabled: %v", source, code, err)}
		}
		return &CheckError{Problem: CheckBadCredentials, Err: err, msg: fmt.Sprintf(
			"Kinesis refused the credentials from %s (%s): check the access key, its secret and session token, their "+
				"expiry, and the clock: %v", source, code, err)}
	case ClassCanceled:
		return &CheckError{Problem: CheckUnreachable, Err: err, msg: "start-up check cancelled: " + err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) || IsNetworkError(err) || isCertificateError(err) || code == "timeout" {
		return &CheckError{Problem: CheckUnreachable, Err: err, msg: fmt.Sprintf(
			"no answer from Kinesis at %s within %v (%s): check the network, \"endpoint\", \"region\" and any proxy (HTTPS_PROXY): %v",
			c.endpointLabel(), took.Round(time.Millisecond), code, err)}
	}
	return &CheckError{Problem: CheckOther, Err: err, msg: fmt.Sprintf("describing stream %q failed (%s): %v", stream, code, err)}
}

// endpointLabel names the Kinesis endpoint for messages.
func (c *Client) endpointLabel() string {
	if c.opts.Endpoint != "" {
		return c.opts.Endpoint
	}
	return "the AWS endpoint of " + c.opts.Region
}

// iamResource is the stream's ARN for an IAM policy: the configured ARN, or one built from the
// region and name with the account left for the reader to fill in.
func (c *Client) iamResource() string {
	if c.streamARN != nil {
		return *c.streamARN
	}
	partition := "aws"
	switch {
	case strings.HasPrefix(c.opts.Region, "cn-"):
		partition = "aws-cn"
	case strings.HasPrefix(c.opts.Region, "us-gov-"):
		partition = "aws-us-gov"
	}
	return fmt.Sprintf("arn:%s:kinesis:%s:ACCOUNT:stream/%s", partition, c.opts.Region, aws.ToString(c.streamName))
}

// credentialSources is what the SDK's default chain could find, seen from the environment at New:
// for a message that says which sources were tried when none gave credentials.
type credentialSources struct {
	envKey      bool   // AWS_ACCESS_KEY_ID
	profile     string // the profile asked for
	files       []string
	filesExist  []bool
	webIdentity bool // AWS_WEB_IDENTITY_TOKEN_FILE
	container   bool // AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI
	imdsOff     bool // AWS_EC2_METADATA_DISABLED=true
}

func findCredentialSources(profile string) credentialSources {
	s := credentialSources{
		envKey:      os.Getenv("AWS_ACCESS_KEY_ID") != "",
		profile:     profile,
		webIdentity: os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "",
		container:   os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "" || os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "",
		imdsOff:     strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true"),
	}
	if s.profile == "" {
		s.profile = os.Getenv("AWS_PROFILE")
	}
	if s.profile == "" {
		s.profile = "default"
	}
	home, _ := os.UserHomeDir()
	for _, f := range []struct{ env, name string }{{"AWS_SHARED_CREDENTIALS_FILE", "credentials"}, {"AWS_CONFIG_FILE", "config"}} {
		path := os.Getenv(f.env)
		if path == "" && home != "" {
			path = filepath.Join(home, ".aws", f.name)
		}
		if path == "" {
			continue
		}
		_, err := os.Stat(path)
		s.files = append(s.files, path)
		s.filesExist = append(s.filesExist, err == nil)
	}
	return s
}

// String lists the sources of the default chain and what was found of each.
func (s credentialSources) String() string {
	state := func(set bool, yes, no string) string {
		if set {
			return yes
		}
		return no
	}
	var files []string
	for i, f := range s.files {
		files = append(files, f+state(s.filesExist[i], "", " missing"))
	}
	return "tried: environment (AWS_ACCESS_KEY_ID " + state(s.envKey, "set", "unset") + "), " +
		"profile " + strconv.Quote(s.profile) + " of the shared files (" + strings.Join(files, ", ") + "), " +
		"web identity (AWS_WEB_IDENTITY_TOKEN_FILE " + state(s.webIdentity, "set", "unset") + "), " +
		"container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI " + state(s.container, "set", "unset") + "), " +
		"EC2 instance metadata" + state(s.imdsOff, " (disabled by AWS_EC2_METADATA_DISABLED)", "")
}
