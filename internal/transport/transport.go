// Package transport owns the HTTP/1.1 transport of the plugin's AWS clients: Transport, a
// RoundTripper that makes each direct http and https exchange in the goroutine of the request; the
// batching TLS connection it dials; the HTTP/1.1-only setup of the *http.Transport it is built
// from; and the wrapper of the request bodies that go through that *http.Transport.
//
// It does not own the HTTP client (its timeout, redirects), proxies (a request that the
// transport's Proxy sends to a proxy, and any scheme but http and https, goes through net/http),
// credentials, or the retries of a failed request: those belong to package kinesis and the SDK.
// The one retry here is net/http's own: a request whose reused connection broke before a byte of
// response arrived is sent again, once, on a new connection.
//
// # Raw reads and writes on Linux
//
// On Linux, the TCP connections it dials read and write their non-blocking sockets with raw system
// calls, waiting in the network poller as net.TCPConn does (rawSocket): a system call made the
// usual way wakes the Go runtime's monitor thread when the runtime is idle, as it is while requests
// wait for their answers, and that wake-up cost more CPU than the read.
//
// # Turning it off
//
// The environment variable KINESIS_STREAMS_GO_HTTP_TRANSPORT (ModeEnv), read when the client is
// built, selects the code that makes the requests: "sync" (the default) for Transport, "std" for
// net/http's Transport alone, HTTP/1.1 only, without the batching TLS connection. Any other value
// is an error of kinesis.New. kinesis.Options.HTTPTransport, when set, takes its place.
//
// # The *http.Transport settings the sync transport honours
//
// DialContext, DialTLSContext, TLSClientConfig, TLSHandshakeTimeout and Proxy as net/http does;
// MaxIdleConnsPerHost (0 means http.DefaultMaxIdleConnsPerHost, a negative value keeps no idle
// connection); IdleConnTimeout, checked when an idle connection is taken; DisableKeepAlives (every
// request says "Connection: close" and has a connection of its own); ResponseHeaderTimeout, from
// the end of the request's write to the end of the response's header; MaxResponseHeaderBytes (0
// or less means net/http's default, 10 MiB), the bytes of all the headers of one response,
// informational ones included.
//
// It ignores: ExpectContinueTimeout (a request with "Expect: 100-continue" is sent whole at once,
// which RFC 9110 allows; the SDK sends none), MaxIdleConns and MaxConnsPerHost (the plugin talks
// to one or two hosts), DisableCompression (it asks for no compression and decodes none), the
// buffer sizes, and the HTTP/2 and proxy settings, which only net/http's code uses.
//
// # Where it differs from net/http
//
// It reads the response once the request is written, or once its write has failed: a server that
// answers early (413, 403) and closes gets its answer returned, but one that answers early and
// then neither reads nor closes leaves the request waiting for its deadline. It retries on a new
// connection any request it can rewind (no body, or Request.GetBody), where net/http retries a
// request that reached the server only when it is idempotent; a body without GetBody (the SDK's)
// is never sent twice. It accepts at most five informational (1xx) responses before the final one.
// It sees that the server closed an idle connection (or sent anything on it) by peeking at the
// socket, on Unix only; elsewhere, and when a TLS 1.3 close_notify came with the last bytes of the
// previous response (crypto/tls then holds it unreported), the connection is used, fails before a
// byte of response, and the retry on a new connection covers the requests it can rewind.
package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
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
// and response between them and the caller through channels; each hand-off can wake a thread of the
// runtime. Doing the exchange in the request's own goroutine saves them: in real Fluent Bit, with
// requests in flight together and a 30 ms endpoint, the plugin's threads spend about a seventh less
// CPU per record than through net/http (docs/performance.md). Requests through a proxy, and any
// scheme but http and https, still go through std, as does the configuration (dialers, TLS, idle
// limits) this transport reads.
type Transport struct {
	std      *http.Transport
	fallback http.RoundTripper // std, for the requests this transport does not make
	stdOnly  bool              // ModeStd: every request goes to fallback

	// From std, read once by New.
	maxIdle        int           // per endpoint
	idleTimeout    time.Duration // 0: no limit
	closeEach      bool          // DisableKeepAlives
	headerTimeout  time.Duration // ResponseHeaderTimeout; 0: none
	maxHeaderBytes int64

	mu   sync.Mutex
	idle map[string][]*syncConn // by scheme://host:port, the most recently used last
}

// defaultMaxHeaderBytes is net/http's limit of a response's headers when
// Transport.MaxResponseHeaderBytes is 0.
const defaultMaxHeaderBytes = 10 << 20

// max1xx is how many informational (1xx) responses may come before the final one. A server has no
// reason to send more than one or two (100 Continue, 103 Early Hints).
const max1xx = 5

// earlyResponseWait bounds the wait for an answer that the server sent before the write of the
// request failed. When the server closed the connection, the answer (if any) came before the close,
// and reading it does not wait; the bound is for a connection whose state the system cannot tell.
const earlyResponseWait = 100 * time.Millisecond

