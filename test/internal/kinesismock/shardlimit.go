package kinesismock

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"time"
)

// Kinesis's write limits per shard (Kinesis Data Streams quotas): 1,000 records and 1 MiB a
// second.
const (
	ShardRecordsPerSecond = 1000
	ShardBytesPerSecond   = 1 << 20
)

// ShardLimits configure a ShardProxy.
type ShardLimits struct {
	// Latency is the least time from a PutRecords request's arrival to its answer, as Kinesis
	// answers in tens of milliseconds.
	Latency time.Duration
	// RecordsPerSecond and BytesPerSecond are each shard's limits; 0 means Kinesis's.
	RecordsPerSecond int
	BytesPerSecond   int
	// Store keeps the accepted records in the proxy (see Records) instead of forwarding them to
	// kinesis-mock, for loads kinesis-mock cannot take: it stores a few hundred records a second
	// on a busy machine, where four shards take 4,000.
	Store bool
}

// ShardProxy is an HTTP server on 127.0.0.1 in front of a Server that applies Kinesis's write
// limits per shard to PutRecords, as Kinesis does under load. Each shard has a token bucket of
// RecordsPerSecond records and BytesPerSecond bytes (data + partition key) a second, holding at most
// a second's worth, full at first. A record goes to the shard whose hash key range holds its
// ExplicitHashKey, or else the MD5 of its partition key, among the stream's open shards (listed
// from kinesis-mock at the stream's first PutRecords). A record its shard has no tokens for is
// answered ProvisionedThroughputExceededException, the others are accepted (forwarded to
// kinesis-mock, or stored), and the answers spliced back in order.
//
// Assumption: once a shard throttles a record of a request, it throttles that shard's later
// records in the request too, even if a later one is small enough for the tokens left: Kinesis
// does not document the order in which it charges a request's records, and this keeps a key's
// accepted records a prefix of its records in the request.
//
// Other calls (ListShards, CreateStream...) are passed through.
type ShardProxy struct {
	// URL is the endpoint to give the plugin, http://127.0.0.1:PORT.
	URL string

	server *Server
	limits ShardLimits
	client *http.Client
	srv    *httptest.Server
	pass   *httputil.ReverseProxy

	mu       sync.Mutex
	shards   map[string][]ShardRange // by stream
	buckets  map[string]*tokenBucket // by stream and shard ID
	stats    ShardStats
	accepted []Accepted
	seq      int64
}

// ShardStats count what a ShardProxy did with PutRecords.
type ShardStats struct {
	Requests          int // PutRecords requests
	ThrottledRequests int // requests with at least one record throttled
	Records           int // records in them
	Accepted          int // records accepted
	Throttled         int // records throttled
	// FirstRequest and LastAccepted bound the time records flowed.
	FirstRequest, LastAccepted time.Time
}

// Accepted is a record the proxy accepted.
type Accepted struct {
	Stream, Shard, PartitionKey string
	Data                        []byte
}

type tokenBucket struct {
	records, bytes float64
	at             time.Time
}

// NewShardProxy starts a ShardProxy in front of s.
func (s *Server) NewShardProxy(l ShardLimits) (*ShardProxy, error) {
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	if l.RecordsPerSecond <= 0 {
		l.RecordsPerSecond = ShardRecordsPerSecond
	}
	if l.BytesPerSecond <= 0 {
		l.BytesPerSecond = ShardBytesPerSecond
	}
	p := &ShardProxy{
		server:  s,
		limits:  l,
		client:  &http.Client{Timeout: requestTimeout},
		pass:    &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }},
		shards:  map[string][]ShardRange{},
		buckets: map[string]*tokenBucket{},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy, and closes its connections.
func (p *ShardProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// Stats returns the counters so far.
func (p *ShardProxy) Stats() ShardStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Accepted returns every record the proxy accepted, in the order it accepted them (forwarded or
// stored).
func (p *ShardProxy) Accepted() []Accepted {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Accepted(nil), p.accepted...)
}

// Records returns the records the proxy stored for stream, shard by shard (sorted by shard ID),
// in the order it accepted them within a shard, as ReadAll reads a stream.
func (p *ShardProxy) Records(stream string) []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var recs []Record
	for i, a := range p.accepted {
		if a.Stream == stream {
			recs = append(recs, Record{ShardID: a.Shard, SequenceNumber: fmt.Sprintf("%056d", i), PartitionKey: a.PartitionKey, Data: a.Data})
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].ShardID < recs[j].ShardID })
	return recs
}

// Capacity returns how many records stream's shards could have accepted from the first request
// until the last record accepted: a second's worth each at first, then RecordsPerSecond each.
func (p *ShardProxy) Capacity(stream string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := float64(len(p.shards[stream]))
	window := p.stats.LastAccepted.Sub(p.stats.FirstRequest).Seconds()
	return n * float64(p.limits.RecordsPerSecond) * (1 + max(window, 0))
}

