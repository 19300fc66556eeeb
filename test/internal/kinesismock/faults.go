package kinesismock

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// Faults are what a FaultProxy does wrong, each decided with its seeded PRNG.
// Every fault but a record failure concerns a whole PutRecords request; a
// faulty request is never forwarded to kinesis-mock, so the plugin's view of
// what was stored is never wrong: none of these faults can make a duplicate.
type Faults struct {
	Seed uint64
	// RecordFail is the chance that a record is answered
	// ProvisionedThroughputExceededException (and not forwarded); the others
	// of its request are forwarded, and the answers spliced back in order.
	RecordFail float64
	// HTTP500 is the chance that a request is answered 500 InternalFailure.
	HTTP500 float64
	// Reset is the chance that a request's connection is reset (closed with
	// RST) instead of answered.
	Reset float64
	// Delay is the chance that a request gets no answer until the client
	// gives up, for at most DelayMax (then a 503): set the plugin's
	// http_request_timeout below DelayMax.
	Delay    float64
	DelayMax time.Duration
	// Force makes the n-th PutRecords request (from 1) fail as given,
	// whatever the PRNG says: so that a short run has every fault.
	Force map[int]Fault
	// DownAfter and DownFor make the proxy fully down (every request answered
	// 503 or reset, half and half) for DownFor after its DownAfter-th
	// PutRecords request.
	DownAfter int
	DownFor   time.Duration
	// Latency delays every PutRecords request this long before it is
	// handled as the other fields say: a slow endpoint, so that requests are
	// in flight for a while. A request whose client gives up meanwhile is
	// dropped unanswered.
	Latency time.Duration
	// AmbiguousAfter: a forwarded request answered later than this after it
	// arrived (or after its client went away) is counted as ambiguous: the
	// client may have given up and will send its records again, though
	// kinesis-mock stored them. 0 means 2 s.
	AmbiguousAfter time.Duration
}

// FaultStats count what a FaultProxy did.
type FaultStats struct {
	Requests         int // PutRecords requests received
	Records          int // records in them
	Forwarded        int // requests forwarded to kinesis-mock
	ForwardedRecords int // records in them
	Accepted         int // records kinesis-mock accepted
	MockFailed       int // records kinesis-mock itself failed
	FailedRecords    int // records the proxy answered as throttled
	HTTP500          int // requests answered 500
	Resets           int // connections reset
	Delays           int // requests left unanswered until the client gave up
	Down             int // requests refused while down
	Ambiguous        int // forwarded requests whose answer the client may not have had
	AmbiguousRecords int // records kinesis-mock accepted in them
	MaxInFlight      int // most PutRecords requests being handled at once
}

// FaultProxy is an HTTP server on 127.0.0.1 in front of a Server that
// speaks Kinesis JSON 1.1 and injects Faults into PutRecords. It counts every
// request and every payload kinesis-mock accepted through it. Other calls are
// passed through.
type FaultProxy struct {
	// URL is the endpoint to give the plugin, http://127.0.0.1:PORT.
	URL string

	target string
	client *http.Client
	srv    *httptest.Server
	pass   *httputil.ReverseProxy

	mu        sync.Mutex
	faults    Faults
	rng       *rand.Rand
	downUntil time.Time
	stats     FaultStats
	inFlight  int            // PutRecords requests being handled
	accepted  map[string]int // payload: times kinesis-mock accepted it
	ambiguous map[string]int // payload: times accepted in an ambiguous request
}

// NewFaultProxy starts a FaultProxy in front of s.
func (s *Server) NewFaultProxy(f Faults) (*FaultProxy, error) {
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	if f.AmbiguousAfter <= 0 {
		f.AmbiguousAfter = 2 * time.Second
	}
	p := &FaultProxy{
		target:    s.Endpoint,
		client:    &http.Client{Timeout: requestTimeout},
		pass:      &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }},
		faults:    f,
		rng:       rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)),
		accepted:  make(map[string]int),
		ambiguous: make(map[string]int),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy, and closes its connections.
