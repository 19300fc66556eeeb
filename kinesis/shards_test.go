package kinesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl/kpltest"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// listShardsServer is an httptest server speaking Kinesis JSON 1.1 for ListShards: it serves
// pages of shards, chained by NextToken, and records the requests.
type listShardsServer struct {
	pages   [][]types.Shard
	failure string // when set, an error code to answer every request with

	mu       sync.Mutex
	requests []listShardsRequest
}

type listShardsRequest struct {
	Target     string
	StreamName *string
	StreamARN  *string
	NextToken  *string
	MaxResults *int
}

func (s *listShardsServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req listShardsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Target = r.Header.Get("X-Amz-Target")
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if req.Target != "Kinesis_20131202.ListShards" {
		writeError(w, http.StatusBadRequest, "UnknownOperationException")
		return
	}
	if s.failure != "" {
		writeError(w, http.StatusBadRequest, s.failure)
		return
	}
	page := 0
	if req.NextToken != nil {
		if req.StreamName != nil || req.StreamARN != nil {
			// As Kinesis: a stream and a token together are refused.
			writeError(w, http.StatusBadRequest, "InvalidArgumentException")
			return
		}
		if _, err := fmt.Sscanf(*req.NextToken, "page-%d", &page); err != nil || page <= 0 || page >= len(s.pages) {
			writeError(w, http.StatusBadRequest, "ExpiredNextTokenException")
			return
		}
	}
	type hashKeyRange struct{ StartingHashKey, EndingHashKey string }
	type seqRange struct {
		StartingSequenceNumber string
		EndingSequenceNumber   string `json:",omitempty"`
	}
	type jsonShard struct {
		ShardId             string
		HashKeyRange        hashKeyRange
		SequenceNumberRange seqRange
	}
	out := struct {
		Shards    []jsonShard
		NextToken string `json:",omitempty"`
	}{Shards: []jsonShard{}}
	for _, sh := range s.pages[page] {
		out.Shards = append(out.Shards, jsonShard{
			ShardId:      aws.ToString(sh.ShardId),
			HashKeyRange: hashKeyRange{aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)},
			SequenceNumberRange: seqRange{
				aws.ToString(sh.SequenceNumberRange.StartingSequenceNumber),
				aws.ToString(sh.SequenceNumberRange.EndingSequenceNumber),
			},
		})
	}
	if page+1 < len(s.pages) {
		out.NextToken = fmt.Sprintf("page-%d", page+1)
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(b)
}

func (s *listShardsServer) recorded() []listShardsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]listShardsRequest(nil), s.requests...)
}

func newListShardsServer(t *testing.T, s *listShardsServer) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestListShards(t *testing.T) {
	isolateEnv(t)
	// A stream of 4 shards, two of which were merged into shard 4 (their parents are closed),
	// listed over 3 pages.
	merged := kpltest.Shard("shardId-000000000004", "85070591730234615865843651857942052864", "255211775190703847597530955573826158591")
	pages := [][]types.Shard{
		{kpltest.FourShards[0], kpltest.Closed(kpltest.FourShards[1])},
		{kpltest.Closed(kpltest.FourShards[2]), kpltest.FourShards[3]},
		{merged},
	}
	const arn = "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream"
	for _, stream := range []string{"my-stream", arn} {
		t.Run(stream, func(t *testing.T) {
			s := &listShardsServer{pages: pages}
			c := newTestClient(t, Options{Endpoint: newListShardsServer(t, s), Stream: stream})
			m, err := c.ListShards(context.Background())
			if err != nil {
				t.Fatalf("ListShards: %v", err)
			}
			var ids []string
			for i := range m.Len() {
				ids = append(ids, m.Shard(i).ID)
			}
			want := []string{"shardId-000000000000", "shardId-000000000004", "shardId-000000000003"}
			if !slices.Equal(ids, want) {
				t.Fatalf("open shards = %q, want %q", ids, want)
			}
			// "c" (4a...) and "b" (92...) were in shards 1 and 2, now both in shard 4.
			for key, want := range map[string]string{"a": "shardId-000000000000", "c": "shardId-000000000004",
				"b": "shardId-000000000004", "pod-1": "shardId-000000000003"} {
				if got := m.Shard(m.Lookup(key)).ID; got != want {
					t.Errorf("Lookup(%q) = %s, want %s", key, got, want)
				}
			}

			reqs := s.recorded()
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for i, r := range reqs {
				if r.Target != "Kinesis_20131202.ListShards" {
					t.Errorf("request %d: X-Amz-Target = %q", i, r.Target)
				}
				if r.MaxResults == nil || *r.MaxResults != listShardsPageSize {
					t.Errorf("request %d: MaxResults = %v", i, r.MaxResults)
				}
				if i == 0 {
					name, gotARN := aws.ToString(r.StreamName), aws.ToString(r.StreamARN)
					if (stream == arn && (gotARN != arn || name != "")) || (stream != arn && (name != stream || gotARN != "")) {
						t.Errorf("request 0: StreamName %q, StreamARN %q, want the stream %q", name, gotARN, stream)
					}
					if r.NextToken != nil {
						t.Errorf("request 0: NextToken %q", *r.NextToken)
					}
					continue
				}
				if want := fmt.Sprintf("page-%d", i); aws.ToString(r.NextToken) != want || r.StreamName != nil || r.StreamARN != nil {
					t.Errorf("request %d: NextToken %v, StreamName %v, StreamARN %v; want only NextToken %s",
						i, aws.ToString(r.NextToken), r.StreamName, r.StreamARN, want)
				}
			}
		})
	}
}

