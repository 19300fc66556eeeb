//go:build unix

// Package pollconn owns TCP connections that the Go runtime's network poller never sees: their
// reads and writes wait for the socket in poll(2), on the calling thread.
//
// The plugin runs on Fluent Bit's threads, where a goroutine in a cgo callback is tied to its
// thread. When it waits in the network poller, the thread sleeps, another thread of the runtime
// finds the socket ready and hands the goroutine back to the first thread, which it wakes: two
// thread wake-ups per wait, at least one wait per PutRecords request (for the answer), and, since
// the runtime went idle meanwhile, its monitor thread (sysmon) polling every 20 µs for the next
// millisecond. Even when nothing waits in the poller, the socket stays registered with it (epoll,
// edge-triggered): while any timer of the process is pending, an idle runtime thread sleeps in
// epoll_wait and wakes at every packet the socket receives. A socket of this package is out of
// the poller's sight; the thread sleeps in the kernel and the socket wakes it, as a C program's
// would.
//
// The cost: a read or write that waits holds its thread, however long it waits (a goroutine that
// is not tied to a thread hands its P on after a while, as in any system call). Use it for
// connections that are only read while an answer is awaited (the plugin's own transport), not
// for connections that wait idle in a read (net/http's transport reads every idle connection).
//
// Deadlines work as net.Conn's: a deadline set while a read or write waits ends it within
// pollSlice; Close ends it at once.
//
// It does not dial (the dial function it wraps does), and knows nothing of TLS or HTTP.
package pollconn

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollSlice bounds one wait in poll(2): a wait in progress sees a deadline set meanwhile, or
// Close, after at most this long.
const pollSlice = 100 * time.Millisecond

// DialFunc is the type of net.Dialer.DialContext and of http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// defaultDial is net/http's default dialer, for a nil DialFunc.
var defaultDial DialFunc = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext

// Dialer returns a dial function that dials with dial (net/http's default dialer when nil), and
// returns each TCP connection as a *Conn; other connections are returned as they are, as is
// every connection under the race detector (see race.go).
func Dialer(dial DialFunc) DialFunc {
	if dial == nil {
		dial = defaultDial
	}
	if raceDetector {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tcp, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		pc, err := fromTCP(tcp)
		if err != nil {
			tcp.Close()
			return nil, err
		}
		return pc, nil
	}
}

// Active reports whether Dialer makes *Conn connections: false under the race detector.
func Active() bool { return !raceDetector }

// fromTCP takes tcp's socket out of the network poller: it keeps a duplicate of the socket's file
// descriptor (non-blocking, as the original), and closes tcp, which removes the original from the
// poller; the socket itself lives on in the duplicate.
func fromTCP(tcp *net.TCPConn) (*Conn, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("fcntl", dupErr)
	}
	c := &Conn{fd: fd, laddr: tcp.LocalAddr(), raddr: tcp.RemoteAddr()}
	if err := tcp.Close(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// Conn is a TCP connection over a socket that the network poller does not know.
type Conn struct {
	fd           int // non-blocking; closed once Close was called and no call uses it
	laddr, raddr net.Addr

	mu      sync.Mutex // refs and closing
	refs    int        // calls using fd
	closing bool

	rmu, wmu sync.Mutex // one read and one write at a time, as on a net.TCPConn
	// The deadlines, in Unix nanoseconds; 0 for none.
	readDeadline, writeDeadline atomic.Int64
}

var _ syscall.Conn = (*Conn)(nil)

// incref marks a call using fd; false when the connection is closed.
func (c *Conn) incref() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.refs++
	return true
}

// decref ends a call using fd, and closes fd if it was the last one after Close.
func (c *Conn) decref() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs--
	if c.closing && c.refs == 0 {
		unix.Close(c.fd)
	}
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Close closes the connection. The socket is shut down at once, which wakes a read or write
// waiting on it; its descriptor is closed when the last call using it returns.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return c.opError("close", net.ErrClosed)
	}
	c.closing = true
	_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	if c.refs == 0 {
		if err := unix.Close(c.fd); err != nil {
			return c.opError("close", os.NewSyscallError("close", err))
		}
	}
	return nil
}

func (c *Conn) Read(p []byte) (int, error) {
	if !c.incref() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.decref()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.expired(&c.readDeadline); err != nil {
		return 0, c.opError("read", err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := c.wait(unix.POLLIN, &c.readDeadline); err != nil {
				return 0, c.opError("read", err)
			}
			continue
		case err != nil:
			if c.isClosing() {
				return 0, c.opError("read", net.ErrClosed)
			}
			return 0, c.opError("read", os.NewSyscallError("read", err))
		case n == 0:
			if c.isClosing() { // the shutdown of Close
				return 0, c.opError("read", net.ErrClosed)
			}
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	if !c.incref() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.decref()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.expired(&c.writeDeadline); err != nil {
		return 0, c.opError("write", err)
	}
	n := 0
	for n < len(p) {
		m, err := unix.Write(c.fd, p[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == nil, err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := c.wait(unix.POLLOUT, &c.writeDeadline); err != nil {
				return n, c.opError("write", err)
			}
		default:
			if c.isClosing() {
				return n, c.opError("write", net.ErrClosed)
			}
			return n, c.opError("write", os.NewSyscallError("write", err))
		}
	}
	return n, nil
}

// expired returns os.ErrDeadlineExceeded when the deadline has passed.
func (c *Conn) expired(deadline *atomic.Int64) error {
	if d := deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// wait waits in poll(2), pollSlice at a time, until fd has one of events (or an error to
// report); it fails when the deadline passes or the connection is closed.
func (c *Conn) wait(events int16, deadline *atomic.Int64) error {
	for {
		if c.isClosing() {
			return net.ErrClosed
		}
		timeout := pollSlice
		if d := deadline.Load(); d != 0 {
			left := time.Duration(d - time.Now().UnixNano())
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = min(timeout, left)
		}
		fds := [1]unix.PollFd{{Fd: int32(c.fd), Events: events}}
		n, err := unix.Poll(fds[:], int((timeout+time.Millisecond-1)/time.Millisecond))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return os.NewSyscallError("poll", err)
		case n > 0:
			return nil
		}
	}
}

// opError wraps err as net.TCPConn's methods do.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

func (c *Conn) LocalAddr() net.Addr  { return c.laddr }
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

func (c *Conn) SetDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	c.writeDeadline.Store(unixNano(t))
	return nil
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	return nil
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNano(t))
	return nil
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline), and at least 1 for any
// other: a deadline before 1970 is as past as any.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// SyscallConn returns the socket as a syscall.RawConn, whose Read and Write wait as the
// connection's do (without deadlines).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return rawConn{c}, nil }

type rawConn struct{ c *Conn }

func (r rawConn) Control(f func(fd uintptr)) error {
	if !r.c.incref() {
		return net.ErrClosed
	}
	defer r.c.decref()
	f(uintptr(r.c.fd))
	return nil
}

func (r rawConn) Read(f func(fd uintptr) bool) error {
	return r.do(f, unix.POLLIN)
}

func (r rawConn) Write(f func(fd uintptr) bool) error {
	return r.do(f, unix.POLLOUT)
}

func (r rawConn) do(f func(fd uintptr) bool, events int16) error {
	if !r.c.incref() {
		return net.ErrClosed
	}
	defer r.c.decref()
	var none atomic.Int64
	for !f(uintptr(r.c.fd)) {
		if err := r.c.wait(events, &none); err != nil {
			return err
		}
	}
	return nil
}
