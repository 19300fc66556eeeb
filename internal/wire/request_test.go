package wire

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestPutRecordsSerializer calls the middleware alone: it writes a PutRecords body itself (the
// SDK's serializer is not called), and hands other inputs to the SDK's.
func TestPutRecordsSerializer(t *testing.T) {
	t.Parallel()
	records := []types.PutRecordsRequestEntry{{Data: []byte("data"), PartitionKey: aws.String("k")}}
	tests := []struct {
		name    string
		params  any
		wantSDK bool
	}{
		{name: "put records", params: &kinesissdk.PutRecordsInput{Records: records, StreamName: aws.String("s")}},
		{name: "dry run", params: &kinesissdk.PutRecordsInput{Records: records, DryRun: aws.Bool(true)}, wantSDK: true},
		{name: "other operation", params: &kinesissdk.ListShardsInput{}, wantSDK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sdkCalled := false
			sdk := middleware.SerializeMiddlewareFunc(operationSerializerID, func(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
				sdkCalled = true
				return next.HandleSerialize(ctx, in)
			})
			m := &putRecordsSerializer{sdk: sdk, bodies: &RequestBodies{}}
			var body []byte
			var header http.Header
			next := middleware.SerializeHandlerFunc(func(_ context.Context, in middleware.SerializeInput) (middleware.SerializeOutput, middleware.Metadata, error) {
				req := in.Request.(*smithyhttp.Request)
				header = req.Header.Clone()
				if s := req.GetStream(); s != nil {
					body, _ = io.ReadAll(s)
				}
				return middleware.SerializeOutput{}, middleware.Metadata{}, nil
			})
			in := middleware.SerializeInput{Parameters: tt.params, Request: smithyhttp.NewStackRequest()}
			if _, _, err := m.HandleSerialize(context.Background(), in, next); err != nil {
				t.Fatalf("HandleSerialize: %v", err)
			}
			if sdkCalled != tt.wantSDK {
				t.Fatalf("SDK serializer called = %v, want %v", sdkCalled, tt.wantSDK)
			}
			if tt.wantSDK {
				return
			}
			if want := `{"Records":[{"Data":"ZGF0YQ==","PartitionKey":"k"}],"StreamName":"s"}`; string(body) != want {
				t.Errorf("body = %s, want %s", body, want)
			}
			if got := header.Get("Content-Type"); got != jsonContentType {
				t.Errorf("Content-Type = %q", got)
			}
			if got := header.Get("X-Amz-Target"); got != putRecordsTarget {
				t.Errorf("X-Amz-Target = %q", got)
			}
		})
	}
}

// TestPutRecordsBodyLenFallback: inputs with members this client never sets go to the SDK.
func TestPutRecordsBodyLenFallback(t *testing.T) {
	t.Parallel()
	k := aws.String("k")
	tests := []struct {
		name string
		in   kinesissdk.PutRecordsInput
		ok   bool
	}{
		{name: "plain", in: kinesissdk.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{Data: []byte{}, PartitionKey: k}}}, ok: true},
		{name: "no records", in: kinesissdk.PutRecordsInput{}, ok: false},
		{name: "dry run", in: kinesissdk.PutRecordsInput{Records: []types.PutRecordsRequestEntry{}, DryRun: aws.Bool(true)}, ok: false},
		{name: "stream id", in: kinesissdk.PutRecordsInput{Records: []types.PutRecordsRequestEntry{}, StreamId: k}, ok: false},
		{name: "nil data", in: kinesissdk.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{PartitionKey: k}}}, ok: false},
		{name: "nil key", in: kinesissdk.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{Data: []byte{}}}}, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, ok := putRecordsBodyLen(&tt.in)
			if ok != tt.ok {
				t.Fatalf("putRecordsBodyLen ok = %v, want %v", ok, tt.ok)
			}
			if ok {
				if body := appendPutRecordsBody(nil, &tt.in); len(body) != n {
					t.Errorf("body %q is %d bytes, computed %d", body, len(body), n)
				}
			}
		})
	}
}

// FuzzAppendJSONString: the computed length is the written one, the result is JSON, and the
// string comes back as it was (valid UTF-8) or with U+FFFD for each invalid byte.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "k", `"\`, "\x00\x7f\u2028\u2029", "\xff", "ключ<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		if n := jsonStringLen(s); n != len(b) {
			t.Fatalf("jsonStringLen(%q) = %d, wrote %d bytes %q", s, n, len(b), b)
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		// Each byte of invalid UTF-8 becomes U+FFFD, as a conversion to []rune does.
		if want := string([]rune(s)); back != want {
			t.Fatalf("%q came back as %q, want %q", s, back, want)
		}
	})
}

// TestAppendBase64 checks the fast encoder against encoding/base64 for every length up to a few
// vector widths and some larger ones, random bytes, with and without room in dst.
func TestAppendBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range append(seq(0, 200), 1000, 4095, 65536, 1<<20+7) {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		want := "pre" + base64.StdEncoding.EncodeToString(src)
		for _, room := range []int{0, len(want)} {
			dst := append(make([]byte, 0, 3+room), "pre"...)
			if got := string(appendBase64(dst, src)); got != want {
				t.Fatalf("%d bytes, room %d: base64 differs from encoding/base64", n, room)
			}
		}
	}
}

