//go:build !unix

package pollconn

import (
	"context"
	"net"
	"time"
)

// DialFunc is the type of net.Dialer.DialContext and of http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Active reports whether Dialer makes connections of this package: never here.
func Active() bool { return false }

// Dialer returns dial (net/http's default dialer when nil): there is no poll(2) to wait in.
func Dialer(dial DialFunc) DialFunc {
	if dial == nil {
		return (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return dial
}
