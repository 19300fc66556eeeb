package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// transportServer is a TLS test server that counts the connections it accepted, and a
// Transport set up as kinesis.New sets up its own, trusting the server.
type transportServer struct {
	*httptest.Server
	conns atomic.Int64
	tr    *Transport
}

func newTransportServer(t *testing.T, h http.HandlerFunc) *transportServer {
	t.Helper()
	s := &transportServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	std := s.Client().Transport.(*http.Transport).Clone()
	std.Proxy = nil
	std.MaxIdleConnsPerHost = 10 // as the SDK's transport sets it
	s.tr = New(std)
	t.Cleanup(s.tr.CloseIdleConnections)
	return s
}

// post sends body and returns the response's status and body, read to the end.
func (s *transportServer) post(ctx context.Context, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/echo", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := s.tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s", r.Proto, r.Method, b)
}

// TestSyncTransportReusesConnections: sequential requests share one connection, and each gets its
// own answer, for bodies small and larger than the write buffers.
func TestSyncTransportReusesConnections(t *testing.T) {
	s := newTransportServer(t, echo)
	for i, n := range []int{0, 1, 100, syncWriteBuffer + 1, 3 << 20} {
		body := strings.Repeat(string(rune('a'+i)), n)
		status, got, err := s.post(context.Background(), body)
		if err != nil || status != http.StatusOK || got != "HTTP/1.1 POST "+body {
			t.Fatalf("request %d (%d bytes): %d %.40q, %v", i, n, status, got, err)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
}

// TestSyncTransportConnectionClose: a response with "Connection: close", and one whose body was
// not read to the end, leave their connection closed, not idle.
func TestSyncTransportConnectionClose(t *testing.T) {
	s := newTransportServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("close") != "" {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprint(w, strings.Repeat("x", 100))
	})
	get := func(query string, read bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/?"+query, nil)
		resp, err := s.tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if read {
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		resp.Body.Close()
	}
	idle := func() int {
		s.tr.mu.Lock()
		defer s.tr.mu.Unlock()
		n := 0
		for _, l := range s.tr.idle {
			n += len(l)
		}
		return n
	}
	get("", true)
	if idle() != 1 {
		t.Fatalf("%d idle connections after a full read, want 1", idle())
	}
	get("close=1", true)
	if idle() != 0 {
		t.Fatalf("%d idle connections after Connection: close, want 0", idle())
	}
	get("", false)
	if idle() != 0 {
		t.Fatalf("%d idle connections after a body closed unread, want 0", idle())
	}
	get("", true)
	if n := s.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (the first reused once, then one per unreusable exchange)", n)
	}
}

// TestSyncTransportContext: a context that ends interrupts a request waiting for its response, and
// one reading its body; their connections are not reused.
func TestSyncTransportContext(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newTransportServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			fmt.Fprint(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, path := range []string{"/header", "/body"} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
		resp, err := s.tr.RoundTrip(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, io.ErrUnexpectedEOF) && !isTimeout(err) {
			t.Errorf("%s: %v, want the deadline's error", path, err)
		}
		if err == nil {
			t.Errorf("%s: no error", path)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: returned after %v", path, d)
		}
	}
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	for _, l := range s.tr.idle {
		if len(l) > 0 {
			t.Errorf("%d interrupted connections left idle", len(l))
		}
	}
}

// TestSyncTransportProxy: a request that the proxy settings send through a proxy goes through the
// standard transport, to the proxy.
func TestSyncTransportProxy(t *testing.T) {
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String())
		fmt.Fprint(w, "via proxy")
	}))
	t.Cleanup(proxy.Close)
	proxyURL, _ := url.Parse(proxy.URL)
	std := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	tr := New(std)
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodGet, "http://kinesis.example.invalid/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "via proxy" || proxied.Load() != "http://kinesis.example.invalid/x" {
		t.Errorf("got %q, proxy saw %v", b, proxied.Load())
	}
}

