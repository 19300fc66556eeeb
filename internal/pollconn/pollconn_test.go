//go:build unix

package pollconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pair returns a *Conn dialed to a listener on 127.0.0.1 and the server's side of it.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := defaultDial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := fromTCP(c.(*net.TCPConn)) // as Dialer does, but under the race detector too
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { pc.Close(); server.Close() })
	return pc, server
}

// within fails when d is not in [min, max].
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s after %v, want %v to %v", what, d, lo, hi)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c, server := pair(t)
	// More than the socket buffers hold, both ways at once: writes wait for the reader.
	sent := make([]byte, 8<<20)
	rand.Read(sent)
	echoed := make(chan error, 1)
	go func() {
		_, err := io.Copy(server, io.LimitReader(server, int64(len(sent))))
		echoed <- err
	}()
	wrote := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // as the plugin's goroutines are, in Fluent Bit's threads
		defer runtime.UnlockOSThread()
		n, err := c.Write(sent)
		if err == nil && n != len(sent) {
			err = io.ErrShortWrite
		}
		wrote <- err
	}()
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("the bytes read back differ from the bytes written")
	}
	server.Close()
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{pollSlice / 4, 3 * pollSlice} { // in poll(2), then in the network poller
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			c, _ := pair(t)
			start := time.Now()
			c.SetReadDeadline(start.Add(d))
			_, err := c.Read(make([]byte, 10))
			within(t, "read ended", time.Since(start), d, d+2*time.Second)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("error %v, want a timeout", err)
			}
			// A deadline in the past fails at once; none lets the read wait again.
			c.SetReadDeadline(time.Unix(1, 0))
			if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("error %v with a past deadline, want os.ErrDeadlineExceeded", err)
			}
		})
	}
}

func TestWriteDeadline(t *testing.T) {
	t.Parallel()
	c, _ := pair(t) // the server never reads: the buffers fill up
	const d = 3 * pollSlice
	big := make([]byte, 64<<20)
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	n, err := c.Write(big)
	within(t, "write ended", time.Since(start), d, d+5*time.Second)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 64<<20 {
		t.Fatalf("wrote %d, error %v; want some bytes, then os.ErrDeadlineExceeded", n, err)
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		interrupt func(c *Conn)
		want      error
		late      time.Duration // how late the read may end
	}{
		{"past deadline", func(c *Conn) { c.SetDeadline(time.Unix(1, 0)) }, os.ErrDeadlineExceeded, pollSlice},
		{"close", func(c *Conn) { c.Close() }, net.ErrClosed, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := pair(t)
			const after = 30 * time.Millisecond // while the read waits in poll(2)
			start := time.Now()
			time.AfterFunc(after, func() { tt.interrupt(c) })
			_, err := c.Read(make([]byte, 10))
			within(t, "read ended", time.Since(start), after, after+tt.late+time.Second)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSyscallConn(t *testing.T) {
	t.Parallel()
	c, server := pair(t)
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// As the transport sees whether an idle connection is still open: a peek that does not wait.
	peek := func() (int, error) {
		var n int
		var perr error
		if err := raw.Read(func(fd uintptr) bool {
			var b [1]byte
			n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true
		}); err != nil {
			return 0, err
		}
		return n, perr
	}
	if _, err := peek(); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("peek of an open, quiet connection: %v, want EAGAIN", err)
	}
	server.Write([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := peek()
		if n == 1 && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek after the server wrote: %d, %v", n, err)
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if err := raw.Control(func(uintptr) {}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Control after Close: %v, want net.ErrClosed", err)
	}
}

func TestDialer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dialer(nil)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*Conn); ok != Active() {
		t.Errorf("Dialer made a %T; Active() is %v", c, Active())
	}
}

func TestDialerPassesOthersThrough(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c, err := Dialer(func(context.Context, string, string) (net.Conn, error) { return a, nil })(context.Background(), "tcp", "x")
	if err != nil || c != a {
		t.Fatalf("got %v, %v; want the dialer's connection as it is", c, err)
	}
	wantErr := errors.New("refused")
	if _, err := Dialer(func(context.Context, string, string) (net.Conn, error) { return nil, wantErr })(context.Background(), "tcp", "x"); err != wantErr {
		t.Fatalf("error %v, want the dialer's", err)
	}
}

func TestLateData(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{pollSlice / 4, 3 * pollSlice} { // in poll(2), then in the network poller
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			c, server := pair(t)
			time.AfterFunc(d, func() { server.Write([]byte("answer")) })
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 6)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "answer" {
				t.Fatalf("read %q, %v; want the answer", got, err)
			}
		})
	}
}
