package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// request is one request of a conformance case.
type request struct {
	method    string        // "" means GET
	body      int           // bytes of body; 0: none
	noGetBody bool          // the body cannot be rewound (Request.GetBody is nil)
	failAt    int           // the body fails to read after this many bytes; 0: it does not
	timeout   time.Duration // of the request's context; 0: 60s
	// deadlineAfterSignal, when > 0, makes the context's deadline pass that long after the
	// server's handler calls exchange.signal: at a given point of the exchange, however slow the
	// machine (a deadline counted from the start could pass in the TLS handshake).
	deadlineAfterSignal time.Duration
	sleep               time.Duration // a pause before sending
	// closeIdle makes the server close its idle connection before the request is sent.
	closeIdle bool
}

// outcome is what one request observed: the status and body it got, and the kind of error (see
// errKind) of the round trip or, prefixed "body: ", of reading the body.
type outcome struct {
	status int
	body   string
	err    string
	or     *outcome // another outcome that is as good, where the transport races with itself
}

func (o outcome) String() string {
	s := fmt.Sprintf("%d %q", o.status, o.body)
	if o.err != "" {
		s += " error " + o.err
	}
	return s
}

func (o outcome) matches(got outcome) bool {
	g := got
	g.or = nil
	w := o
	w.or = nil
	return g == w || (o.or != nil && o.or.matches(got))
}

// want is the observable result of a case: per request, and the connections and requests the
// server saw.
type want struct {
	results  []outcome
	conns    int64
	requests int64
}

// conformanceCase is one behaviour, run against the sync transport (ModeSync) and net/http's
// (ModeStd), over http and https.
type conformanceCase struct {
	name    string
	schemes []string // "" means both
	// setup configures the client's *http.Transport; the check it returns runs after the
	// requests.
	setup    func(t *testing.T, std *http.Transport, scheme string) (check func(t *testing.T))
	handle   func(x *exchange) (keep bool)
	requests []request
	want     want
	// stdWant is net/http's result where it differs from the sync transport's, for the reason
	// stdWhy gives.
	stdWant *want
	stdWhy  string
}

// ok responds 200 with a body that names the request's number in the server and its body's size.
func ok(x *exchange) bool {
	n, _ := io.Copy(io.Discard, x.req.Body)
	x.respond(http.StatusOK, "", fmt.Sprintf("n=%d len=%d", x.n, n))
	return true
}

// okStatus is the outcome of ok's answer to the server's nth request with a body of size bytes.
func okStatus(n, size int) outcome {
	return outcome{status: http.StatusOK, body: fmt.Sprintf("n=%d len=%d", n, size)}
}

// closeAt returns a handler that reads the request and closes the connection without a byte of
// response when close says so, and answers as ok otherwise.
func closeAt(close func(x *exchange) bool) func(x *exchange) bool {
	return func(x *exchange) bool {
		if close(x) {
			x.discardBody()
			return false
		}
		return ok(x)
	}
}

// earlyAnswer returns a handler that answers 413 after reading the request's header only, and
// closes the connection after linger (the unread body makes the close a reset).
func earlyAnswer(linger time.Duration) func(x *exchange) bool {
	return func(x *exchange) bool {
		x.respond(http.StatusRequestEntityTooLarge, "Connection: close\r\n", "too large")
		x.wait(linger)
		return false
	}
}

// bigHeader answers 200 with a header field of n bytes.
func bigHeader(n int) func(x *exchange) bool {
	return func(x *exchange) bool {
		x.discardBody()
		x.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ")
		x.write(strings.Repeat("a", n))
		x.write("\r\n\r\nok")
		return true
	}
}