// TestSyncTransportConcurrent: concurrent requests each get their own answer, and use no more
// connections than requests in flight (run with -race).
func TestSyncTransportConcurrent(t *testing.T) {
	s := newTransportServer(t, echo)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("worker %d request %d %s", w, i, strings.Repeat("z", i*997))
				status, got, err := s.post(context.Background(), body)
				if err != nil || status != http.StatusOK || got != "HTTP/1.1 POST "+body {
					errs <- fmt.Errorf("worker %d request %d: %d %.60q, %v", w, i, status, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.conns.Load(); n > workers {
		t.Errorf("%d connections for %d concurrent workers", n, workers)
	}
}

// TestSyncTransportIdleTimeout: a connection idle longer than the transport's IdleConnTimeout is
// closed, not used.
func TestSyncTransportIdleTimeout(t *testing.T) {
	s := newTransportServer(t, echo)
	s.tr.idleTimeout = time.Millisecond
	for i := range 2 {
		if _, _, err := s.post(context.Background(), "x"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the idle one had timed out", n)
	}
}

func TestHostPort(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://kinesis.us-east-1.amazonaws.com/", "kinesis.us-east-1.amazonaws.com:443"},
		{"http://localhost/", "localhost:80"},
		{"https://127.0.0.1:4567/", "127.0.0.1:4567"},
		{"https://[::1]/", "[::1]:443"},
		{"http://[fe80::1]:8080/x", "[fe80::1]:8080"},
	} {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostPort(u); got != tt.want {
			t.Errorf("hostPort(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// holdingConn holds what is written to it while hold is set, and writes it in one write when
// release is called: the records of a TLS server then reach the client in one segment.
type holdingConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (c *holdingConn) Write(p []byte) (int, error) {
	if c.hold {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holdingConn) release() error {
	c.hold = false
	c.Conn.SetWriteDeadline(time.Time{}) // tls.Conn.CloseWrite leaves one in the past
	_, err := c.Conn.Write(c.buf)
	return err
}

// TestSyncTransportCloseNotifyWithResponse: a TLS server sends its response and close_notify in
// one segment and keeps the TCP connection open, so that crypto/tls reads the alert from the
// socket with the response and the idle check cannot see it there. With TLS 1.2, crypto/tls
// reports the alert with the response's last bytes, and the connection is not kept. With TLS 1.3
// (where alerts travel as application data) it does not: the connection is kept, the next request
// on it fails before any response byte, and is sent again on a new connection.
func TestSyncTransportCloseNotifyWithResponse(t *testing.T) {
	for _, tt := range []struct {
		name     string
		version  uint16
		keptIdle int
		conns    int64
	}{
		{name: "TLS 1.2", version: tls.VersionTLS12, keptIdle: 0, conns: 2},
		{name: "TLS 1.3", version: tls.VersionTLS13, keptIdle: 1, conns: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, conns := closeNotifyServer(t, tt.version)
			std := &http.Transport{TLSClientConfig: clientTLS(t)}
			tr := New(std)
			t.Cleanup(tr.CloseIdleConnections)
			for i := range 2 {
				req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "ok" {
					t.Fatalf("request %d: %q, %v", i+1, b, err)
				}
				if i == 0 {
					tr.mu.Lock()
					idle := 0
					for _, l := range tr.idle {
						idle += len(l)
					}
					tr.mu.Unlock()
					if idle != tt.keptIdle {
						t.Errorf("%d idle connections after the response and its close_notify, want %d", idle, tt.keptIdle)
					}
				}
			}
			if n := conns.Load(); n != tt.conns {
				t.Errorf("%d connections, want %d", n, tt.conns)
			}
		})
	}
}

// closeNotifyServer serves one response per connection, followed in the same segment by
// close_notify, and keeps the connection open until the test ends.
func closeNotifyServer(t *testing.T, version uint16) (string, *atomic.Int64) {
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	conns := new(atomic.Int64)
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer raw.Close()
				hc := &holdingConn{Conn: raw}
				c := tls.Server(hc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				hc.hold = true
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				c.CloseWrite() // close_notify, without closing the TCP connection
				if hc.release() != nil {
					return
				}
				<-done
			})
		}
	})
	return ln.Addr().String(), conns
}
