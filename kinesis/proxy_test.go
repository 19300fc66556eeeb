package kinesis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The proxy tests run the client in a child process of the test binary: net/http reads
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY once per process, at the first request through its
// default proxy function, which every client of the SDK uses.
const (
	proxyChildEnv = "KINESIS_PROXY_TEST_ENDPOINT" // set in the child: the endpoint to send to
	proxyDialEnv  = "KINESIS_PROXY_TEST_DIAL"     // in the child: HOST:PORT=ADDR, where HOST:PORT is dialled
	proxyDataEnv  = "KINESIS_PROXY_TEST_DATA"     // in the child: the record to send
	proxyModeEnv  = "KINESIS_PROXY_TEST_TRANSPORT"
	// proxiedHost is the endpoint's name: reserved (RFC 2606), it resolves nowhere, so a request
	// reaches the test's server only through the proxy or the child's dialer.
	proxiedHost = "kinesis.proxied.test"
)

// connectProxy is an HTTP proxy on 127.0.0.1 that tunnels every CONNECT to target, whatever host it
// names, and remembers the hosts.
type connectProxy struct {
	URL     string
	mu      sync.Mutex
	targets []string
}

func startConnectProxy(t *testing.T, target string) *connectProxy {
	t.Helper()
	p := &connectProxy{}
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.targets = append(p.targets, r.Method+" "+r.Host)
		p.mu.Unlock()
		if r.Method != http.MethodConnect {
			http.Error(w, "this proxy only tunnels", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		wg.Go(func() {
			_, _ = io.Copy(up, brw)
			up.Close()
		})
		_, _ = io.Copy(c, up)
		c.Close()
		up.Close()
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	p.URL = srv.URL
	return p
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// certFor returns a self-signed certificate for host, and its PEM.
func certFor(t *testing.T, host string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestProxyEnvironment: the client honours HTTPS_PROXY for an HTTPS endpoint (a CONNECT to the
// endpoint's host through the proxy), NO_PROXY (a matching host is reached directly; a host that
// does not match still goes through the proxy), and not HTTP_PROXY for an HTTPS endpoint; with
// both transports. The record must reach the server either way, and the proxy must see exactly
// the tunnels the case expects.
func TestProxyEnvironment(t *testing.T) {
	cert, certPEM := certFor(t, proxiedHost)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodePut(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(req.Records) != 1 || !strings.HasPrefix(string(req.Records[0].Data), "through ") {
			http.Error(w, "unexpected records", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Test-Record", string(req.Records[0].Data))
		writeResult(w, []string{""})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	bundle := filepath.Join(tempDir(t), "ca.pem")
	if err := os.WriteFile(bundle, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// Under an emulator (go test -exec qemu-aarch64), the test binary cannot start itself.
	if err := exec.Command(os.Args[0], "-test.run=^$").Run(); errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("skipped: the test binary cannot run itself here (%v)", err)
	}

	const proxyURL = "@proxy@" // replaced by each case's proxy
	for _, tt := range []struct {
		name        string
		env         []string
		wantTunnels []string
	}{
		{"HTTPS_PROXY", []string{"HTTPS_PROXY=" + proxyURL}, []string{"CONNECT " + proxiedHost + ":443"}},
		{"https_proxy, NO_PROXY another host", []string{"https_proxy=" + proxyURL, "NO_PROXY=kinesis.other.test,127.0.0.1"},
			[]string{"CONNECT " + proxiedHost + ":443"}},
		{"NO_PROXY the host", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=" + proxiedHost}, nil},
		{"NO_PROXY a domain", []string{"HTTPS_PROXY=" + proxyURL, "no_proxy=.proxied.test"}, nil},
		{"NO_PROXY everything", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=*"}, nil},
		{"HTTP_PROXY only", []string{"HTTP_PROXY=" + proxyURL}, nil},
	} {
		for _, mode := range []string{"sync", "std"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				proxy := startConnectProxy(t, srv.Listener.Addr().String())
				data := "through " + tt.name + " " + mode
				cmd := exec.Command(os.Args[0], "-test.run=^TestProxyChild$", "-test.count=1", "-test.v")
				cmd.Env = append(childEnv(),
					"HOME="+tempDir(t),
					"AWS_ACCESS_KEY_ID="+fakeKeyID,
					"AWS_SECRET_ACCESS_KEY="+fakeSecret,
					"AWS_EC2_METADATA_DISABLED=true",
					"AWS_CONFIG_FILE="+filepath.Join(tempDir(t), "none"),
					"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(tempDir(t), "none"),
					"AWS_CA_BUNDLE="+bundle,
					proxyChildEnv+"=https://"+proxiedHost,
					proxyDialEnv+"="+proxiedHost+":443="+srv.Listener.Addr().String(),
					proxyDataEnv+"="+data,
					proxyModeEnv+"="+mode,
				)
				for _, kv := range tt.env {
					cmd.Env = append(cmd.Env, strings.Replace(kv, proxyURL, proxy.URL, 1))
				}
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyChild") {
					t.Fatalf("child: %v\n%s", err, out)
				}
				if !strings.Contains(string(out), "delivered: "+data) {
					t.Errorf("the child did not see its record delivered:\n%s", out)
				}
				got := proxy.seen()
				if strings.Join(got, "|") != strings.Join(tt.wantTunnels, "|") {
					t.Errorf("the proxy saw %q, want %q", got, tt.wantTunnels)
				}
			})
		}
	}
}

// childEnv is this process's environment without the variables of AWS, of proxies and of the
// plugin, which each case sets itself.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		k = strings.ToUpper(k)
		if strings.HasPrefix(k, "AWS_") || strings.HasSuffix(k, "_PROXY") || strings.HasPrefix(k, "KINESIS_") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestProxyChild is the client side of TestProxyEnvironment, in a process of its own.
func TestProxyChild(t *testing.T) {
	endpoint := os.Getenv(proxyChildEnv)
	if endpoint == "" {
		t.Skip("runs only as the child process of TestProxyEnvironment")
	}
	from, to, _ := strings.Cut(os.Getenv(proxyDialEnv), "=")
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == from {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
	c, err := New(context.Background(), Options{Region: "us-east-1", Stream: "s", Endpoint: endpoint,
		HTTPTransport: os.Getenv(proxyModeEnv), HTTPTimeout: 10 * time.Second, dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := os.Getenv(proxyDataEnv)
	res, err := c.PutRecords(context.Background(), []Entry{{Data: []byte(data), PartitionKey: "k"}})
	if err != nil || res.FailedCount != 0 {
		t.Fatalf("PutRecords: %+v, %v", res, err)
	}
	t.Logf("delivered: %s", data)
}