var (
	errTooMany1xx = fmt.Errorf("transport: more than %d informational (1xx) responses", max1xx)
	// errHeaderTimeout is what a request gets when std's ResponseHeaderTimeout expires. Like
	// net/http's, it is a timeout and matches context.DeadlineExceeded.
	errHeaderTimeout error = &timeoutError{"transport: timeout awaiting response headers"}
)

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string        { return e.msg }
func (e *timeoutError) Timeout() bool        { return true }
func (e *timeoutError) Temporary() bool      { return true }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// New returns a transport with std's dialers, proxy, TLS configuration and the other settings the
// package comment lists, read once. It sets std up for HTTP/1.1 only and, in ModeSync, with direct
// TLS connections that batch their writes (see useHTTP1 and batchingTLS): std must not be used for
// anything else.
func New(std *http.Transport, opts ...Option) *Transport {
	maxIdle := std.MaxIdleConnsPerHost
	switch {
	case maxIdle == 0:
		maxIdle = http.DefaultMaxIdleConnsPerHost
	case maxIdle < 0:
		maxIdle = 0
	}
	maxHeaderBytes := std.MaxResponseHeaderBytes
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = defaultMaxHeaderBytes
	}
	t := &Transport{
		std: std, fallback: plainBodyTransport{std},
		maxIdle: maxIdle, idleTimeout: std.IdleConnTimeout, closeEach: std.DisableKeepAlives,
		headerTimeout: std.ResponseHeaderTimeout, maxHeaderBytes: maxHeaderBytes,
		idle: map[string][]*syncConn{},
	}
	for _, o := range opts {
		o(t)
	}
	useHTTP1(std)
	if !t.stdOnly {
		batchingTLS(std)
	}
	return t
}

// syncConn is one connection of a Transport.
type syncConn struct {
	conn   net.Conn
	raw    syscall.RawConn // the socket, to see whether the server closed it while idle; nil if unknown
	r      connReader      // what br reads from
	br     *bufio.Reader
	bw     *bufio.Writer
	key    string
	idleAt time.Time
	reused bool // taken from the idle list: it carried an exchange before
}

// connReader is what the reader of a connection reads from: it counts the bytes, keeps the first
// error, and stops at limit bytes (the size of a response's headers while they are read).
type connReader struct {
	c     net.Conn
	n     int64 // bytes read
	limit int64 // bytes that may still be read
	err   error // the first error of c: the connection cannot carry another exchange
}

// noLimit is connReader's limit outside of a response's headers.
const noLimit = math.MaxInt64

func (r *connReader) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, errHeaderLimit
	}
	if int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.Read(p)
	r.n += int64(n)
	r.limit -= int64(n)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// errHeaderLimit is what the reader of a connection returns once a response's headers have used
// up their limit; readResponse reports it with the limit.
var errHeaderLimit = errors.New("transport: response header limit reached")

// Buffer sizes of a connection: the writer holds a request's header (its body goes to
// batchingTLSConn.ReadFrom); a 500-record response is about 50 KB, read in pieces.
const (
	syncWriteBuffer = 16 << 10
	syncReadBuffer  = 16 << 10
)

