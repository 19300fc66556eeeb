// Command sink is a minimal Kinesis-compatible PutRecords endpoint for the benchmarks of
// test/perf: HTTPS on 127.0.0.1 with a self-signed certificate it creates, answering every
// Kinesis_20131202.PutRecords request (JSON 1.1 or CBOR, answered in kind) with success for every record, doing as little
// work as it can so that it disturbs the measured process little. It runs as its own process so
// that its CPU time is not counted with the plugin's.
//
//	sink -cert FILE [-addr 127.0.0.1:0] [-latency 50ms]
//
// -latency makes it wait that long before answering each PutRecords request, as Kinesis takes
// tens of milliseconds to answer: requests in flight together then overlap their waits. It writes the certificate (PEM, the trust anchor for AWS_CA_BUNDLE) to FILE, then prints one line
// "ready https://127.0.0.1:PORT" on stdout. GET /stats answers "requests=N records=N bytes=N
// http2=N wire_in=N wire_out=N" (bytes: request bodies; wire_in and wire_out: the bytes read from
// and written to its TCP connections, TLS records and HTTP headers included, /stats too). It exits when its stdin is closed (so it never outlives the
// benchmark that started it) or on SIGTERM/SIGINT.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// maxRecords is PutRecords' limit of records per request.
const maxRecords = 500

// partitionKeyField occurs once per record in a PutRecords body and nowhere else: the data is
// base64 (no quotes), and the benchmark's partition keys are random alphanumerics.
var partitionKeyField = []byte(`"PartitionKey":`)

type server struct {
	latency       time.Duration          // waited before each PutRecords answer
	responses     [maxRecords + 1][]byte // the success answer for n records
	cborResponses [maxRecords + 1][]byte // the same in CBOR
	bufs          sync.Pool              // *bytes.Buffer

	requests, records, bytes, http2 atomic.Int64
	wireIn, wireOut                 atomic.Int64
}

func newServer(latency time.Duration) *server {
	s := &server{latency: latency}
	// As Kinesis answers: a 56-digit sequence number and the shard of each record.
	const entry = `{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"}`
	for n := 0; n <= maxRecords; n++ {
		var b bytes.Buffer
		b.WriteString(`{"EncryptionType":"NONE","FailedRecordCount":0,"Records":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(entry)
		}
		b.WriteString("]}")
		s.responses[n] = b.Bytes()
		recs := make(cbor.List, n)
		for i := range recs {
			recs[i] = cbor.Map{"SequenceNumber": cbor.String("49590338271490256608559692538361571095921575989136588898"),
				"ShardId": cbor.String("shardId-000000000000")}
		}
		s.cborResponses[n] = cbor.Encode(cbor.Map{"EncryptionType": cbor.String("NONE"), "FailedRecordCount": cbor.Uint(0), "Records": recs})
	}
	return s
}

// cborRecordsKey is the text string "Records", as CBOR writes it: in a PutRecords body, the
// first one is the key of the array of records.
var cborRecordsKey = []byte("\x67Records")

// cborRecordCount returns the length of the array of records in a PutRecords body in CBOR, or -1.
func cborRecordCount(body []byte) int {
	i := bytes.Index(body, cborRecordsKey)
	if i < 0 || i+len(cborRecordsKey) >= len(body) {
		return -1
	}
	p := body[i+len(cborRecordsKey):]
	if p[0]>>5 != 4 { // an array
		return -1
	}
	switch info := p[0] & 31; {
	case info < 24:
		return int(info)
	case info == 24 && len(p) > 1:
		return int(p[1])
	case info == 25 && len(p) > 2:
		return int(p[1])<<8 | int(p[2])
	}
	return -1
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		fmt.Fprintf(w, "requests=%d records=%d bytes=%d http2=%d wire_in=%d wire_out=%d\n",
			s.requests.Load(), s.records.Load(), s.bytes.Load(), s.http2.Load(), s.wireIn.Load(), s.wireOut.Load())
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "Kinesis_20131202.PutRecords" {
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
		return
	}
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer s.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	isCBOR := r.Header.Get("Content-Type") == "application/x-amz-cbor-1.1"
	var n int
	if isCBOR {
		n = cborRecordCount(buf.Bytes())
	} else {
		n = bytes.Count(buf.Bytes(), partitionKeyField)
	}
	if n < 1 || n > maxRecords {
		http.Error(w, `{"__type":"ValidationException","message":"bad record count"}`, http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.records.Add(int64(n))
	s.bytes.Add(int64(buf.Len()))
	if r.ProtoMajor == 2 {
		s.http2.Add(1)
	}
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	body, ctype := s.responses[n], "application/x-amz-json-1.1"
	if isCBOR {
		body, ctype = s.cborResponses[n], "application/x-amz-cbor-1.1"
	}
	h := w.Header()
	h["Content-Type"] = []string{ctype}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Amzn-Requestid"] = []string{"00000000-0000-0000-0000-000000000000"}
	_, _ = w.Write(body)
}

// countingListener counts the bytes of every connection it accepts, as they cross the socket.
type countingListener struct {
	net.Listener
	in, out *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, in: l.in, out: l.out}, nil
}

type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// selfSigned returns a P-256 certificate for 127.0.0.1 and localhost that is its own CA.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kinesis perf sink"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemCert, nil
}

func main() {
	certFile := flag.String("cert", "", "write the certificate (PEM) to this file")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	latency := flag.Duration("latency", 0, "wait this long before answering each PutRecords request")
	flag.Parse()
	if *certFile == "" {
		fmt.Fprintln(os.Stderr, "sink: -cert is required")
		os.Exit(2)
	}
	if *latency < 0 {
		fmt.Fprintln(os.Stderr, "sink: -latency must not be negative")
		os.Exit(2)
	}
	cert, pemCert, err := selfSigned()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*certFile, pemCert, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	handler := newServer(*latency)
	ln = countingListener{Listener: ln, in: &handler.wireIn, out: &handler.wireOut}
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	go func() {
		// The parent closes stdin (or dies): stop.
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	fmt.Printf("ready https://%s\n", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}