// TestEncodeBase64EveryByte encodes every 3-byte group that matters to each output character
// (every 6-bit value in every position of a group), in each block of the vector loop and in the
// tail, with and without the AVX2 path.
func TestEncodeBase64EveryByte(t *testing.T) {
	avx2 := hasAVX2
	t.Cleanup(func() { hasAVX2 = avx2 })
	for _, use := range []bool{avx2, false} {
		hasAVX2 = use
		for v := range 256 {
			for _, n := range []int{3, 27, 28, 51, 52, 100} {
				for pos := range n {
					src := make([]byte, n)
					for i := range src {
						src[i] = byte(i*37 + v)
					}
					src[pos] = byte(v)
					want := base64.StdEncoding.EncodeToString(src)
					dst := make([]byte, len(want))
					encodeBase64(dst, src)
					if string(dst) != want {
						t.Fatalf("AVX2 %v, %d bytes, %#x at %d: %q, want %q", use, n, v, pos, dst, want)
					}
				}
			}
		}
	}
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestSafeRun compares safeRun with a loop over jsonSafe, with every byte value at every position
// of strings of up to 40 bytes (and a second unsafe byte after the first).
func TestSafeRun(t *testing.T) {
	naive := func(s string) int {
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf && jsonSafe[s[i]] {
			i++
		}
		return i
	}
	for n := 0; n <= 40; n++ {
		base := make([]byte, n)
		for i := range base {
			base[i] = ' ' + byte(i*7%60) // printable ASCII; '"' and '\\' become 'x'
			if base[i] == '"' || base[i] == '\\' {
				base[i] = 'x'
			}
		}
		if got := safeRun(string(base)); got != n {
			t.Fatalf("%q: %d, want %d", base, got, n)
		}
		for pos := 0; pos < n; pos++ {
			for c := range 256 {
				b := append([]byte(nil), base...)
				b[pos] = byte(c)
				if pos+1 < n {
					b[n-1] = 0x7f
				}
				if got, want := safeRun(string(b)), naive(string(b)); got != want {
					t.Fatalf("%q: %d, want %d", b, got, want)
				}
			}
		}
	}
}

// BenchmarkAppendBase64 encodes 500 records of a container log line's size into one body, as a
// request does, with appendBase64 and with segmentio/asm's encoder alone.
func BenchmarkAppendBase64(b *testing.B) {
	src := make([]byte, 395)
	for i := range src {
		src[i] = byte(i * 31)
	}
	body := make([]byte, 0, 500*base64.StdEncoding.EncodedLen(len(src)))
	for _, bc := range []struct {
		name   string
		encode func(dst, src []byte)
	}{
		{"ours", encodeBase64},
		{"segmentio", fastEncodeBase64},
		{"stdlib", base64.StdEncoding.Encode},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(500 * len(src)))
			for b.Loop() {
				dst := body[:0]
				for range 500 {
					n := len(dst)
					dst = dst[:n+base64.StdEncoding.EncodedLen(len(src))]
					bc.encode(dst[n:], src)
				}
			}
		})
	}
}

// TestBodyReuse: a released body's buffer serves the next body; one whose reader is still open is
// not reused (a transport may still read it); the idle buffers stay within maxIdleBodyBytes, the
// largest going first.
func TestBodyReuse(t *testing.T) {
	t.Parallel()
	in := func(n, size int) *kinesissdk.PutRecordsInput {
		records := make([]types.PutRecordsRequestEntry, n)
		for i := range records {
			records[i] = types.PutRecordsRequestEntry{Data: make([]byte, size), PartitionKey: aws.String("k")}
		}
		return &kinesissdk.PutRecordsInput{Records: records, StreamName: aws.String("s")}
	}
	for _, cbor := range []bool{false, true} {
		b := &RequestBodies{CBOR: cbor}
		body := func(in *kinesissdk.PutRecordsInput) *Body {
			t.Helper()
			body, _, ok, err := b.Body(in)
			if !ok || err != nil {
				t.Fatalf("cbor %v: Body: %v, %v", cbor, ok, err)
			}
			return body
		}
		first := body(in(100, 1000))
		p := &first.Bytes()[0]
		first.Release()
		second := body(in(90, 1000)) // a little smaller: fits
		if &second.Bytes()[0] != p {
			t.Errorf("cbor %v: a released buffer was not reused", cbor)
		}
		r := second.Reader()
		want := string(second.Bytes())
		second.Release() // its reader is open: not reused
		third := body(in(100, 1000))
		if &third.Bytes()[0] == p {
			t.Errorf("cbor %v: a buffer was reused while a reader of it was open", cbor)
		}
		if got, _ := io.ReadAll(r); string(got) != want {
			t.Errorf("cbor %v: the open reader read %d bytes, not the body's %d", cbor, len(got), len(want))
		}
		r.Close()
		third.Release()

		var bodies []*Body
		for range 60 {
			bodies = append(bodies, body(in(500, 1000)))
		}
		huge := body(in(500, 9000)) // larger than the bound alone, with base64
		for _, x := range append(bodies, huge) {
			x.Release()
		}
		b.mu.Lock()
		n, total := len(b.idle), 0
		for _, bp := range b.idle {
			total += cap(*bp)
		}
		b.mu.Unlock()
		if total != b.idleBytes || total > maxIdleBodyBytes || n < 10 {
			t.Errorf("cbor %v: %d buffers idle, %d bytes (counted %d); want at least 10, at most %d bytes",
				cbor, n, total, b.idleBytes, maxIdleBodyBytes)
		}
	}
}
