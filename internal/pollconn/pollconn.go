//go:build unix

// Package pollconn owns TCP connections whose reads and writes, when the socket is not ready,
// wait in poll(2) on the calling thread for a while before they wait in the Go runtime's network
// poller.
//
// The plugin runs on Fluent Bit's threads: a goroutine in a cgo callback is tied to its thread,
// and when it waits in the network poller, the thread sleeps, another thread of the runtime
// finds the socket ready, and hands the goroutine back to the first thread, which it wakes: two
// thread wake-ups per wait, and, since the runtime went idle meanwhile, its monitor thread
// (sysmon) polling every 20 µs for the next millisecond. A PutRecords request waits at least once,
// for its answer. Waiting in poll(2) instead, the thread sleeps in the kernel and the socket wakes
// it, as a C program's would.
//
// A wait longer than BlockingWait goes on in the network poller, so that a connection nobody is
// reading from for long (an idle one of net/http's transport, whose reader goroutine is not tied
// to a thread) does not hold a thread. Deadlines work as net.Conn's: a past deadline set while a
// read or write waits in poll(2) ends it within BlockingWait, Close at once.
//
// It does not dial (the dial function it wraps does), and knows nothing of TLS or HTTP.
package pollconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// BlockingWait bounds how long a read or write waits in poll(2) before it waits in the Go
// runtime's network poller: above a PutRecords round trip, below what a thread should be held for
// a connection that carries nothing.
var BlockingWait = 100 * time.Millisecond

// DialFunc is the type of net.Dialer.DialContext and of http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// defaultDial is net/http's default dialer, for a nil DialFunc.
var defaultDial DialFunc = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext

// Dialer returns a dial function that dials with dial (net/http's default dialer when nil) and
// returns each TCP connection as a *Conn; other connections are returned as they are.
func Dialer(dial DialFunc) DialFunc {
	if dial == nil {
		dial = defaultDial
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
		raw, err := tcp.SyscallConn()
		if err != nil {
			return c, nil
		}
		return &Conn{Conn: tcp, raw: raw}, nil
	}
}

// Conn is a TCP connection whose Read and Write wait in poll(2) first. Only net.Conn's methods of
// the *net.TCPConn are promoted: its ReadFrom and WriteTo would bypass Read and Write.
type Conn struct {
	net.Conn // the *net.TCPConn
	raw      syscall.RawConn
	// The deadlines, in Unix nanoseconds (0: none), as poll(2) must see them; the TCPConn has
	// them too, for the waits in the network poller.
	readDeadline, writeDeadline atomic.Int64
	closed                      atomic.Bool
}

// SyscallConn returns the socket's raw connection.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	rerr := c.raw.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), p)
			switch {
			case err == syscall.EINTR:
				continue
			case err != syscall.EAGAIN:
				return true
			}
			ready, werr := c.wait(int(fd), unix.POLLIN, &c.readDeadline)
			if werr != nil {
				n, err = 0, werr
				return true
			}
			if !ready {
				return false // the network poller waits now
			}
		}
	})
	if rerr == nil {
		rerr = err
	}
	if c.closed.Load() && (rerr != nil || n <= 0) { // Close woke it
		rerr = net.ErrClosed
	}
	if rerr != nil {
		return 0, c.opError("read", rerr)
	}
	if n <= 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	var n int
	var err error
	werr := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == nil, e == syscall.EINTR:
				continue
			case e != syscall.EAGAIN:
				err = e
				return true
			}
			ready, e := c.wait(int(fd), unix.POLLOUT, &c.writeDeadline)
			if e != nil {
				err = e
				return true
			}
			if !ready {
				return false
			}
		}
		return true
	})
	if werr == nil {
		werr = err
	}
	if werr != nil && c.closed.Load() {
		werr = net.ErrClosed
	}
	if werr != nil {
		return n, c.opError("write", werr)
	}
	return n, nil
}

// wait waits in poll(2) for events on fd, up to BlockingWait and the deadline. It returns true
// when fd has an event (or an error to report), false when BlockingWait passed, and an error when
// the deadline passed or the connection was closed.
func (c *Conn) wait(fd int, events int16, deadline *atomic.Int64) (bool, error) {
	end := time.Now().Add(BlockingWait)
	for {
		if c.closed.Load() {
			return false, net.ErrClosed
		}
		now := time.Now()
		left := end.Sub(now)
		if d := deadline.Load(); d != 0 {
			if until := time.Duration(d - now.UnixNano()); until <= 0 {
				return false, os.ErrDeadlineExceeded
			} else if until < left {
				left = until
			}
		}
		if left <= 0 {
			return false, nil
		}
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds[:], int((left+time.Millisecond-1)/time.Millisecond))
		switch {
		case err == syscall.EINTR:
		case err != nil:
			return false, os.NewSyscallError("poll", err)
		case n > 0:
			return true, nil
		}
	}
}

// opError wraps err as net.TCPConn's methods do.
func (c *Conn) opError(op string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Close closes the connection. A read or write waiting in poll(2) ends at once: the socket is
// shut down first, which wakes it.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return c.Conn.Close() // the error of a second Close
	}
	_ = c.raw.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	return c.Conn.Close()
}

func (c *Conn) SetDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	c.writeDeadline.Store(unixNano(t))
	return c.Conn.SetDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline), and at least 1 for any
// other: a deadline before 1970 is as past as any.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}