func (p *ShardProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != putRecordsTarget {
		p.pass.ServeHTTP(w, r)
		return
	}
	arrived := time.Now()
	var in putRecordsIn
	inCBOR, ok := readPutRecords(w, r, &in)
	if !ok {
		return
	}
	ranges, err := p.shardRanges(r.Context(), in.StreamName)
	if err != nil {
		writeAPIError(w, http.StatusBadGateway, "ProxyError", err.Error(), inCBOR)
		return
	}
	out, fwd, idx, stored, err := p.decide(&in, ranges, arrived)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidArgumentException", err.Error(), inCBOR)
		return
	}
	if !p.limits.Store && len(fwd.Records) > 0 {
		res, status, raw, err := forwardPut(r.Context(), p.client, p.server.Endpoint, r, fwd)
		if err != nil {
			writeAPIError(w, http.StatusBadGateway, "ProxyError", err.Error(), inCBOR)
			return
		}
		if status != http.StatusOK || len(res.Records) != len(idx) {
			writeAPIError(w, http.StatusBadGateway, "ProxyError", fmt.Sprintf("kinesis-mock answered %d: %q", status, raw), inCBOR)
			return
		}
		for k, i := range idx {
			out.Records[i] = res.Records[k]
			if res.Records[k].ErrorCode != "" {
				out.FailedRecordCount++
			}
		}
		p.record(stored, res.Records)
	}
	time.Sleep(time.Until(arrived.Add(p.limits.Latency)))
	writePutRecords(w, out, inCBOR)
}

// shardRanges returns the open shards of stream, listed from kinesis-mock once.
func (p *ShardProxy) shardRanges(ctx context.Context, stream string) ([]ShardRange, error) {
	p.mu.Lock()
	ranges, ok := p.shards[stream]
	p.mu.Unlock()
	if ok {
		return ranges, nil
	}
	ranges, err := p.server.ShardRanges(ctx, stream)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.shards[stream] = ranges
	p.mu.Unlock()
	return ranges, nil
}

// decide charges each record of in to its shard, in order: out holds the throttled records'
// answers (and, when storing, the accepted ones'); fwd holds the records to forward to
// kinesis-mock, idx their places in in, and stored what to log once kinesis-mock accepts them.
func (p *ShardProxy) decide(in *putRecordsIn, ranges []ShardRange, now time.Time) (out putRecordsOut, fwd *putRecordsIn, idx []int, stored []Accepted, err error) {
	out.Records = make([]putRecordsResult, len(in.Records))
	fwd = &putRecordsIn{StreamName: in.StreamName, StreamARN: in.StreamARN}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats.FirstRequest.IsZero() {
		p.stats.FirstRequest = now
	}
	p.stats.Requests++
	p.stats.Records += len(in.Records)
	over := map[string]bool{}
	throttled := false
	for i, rec := range in.Records {
		data, err := base64.StdEncoding.DecodeString(rec.Data)
		if err != nil {
			return out, nil, nil, nil, fmt.Errorf("record %d: data is not base64: %v", i, err)
		}
		h := HashKey(rec.PartitionKey)
		if rec.ExplicitHashKey != "" {
			var ok bool
			if h, ok = new(big.Int).SetString(rec.ExplicitHashKey, 10); !ok {
				return out, nil, nil, nil, fmt.Errorf("record %d: explicit hash key %q is not a decimal integer", i, rec.ExplicitHashKey)
			}
		}
		shard := ShardOf(ranges, h)
		if shard == "" {
			return out, nil, nil, nil, fmt.Errorf("record %d: hash key %v in no open shard", i, h)
		}
		size := float64(len(data) + len(rec.PartitionKey))
		b := p.bucket(in.StreamName+"/"+shard, now)
		if over[shard] || b.records < 1 || b.bytes < size {
			over[shard], throttled = true, true
			out.Records[i] = putRecordsResult{ErrorCode: "ProvisionedThroughputExceededException",
				ErrorMessage: fmt.Sprintf("Rate exceeded for shard %s in stream %s under account 000000000000.", shard, in.StreamName)}
			out.FailedRecordCount++
			p.stats.Throttled++
			continue
		}
		b.records--
		b.bytes -= size
		a := Accepted{Stream: in.StreamName, Shard: shard, PartitionKey: rec.PartitionKey, Data: data}
		if p.limits.Store {
			p.seq++
			out.Records[i] = putRecordsResult{SequenceNumber: fmt.Sprintf("%056d", p.seq), ShardId: shard}
			p.accepted = append(p.accepted, a)
			p.stats.Accepted++
			p.stats.LastAccepted = now
			continue
		}
		fwd.Records = append(fwd.Records, rec)
		idx = append(idx, i)
		stored = append(stored, a)
	}
	if throttled {
		p.stats.ThrottledRequests++
	}
	return out, fwd, idx, stored, nil
}

// record logs the forwarded records kinesis-mock accepted.
func (p *ShardProxy) record(stored []Accepted, res []putRecordsResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, a := range stored {
		if res[k].ErrorCode != "" {
			continue
		}
		p.accepted = append(p.accepted, a)
		p.stats.Accepted++
		p.stats.LastAccepted = time.Now()
	}
}

// bucket returns the token bucket of a shard, refilled until now.
func (p *ShardProxy) bucket(key string, now time.Time) *tokenBucket {
	rate, bytes := float64(p.limits.RecordsPerSecond), float64(p.limits.BytesPerSecond)
	b := p.buckets[key]
	if b == nil {
		b = &tokenBucket{records: rate, bytes: bytes, at: now}
		p.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.records = min(rate, b.records+dt*rate)
		b.bytes = min(bytes, b.bytes+dt*bytes)
		b.at = now
	}
	return b
}
