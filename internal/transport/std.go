package transport

import (
	"io"
	"net/http"
	"slices"
)

// useHTTP1 makes tr speak HTTP/1.1 only. Fluent Bit's C output does too. Over HTTP/2 every
// request of a client shares one connection and its flow-control window, and the body leaves in
// frames as small as the window updates the server sends, one TLS record and one write each; over
// HTTP/1.1 each concurrent request has a connection of its own and its body leaves in full TLS
// records (measured: about 1.3 µs less CPU per record, BenchmarkFlushTLS).
func useHTTP1(tr *http.Transport) {
	var p http.Protocols
	p.SetHTTP1(true)
	tr.Protocols = &p
	tr.ForceAttemptHTTP2 = false
	if tr.TLSClientConfig != nil {
		// A clone of a transport that was used already offers "h2" in ALPN.
		tr.TLSClientConfig.NextProtos = slices.DeleteFunc(tr.TLSClientConfig.NextProtos, func(p string) bool { return p == "h2" })
	}
}

// plainBodyTransport hides every method of a request body but Read and Close. smithy-go's request
// body implements io.WriterTo, and its WriteTo returns io.EOF once the SDK has closed the body,
// which the SDK does as soon as the response has arrived. net/http reads the body once more after
// Content-Length bytes (to detect extra data) with io.Copy, which trusts WriteTo: when the response
// wins that race (a fast or local endpoint), the write "fails" and the connection is closed instead
// of being reused. Through Read, the closed body reports a clean EOF.
type plainBodyTransport struct{ base http.RoundTripper }

func (t plainBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.base.RoundTrip(r)
	}
	r2 := *r // RoundTrip must not modify the caller's request
	r2.Body = plainBody{r.Body}
	return t.base.RoundTrip(&r2)
}

type plainBody struct{ rc io.ReadCloser }

func (b plainBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b plainBody) Close() error               { return b.rc.Close() }
