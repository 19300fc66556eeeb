package kinesis

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Four shards of equal size, as CreateStream makes them: the two top bits of a key's MD5 pick
// its shard. Bounds computed by hand: 2^126 = 85070591730234615865843651857942052864.
var fourShards = []types.Shard{
	testShard("shardId-000000000000", "0", "85070591730234615865843651857942052863"),
	testShard("shardId-000000000001", "85070591730234615865843651857942052864", "170141183460469231731687303715884105727"),
	testShard("shardId-000000000002", "170141183460469231731687303715884105728", "255211775190703847597530955573826158591"),
	testShard("shardId-000000000003", "255211775190703847597530955573826158592", "340282366920938463463374607431768211455"),
}

func testShard(id, start, end string) types.Shard {
	return types.Shard{
		ShardId:             aws.String(id),
		HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(start), EndingHashKey: aws.String(end)},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("49590338271490256608559692538361571095921575989136588898")},
	}
}

func closedShard(s types.Shard) types.Shard {
	s.SequenceNumberRange = &types.SequenceNumberRange{
		StartingSequenceNumber: s.SequenceNumberRange.StartingSequenceNumber,
		EndingSequenceNumber:   aws.String("49590338271512557353758223161503106814194224350642569250"),
	}
	return s
}

func TestShardMapMD5(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(fourShards)
	if err != nil {
		t.Fatal(err)
	}
	// The MD5s are from `printf %s KEY | md5sum`; the shard is given by the first hex digit:
	// 0-3, 4-7, 8-b, c-f.
	tests := []struct {
		key   string
		md5   string
		shard int
	}{
		{"a", "0cc175b9c0f1b6a831c399e269772661", 0},
		{"orders-api-7d9f8b6c5d-x0001", "366062310d8efd95b3081e713abe2f0a", 0},
		{"c", "4a8a08f09d37b73795649038408b5f33", 1},
		{"hello", "5d41402abc4b2a76b9719d911017c592", 1},
		{"user-42", "7631bc07a1cc8fcd56e70fc6b2fb4a43", 1},
		{"b", "92eb5ffee6ae2fec3ad71c777531578f", 2},
		{"ключ", "c3657b66c60a307292aae11f07b04ae7", 3},
		{"kinesis", "d172f15a95c6dec778ba931c14ff15c1", 3},
		{"pod-1", "de16c61dbb0014fbd57222b320cc0f2f", 3},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprintf("%x", md5.Sum([]byte(tc.key))); got != tc.md5 {
				t.Fatalf("md5(%q) = %s, the table says %s", tc.key, got, tc.md5)
			}
			hi, lo := HashKeyOf(tc.key)
			if got := fmt.Sprintf("%016x%016x", hi, lo); got != tc.md5 {
				t.Fatalf("HashKeyOf(%q) = %s, want %s", tc.key, got, tc.md5)
			}
			if got := m.Lookup(tc.key); got != tc.shard {
				t.Fatalf("Lookup(%q) = %d, want %d", tc.key, got, tc.shard)
			}
		})
	}
	if m.Len() != 4 {
		t.Fatalf("Len() = %d", m.Len())
	}
	s := m.Shard(2)
	if s.ID != "shardId-000000000002" || s.ExplicitHashKey() != "170141183460469231731687303715884105728" ||
		s.EndingHashKey != "255211775190703847597530955573826158591" {
		t.Fatalf("Shard(2) = %+v", s)
	}
}

// TestShardMapBoundaries looks up the first and last hash key of every shard, and their
// neighbours.
func TestShardMapBoundaries(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(fourShards)
	if err != nil {
		t.Fatal(err)
	}
	const q = uint64(1) << 62 // 2^126 is hi = 2^62
	max := ^uint64(0)
	tests := []struct {
		name string
		h    hashKey
		want int
	}{
		{"zero", hashKey{0, 0}, 0},
		{"end of 0", hashKey{q - 1, max}, 0},
		{"start of 1", hashKey{q, 0}, 1},
		{"end of 1", hashKey{2*q - 1, max}, 1},
		{"start of 2", hashKey{2 * q, 0}, 2},
		{"start of 2 + 1", hashKey{2 * q, 1}, 2},
		{"end of 2", hashKey{3*q - 1, max}, 2},
		{"start of 3", hashKey{3 * q, 0}, 3},
		{"max", hashKey{max, max}, 3},
	}
	for _, tc := range tests {
		if got := m.lookupHash(tc.h); got != tc.want {
			t.Errorf("%s: lookupHash(%x %x) = %d, want %d", tc.name, tc.h.hi, tc.h.lo, got, tc.want)
		}
	}
}

// bigOf is a hash key as a big.Int, from its two halves.
func bigOf(hi, lo uint64) *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return new(big.Int).SetBytes(b[:])
}

// TestShardMapRandom checks Lookup against math/big on a stream resharded into uneven shards,
// listed in no particular order, closed parents included.
func TestShardMapRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	cuts := []*big.Int{big.NewInt(0)}
	for range 8 {
		cuts = append(cuts, bigOf(rng.Uint64(), rng.Uint64()))
	}
	slices.SortFunc(cuts, (*big.Int).Cmp)
	one := big.NewInt(1)
	var shards []types.Shard
	var starts []*big.Int
	for i, c := range cuts {
		end := new(big.Int).Sub(new(big.Int).Lsh(one, 128), one)
		if i+1 < len(cuts) {
			end = new(big.Int).Sub(cuts[i+1], one)
		}
		shards = append(shards, testShard(fmt.Sprintf("shardId-%012d", 10+i), c.String(), end.String()))
		starts = append(starts, c)
	}
	// A closed parent covering everything, and the children in reverse order.
	all := []types.Shard{closedShard(testShard("shardId-000000000000", "0", "340282366920938463463374607431768211455"))}
	for i := len(shards) - 1; i >= 0; i-- {
		all = append(all, shards[i])
	}
	m, err := NewShardMap(all)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(shards) {
		t.Fatalf("Len() = %d, want %d", m.Len(), len(shards))
	}
	for i := range shards {
		if got, want := m.Shard(i).ID, aws.ToString(shards[i].ShardId); got != want {
			t.Fatalf("Shard(%d) = %s, want %s", i, got, want)
		}
	}
	for i := range 20000 {
		key := fmt.Sprintf("key-%d-%d", i, rng.Uint32())
		sum := md5.Sum([]byte(key))
		h := new(big.Int).SetBytes(sum[:])
		want := 0
		for j, s := range starts {
			if h.Cmp(s) >= 0 {
				want = j
			}
		}
		if got := m.Lookup(key); got != want {
			t.Fatalf("Lookup(%q) = %d, want %d (hash %s)", key, got, want, h)
		}
	}
}