func (p *FaultProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// SetFaults replaces the faults (the PRNG and the counters go on).
func (p *FaultProxy) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.AmbiguousAfter <= 0 {
		f.AmbiguousAfter = 2 * time.Second
	}
	p.faults = f
}

// Stats returns the counters so far.
func (p *FaultProxy) Stats() FaultStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Accepted returns, per payload, how many times kinesis-mock accepted it
// through the proxy.
func (p *FaultProxy) Accepted() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.accepted)
}

// Ambiguous returns, per payload, how many times kinesis-mock accepted it in
// a request whose answer the client may not have had.
func (p *FaultProxy) Ambiguous() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return clone(p.ambiguous)
}

func clone(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Fault is what goes wrong with a whole request.
type Fault int

// Faults of a request (see Faults).
const (
	faultNone Fault = iota
	FaultHTTP500
	FaultReset
	FaultDelay
	faultDown
)

// putRecordsIn is a PutRecords request; Data is base64, as JSON carries it.
type putRecordsIn struct {
	Records    []putRecordsEntry
	StreamName string `json:",omitempty"`
	StreamARN  string `json:",omitempty"`
}

type putRecordsEntry struct {
	Data            string
	PartitionKey    string
	ExplicitHashKey string `json:",omitempty"`
}

type putRecordsResult struct {
	SequenceNumber string `json:",omitempty"`
	ShardId        string `json:",omitempty"`
	ErrorCode      string `json:",omitempty"`
	ErrorMessage   string `json:",omitempty"`
}

type putRecordsOut struct {
	FailedRecordCount int
	Records           []putRecordsResult
	EncryptionType    string `json:",omitempty"`
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != putRecordsTarget {
		p.pass.ServeHTTP(w, r)
		return
	}
	arrived := time.Now()
	p.mu.Lock()
	p.inFlight++
	p.stats.MaxInFlight = max(p.stats.MaxInFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	var in putRecordsIn
	inCBOR, ok := readPutRecords(w, r, &in)
	if !ok {
		return
	}

	// Decide, under the lock, what goes wrong with the request and its records.
	p.mu.Lock()
	p.stats.Requests++
	p.stats.Records += len(in.Records)
	f := p.faults
	what := faultNone
	now := time.Now()
	if f.DownFor > 0 && p.stats.Requests == f.DownAfter {
		p.downUntil = now.Add(f.DownFor)
	}
	switch x := p.rng.Float64(); {
	case now.Before(p.downUntil):
		what = faultDown
	case f.Force[p.stats.Requests] != faultNone:
		what = f.Force[p.stats.Requests]
	case x < f.HTTP500:
		what = FaultHTTP500
	case x < f.HTTP500+f.Reset:
		what = FaultReset
	case x < f.HTTP500+f.Reset+f.Delay:
		what = FaultDelay
	}
	switch what {
	case faultDown:
		p.stats.Down++
	case FaultHTTP500:
		p.stats.HTTP500++
	case FaultReset:
		p.stats.Resets++
	case FaultDelay:
		p.stats.Delays++
	}
	failed := make([]bool, len(in.Records))
	if what == faultNone {
		for i := range failed {
			if p.rng.Float64() < f.RecordFail {
				failed[i] = true
				p.stats.FailedRecords++
			}
		}
	}
	resetWhenDown := p.rng.IntN(2) == 0
	p.mu.Unlock()

	if f.Latency > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(f.Latency):
		}
	}

	switch what {
	case FaultHTTP500:
		writeAPIError(w, http.StatusInternalServerError, "InternalFailure", "injected internal failure", inCBOR)
		return
	case FaultReset:
		resetConn(w)
		return
	case FaultDelay:
		select {
		case <-r.Context().Done(): // the client gave up: it must send again
		case <-time.After(f.DelayMax):
			writeAPIError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "injected delay", inCBOR)
		}
		return
	case faultDown:
		if resetWhenDown {
			resetConn(w)
		} else {
			writeAPIError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "injected outage", inCBOR)
		}
		return
	}
	p.forward(w, r, &in, failed, arrived, f.AmbiguousAfter)
}