// aLongTimeAgo is a deadline in the past: setting it interrupts the I/O of a connection.
var aLongTimeAgo = time.Unix(1, 0)

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.stdOnly || req.URL == nil || (req.URL.Scheme != "https" && req.URL.Scheme != "http") || req.URL.Host == "" {
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
	orig := req
	if t.closeEach && !req.Close {
		r2 := *req // RoundTrip must not modify the caller's request
		r2.Close = true
		req = &r2
	}
	ctx := req.Context()
	key := req.URL.Scheme + "://" + hostPort(req.URL)
	for fresh := false; ; fresh = true {
		sc, err := t.conn(ctx, req.URL.Scheme, key, fresh)
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		// A context that ends interrupts the exchange, and the reading of the body after it.
		stop := context.AfterFunc(ctx, func() { sc.conn.SetDeadline(aLongTimeAgo) })
		resp, broken, err := t.exchange(ctx, sc, req)
		if err == nil {
			resp.Request = orig
			return t.respond(ctx, sc, stop, req, resp), nil
		}
		stop()
		sc.conn.Close()
		if cerr := context.Cause(ctx); cerr != nil {
			return nil, fmt.Errorf("%w (%v)", cerr, err)
		}
		// A reused connection that broke before a byte of response is one the server closed
		// while it was idle, as the request left (or one whose close the idle check could not
		// see): net/http sends such a request again on a new connection, and so does this.
		if !broken || !sc.reused || fresh {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err // its body has been read: it cannot be sent again
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("%w (rewinding the body to send it again: %v)", err, gerr)
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

// respond returns resp, whose header has been read from sc, with a body that releases sc once read.
func (t *Transport) respond(ctx context.Context, sc *syncConn, stop func() bool, req *http.Request, resp *http.Response) *http.Response {
	reuse := !resp.Close && !req.Close
	if resp.Body == http.NoBody || resp.ContentLength == 0 && len(resp.TransferEncoding) == 0 {
		resp.Body.Close()
		resp.Body = http.NoBody
		t.release(sc, stop, reuse)
		return resp
	}
	resp.Body = &syncBody{t: t, sc: sc, ctx: ctx, body: resp.Body, stop: stop, reuse: reuse}
	return resp
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

// exchange writes req and reads the response's header. broken reports a failure of the connection
// before a byte of response arrived, which a new connection may not have.
func (t *Transport) exchange(ctx context.Context, sc *syncConn, req *http.Request) (resp *http.Response, broken bool, err error) {
	start := sc.r.n
	if werr := sc.write(req); werr != nil {
		// A server that answers before it has read the whole request (413, 403) and closes makes
		// the write fail: its answer is in the socket, before the close. A socket with nothing to
		// read means the request itself failed (its body could not be read): nothing to wait for.
		if quiet, known := sc.quiet(); ctx.Err() != nil || quiet && known {
			return nil, false, werr
		}
		sc.setReadDeadline(ctx, time.Now().Add(earlyResponseWait))
		resp, err := t.readResponse(sc, req)
		switch {
		case err != nil && sc.r.n == start:
			return nil, !isTimeout(err), werr // no answer: the write's error says what happened
		case err != nil:
			return nil, false, err // a part of an answer, which the error describes
		}
		sc.setReadDeadline(ctx, time.Time{})
		resp.Close = true // the rest of the request is unsent: the connection cannot carry another
		return resp, false, nil
	}
	if t.headerTimeout > 0 {
		sc.setReadDeadline(ctx, time.Now().Add(t.headerTimeout))
	}
	resp, err = t.readResponse(sc, req)
	if err != nil {
		if t.headerTimeout > 0 && ctx.Err() == nil && isTimeout(err) {
			return nil, false, errHeaderTimeout
		}
		return nil, sc.r.n == start && !isTimeout(err), err
	}
	if t.headerTimeout > 0 {
		sc.setReadDeadline(ctx, time.Time{})
	}
	return resp, false, nil
}

// readResponse reads the header of the response to req, after any informational (1xx) ones,
// within the transport's limit of header bytes.
func (t *Transport) readResponse(sc *syncConn, req *http.Request) (*http.Response, error) {
	sc.r.limit = t.maxHeaderBytes
	resp, err := read1xxAndResponse(sc.br, req)
	if err != nil && sc.r.limit <= 0 {
		err = fmt.Errorf("transport: server response headers exceeded %d bytes", t.maxHeaderBytes)
	}
	sc.r.limit = noLimit
	return resp, err
}

func read1xxAndResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 200:
			return resp, nil
		case resp.StatusCode == http.StatusSwitchingProtocols:
			// Final, but this transport speaks nothing else: the connection ends with it.
			resp.Close = true
			return resp, nil
		case n == max1xx:
			return nil, errTooMany1xx
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// setReadDeadline sets the read deadline of sc, unless ctx has ended: its deadline in the past
// (see RoundTrip) must stay.
func (sc *syncConn) setReadDeadline(ctx context.Context, d time.Time) {
	sc.conn.SetReadDeadline(d)
	if ctx.Err() != nil {
		sc.conn.SetDeadline(aLongTimeAgo)
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

// conn returns an idle connection to key that is still open, or, when there is none or fresh is
// set, a new one.
func (t *Transport) conn(ctx context.Context, scheme, key string, fresh bool) (*syncConn, error) {
	now := time.Now()
	for !fresh {
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
		sc.reused = true
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
		if err == nil {
			c = newRawSocket(c)
		}
	}
	if err != nil {
		return nil, err
	}
	sc := &syncConn{conn: c, raw: rawConnOf(c), key: key, r: connReader{c: c, limit: noLimit}}
	sc.br = bufio.NewReaderSize(&sc.r, syncReadBuffer)
	sc.bw = bufio.NewWriterSize(c, syncWriteBuffer)
	return sc, nil
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
// net/http learns that from the reader goroutine it keeps on every idle connection. Where the
// system cannot tell, the connection counts as open.
func (sc *syncConn) open() bool {
	quiet, _ := sc.quiet()
	return quiet
}

// quiet reports whether sc has nothing to read: no byte, no end of stream, no error, in its
// buffer or its socket; known is false when the socket could not be asked.
func (sc *syncConn) quiet() (quiet, known bool) {
	if sc.br.Buffered() > 0 || sc.r.err != nil {
		return false, true
	}
	if sc.raw == nil {
		return true, false
	}
	return socketQuiet(sc.raw)
}

// release ends an exchange whose response has been read: the connection goes back to the idle
// list if reuse allows, the context did not interrupt it and it did not fail, and is closed
// otherwise.
func (t *Transport) release(sc *syncConn, stop func() bool, reuse bool) {
	if !stop() || !reuse || sc.r.err != nil {
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
	ctx   context.Context
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
	switch {
	case err == io.EOF:
		b.body.Close()
		b.body = nil
		b.t.release(b.sc, b.stop, b.reuse)
	case err != nil:
		// As net/http, say why the context interrupted the read, rather than "i/o timeout".
		if cerr := context.Cause(b.ctx); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
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