func TestListShardsErrors(t *testing.T) {
	isolateEnv(t)
	tests := []struct {
		name         string
		server       *listShardsServer
		accessDenied bool
		is           error
	}{
		{"access denied", &listShardsServer{failure: "AccessDeniedException"}, true, nil},
		{"not found", &listShardsServer{failure: "ResourceNotFoundException"}, false, nil},
		{"throttled", &listShardsServer{failure: "LimitExceededException"}, false, nil},
		{"inconsistent", &listShardsServer{pages: [][]types.Shard{{kpltest.FourShards[0], kpltest.FourShards[2], kpltest.FourShards[3]}}}, false, kpl.ErrShardMap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, Options{Endpoint: newListShardsServer(t, tc.server)})
			m, err := c.ListShards(context.Background())
			if err == nil {
				t.Fatalf("ListShards = %v, want an error", m)
			}
			if got := IsAccessDenied(err); got != tc.accessDenied {
				t.Errorf("IsAccessDenied(%v) = %v, want %v", err, got, tc.accessDenied)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if tc.server.failure != "" && !strings.Contains(err.Error(), tc.server.failure) {
				t.Errorf("error %q does not name %s", err, tc.server.failure)
			}
		})
	}
	if IsAccessDenied(nil) || IsAccessDenied(errors.New("AccessDeniedException")) {
		t.Error("IsAccessDenied is true for an error that is not an API error")
	}
}

// scriptedLister answers ListShards from a list of outputs, for the pagination's edge cases.
type scriptedLister struct {
	outs  []*kinesissdk.ListShardsOutput
	calls int
}

func (l *scriptedLister) ListShards(_ context.Context, _ *kinesissdk.ListShardsInput, _ ...func(*kinesissdk.Options)) (*kinesissdk.ListShardsOutput, error) {
	out := l.outs[min(l.calls, len(l.outs)-1)]
	l.calls++
	return out, nil
}

func TestListShardsPaginationBounded(t *testing.T) {
	t.Parallel()
	same := &scriptedLister{outs: []*kinesissdk.ListShardsOutput{{NextToken: aws.String("t1")}, {NextToken: aws.String("t1")}}}
	if _, err := listShards(context.Background(), same, aws.String("s"), nil); err == nil || !strings.Contains(err.Error(), "same NextToken") {
		t.Fatalf("a repeated token: %v", err)
	}
	n := 0
	endless := &scriptedLister{}
	for range maxListShardsPages + 5 {
		n++
		endless.outs = append(endless.outs, &kinesissdk.ListShardsOutput{NextToken: aws.String(fmt.Sprint("t", n))})
	}
	if _, err := listShards(context.Background(), endless, aws.String("s"), nil); err == nil || endless.calls != maxListShardsPages {
		t.Fatalf("endless pages: %v after %d calls", err, endless.calls)
	}
}

func TestListShardsUnsupported(t *testing.T) {
	t.Parallel()
	c := &Client{api: putOnly{}}
	if _, err := c.ListShards(context.Background()); !errors.Is(err, ErrListShardsUnsupported) {
		t.Fatalf("ListShards = %v, want ErrListShardsUnsupported", err)
	}
}

type putOnly struct{}

func (putOnly) PutRecords(context.Context, *kinesissdk.PutRecordsInput, ...func(*kinesissdk.Options)) (*kinesissdk.PutRecordsOutput, error) {
	return nil, errors.New("not used")
}
