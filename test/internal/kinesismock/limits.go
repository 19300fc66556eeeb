package kinesismock

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"unicode/utf8"
)

// Kinesis PutRecords limits (API reference, PutRecords): kinesis-mock does
// not enforce the request size, so LimitProxy does.
const (
	MaxRecordsPerRequest = 500
	MaxBytesPerRequest   = 10 << 20 // data + partition keys of all records
	MaxPartitionKeyChars = 256
	DefaultMaxRecordSize = 1 << 20 // data + partition key of one record
)

const putRecordsTarget = "Kinesis_20131202.PutRecords"

// LimitProxy is an HTTP server on 127.0.0.1 in front of a Server. It checks
// every PutRecords request against Kinesis's limits: a request within them
// is forwarded, one that breaks a limit is answered with the 400
// InvalidArgumentException Kinesis would send, and remembered.
type LimitProxy struct {
	// URL is the endpoint to give the plugin, http://127.0.0.1:PORT.
	URL string

	maxRecordSize int
	srv           *httptest.Server
	proxy         *httputil.ReverseProxy

	mu         sync.Mutex
	violations []string
	stats      PutStats
}

// PutStats describes the PutRecords requests a LimitProxy saw.
type PutStats struct {
	Requests   int // PutRecords requests, including rejected ones
	Records    int // records in them
	MaxRecords int // most records in one request
	MaxBytes   int // largest request, counted as data + partition keys
}

// NewLimitProxy starts a LimitProxy in front of s, for streams whose maximum
// record size is maxRecordSize (DefaultMaxRecordSize when 0).
func (s *Server) NewLimitProxy(maxRecordSize int) (*LimitProxy, error) {
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	if maxRecordSize == 0 {
		maxRecordSize = DefaultMaxRecordSize
	}
	p := &LimitProxy{
		maxRecordSize: maxRecordSize,
		proxy:         &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the proxy.
func (p *LimitProxy) Close() { p.srv.Close() }

// Violations returns what broke a limit, one line per request.
func (p *LimitProxy) Violations() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.violations...)
}

// Stats returns what the proxy saw so far.
func (p *LimitProxy) Stats() PutStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *LimitProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != putRecordsTarget {
		p.proxy.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8*MaxBytesPerRequest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if problem := p.check(body, isCBOR(r)); problem != "" {
		writeAPIError(w, http.StatusBadRequest, "InvalidArgumentException", problem, isCBOR(r))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.proxy.ServeHTTP(w, r)
}

// check returns what in a PutRecords request body (CBOR or JSON) breaks a
// limit, or "".
func (p *LimitProxy) check(body []byte, isCBOR bool) string {
	var req putRecordsIn
	if err := decodePutRecords(body, isCBOR, &req); err != nil {
		return p.violation(fmt.Sprintf("PutRecords body cannot be read: %v", err))
	}
	size := 0
	var problem string
	for i, rec := range req.Records {
		data, err := base64.StdEncoding.DecodeString(rec.Data)
		if err != nil {
			return p.violation(fmt.Sprintf("record %d: data is not base64: %v", i, err))
		}
		n := len(data) + len(rec.PartitionKey)
		size += n
		keyChars := utf8.RuneCountInString(rec.PartitionKey)
		switch {
		case problem != "":
		case keyChars < 1 || keyChars > MaxPartitionKeyChars:
			problem = fmt.Sprintf("record %d: partition key of %d characters, want 1 to %d", i, keyChars, MaxPartitionKeyChars)
		case n > p.maxRecordSize:
			problem = fmt.Sprintf("record %d: %d bytes, more than the record limit %d", i, n, p.maxRecordSize)
		}
	}
	p.mu.Lock()
	p.stats.Requests++
	p.stats.Records += len(req.Records)
	p.stats.MaxRecords = max(p.stats.MaxRecords, len(req.Records))
	p.stats.MaxBytes = max(p.stats.MaxBytes, size)
	p.mu.Unlock()
	switch {
	case len(req.Records) < 1 || len(req.Records) > MaxRecordsPerRequest:
		problem = fmt.Sprintf("%d records in a request, want 1 to %d", len(req.Records), MaxRecordsPerRequest)
	case size > MaxBytesPerRequest:
		problem = fmt.Sprintf("request of %d bytes, more than the limit %d", size, MaxBytesPerRequest)
	}
	if problem == "" {
		return ""
	}
	return p.violation(problem)
}

func (p *LimitProxy) violation(problem string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.violations = append(p.violations, problem)
	return problem
}
