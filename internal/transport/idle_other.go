//go:build !unix

package transport

import "syscall"

// socketQuiet cannot tell: Windows and the other systems that are not Unix have no
// non-blocking peek (recv with MSG_PEEK|MSG_DONTWAIT) that works on the sockets of the Go runtime.
// A connection the server closed while idle fails at its next request, which is then sent again
// on a new connection if it can be (see Transport.RoundTrip).
func socketQuiet(syscall.RawConn) (quiet, known bool) { return true, false }
