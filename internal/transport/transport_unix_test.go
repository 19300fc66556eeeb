//go:build unix

package transport

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// Where the socket can be peeked at (idle_unix.go). Elsewhere a connection closed while idle fails
// at its next request, which the conformance table covers ("stale idle connection, socket state
// unknown").

// TestSyncTransportServerClosedIdle: a connection the server closed while it was idle is seen closed
// before it is used; the next request opens another and succeeds.
func TestSyncTransportServerClosedIdle(t *testing.T) {
	s := newTransportServer(t, echo)
	if _, _, err := s.post(context.Background(), "one"); err != nil {
		t.Fatal(err)
	}
	s.tr.mu.Lock()
	idle := len(s.tr.idle[s.URL])
	s.tr.mu.Unlock()
	if idle != 1 {
		t.Fatalf("%d idle connections after the first request, want 1", idle)
	}
	s.CloseClientConnections()
	// Wait until the close has reached the client's socket: its idle connection reads as closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.tr.mu.Lock()
		list := s.tr.idle[s.URL] // the key: scheme://host:port
		open := len(list) == 1 && list[0].open()
		s.tr.mu.Unlock()
		if !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection still reads as open 5s after the server closed it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, got, err := s.post(context.Background(), "two")
	if err != nil || status != http.StatusOK || got != "HTTP/1.1 POST two" {
		t.Fatalf("after the server closed the idle connection: %d %q, %v", status, got, err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