// forward sends the records not failed on purpose to kinesis-mock, in JSON,
// and answers with the results spliced back in the request's order, in the
// request's protocol.
func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, in *putRecordsIn, failed []bool, arrived time.Time, ambiguousAfter time.Duration) {
	inCBOR := isCBOR(r)
	out := putRecordsOut{Records: make([]putRecordsResult, len(in.Records))}
	fwd := *in
	fwd.Records = nil
	var idx []int // positions of the forwarded records
	for i, rec := range in.Records {
		if failed[i] {
			out.Records[i] = putRecordsResult{ErrorCode: "ProvisionedThroughputExceededException",
				ErrorMessage: "Rate exceeded for shard (injected)"}
			out.FailedRecordCount++
			continue
		}
		fwd.Records = append(fwd.Records, rec)
		idx = append(idx, i)
	}
	if len(idx) > 0 {
		res, status, raw, err := forwardPut(r.Context(), p.client, p.target, r, &fwd)
		if err != nil {
			writeAPIError(w, http.StatusBadGateway, "ProxyError", err.Error(), inCBOR)
			return
		}
		if status != http.StatusOK {
			// kinesis-mock refused the request: pass its answer on, in JSON as it
			// is, or in CBOR.
			if !inCBOR {
				w.Header().Set("Content-Type", jsonContentType)
				w.WriteHeader(status)
				_, _ = w.Write(raw)
				return
			}
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			_ = json.Unmarshal(raw, &e)
			writeAPIError(w, status, e.Type, e.Message, true)
			return
		}
		if len(res.Records) != len(idx) {
			writeAPIError(w, http.StatusBadGateway, "ProxyError",
				fmt.Sprintf("kinesis-mock answered %d results for %d records", len(res.Records), len(idx)), inCBOR)
			return
		}
		// The client may have given up waiting: then it will send these
		// records again, though kinesis-mock stored them.
		ambiguous := r.Context().Err() != nil || time.Since(arrived) > ambiguousAfter
		p.mu.Lock()
		p.stats.Forwarded++
		p.stats.ForwardedRecords += len(idx)
		if ambiguous {
			p.stats.Ambiguous++
		}
		for k, i := range idx {
			out.Records[i] = res.Records[k]
			if res.Records[k].ErrorCode != "" {
				out.FailedRecordCount++
				p.stats.MockFailed++
				continue
			}
			data, _ := base64.StdEncoding.DecodeString(fwd.Records[k].Data)
			p.stats.Accepted++
			p.accepted[string(data)]++
			if ambiguous {
				p.stats.AmbiguousRecords++
				p.ambiguous[string(data)]++
			}
		}
		p.mu.Unlock()
		out.EncryptionType = res.EncryptionType
	}
	writePutRecords(w, out, inCBOR)
}

// forwardPut sends a PutRecords request to kinesis-mock at target with the
// original request r's headers (kinesis-mock accepts any signature). It is not
// cancelled with the client's request: whether kinesis-mock stored the records
// must be known.
func forwardPut(ctx context.Context, client *http.Client, target string, r *http.Request, in *putRecordsIn) (putRecordsOut, int, []byte, error) {
	var res putRecordsOut
	body, err := json.Marshal(in)
	if err != nil {
		return res, 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/", bytes.NewReader(body))
	if err != nil {
		return res, 0, nil, err
	}
	for _, h := range []string{"X-Amz-Target", "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "User-Agent"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set("Content-Type", jsonContentType)
	resp, err := client.Do(req)
	if err != nil {
		return res, 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return res, 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return res, resp.StatusCode, raw, nil
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, 0, nil, fmt.Errorf("kinesis-mock answer %q: %w", raw, err)
	}
	return res, http.StatusOK, raw, nil
}

// resetConn closes the request's connection with a TCP reset, unanswered.
func resetConn(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
