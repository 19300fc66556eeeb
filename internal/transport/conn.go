package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// writeBatch is how many bytes of TLS records a connection gathers before one write to the
// socket: 16 records of 16 KiB. A PutRecords body is up to 5 MiB (about 6.7 MB in JSON).
const writeBatch = 256 << 10

// Buffers of writeBatch bytes plus room for the records' headers and tags, shared by the
// connections of the process and held only while a write is in progress.
var (
	batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBatch+32<<10); return &b }}
	readBufs  = sync.Pool{New: func() any { b := make([]byte, writeBatch); return &b }}
)

// batchingTLS makes tr open its direct TLS connections with dialBatchingTLS, so that a request
// body leaves in writes of up to writeBatch bytes instead of one write per 16 KiB TLS record: on a
// busy node the system calls and the per-packet work of the network stack were a seventh of the
// plugin's CPU. Connections through an HTTP proxy are the transport's own (it does TLS over the
// CONNECT tunnel itself).
func batchingTLS(tr *http.Transport) {
	tr.DialTLSContext = dialBatchingTLS(dialerOf(tr), tr.TLSClientConfig, tr.TLSHandshakeTimeout)
}

// dialerOf returns tr's DialContext, or net/http's default dialer when it has none.
func dialerOf(tr *http.Transport) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if tr.DialContext != nil {
		return tr.DialContext
	}
	return (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
}

// dialBatchingTLS returns a DialTLSContext function: it dials with dial, and does the TLS
// handshake as http.Transport would (its TLS config, the host of addr as server name unless the
// config names one, its handshake timeout).
func dialBatchingTLS(dial func(ctx context.Context, network, addr string) (net.Conn, error), cfg *tls.Config, handshakeTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		raw = newRawSocket(raw)
		c := cfg.Clone()
		if c == nil {
			c = &tls.Config{}
		}
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				raw.Close()
				return nil, err
			}
			c.ServerName = host
		}
		bc := &batchConn{Conn: raw}
		tc := tls.Client(bc, c)
		hctx := ctx
		if handshakeTimeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		return &batchingTLSConn{Conn: tc, raw: bc}, nil
	}
}

// batchingTLSConn is a TLS connection whose records gather in its batchConn and leave when each
// Write or ReadFrom ends.
type batchingTLSConn struct {
	*tls.Conn
	raw *batchConn
}

func (c *batchingTLSConn) Write(p []byte) (int, error) {
	c.raw.start()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.finish(); err == nil {
		err = ferr
	}
	return n, err
}

// ReadFrom is what a request body is written with (io.Copy through a bufio.Writer): it reads
// writeBatch bytes at a time, so that each write to the socket carries that many. A body that
// writes itself (smithy-go's over a bytes.Reader, inside the io.LimitedReader of Content-Length)
// goes to TLS in one Write, without that copy.
func (c *batchingTLSConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if wt, ok := lr.R.(io.WriterTo); ok {
			w := &limitedWriter{w: c, n: lr.N}
			n, err := wt.WriteTo(w)
			lr.N -= n
			return n, err
		}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			w, err := c.Write(buf[:n])
			total += int64(w)
			if err != nil {
				return total, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// limitedWriter writes at most n bytes to w, and fails a Write that would go beyond.
type limitedWriter struct {
	w io.Writer
	n int64
}

// errBodyTooLong is what a limitedWriter returns for the bytes beyond its limit.
var errBodyTooLong = errors.New("transport: request body longer than its Content-Length")

func (l *limitedWriter) Write(p []byte) (int, error) {
	over := int64(len(p)) > l.n
	if over {
		p = p[:l.n]
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	if err == nil && over {
		err = errBodyTooLong
	}
	return n, err
}

// batchConn is the socket under a batchingTLSConn. Between start and finish, the records that
// TLS writes gather in a buffer that is written when full and at finish. Outside of that (the
// handshake, alerts, Close) writes go to the socket at once, and a Read first writes what is
// pending, so that nothing waits in the buffer for an answer.
type batchConn struct {
	net.Conn
	mu    sync.Mutex
	buf   *[]byte // nil outside start..finish
	depth int     // starts not yet finished: they nest, and the outermost finish writes
}

func (c *batchConn) start() {
	c.mu.Lock()
	if c.buf == nil {
		c.buf = batchBufs.Get().(*[]byte)
	}
	c.depth++
	c.mu.Unlock()
}

func (c *batchConn) finish() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.depth > 0 {
		c.depth--
	}
	if c.buf == nil || c.depth > 0 {
		return nil
	}
	err := c.flushLocked()
	batchBufs.Put(c.buf)
	c.buf = nil
	return err
}

func (c *batchConn) flushLocked() error {
	b := *c.buf
	*c.buf = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := c.Conn.Write(b)
	return err
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > cap(*c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(*c.buf) {
			return c.Conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *batchConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	var err error
	if c.buf != nil {
		err = c.flushLocked()
	}
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *batchConn) Close() error {
	c.mu.Lock()
	var err error
	if c.buf != nil {
		err = c.flushLocked()
	}
	c.mu.Unlock()
	return errors.Join(err, c.Conn.Close())
}
