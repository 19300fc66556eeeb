// Package transport owns the HTTP/1.1 transport of the plugin's AWS clients: Transport, which does
// each direct exchange in the goroutine of the request, the batching TLS connection it dials, and
// the HTTP/1.1-only setup of the *http.Transport it is built from.
//
// It does not own the HTTP client (timeouts, redirects), proxies (a proxied request goes through
// net/http), credentials or retries of whole requests: those belong to package kinesis and the SDK.
package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Transport is an HTTP/1.1 transport that does each exchange in the goroutine of the request:
// it writes the request and reads the response's header itself, the caller reads the body, and
// the connection then waits in an idle list for the next request to the same endpoint.
//
// net/http's Transport runs a writer and a reader goroutine per connection and passes each request
// and response between them and the caller through channels. The plugin calls from Fluent Bit's
// threads, where a goroutine is tied to its thread, so every hand-off woke a thread: about 16
// futex calls per PutRecords (strace), and wake-ups, futex and the scheduler were a tenth of the
// CPU of the whole path (perf). Requests through a proxy, and any scheme but http and https, still
// go through std, as does the configuration (dialers, TLS, idle limits) this transport reads.
type Transport struct {
	std         *http.Transport
	fallback    http.RoundTripper // std, for the requests this transport does not make
	maxIdle     int               // per endpoint
	idleTimeout time.Duration     // 0: no limit

	mu   sync.Mutex
	idle map[string][]*syncConn // by scheme://host:port, the most recently used last
}

// New returns a transport with std's dialers, proxy, TLS configuration, idle connection limit and
// timeout. It sets std up for HTTP/1.1 only, with direct TLS connections that batch their writes
// (see useHTTP1 and batchingTLS): std must not be used for anything else.
func New(std *http.Transport) *Transport {
	useHTTP1(std)
	batchingTLS(std)
	maxIdle := std.MaxIdleConnsPerHost
	if maxIdle <= 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	return &Transport{
		std: std, fallback: plainBodyTransport{std},
		maxIdle: maxIdle, idleTimeout: std.IdleConnTimeout, idle: map[string][]*syncConn{},
	}
}

// syncConn is one connection of a Transport.
type syncConn struct {
	conn   net.Conn
	raw    syscall.RawConn // the socket, to see whether the server closed it while idle; nil if unknown
	br     *bufio.Reader
	bw     *bufio.Writer
	key    string
	idleAt time.Time
}

// Buffer sizes of a connection: the writer holds a request's header (its body goes to
// batchingTLSConn.ReadFrom); a 500-record response is about 50 KB, read in pieces.
const (
	syncWriteBuffer = 16 << 10
	syncReadBuffer  = 16 << 10
)

// aLongTimeAgo is a deadline in the past: setting it interrupts the I/O of a connection.
var aLongTimeAgo = time.Unix(1, 0)

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || (req.URL.Scheme != "https" && req.URL.Scheme != "http") || req.URL.Host == "" {
		return t.fallback.RoundTrip(req)
	}
	if t.std.Proxy != nil {
		proxy, err := t.std.Proxy(req)
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		if proxy != nil {
			return t.fallback.RoundTrip(req)
		}
	}
	ctx := req.Context()
	key := req.URL.Scheme + "://" + hostPort(req.URL)
	sc, err := t.conn(ctx, req.URL.Scheme, key)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	// A context that ends interrupts the exchange, and the reading of the body after it.
	stop := context.AfterFunc(ctx, func() { sc.conn.SetDeadline(aLongTimeAgo) })
	resp, err := sc.exchange(req)
	if err != nil {
		stop()
		sc.conn.Close()
		if cerr := context.Cause(ctx); cerr != nil {
			return nil, fmt.Errorf("%w (%v)", cerr, err)
		}
		return nil, err
	}
	reuse := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.ContentLength == 0 && len(resp.TransferEncoding) == 0 {
		resp.Body.Close()
		resp.Body = http.NoBody
		t.release(sc, stop, reuse)
		return resp, nil
	}
	resp.Body = &syncBody{t: t, sc: sc, body: resp.Body, stop: stop, reuse: reuse}
	return resp, nil
}

