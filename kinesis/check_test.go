package kinesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const describeTarget = "Kinesis_20131202.DescribeStreamSummary"

// writeAssumeRole answers an STS AssumeRole request with temporary credentials.
func writeAssumeRole(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAFAKEASSUMED00001</AccessKeyId>
      <SecretAccessKey>assumed-secret</SecretAccessKey>
      <SessionToken>fake-session-token</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>
      <AssumedRoleId>AROAFAKE:s</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// describeServer answers DescribeStreamSummary with summary (a JSON object), or with answer when
// it is set; any other call fails the test.
func describeServer(t *testing.T, summary string, answer func(w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got := r.Header.Get("X-Amz-Target"); got != describeTarget {
			t.Errorf("request %s, want %s", got, describeTarget)
			http.Error(w, "unexpected call", http.StatusBadRequest)
			return
		}
		var in struct{ StreamName, StreamARN *string }
		if err := json.Unmarshal(body, &in); err != nil || in.StreamName == nil || *in.StreamName != "test-stream" || in.StreamARN != nil {
			t.Errorf("DescribeStreamSummary body %s, want the stream name test-stream only", body)
		}
		if answer != nil {
			answer(w)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"StreamDescriptionSummary":%s}`, summary)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDescribeStream(t *testing.T) {
	for _, tt := range []struct {
		name       string
		summary    string
		want       StreamSummary
		wantString string
		wantLimit  int
	}{
		{
			name: "provisioned, KMS, raised",
			summary: `{"StreamName":"test-stream","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/test-stream",
				"StreamStatus":"ACTIVE","StreamModeDetails":{"StreamMode":"PROVISIONED"},"OpenShardCount":4,
				"RetentionPeriodHours":48,"EncryptionType":"KMS","KeyId":"alias/aws/kinesis","MaxRecordSizeInKiB":2048,
				"StreamCreationTimestamp":1.7e9,"EnhancedMonitoring":[]}`,
			want: StreamSummary{Name: "test-stream", ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/test-stream",
				Status: "ACTIVE", Mode: "PROVISIONED", OpenShards: 4, RetentionHours: 48, Encryption: "KMS",
				KMSKeyID: "alias/aws/kinesis", MaxRecordSize: 2 << 20},
			wantString: `stream "test-stream" is ACTIVE, provisioned, 4 open shards, retention 48h, encryption KMS (key alias/aws/kinesis), max record size 2048 KiB`,
			wantLimit:  2 << 20,
		},
		{
			name: "on-demand, no record size",
			summary: `{"StreamName":"test-stream","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/test-stream",
				"StreamStatus":"UPDATING","StreamModeDetails":{"StreamMode":"ON_DEMAND"},"OpenShardCount":7,
				"RetentionPeriodHours":24,"EncryptionType":"NONE","StreamCreationTimestamp":1.7e9,"EnhancedMonitoring":[]}`,
			want: StreamSummary{Name: "test-stream", ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/test-stream",
				Status: "UPDATING", Mode: "ON_DEMAND", OpenShards: 7, RetentionHours: 24, Encryption: "NONE"},
			wantString: `stream "test-stream" is UPDATING, on-demand, 7 open shards, retention 24h, encryption NONE, max record size not reported (1024 KiB assumed)`,
			wantLimit:  1 << 20,
		},
		{
			name:       "size out of range",
			summary:    `{"StreamName":"test-stream","StreamStatus":"ACTIVE","OpenShardCount":1,"RetentionPeriodHours":24,"MaxRecordSizeInKiB":20480}`,
			want:       StreamSummary{Name: "test-stream", Status: "ACTIVE", OpenShards: 1, RetentionHours: 24, MaxRecordSize: 20 << 20},
			wantString: `stream "test-stream" is ACTIVE, 1 open shards, retention 24h, max record size 20480 KiB`,
			wantLimit:  10 << 20,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			srv := describeServer(t, tt.summary, nil)
			c := newTestClient(t, Options{Endpoint: srv.URL})
			got, err := c.DescribeStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("summary\n%+v\nwant\n%+v", got, tt.want)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String()\n%s\nwant\n%s", s, tt.wantString)
			}
			if n := got.RecordSizeLimit(); n != tt.wantLimit {
				t.Errorf("RecordSizeLimit() = %d, want %d", n, tt.wantLimit)
			}
			res, err := c.Check(context.Background())
			if err != nil || res.Stream != tt.want || res.Credentials != "EnvConfigCredentials" {
				t.Errorf("Check: %+v, %v; want the same summary, credentials EnvConfigCredentials", res, err)
			}
		})
	}
}

// TestCheckProblems: each failure of the check is classified, and its message says what to fix,
// never the secret key.
func TestCheckProblems(t *testing.T) {
	for _, tt := range []struct {
		name     string
		status   int
		code     string
		want     CheckProblem
		wantMsgs []string
	}{
		{"not found", 400, "ResourceNotFoundException", CheckNotFound, []string{
			`stream "test-stream" not found in region "us-east-1" (ResourceNotFoundException): create it, or correct "stream" and "region"`,
			"credentials from EnvConfigCredentials"}},
		{"describe denied", 400, "AccessDeniedException", CheckDescribeDenied, []string{
			`not allowed to describe stream "test-stream" (kinesis:DescribeStreamSummary on arn:aws:kinesis:us-east-1:ACCOUNT:stream/test-stream)`,
			"records need kinesis:PutRecords on it"}},
		{"unknown key", 400, "UnrecognizedClientException", CheckBadCredentials, []string{
			"Kinesis refused the credentials from EnvConfigCredentials (UnrecognizedClientException): check the access key"}},
		{"KMS", 400, "KMSAccessDeniedException", CheckBadCredentials, []string{
			"the stream's KMS key refuses the credentials from EnvConfigCredentials (KMSAccessDeniedException): writing to it needs kms:GenerateDataKey"}},
		{"KMS key missing", 400, "KMSNotFoundException", CheckNotFound, []string{`the KMS key of stream "test-stream" was not found`}},
		{"server error", 500, "InternalFailure", CheckOther, []string{`describing stream "test-stream" failed (InternalFailure)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			srv := describeServer(t, "", func(w http.ResponseWriter) { writeError(w, tt.status, tt.code) })
			c := newTestClient(t, Options{Endpoint: srv.URL})
			_, err := c.Check(context.Background())
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check: %v, want a *CheckError", err)
			}
			if ce.Problem != tt.want {
				t.Errorf("problem %d, want %d: %v", ce.Problem, tt.want, err)
			}
			for _, m := range tt.wantMsgs {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message\n%s\nlacks\n%s", err, m)
				}
			}
			if strings.Contains(err.Error(), fakeSecret) {
				t.Errorf("message shows the secret key: %s", err)
			}
		})
	}
}