var conformanceCases = []conformanceCase{
	{
		name:     "keep-alive reuse",
		handle:   ok,
		requests: []request{{}, {method: "POST", body: 1000}, {method: "POST", body: 100 << 10}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 1000), okStatus(3, 100<<10)}, conns: 1, requests: 3},
	},
	{
		name: "Connection: close from the server",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.respond(http.StatusOK, "Connection: close\r\n", "bye")
			return false
		},
		requests: []request{{}, {method: "POST", body: 10}},
		want:     want{results: []outcome{{status: 200, body: "bye"}, {status: 200, body: "bye"}}, conns: 2, requests: 2},
	},
	{
		// Over TLS the server's close_notify may arrive with the response, or just after it.
		name: "server closes right after the response, without Connection: close",
		handle: func(x *exchange) bool {
			ok(x)
			return false
		},
		requests: []request{{}, {}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 0)}, conns: 2, requests: 2},
	},
	{
		name:     "stale idle connection: the server closed it while idle",
		handle:   ok,
		requests: []request{{}, {method: "POST", body: 10, closeIdle: true}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 10)}, conns: 2, requests: 2},
	},
	{
		name:     "stale idle connection, socket state unknown (as on Windows): GET",
		setup:    hideSocket,
		handle:   ok,
		requests: []request{{}, {closeIdle: true}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 0)}, conns: 2, requests: 2},
	},
	{
		name:     "stale idle connection, socket state unknown (as on Windows): POST without GetBody",
		setup:    hideSocket,
		handle:   ok,
		requests: []request{{}, {method: "POST", body: 10, noGetBody: true, closeIdle: true}},
		want:     want{results: []outcome{okStatus(1, 0), {err: "network"}}, conns: 1, requests: 1},
		stdWant:  &want{results: []outcome{okStatus(1, 0), okStatus(2, 10)}, conns: 2, requests: 2},
		stdWhy: "net/http's reader goroutine sees the close of an idle connection on every system; " +
			"the sync transport peeks at the socket on Unix only, and elsewhere cannot send again a body it cannot rewind",
	},
	{
		name: "IdleConnTimeout: a connection idle longer is not used",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.IdleConnTimeout = 50 * time.Millisecond
			return nil
		},
		handle:   ok,
		requests: []request{{}, {sleep: 200 * time.Millisecond}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 0)}, conns: 2, requests: 2},
	},
	{
		name: "MaxIdleConnsPerHost < 0: no connection is kept",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.MaxIdleConnsPerHost = -1
			return nil
		},
		handle:   ok,
		requests: []request{{}, {}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 0)}, conns: 2, requests: 2},
	},
	{
		// The server reads the broken request and the next one on two connections, in either order.
		name: "the request body fails to read: its error, not sent again",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.respond(http.StatusOK, "", "fine")
			return true
		},
		requests: []request{{}, {method: "POST", body: 100 << 10, failAt: 50 << 10}, {}},
		want:     want{results: []outcome{{status: 200, body: "fine"}, {err: "body read"}, {status: 200, body: "fine"}}, conns: 2, requests: 3},
	},
	{
		name: "chunked response",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n")
			return true
		},
		requests: []request{{}, {}},
		want:     want{results: []outcome{{status: 200, body: "abcdefgh"}, {status: 200, body: "abcdefgh"}}, conns: 1, requests: 2},
	},
	{
		name: "length-less response: read to the end, connection not reused",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.write("HTTP/1.1 200 OK\r\n\r\nuntil the end")
			return false
		},
		requests: []request{{}, {}},
		want:     want{results: []outcome{{status: 200, body: "until the end"}, {status: 200, body: "until the end"}}, conns: 2, requests: 2},
	},
	{
		name: "100 Continue and 103 Early Hints before the response",
		handle: func(x *exchange) bool {
			x.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
			return ok(x)
		},
		requests: []request{{method: "POST", body: 10}, {}},
		want:     want{results: []outcome{okStatus(1, 10), okStatus(2, 0)}, conns: 1, requests: 2},
	},
	{
		name: "six 1xx responses",
		handle: func(x *exchange) bool {
			x.write(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6))
			return ok(x)
		},
		requests: []request{{}},
		want:     want{results: []outcome{{err: "too many 1xx"}}, conns: 1, requests: 1},
		stdWant:  &want{results: []outcome{okStatus(1, 0)}, conns: 1, requests: 1},
		stdWhy:   "net/http bounds informational responses by MaxResponseHeaderBytes only, not by number",
	},
	{
		name: "response headers under MaxResponseHeaderBytes",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.MaxResponseHeaderBytes = 64 << 10
			return nil
		},
		handle:   bigHeader(48 << 10),
		requests: []request{{}},
		want:     want{results: []outcome{{status: 200, body: "ok"}}, conns: 1, requests: 1},
	},
	{
		name: "response headers over MaxResponseHeaderBytes",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.MaxResponseHeaderBytes = 64 << 10
			return nil
		},
		handle:   bigHeader(80 << 10),
		requests: []request{{}},
		want:     want{results: []outcome{{err: "headers too large"}}, conns: 1, requests: 1},
	},
	{
		name:     "response headers over the default limit (10 MiB)",
		handle:   bigHeader(10<<20 + 64<<10),
		requests: []request{{}},
		want:     want{results: []outcome{{err: "headers too large"}}, conns: 1, requests: 1},
	},
	{
		name:     "early response: 413 while the client writes a large body, then close",
		handle:   earlyAnswer(500 * time.Millisecond), // as net/http's server lingers
		requests: []request{{method: "POST", body: 32 << 20}},
		want:     want{results: []outcome{{status: 413, body: "too large"}}, conns: 1, requests: 1},
	},
	{
		name:     "early response: 413 and an immediate reset",
		handle:   earlyAnswer(0),
		requests: []request{{method: "POST", body: 32 << 20}},
		want:     want{results: []outcome{{status: 413, body: "too large"}}, conns: 1, requests: 1},
		stdWant:  &want{results: []outcome{{status: 413, body: "too large", or: &outcome{err: "network"}}}, conns: 1, requests: 1},
		stdWhy:   "net/http's reader and writer goroutines race: the write error may win",
	},
	{
		name: "early response: 413, and the server neither reads nor closes",
		handle: func(x *exchange) bool {
			x.respond(http.StatusRequestEntityTooLarge, "Connection: close\r\n", "too large")
			x.signal()
			x.wait(time.Minute)
			return false
		},
		requests: []request{{method: "POST", body: 32 << 20, deadlineAfterSignal: time.Second}},
		want:     want{results: []outcome{{err: "deadline"}}, conns: 1, requests: 1},
		stdWant:  &want{results: []outcome{{status: 413, body: "too large"}}, conns: 1, requests: 1},
		stdWhy:   "the sync transport reads only once the body is written (or its write failed); net/http reads while it writes",
	},
	{
		name:     "reused connection closed before any response byte: GET retried on a new one",
		handle:   closeAt(func(x *exchange) bool { return x.connN == 1 && x.reqN == 2 }),
		requests: []request{{}, {}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(3, 0)}, conns: 2, requests: 3},
	},
	{
		name:     "reused connection closed before any response byte: POST with GetBody retried",
		handle:   closeAt(func(x *exchange) bool { return x.connN == 1 && x.reqN == 2 }),
		requests: []request{{}, {method: "POST", body: 1000}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(3, 1000)}, conns: 2, requests: 3},
		stdWant:  &want{results: []outcome{okStatus(1, 0), {err: "network"}}, conns: 1, requests: 2},
		stdWhy:   "net/http retries a request that reached the server only when it is idempotent (GET, HEAD, OPTIONS, TRACE, an Idempotency-Key)",
	},
	{
		name:     "reused connection closed before any response byte: POST without GetBody not retried",
		handle:   closeAt(func(x *exchange) bool { return x.connN == 1 && x.reqN == 2 }),
		requests: []request{{}, {method: "POST", body: 1000, noGetBody: true}},
		want:     want{results: []outcome{okStatus(1, 0), {err: "network"}}, conns: 1, requests: 2},
	},
	{
		name:     "new connection closed before any response byte: not retried",
		handle:   closeAt(func(*exchange) bool { return true }),
		requests: []request{{}},
		want:     want{results: []outcome{{err: "network"}}, conns: 1, requests: 1},
	},
	{
		name:     "the retry fails too: one retry only",
		handle:   closeAt(func(x *exchange) bool { return x.n > 1 }),
		requests: []request{{}, {}},
		want:     want{results: []outcome{okStatus(1, 0), {err: "network"}}, conns: 2, requests: 3},
	},
	{
		name: "ResponseHeaderTimeout",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.ResponseHeaderTimeout = 100 * time.Millisecond
			return nil
		},
		handle: func(x *exchange) bool {
			x.discardBody()
			x.wait(time.Minute)
			return false
		},
		requests: []request{{method: "POST", body: 10}},
		want:     want{results: []outcome{{err: "header timeout"}}, conns: 1, requests: 1},
	},
	{
		name: "ResponseHeaderTimeout does not limit a slow body",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.ResponseHeaderTimeout = time.Second
			return nil
		},
		handle: func(x *exchange) bool {
			x.discardBody()
			x.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsl")
			x.wait(1500 * time.Millisecond)
			x.write("ow")
			return true
		},
		requests: []request{{}, {}},
		want:     want{results: []outcome{{status: 200, body: "slow"}, {status: 200, body: "slow"}}, conns: 1, requests: 2},
	},
	{
		name: "context deadline while waiting for the header",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.signal()
			x.wait(time.Minute)
			return false
		},
		requests: []request{{deadlineAfterSignal: 50 * time.Millisecond}},
		want:     want{results: []outcome{{err: "deadline"}}, conns: 1, requests: 1},
	},
	{
		name: "context deadline while reading the body",
		handle: func(x *exchange) bool {
			x.discardBody()
			x.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
			x.signal()
			x.wait(time.Minute)
			return false
		},
		requests: []request{{deadlineAfterSignal: 50 * time.Millisecond}},
		want:     want{results: []outcome{{status: 200, err: "body: deadline"}}, conns: 1, requests: 1},
	},
	{
		name: "DisableKeepAlives: one connection per request, each saying close",
		setup: func(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
			std.DisableKeepAlives = true
			return nil
		},
		handle: func(x *exchange) bool {
			x.discardBody()
			x.respond(http.StatusOK, "", fmt.Sprintf("close=%v", x.req.Close))
			return true
		},
		requests: []request{{}, {method: "POST", body: 10}, {}},
		want: want{results: []outcome{
			{status: 200, body: "close=true"}, {status: 200, body: "close=true"}, {status: 200, body: "close=true"},
		}, conns: 3, requests: 3},
	},
	{
		name: "proxy: forwarded (http) or tunnelled with CONNECT (https) to the origin",
		setup: func(t *testing.T, std *http.Transport, scheme string) func(*testing.T) {
			p := startProxy(t)
			std.Proxy = http.ProxyURL(p.URL)
			return func(t *testing.T) {
				forwarded, connects := p.forwarded.Load(), p.connects.Load()
				if scheme == "http" && (forwarded != 2 || connects != 0) || scheme == "https" && (forwarded != 0 || connects != 1) {
					t.Errorf("the proxy forwarded %d requests and tunnelled %d connections", forwarded, connects)
				}
			}
		},
		handle:   ok,
		requests: []request{{}, {method: "POST", body: 1000}},
		want:     want{results: []outcome{okStatus(1, 0), okStatus(2, 1000)}, conns: 1, requests: 2},
	},
}

