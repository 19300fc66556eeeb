package kinesis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// awsRecorder answers every request as AWS would, without any network: STS with temporary
// credentials, Kinesis's DescribeStreamSummary with an active stream and PutRecords with every
// record accepted. It remembers the host of each request, by service.
type awsRecorder struct {
	mu           sync.Mutex
	sts, kinesis []string
}

func (h *awsRecorder) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch target := r.Header.Get("X-Amz-Target"); {
	case target == "":
		h.sts = append(h.sts, r.URL.Scheme+"://"+r.URL.Host)
		writeAssumeRole(rec)
	case strings.HasSuffix(target, ".DescribeStreamSummary"):
		h.kinesis = append(h.kinesis, r.URL.Scheme+"://"+r.URL.Host)
		rec.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(rec, `{"StreamDescriptionSummary":{"StreamName":"s","StreamStatus":"ACTIVE","OpenShardCount":1,"RetentionPeriodHours":24}}`)
	default:
		h.kinesis = append(h.kinesis, r.URL.Scheme+"://"+r.URL.Host)
		writeResult(rec, []string{""})
	}
	return rec.Result(), nil
}

// TestFIPSAndDualStackEndpoints checks the hosts that Kinesis (DescribeStreamSummary, PutRecords)
// and STS (AssumeRole, for role_arn) requests go to, in the standard, GovCloud and China
// partitions, with use_fips_endpoint and use_dualstack_endpoint, with the environment variables
// the SDK reads when the keys are unset, and with custom endpoints, which are used as given.
//
// Each case runs twice: with static credentials, and with role_arn, whose credentials carry the
// role's account ID, which the SDK puts in the Kinesis host (ACCOUNT.control-kinesis... for
// DescribeStreamSummary, ACCOUNT.data-kinesis... for PutRecords) as it does for a stream ARN.
func TestFIPSAndDualStackEndpoints(t *testing.T) {
	on, off := aws.Bool(true), aws.Bool(false)
	const acct = "123456789012"
	tests := []struct {
		name             string
		region, stream   string
		fips, dual       *bool
		envFIPS, envDual string
		noAccount        bool // AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled
		endpoint, sts    string
		kinesisHost      string // the regional host; a custom endpoint when it has a scheme
		accountHost      string // the host after ACCOUNT.control- or ACCOUNT.data-, when not kinesisHost
		stsHost          string
	}{
		{name: "us-east-1", region: "us-east-1", kinesisHost: "kinesis.us-east-1.amazonaws.com", stsHost: "sts.us-east-1.amazonaws.com"},
		{name: "us-east-1 fips", region: "us-east-1", fips: on,
			kinesisHost: "kinesis-fips.us-east-1.amazonaws.com", stsHost: "sts-fips.us-east-1.amazonaws.com"},
		{name: "us-east-1 dual-stack", region: "us-east-1", dual: on,
			kinesisHost: "kinesis.us-east-1.api.aws", stsHost: "sts.us-east-1.api.aws"},
		{name: "us-east-1 fips and dual-stack", region: "us-east-1", fips: on, dual: on,
			kinesisHost: "kinesis-fips.us-east-1.api.aws", stsHost: "sts-fips.us-east-1.api.aws"},
		{name: "us-west-2 stream ARN fips", region: "us-west-2", stream: "arn:aws:kinesis:us-west-2:" + acct + ":stream/s", fips: on,
			kinesisHost: "kinesis-fips.us-west-2.amazonaws.com", stsHost: "sts-fips.us-west-2.amazonaws.com"},
		{name: "GovCloud", region: "us-gov-west-1", kinesisHost: "kinesis.us-gov-west-1.amazonaws.com", stsHost: "sts.us-gov-west-1.amazonaws.com"},
		// GovCloud's regional Kinesis and STS endpoints are FIPS endpoints: the SDK keeps their
		// hosts (the account endpoints have a -fips form).
		{name: "GovCloud fips", region: "us-gov-west-1", fips: on, kinesisHost: "kinesis.us-gov-west-1.amazonaws.com",
			accountHost: "kinesis-fips.us-gov-west-1.amazonaws.com", stsHost: "sts.us-gov-west-1.amazonaws.com"},
		{name: "GovCloud dual-stack", region: "us-gov-west-1", dual: on,
			kinesisHost: "kinesis.us-gov-west-1.api.aws", stsHost: "sts.us-gov-west-1.api.aws"},
		{name: "China", region: "cn-north-1", kinesisHost: "kinesis.cn-north-1.amazonaws.com.cn", stsHost: "sts.cn-north-1.amazonaws.com.cn"},
		{name: "China dual-stack", region: "cn-north-1", dual: on,
			kinesisHost: "kinesis.cn-north-1.api.amazonwebservices.com.cn", stsHost: "sts.cn-north-1.api.amazonwebservices.com.cn"},
		{name: "environment fips", region: "eu-west-1", envFIPS: "true",
			kinesisHost: "kinesis-fips.eu-west-1.amazonaws.com", stsHost: "sts-fips.eu-west-1.amazonaws.com"},
		{name: "environment dual-stack", region: "eu-west-1", envDual: "true",
			kinesisHost: "kinesis.eu-west-1.api.aws", stsHost: "sts.eu-west-1.api.aws"},
		{name: "keys false win over the environment", region: "eu-west-1", envFIPS: "true", envDual: "true", fips: off, dual: off,
			kinesisHost: "kinesis.eu-west-1.amazonaws.com", stsHost: "sts.eu-west-1.amazonaws.com"},
		{name: "account endpoints disabled", region: "eu-west-1", fips: on, noAccount: true,
			kinesisHost: "kinesis-fips.eu-west-1.amazonaws.com", stsHost: "sts-fips.eu-west-1.amazonaws.com"},
		{name: "custom endpoints used as given", region: "us-east-1", fips: on, dual: on,
			endpoint: "http://127.0.0.1:4567", sts: "https://sts.example.com",
			kinesisHost: "http://127.0.0.1:4567", stsHost: "https://sts.example.com"},
		{name: "custom kinesis endpoint, environment fips for STS", region: "us-east-1", envFIPS: "true",
			endpoint: "http://127.0.0.1:4567", kinesisHost: "http://127.0.0.1:4567", stsHost: "sts-fips.us-east-1.amazonaws.com"},
	}
	url := func(host string) string {
		if strings.Contains(host, "://") {
			return host
		}
		return "https://" + host
	}
	for _, tt := range tests {
		for _, role := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/role=%v", tt.name, role), func(t *testing.T) {
				isolateEnv(t)
				if tt.envFIPS != "" {
					t.Setenv("AWS_USE_FIPS_ENDPOINT", tt.envFIPS)
				}
				if tt.envDual != "" {
					t.Setenv("AWS_USE_DUALSTACK_ENDPOINT", tt.envDual)
				}
				if tt.noAccount {
					t.Setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
				}
				o := Options{Region: tt.region, Stream: tt.stream, Endpoint: tt.endpoint, STSEndpoint: tt.sts,
					UseFIPSEndpoint: tt.fips, UseDualStackEndpoint: tt.dual}
				if o.Stream == "" {
					o.Stream = "s"
				}
				if role {
					o.RoleARN = "arn:aws:iam::" + acct + ":role/r"
				}
				h := &awsRecorder{}
				o.httpClient = h
				c, err := New(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Check(context.Background()); err != nil {
					t.Fatalf("Check: %v", err)
				}
				if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte("d"), PartitionKey: "k"}}); err != nil {
					t.Fatalf("PutRecords: %v", err)
				}
				// DescribeStreamSummary, then PutRecords.
				want := url(tt.kinesisHost) + " " + url(tt.kinesisHost)
				if !strings.Contains(tt.kinesisHost, "://") && !tt.noAccount && (role || tt.stream != "") {
					host := tt.kinesisHost
					if tt.accountHost != "" {
						host = tt.accountHost
					}
					want = "https://" + acct + ".control-" + host + " https://" + acct + ".data-" + host
				}
				if got := strings.Join(h.kinesis, " "); got != want {
					t.Errorf("Kinesis requests went to %s, want %s", got, want)
				}
				wantSTS := ""
				if role {
					wantSTS = url(tt.stsHost)
				}
				if got := strings.Join(h.sts, " "); got != wantSTS {
					t.Errorf("STS requests went to %q, want %q", got, wantSTS)
				}
			})
		}
	}
}
