package perf

import (
	"context"
	"strings"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// TestSink checks the benchmarks' sink with the real client over TLS, in both protocols: it
// answers success for every record, and counts what it received.
func TestSink(t *testing.T) {
	dir := t.TempDir()
	s := startSink(t, dir)
	for _, kv := range clientEnv(t, dir, s) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, protocol := range []string{kinesis.ProtocolJSON, kinesis.ProtocolCBOR} {
		t.Run(protocol, func(t *testing.T) { testSink(t, s, protocol) })
	}
}

func testSink(t *testing.T, s *sink, protocol string) {
	ctx := context.Background()
	before := s.stats(t)
	client, err := kinesis.New(ctx, kinesis.Options{Region: region, Stream: streamName, Endpoint: s.Endpoint, Protocol: protocol})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	entries := []kinesis.Entry{
		{Data: []byte("one\n"), PartitionKey: "a"},
		{Data: []byte(`{"PartitionKey": "data"}`), PartitionKey: "b"},
		{Data: []byte("three\n"), PartitionKey: "c", ExplicitHashKey: "1"},
	}
	res, err := client.PutRecords(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	if res.FailedCount != 0 || len(res.ErrorCodes) != 3 || res.ShardIDs[2] != "shardId-000000000000" {
		t.Errorf("result %+v, want 3 accepted records in shardId-000000000000", res)
	}
	st := s.stats(t).sub(before)
	if st.Requests != 1 || st.Records != 3 || st.Bytes < 100 {
		t.Errorf("sink stats %+v, want 1 request of 3 records", st)
	}
}