// TestConformance runs every case against the sync transport and net/http's, each set up as New
// sets it up, over http and https: both must show the same outcome, or the one the case gives
// net/http with its reason.
func TestConformance(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			schemes := tc.schemes
			if schemes == nil {
				schemes = []string{"http", "https"}
			}
			for _, scheme := range schemes {
				for _, mode := range []Mode{ModeSync, ModeStd} {
					t.Run(scheme+"/"+string(mode), func(t *testing.T) {
						t.Parallel()
						w := tc.want
						if mode == ModeStd && tc.stdWant != nil {
							w = *tc.stdWant
							t.Logf("net/http differs: %s", tc.stdWhy)
						}
						runConformance(t, tc, scheme, mode, w)
					})
				}
			}
		})
	}
}

func runConformance(t *testing.T, tc conformanceCase, scheme string, mode Mode, w want) {
	s := startScriptServer(t, scheme, tc.handle)
	std := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     clientTLS(t),
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 10,
		IdleConnTimeout:     90 * time.Second,
	}
	var check func(*testing.T)
	if tc.setup != nil {
		check = tc.setup(t, std, scheme)
	}
	tr := New(std, WithMode(mode))
	t.Cleanup(tr.CloseIdleConnections)

	for i, r := range tc.requests {
		if r.closeIdle {
			s.closeIdle(t)
		}
		time.Sleep(r.sleep)
		got := do(t, tr, s, r)
		if i >= len(w.results) {
			t.Errorf("request %d: %v, want no request", i+1, got)
			continue
		}
		if !w.results[i].matches(got) {
			t.Errorf("request %d: %v, want %v", i+1, got, w.results[i])
		}
	}
	if n := s.conns.Load(); n != w.conns {
		t.Errorf("the server accepted %d connections, want %d", n, w.conns)
	}
	if n := s.requests.Load(); n != w.requests {
		t.Errorf("the server read %d requests, want %d", n, w.requests)
	}
	if check != nil {
		check(t)
	}
}

