//go:build !linux

package transport

import "net"

// newRawSocket returns c: outside Linux, connections keep net's own reads and writes.
func newRawSocket(c net.Conn) net.Conn { return c }
