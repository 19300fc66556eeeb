package kinesis

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/transport"
)

// TestHTTPTransportMode: Options.HTTPTransport, else the environment variable, selects the HTTP
// transport; an invalid value fails New with an error that names where it came from and the
// values allowed; a client of either mode delivers its records.
func TestHTTPTransportMode(t *testing.T) {
	isolateEnv(t)
	for _, tt := range []struct {
		name        string
		env, option string
		unset       bool // the environment variable is unset, not empty
		want        transport.Mode
		wantErr     string
	}{
		{name: "unset", unset: true, want: transport.ModeSync},
		{name: "empty", want: transport.ModeSync},
		{name: "env sync", env: "sync", want: transport.ModeSync},
		{name: "env std", env: "std", want: transport.ModeStd},
		{name: "option std", option: "std", want: transport.ModeStd},
		{name: "option over env", env: "std", option: "sync", want: transport.ModeSync},
		{name: "env invalid", env: "fast", wantErr: `kinesis: transport: invalid KINESIS_STREAMS_GO_HTTP_TRANSPORT value "fast": want sync or std`},
		{name: "env case", env: "STD", wantErr: `invalid KINESIS_STREAMS_GO_HTTP_TRANSPORT value "STD": want sync or std`},
		{name: "option invalid", env: "std", option: "net/http", wantErr: `kinesis: transport: invalid HTTP transport "net/http": want sync or std`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(transport.ModeEnv, tt.env)
			if tt.unset {
				os.Unsetenv(transport.ModeEnv)
			}
			fake := newFakeKinesis(t, nil)
			c, err := New(context.Background(), Options{
				Region: "us-east-1", Stream: "s", Endpoint: fake.URL, HTTPTransport: tt.option,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(c.Close)
			if got := c.http.(*transport.Transport).Mode(); got != tt.want {
				t.Errorf("mode %q, want %q", got, tt.want)
			}
			data := "record through " + string(tt.want)
			if _, err := c.PutRecords(context.Background(), []Entry{{Data: []byte(data), PartitionKey: "k"}}); err != nil {
				t.Fatalf("PutRecords: %v", err)
			}
			got := fake.recorded()
			if len(got) != 1 || len(got[0].Records) != 1 || string(got[0].Records[0].Data) != data {
				t.Errorf("the server received %+v, want one record %q", got, data)
			}
		})
	}
}