// TestCheckNoCredentials: without any credentials the check says which sources it tried, and sends
// nothing.
func TestCheckNoCredentials(t *testing.T) {
	isolateEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	srv := describeServer(t, "", func(w http.ResponseWriter) { t.Error("a request was sent without credentials") })
	c := newTestClient(t, Options{Endpoint: srv.URL})
	_, err := c.Check(context.Background())
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Problem != CheckNoCredentials {
		t.Fatalf("Check: %v, want CheckNoCredentials", err)
	}
	for _, m := range []string{
		"no AWS credentials (tried: environment (AWS_ACCESS_KEY_ID unset), profile \"default\" of the shared files (",
		"no-credentials missing", "no-config missing",
		"web identity (AWS_WEB_IDENTITY_TOKEN_FILE unset), container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI unset), " +
			"EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)",
	} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("message\n%s\nlacks\n%s", err, m)
		}
	}
}

// TestCheckAssumeRoleDenied: STS refusing AssumeRole is reported as such, with the action to allow.
func TestCheckAssumeRoleDenied(t *testing.T) {
	isolateEnv(t)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
			`<Code>AccessDenied</Code><Message>not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
	}))
	t.Cleanup(sts.Close)
	srv := describeServer(t, "", func(w http.ResponseWriter) { t.Error("a request was sent without credentials") })
	const role = "arn:aws:iam::123456789012:role/writer"
	c := newTestClient(t, Options{Endpoint: srv.URL, STSEndpoint: sts.URL, RoleARN: role, ExternalID: "very-secret-id"})
	_, err := c.Check(context.Background())
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Problem != CheckNoCredentials {
		t.Fatalf("Check: %v, want CheckNoCredentials", err)
	}
	if want := `not allowed to assume role "` + role + `": allow sts:AssumeRole on it`; !strings.Contains(err.Error(), want) {
		t.Errorf("message\n%s\nlacks\n%s", err, want)
	}
	if strings.Contains(err.Error(), "very-secret-id") {
		t.Errorf("message shows the external ID: %s", err)
	}
}

// blackhole is a listener on 127.0.0.1 that accepts connections and never answers. Close closes
// them all.
type blackhole struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newBlackhole(t *testing.T) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{Listener: l, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-b.done
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	return b
}

func (b *blackhole) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// TestCheckBounded: whatever does not answer (Kinesis, the instance metadata service, STS), the
// check returns within its bound, with the default 60 s HTTP timeout and either transport. The
// first case waits the whole CheckTimeout; the others a shortened one, to keep the test short.
func TestCheckBounded(t *testing.T) {
	const slack = time.Second
	for i, tt := range []struct {
		name  string
		setup func(t *testing.T, addr string) Options
	}{
		{"kinesis never answers", func(t *testing.T, addr string) Options {
			return Options{Endpoint: "http://" + addr}
		}},
		{"kinesis never answers, std transport", func(t *testing.T, addr string) Options {
			return Options{Endpoint: "http://" + addr, HTTPTransport: "std"}
		}},
		{"instance metadata never answers", func(t *testing.T, addr string) Options {
			t.Setenv("AWS_ACCESS_KEY_ID", "")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+addr)
			return Options{Endpoint: "http://127.0.0.1:1"}
		}},
		{"STS never answers", func(t *testing.T, addr string) Options {
			return Options{Endpoint: "http://127.0.0.1:1", STSEndpoint: "http://" + addr, RoleARN: "arn:aws:iam::123456789012:role/r"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			bound := CheckTimeout
			if i > 0 {
				bound = time.Second
				checkTimeout = bound
				t.Cleanup(func() { checkTimeout = CheckTimeout })
			}
			hole := newBlackhole(t)
			o := tt.setup(t, hole.Addr().String())
			o.HTTPTimeout = DefaultHTTPTimeout
			c := newTestClient(t, o)
			start := time.Now()
			_, err := c.Check(context.Background())
			took := time.Since(start)
			t.Logf("Check returned after %v: %v", took.Round(time.Millisecond), err)
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check: %v, want a *CheckError", err)
			}
			if took > bound+slack {
				t.Errorf("Check took %v, want at most %v", took, bound+slack)
			}
			if hole.accepted() == 0 {
				t.Error("the unanswering server got no connection: the check did not reach it")
			}
			if !strings.Contains(err.Error(), "after") && !strings.Contains(err.Error(), "within") {
				t.Errorf("message does not say how long it waited: %v", err)
			}
		})
	}
}
