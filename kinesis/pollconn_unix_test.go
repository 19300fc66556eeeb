//go:build unix

package kinesis

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/pollconn"
)

func TestPollDirectConns(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	proxy := func(*http.Request) (*url.URL, error) { return url.Parse("http://127.0.0.1:3128") }
	noProxy := func(*http.Request) (*url.URL, error) { return nil, nil }
	for _, tt := range []struct {
		name  string
		proxy func(*http.Request) (*url.URL, error)
		o     Options
		poll  bool
	}{
		{"no proxy", nil, Options{Region: "us-east-1"}, true},
		{"proxy not for the endpoint", noProxy, Options{Region: "us-east-1", Endpoint: "https://127.0.0.1:4567"}, true},
		{"through a proxy", proxy, Options{Region: "us-east-1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{Proxy: tt.proxy}
			pollDirectConns(tr, tt.o)
			if !tt.poll {
				if tr.DialContext != nil {
					t.Error("the dialer of a proxied transport was replaced")
				}
				return
			}
			if tr.DialContext == nil {
				t.Fatal("no dialer")
			}
			c, err := tr.DialContext(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*pollconn.Conn); ok != pollconn.Active() {
				t.Errorf("dialed a %T; pollconn.Active() is %v", c, pollconn.Active())
			}
		})
	}
}
