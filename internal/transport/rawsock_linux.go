//go:build linux

package transport

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawSocket is a TCP connection whose reads and writes are raw system calls on its non-blocking
// socket, made from the network poller's RawConn: the goroutine waits in the poller, as
// net.TCPConn's does, when the socket has nothing to read or no room to write.
//
// net.TCPConn's read and write go through syscall.Syscall, which tells the Go runtime that the
// thread enters a system call. When the runtime is idle, its monitor thread (sysmon) sleeps until
// then; the call wakes it, and it then polls every 20 µs for a millisecond before it backs off.
// Each answer of a request in flight woke it that way, which cost more CPU in real Fluent Bit than
// the answer itself (docs/performance.md). A read or write of a non-blocking socket never blocks,
// so it needs none of that: syscall.RawSyscall makes it without telling the runtime.
//
// net's reads and writes also tell the race detector that a write happens before any later read,
// of any socket of the process; these do not, so a test that shares state with a server in the
// same process must synchronise it itself.
type rawSocket struct {
	*net.TCPConn
	rc syscall.RawConn
}

// newRawSocket wraps c when it is a TCP connection whose socket can be reached, and returns c
// itself otherwise.
func newRawSocket(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawSocket{TCPConn: tc, rc: rc}
}

// SyscallConn returns the socket's RawConn, for the idle check.
func (s *rawSocket) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		var wait bool
		n, errno, wait = rawCall(syscall.SYS_READ, fd, p)
		return !wait
	})
	if err != nil {
		return 0, s.opError("read", err)
	}
	if errno != 0 {
		return 0, s.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (s *rawSocket) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var n int
		var errno syscall.Errno
		rest := p[written:]
		err := s.rc.Write(func(fd uintptr) bool {
			var wait bool
			n, errno, wait = rawCall(syscall.SYS_WRITE, fd, rest)
			return !wait
		})
		if err != nil {
			return written, s.opError("write", err)
		}
		if errno != 0 {
			return written, s.opError("write", os.NewSyscallError("write", errno))
		}
		written += n
	}
	return written, nil
}

// rawCall makes the read or write system call trap on fd over p (not empty), again after EINTR.
// wait is true when the socket has nothing to read or no room (EAGAIN): the caller waits in the
// poller, which calls it again.
func rawCall(trap, fd uintptr, p []byte) (n int, errno syscall.Errno, wait bool) {
	for {
		r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, 0, true
		}
		return int(r), e, false
	}
}

// opError wraps err as net.TCPConn does its errors. An error of the RawConn (a deadline, a closed
// connection) is already a *net.OpError: its own Op is replaced by op.
func (s *rawSocket) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		e := *oe
		e.Op = op
		return &e
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: err}
}

// peek reads one byte of fd without taking it or waiting (MSG_PEEK, MSG_DONTWAIT), and returns
// the error: syscall.EAGAIN when there is nothing to read. Raw, for the reason rawSocket's reads are.
func peek(fd uintptr) error {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