// closeRequestBody closes the body of a request that will not be sent, as a RoundTripper must.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort returns the host and port of u, the scheme's default port if it names none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// exchange writes req and reads the response's header, skipping informational (1xx) responses.
func (sc *syncConn) exchange(req *http.Request) (*http.Response, error) {
	if err := sc.write(req); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(sc.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// write writes req. Over a batching TLS connection, the TLS records of its header (which bufio
// writes first) and of its body leave in the same system calls.
func (sc *syncConn) write(req *http.Request) (err error) {
	if b, ok := sc.conn.(*batchingTLSConn); ok {
		b.raw.start()
		defer func() {
			if ferr := b.raw.finish(); err == nil {
				err = ferr
			}
		}()
	}
	if err := req.Write(sc.bw); err != nil {
		return err
	}
	return sc.bw.Flush()
}

// conn returns an idle connection to key that is still open, or a new one.
func (t *Transport) conn(ctx context.Context, scheme, key string) (*syncConn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		sc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		if (t.idleTimeout > 0 && now.Sub(sc.idleAt) > t.idleTimeout) || !sc.open() {
			sc.conn.Close()
			continue
		}
		return sc, nil
	}

	addr := key[len(scheme)+len("://"):]
	var c net.Conn
	var err error
	switch {
	case scheme == "https" && t.std.DialTLSContext != nil:
		c, err = t.std.DialTLSContext(ctx, "tcp", addr)
	case scheme == "https":
		c, err = dialBatchingTLS(dialerOf(t.std), t.std.TLSClientConfig, t.std.TLSHandshakeTimeout)(ctx, "tcp", addr)
	default:
		c, err = dialerOf(t.std)(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &syncConn{
		conn: c, raw: rawConnOf(c), key: key,
		br: bufio.NewReaderSize(c, syncReadBuffer), bw: bufio.NewWriterSize(c, syncWriteBuffer),
	}, nil
}

// rawConnOf returns the socket under c, or nil.
func rawConnOf(c net.Conn) syscall.RawConn {
	if b, ok := c.(*batchingTLSConn); ok {
		c = b.raw.Conn
	}
	if s, ok := c.(syscall.Conn); ok {
		if rc, err := s.SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// open reports whether an idle connection can carry a request: the server has not closed it, and
// has sent nothing since the last response (which would be a TLS alert, or an answer to nothing).
// net/http learns that from the reader goroutine it keeps on every idle connection.
func (sc *syncConn) open() bool {
	if sc.br.Buffered() > 0 {
		return false
	}
	if sc.raw == nil {
		return true
	}
	var peekErr error
	if err := sc.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, peekErr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return false
	}
	// Nothing to read yet: open. A byte, or 0 bytes and no error (the end of the stream): not.
	return errors.Is(peekErr, syscall.EAGAIN)
}

// release ends an exchange whose response has been read: the connection goes back to the idle
// list if reuse allows and the context did not interrupt it, and is closed otherwise.
func (t *Transport) release(sc *syncConn, stop func() bool, reuse bool) {
	if !stop() || !reuse {
		sc.conn.Close()
		return
	}
	sc.idleAt = time.Now()
	t.mu.Lock()
	list := t.idle[sc.key]
	if len(list) < t.maxIdle {
		t.idle[sc.key] = append(list, sc)
		sc = nil
	}
	t.mu.Unlock()
	if sc != nil {
		sc.conn.Close()
	}
}

// CloseIdleConnections closes the idle connections; those in use are closed when their response
// has been read.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*syncConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, sc := range list {
			sc.conn.Close()
		}
	}
	t.std.CloseIdleConnections()
}

// syncBody is the body of a response of a Transport: when it has been read to the end, its
// connection is released; closed before that, the connection is closed.
type syncBody struct {
	t     *Transport
	sc    *syncConn
	stop  func() bool
	reuse bool

	mu   sync.Mutex
	body io.ReadCloser // nil once released
}

func (b *syncBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.body == nil {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.body.Close()
		b.body = nil
		b.t.release(b.sc, b.stop, b.reuse)
	}
	return n, err
}

// Close closes the connection unless the body was read to the end. A Read in progress is
// interrupted by the request's context, not by Close.
func (b *syncBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.body == nil {
		return nil
	}
	b.body.Close()
	b.body = nil
	b.stop()
	b.sc.conn.Close()
	return nil
}
