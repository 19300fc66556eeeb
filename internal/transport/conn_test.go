package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes to a socket and their bytes.
type countingConn struct {
	net.Conn
	writes, bytes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.Conn.Write(p)
}

// TestBatchingTLSWrites sends large bodies through a transport that dials with dialBatchingTLS
// and through one that does TLS itself, both over counted sockets: the server must receive the
// same bytes, and the batching one must need a fraction of the writes (one per 16 KiB TLS record
// otherwise). It also sends concurrent requests, so that writes and reads of one connection meet.
func TestBatchingTLSWrites(t *testing.T) {
	var mu sync.Mutex
	sums := map[[32]byte]int{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil || n != r.ContentLength {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		var sum [32]byte
		h.Sum(sum[:0])
		mu.Lock()
		sums[sum]++
		mu.Unlock()
		_, _ = w.Write(bytes.Repeat([]byte("r"), 40_000))
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}

	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	want := sha256.Sum256(body)

	send := func(t *testing.T, batching bool, requests, parallel int) (writes, written int64) {
		var w, b atomic.Int64
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &w, &b}, nil
		}
		tr := &http.Transport{DialContext: dial, TLSClientConfig: cfg.Clone()}
		if batching {
			batchingTLS(tr)
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		errs := make(chan error, requests)
		for p := range parallel {
			wg.Go(func() {
				for i := p; i < requests; i += parallel {
					resp, err := client.Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK || len(got) != 40_000 {
						errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, len(got), err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return w.Load(), b.Load()
	}

	plainWrites, plainBytes := send(t, false, 4, 1)
	batchWrites, batchBytes := send(t, true, 4, 1)
	t.Logf("4 requests of %d bytes: %d writes (%d bytes) without batching, %d writes (%d bytes) with",
		len(body), plainWrites, plainBytes, batchWrites, batchBytes)
	if batchWrites*8 > plainWrites {
		t.Errorf("%d writes with batching, %d without: want fewer than an eighth", batchWrites, plainWrites)
	}
	send(t, true, 12, 3)

	mu.Lock()
	defer mu.Unlock()
	if len(sums) != 1 || sums[want] != 20 {
		t.Errorf("server received %d distinct bodies, %d intact of 20", len(sums), sums[want])
	}
}

// TestLimitedWriter: a body that writes itself through batchingTLSConn.ReadFrom cannot send more
// than its Content-Length.
func TestLimitedWriter(t *testing.T) {
	var out bytes.Buffer
	w := &limitedWriter{w: &out, n: 4}
	if n, err := w.Write([]byte("12")); n != 2 || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	if n, err := w.Write([]byte("3456")); n != 2 || !errors.Is(err, errBodyTooLong) {
		t.Fatalf("write past the limit: %d, %v; want 2, errBodyTooLong", n, err)
	}
	if out.String() != "1234" || w.n != 0 {
		t.Fatalf("wrote %q, %d left", out.String(), w.n)
	}
}
