//go:build linux

package transport

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// rawPair returns a rawSocket dialed to a loopback listener, and the accepted end.
func rawPair(t *testing.T) (*rawSocket, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := newRawSocket(c).(*rawSocket)
	if !ok {
		t.Fatalf("newRawSocket(%T) did not wrap it", c)
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return raw, peer.(*net.TCPConn)
}

// TestRawSocketRoundTrip writes more than the socket buffers hold (so that writes wait in the
// poller for room) while the peer echoes it back slowly, and reads it all back.
func TestRawSocketRoundTrip(t *testing.T) {
	raw, peer := rawPair(t)
	data := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	go func() {
		time.Sleep(50 * time.Millisecond) // let the writer fill the buffers first
		io.Copy(peer, peer)
		peer.CloseWrite()
	}()
	errc := make(chan error, 1)
	go func() {
		n, err := raw.Write(data)
		if err == nil && n != len(data) {
			err = errors.New("short write")
		}
		raw.CloseWrite()
		errc <- err
	}()
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(raw)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if werr := <-errc; werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not the %d written", len(got), len(data))
	}
}

// TestRawSocketErrors: a deadline, the peer's end of stream and a reset give the errors
// net.TCPConn gives, which kinesis.IsNetworkError and the transport's retry read.
func TestRawSocketErrors(t *testing.T) {
	t.Run("read deadline", func(t *testing.T) {
		raw, _ := rawPair(t)
		raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := raw.Read(make([]byte, 10))
		var ne net.Error
		var oe *net.OpError
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Errorf("read past its deadline: %v (%T), want a read *net.OpError that times out", err, err)
		}
	})
	t.Run("end of stream", func(t *testing.T) {
		raw, peer := rawPair(t)
		peer.Write([]byte("last"))
		peer.Close()
		got, err := io.ReadAll(raw)
		if err != nil || string(got) != "last" {
			t.Errorf("read %q, %v; want %q and the end of stream", got, err, "last")
		}
		if n, err := raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("read after the end: %d, %v; want io.EOF", n, err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		raw, peer := rawPair(t)
		peer.SetLinger(0) // close with a reset
		peer.Close()
		var err error
		for i := 0; i < 100 && err == nil; i++ { // a write may land before the reset does
			_, err = raw.Write([]byte("x"))
			if err == nil {
				_, err = raw.Read(make([]byte, 1))
			}
		}
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) || !errors.As(err, &oe) {
			t.Errorf("after a reset: %v (%T), want ECONNRESET or EPIPE in a *net.OpError", err, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		raw, _ := rawPair(t)
		raw.Close()
		if _, err := raw.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write on a closed connection: %v, want net.ErrClosed", err)
		}
		if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	})
}

// TestPeek: peek says EAGAIN on a quiet socket, and nothing once a byte or the end of stream is
// there, without taking the byte.
func TestPeek(t *testing.T) {
	raw, peer := rawPair(t)
	if q, known := socketQuiet(raw.rc); !q || !known {
		t.Errorf("quiet socket: quiet %v, known %v", q, known)
	}
	peer.Write([]byte("b"))
	deadline := time.Now().Add(5 * time.Second)
	for q, _ := socketQuiet(raw.rc); q && time.Now().Before(deadline); q, _ = socketQuiet(raw.rc) {
		time.Sleep(time.Millisecond)
	}
	if q, _ := socketQuiet(raw.rc); q {
		t.Error("a byte arrived, and the socket still looks quiet")
	}
	b := make([]byte, 1)
	if n, err := raw.Read(b); n != 1 || b[0] != 'b' || err != nil {
		t.Errorf("the peeked byte reads as %q, %v", b[:n], err)
	}
}
