package transport

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCert is a self-signed certificate for 127.0.0.1, made once for the package's tests.
var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
})

// clientTLS returns a client configuration that trusts testCert.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// scriptServer is an HTTP/1.1 server on 127.0.0.1 whose answers a handler writes byte by byte,
// so that it can misbehave as servers and middleboxes do: answer early, close at any point, send
// informational responses, oversized headers. It counts the connections it accepted and the
// requests it read.
type scriptServer struct {
	URL      string
	conns    atomic.Int64
	requests atomic.Int64
	closed   atomic.Int64 // connections the server has closed
	handle   func(x *exchange) (keep bool)
	done     chan struct{} // closed at cleanup: handlers that wait give up
	signals  chan struct{} // see exchange.signal

	mu   sync.Mutex
	open map[net.Conn]bool
}

// exchange is one request as a handler sees it.
type exchange struct {
	req   *http.Request
	conn  net.Conn
	connN int64 // the connection's number in the server, from 1
	reqN  int   // the request's number on its connection, from 1
	n     int64 // the request's number in the server, from 1
	done  <-chan struct{}
	sigs  chan<- struct{}
}

// signal tells the test that the handler has reached the point a request's deadline is set
// from (see request.deadlineAfterSignal).
func (x *exchange) signal() {
	select {
	case x.sigs <- struct{}{}:
	default:
	}
}

// respond writes a response with a Content-Length; header holds extra lines, each ending "\r\n".
func (x *exchange) respond(status int, header, body string) {
	fmt.Fprintf(x.conn, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n%s", status, http.StatusText(status), len(body), header, body)
}

// write writes raw bytes.
func (x *exchange) write(s string) { io.WriteString(x.conn, s) }

// discardBody reads the request body to the end.
func (x *exchange) discardBody() { io.Copy(io.Discard, x.req.Body) }

// wait returns after d, or at once when the test ends.
func (x *exchange) wait(d time.Duration) {
	select {
	case <-x.done:
	case <-time.After(d):
	}
}

// startScriptServer serves handle on 127.0.0.1, over TLS when scheme is "https".
func startScriptServer(t *testing.T, scheme string, handle func(x *exchange) bool) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if scheme == "https" {
		cert, err := testCert()
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	s := &scriptServer{
		URL: scheme + "://" + ln.Addr().String(), handle: handle,
		done: make(chan struct{}), signals: make(chan struct{}, 1), open: map[net.Conn]bool{},
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open[c] = true
			s.mu.Unlock()
			n := s.conns.Add(1)
			wg.Go(func() { s.serve(c, n) })
		}
	})
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *scriptServer) serve(c net.Conn, connN int64) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		s.closed.Add(1)
	}()
	br := bufio.NewReader(c)
	for reqN := 1; ; reqN++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		x := &exchange{req: req, conn: c, connN: connN, reqN: reqN, n: s.requests.Add(1), done: s.done, sigs: s.signals}
		if !s.handle(x) {
			return
		}
		x.discardBody()
	}
}

// closeIdle closes the server's connections, which a sequential test has left idle, waits until
// they are closed, and a little more for the close to reach the client (and net/http's reader
// goroutine to see it).
func (s *scriptServer) closeIdle(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for s.closed.Load() < s.conns.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the server closed %d of its %d connections in 5s", s.closed.Load(), s.conns.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

// proxy is an HTTP proxy on 127.0.0.1: it forwards plain requests (absolute-form) and tunnels
// CONNECT requests, and counts both.
type proxy struct {
	URL       *url.URL
	forwarded atomic.Int64
	connects  atomic.Int64
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	p := &proxy{}
	out := &http.Transport{Proxy: nil}
	t.Cleanup(out.CloseIdleConnections)
	var tunnels sync.WaitGroup
	var mu sync.Mutex
	var hijacked []net.Conn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			p.connects.Add(1)
			up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				up.Close()
				return
			}
			mu.Lock()
			hijacked = append(hijacked, c, up)
			mu.Unlock()
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			tunnels.Go(func() {
				io.Copy(up, brw)
				up.Close()
			})
			io.Copy(c, up)
			c.Close()
			up.Close()
			return
		}
		p.forwarded.Add(1)
		r2 := r.Clone(r.Context())
		r2.RequestURI = ""
		resp, err := out.RoundTrip(r2)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		for _, c := range hijacked {
			c.Close()
		}
		mu.Unlock()
		tunnels.Wait()
	})
	p.URL, _ = url.Parse(srv.URL)
	return p
}
