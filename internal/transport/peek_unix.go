//go:build unix && !linux

package transport

import "syscall"

// peek reads one byte of fd without taking it or waiting (MSG_PEEK, MSG_DONTWAIT), and returns
// the error: syscall.EAGAIN when there is nothing to read.
func peek(fd uintptr) error {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