// bodyBytes is the source of request bodies.
var bodyBytes = bytes.Repeat([]byte("0123456789abcdef"), 2<<20)

// do sends r to s and reads the response to the end.
func do(t *testing.T, tr http.RoundTripper, s *scriptServer, r request) outcome {
	timeout := r.timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	var ctx context.Context = context.Background()
	if r.deadlineAfterSignal > 0 {
		ctx = newSignalDeadline(s.signals, r.deadlineAfterSignal)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if r.body > 0 {
		body = bytes.NewReader(bodyBytes[:r.body])
	}
	if r.failAt > 0 {
		body = io.MultiReader(io.LimitReader(body, int64(r.failAt)), failingReader{})
	}
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	if r.failAt > 0 {
		req.ContentLength = int64(r.body)
	}
	if r.noGetBody {
		req.GetBody = nil
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return outcome{err: errKind(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	o := outcome{status: resp.StatusCode, body: string(b)}
	if err != nil {
		o.body = ""
		o.err = "body: " + errKind(err)
	}
	return o
}

// signalDeadline is a context whose deadline passes a delay after a signal.
type signalDeadline struct {
	context.Context
	done chan struct{}
}

func newSignalDeadline(signal <-chan struct{}, delay time.Duration) *signalDeadline {
	c := &signalDeadline{Context: context.Background(), done: make(chan struct{})}
	go func() {
		select {
		case <-signal:
			time.Sleep(delay)
		case <-time.After(time.Minute):
		}
		close(c.done)
	}()
	return c
}

func (c *signalDeadline) Done() <-chan struct{} { return c.done }

func (c *signalDeadline) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("test body fails") }

// hideSocket makes std dial connections that do not show their socket, as on systems where the
// sync transport cannot peek at an idle connection (Windows).
func hideSocket(_ *testing.T, std *http.Transport, _ string) func(*testing.T) {
	dial := std.DialContext
	std.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return struct{ net.Conn }{c}, nil
	}
	return nil
}

// errKind names what err is: the outcome of a request, as both transports report it.
func errKind(err error) string {
	var opErr *net.OpError
	switch {
	case err == nil:
		return ""
	case strings.Contains(err.Error(), "timeout awaiting response headers"):
		// A timeout, and context.DeadlineExceeded, in net/http as here.
		if !isTimeout(err) || !errors.Is(err, context.DeadlineExceeded) {
			return "header timeout, not a timeout: " + err.Error()
		}
		return "header timeout"
	case strings.Contains(err.Error(), "test body fails"):
		return "body read"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case strings.Contains(err.Error(), "response headers exceeded"):
		return "headers too large"
	case strings.Contains(err.Error(), "1xx"):
		return "too many 1xx"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.As(err, &opErr):
		return "network"
	}
	return "other: " + err.Error()
}