func TestNewShardMapErrors(t *testing.T) {
	t.Parallel()
	const (
		half   = "170141183460469231731687303715884105728" // 2^127
		half1  = "170141183460469231731687303715884105727"
		max    = "340282366920938463463374607431768211455"
		tooBig = "340282366920938463463374607431768211456"
	)
	tests := []struct {
		name   string
		shards []types.Shard
		want   string
	}{
		{"none", nil, "no open shard"},
		{"only closed", []types.Shard{closedShard(testShard("s0", "0", max))}, "no open shard"},
		{"gap", []types.Shard{testShard("s0", "0", "100"), testShard("s1", "102", max)}, `"s1" starting at 102 leaves a gap`},
		{"overlap", []types.Shard{testShard("s0", "0", half), testShard("s1", half1, max)}, `"s1" starting at 170141183460469231731687303715884105727 overlaps`},
		{"duplicate", []types.Shard{testShard("s0", "0", max), testShard("s1", "0", max)}, "overlaps"},
		{"short of the top", []types.Shard{testShard("s0", "0", half1)}, "below 2^128-1"},
		{"not from zero", []types.Shard{testShard("s0", "1", max)}, "leaves a gap"},
		{"beyond 2^128-1", []types.Shard{testShard("s0", "0", tooBig)}, "not an integer from 0 to 2^128-1"},
		{"negative", []types.Shard{testShard("s0", "-1", max)}, "not an integer"},
		{"not a number", []types.Shard{testShard("s0", "0x0", max)}, "not an integer"},
		{"empty range", []types.Shard{testShard("s0", "0", half), testShard("s1", max, half)}, "is empty"},
		{"no range", []types.Shard{{ShardId: aws.String("s0")}}, "without an ID or a hash key range"},
		{"no id", []types.Shard{testShard("", "0", max)}, "without an ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewShardMap(tc.shards)
			if !errors.Is(err, ErrShardMap) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewShardMap = %v, %v; want ErrShardMap with %q", m, err, tc.want)
			}
		})
	}
}

func TestNewShardMapCanonical(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap([]types.Shard{
		testShard("s1", "0170141183460469231731687303715884105728", "340282366920938463463374607431768211455"),
		testShard("s0", "000", "170141183460469231731687303715884105727"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Shard(0); s.ID != "s0" || s.StartingHashKey != "0" || s.ExplicitHashKey() != "0" {
		t.Fatalf("Shard(0) = %+v", s)
	}
	if s := m.Shard(1); s.ID != "s1" || s.ExplicitHashKey() != "170141183460469231731687303715884105728" {
		t.Fatalf("Shard(1) = %+v", s)
	}
}

// TestExplicitHashKeyInRange: a record sent with a shard's ExplicitHashKey lands in that shard.
func TestExplicitHashKeyInRange(t *testing.T) {
	t.Parallel()
	m, err := NewShardMap(fourShards)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Len() {
		h, _, err := parseHashKey(m.Shard(i).ExplicitHashKey())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.lookupHash(h); got != i {
			t.Errorf("shard %d's ExplicitHashKey %s maps to shard %d", i, m.Shard(i).ExplicitHashKey(), got)
		}
	}
}

func TestShardMapLookupAllocs(t *testing.T) {
	m, err := NewShardMap(fourShards)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "orders-api-7d9f8b6c5d-x0001", strings.Repeat("键", MaxPartitionKeyLen)}
	n := 0
	if allocs := testing.AllocsPerRun(100, func() {
		for _, k := range keys {
			n += m.Lookup(k)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per %d lookups, want 0", allocs, len(keys))
	}
}

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
	merged := testShard("shardId-000000000004", "85070591730234615865843651857942052864", "255211775190703847597530955573826158591")
	pages := [][]types.Shard{
		{fourShards[0], closedShard(fourShards[1])},
		{closedShard(fourShards[2]), fourShards[3]},
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
		{"inconsistent", &listShardsServer{pages: [][]types.Shard{{fourShards[0], fourShards[2], fourShards[3]}}}, false, ErrShardMap},
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

func BenchmarkShardMapLookup(b *testing.B) {
	shards := make([]types.Shard, 0, 64)
	step := new(big.Int).Lsh(big.NewInt(1), 122) // 64 equal shards
	for i := range 64 {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		shards = append(shards, testShard(fmt.Sprintf("shardId-%012d", i), start.String(), end.String()))
	}
	m, err := NewShardMap(shards)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("orders-api-7d9f8b6c5d-x%04d", i)
	}
	size := 0
	for _, k := range keys {
		size += len(k)
	}
	b.Run("shards=64/keys=1000", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size)) // partition key bytes hashed
		n := 0
		for b.Loop() {
			for _, k := range keys {
				n += m.Lookup(k)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/lookup")
	})
}
