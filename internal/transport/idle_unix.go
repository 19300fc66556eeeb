//go:build unix

package transport

import (
	"errors"
	"syscall"
)

// socketQuiet reports whether the socket has nothing to read (no byte, no end of stream, no
// error), by peeking at it without waiting.
func socketQuiet(rc syscall.RawConn) (quiet, known bool) {
	var peekErr error
	if err := rc.Read(func(fd uintptr) bool {
		peekErr = peek(fd)
		return true // never wait
	}); err != nil {
		return false, true // closed
	}
	// Nothing to read yet: quiet. A byte, or 0 bytes and no error (the end of the stream), or an
	// error: not.
	return errors.Is(peekErr, syscall.EAGAIN), true
}
