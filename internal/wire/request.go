package wire

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"sync"
	"unicode/utf8"

	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	fastbase64 "github.com/segmentio/asm/base64"
)

// The PutRecords request of the awsJson1_1 protocol, as the SDK's serializer writes it.
const (
	operationSerializerID = "OperationSerializer" // the SDK's Serialize-step middleware
	putRecordsTarget      = "Kinesis_20131202.PutRecords"
	jsonContentType       = "application/x-amz-json-1.1"
)

// RequestBodies is the pool of PutRecords request bodies, shared by the requests of one Client.
//
// The SDK's serializer grows each body from zero by appends and copies it once more at the end,
// which for a request of a few hundred KB is most of what a request allocates. This one computes
// the exact size first and writes the body once: JSON with the base64 of each record's data
// written straight into it, or, with CBOR set, Kinesis's CBOR protocol, the data as it is.
type RequestBodies struct {
	// CBOR sends PutRecords in CBOR (application/x-amz-cbor-1.1) instead of JSON. Set it before
	// Install.
	CBOR bool

	mu        sync.Mutex
	idle      []*[]byte // buffers free for the next bodies
	idleBytes int       // their capacity, at most maxIdleBodyBytes
}

// maxIdleBodyBytes bounds the capacity of the buffers a RequestBodies keeps idle between requests.
// A sync.Pool would drop them at every garbage collection, and a body of a few hundred KB then
// comes from fresh pages, zeroed and faulted in: in a real Fluent Bit that cost as much as
// writing the body. 8 MiB holds the bodies of 16 requests in flight of 500 records of 1 KB.
const maxIdleBodyBytes = 8 << 20

// get returns an empty buffer with room for size bytes: an idle one if one is large enough.
func (b *RequestBodies) get(size int) *[]byte {
	b.mu.Lock()
	for i := len(b.idle) - 1; i >= 0; i-- {
		if bp := b.idle[i]; cap(*bp) >= size {
			last := len(b.idle) - 1
			b.idle[i], b.idle[last] = b.idle[last], nil
			b.idle = b.idle[:last]
			b.idleBytes -= cap(*bp)
			b.mu.Unlock()
			return bp
		}
	}
	b.mu.Unlock()
	// Room for a slightly larger body too, so that bodies of about the same size reuse it.
	c := size + size/8
	c = (c + 4095) &^ 4095
	buf := make([]byte, 0, c)
	return &buf
}

// put keeps bp idle, unless that would keep more than maxIdleBodyBytes idle: the largest
// buffers go first.
func (b *RequestBodies) put(bp *[]byte) {
	*bp = (*bp)[:0]
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.idleBytes+cap(*bp) > maxIdleBodyBytes {
		j := -1 // the largest idle buffer, if larger than bp
		for i, o := range b.idle {
			if cap(*o) > cap(*bp) && (j < 0 || cap(*o) > cap(*b.idle[j])) {
				j = i
			}
		}
		if j < 0 {
			return // bp is the largest: let it go
		}
		b.idleBytes -= cap(*b.idle[j])
		last := len(b.idle) - 1
		b.idle[j], b.idle[last] = b.idle[last], nil
		b.idle = b.idle[:last]
	}
	b.idle = append(b.idle, bp)
	b.idleBytes += cap(*bp)
}

// Install is an APIOptions function: it wraps the operation serializer of the stack so that a
// PutRecords request is serialized by putRecordsSerializer, and every other request by the SDK.
func (b *RequestBodies) Install(stack *middleware.Stack) error {
	sdk, ok := stack.Serialize.Get(operationSerializerID)
	if !ok {
		return fmt.Errorf("wire: no %q middleware to replace", operationSerializerID)
	}
	_, err := stack.Serialize.Swap(operationSerializerID, &putRecordsSerializer{sdk: sdk, bodies: b})
	return err
}

// putRecordsSerializer serializes a *kinesissdk.PutRecordsInput into a pooled body, and hands any
// other input (or a PutRecords input with fields this client never sets) to the SDK's serializer,
// which writes JSON.
type putRecordsSerializer struct {
	sdk    middleware.SerializeMiddleware
	bodies *RequestBodies
}

func (*putRecordsSerializer) ID() string { return operationSerializerID }

// Unwrap returns the SDK's serializer, which serializes every request this one does not.
func (m *putRecordsSerializer) Unwrap() middleware.SerializeMiddleware { return m.sdk }

func (m *putRecordsSerializer) HandleSerialize(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (
	middleware.SerializeOutput, middleware.Metadata, error,
) {
	input, ok := in.Parameters.(*kinesissdk.PutRecordsInput)
	req, isHTTP := in.Request.(*smithyhttp.Request)
	if !ok || !isHTTP {
		return m.sdk.HandleSerialize(ctx, in, next)
	}
	body, contentType, ok, err := m.bodies.Body(input)
	if err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, err
	}
	if !ok {
		return m.sdk.HandleSerialize(ctx, in, next)
	}
	defer body.Release()

	req.Method = http.MethodPost
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	req.Header.Set("X-Amz-Target", putRecordsTarget)
	req.Header.Set("Content-Type", contentType)
	// A seekable stream: signing hashes it, and a retry rewinds and sends it again.
	sreq, err := req.SetStream(bytes.NewReader(body.Bytes()))
	if err != nil {
		return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("wire: set put records body: %w", err)
	}
	*req = *sreq

	// The deferred Release may reuse the body only once this returns: smithy-go's HTTP handler wraps every
	// attempt's body in a reader whose Close waits for a Read in progress and makes later ones
	// return io.EOF, and it closes it before it returns, even when net/http's write loop outlives
	// the round trip.
	return next.HandleSerialize(ctx, in)
}

// Target is the X-Amz-Target header of a PutRecords request.
const Target = putRecordsTarget

// Body is a PutRecords request body from a RequestBodies pool. Its readers (Reader) may be handed
// to an HTTP transport, which closes them once it has written them, perhaps after its round trip
// returned; Release gives the bytes back to the pool only when every reader was closed, and
// otherwise leaves them to the garbage collector, so that no transport reads bytes being reused.
type Body struct {
	buf    *[]byte
	bodies *RequestBodies
	mu     sync.Mutex
	open   int // readers not closed
}

// Bytes returns the body. It is valid until Release.
func (b *Body) Bytes() []byte { return *b.buf }

// Reader returns a new reader of the body, for one attempt of the request.
func (b *Body) Reader() io.ReadCloser {
	b.mu.Lock()
	b.open++
	b.mu.Unlock()
	r := &bodyReader{body: b}
	r.r.Reset(*b.buf)
	return r
}

// Release gives the body back to its pool, when no reader of it is still open.
func (b *Body) Release() {
	b.mu.Lock()
	reuse := b.open == 0
	b.mu.Unlock()
	if reuse {
		b.bodies.put(b.buf)
	}
}

// bodyReader reads a Body. Close waits for a Read or WriteTo in progress, and later ones read
// nothing, as smithy-go's own request body does.
type bodyReader struct {
	body   *Body
	mu     sync.Mutex
	r      bytes.Reader
	closed bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, io.EOF
	}
	return r.r.Read(p)
}

// WriteTo writes what is left of the body to w in one call, which the transports use.
func (r *bodyReader) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, nil
	}
	return r.r.WriteTo(w)
}

func (r *bodyReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.body.mu.Lock()
		r.body.open--
		r.body.mu.Unlock()
	}
	return nil
}

// Body writes in's body into a pooled buffer, in CBOR or JSON as the pool's CBOR says, and
// returns it with its Content-Type. ok is false, and nothing is written, when in has something
// this writer does not write (DryRun, StreamId, no Records, a record without Data or
// PartitionKey): the SDK's serializer writes those.
func (b *RequestBodies) Body(in *kinesissdk.PutRecordsInput) (body *Body, contentType string, ok bool, err error) {
	if !sdkWritable(in) {
		return nil, "", false, nil
	}
	body, contentType, err = writeBody(b, sdkRecords(in.Records), in.StreamARN, in.StreamName)
	return body, contentType, err == nil, err
}

// BodyOf writes the body of a PutRecords request of records to the stream named streamName or
// streamARN (each nil when not sent), as Body writes the same request given as the SDK's input.
func (b *RequestBodies) BodyOf(records []Record, streamName, streamARN *string) (body *Body, contentType string, err error) {
	return writeBody(b, recordSlice(records), streamARN, streamName)
}

func writeBody[L recordList](b *RequestBodies, l L, arn, name *string) (*Body, string, error) {
	var size int
	var bp *[]byte
	contentType := jsonContentType
	if b.CBOR {
		var valid bool
		size, valid = bodyCBORLen(l, arn, name)
		bp = b.get(size)
		*bp = appendBodyCBOR(*bp, l, arn, name, valid)
		contentType = cborContentType
	} else {
		size = bodyJSONLen(l, arn, name)
		bp = b.get(size)
		*bp = appendBodyJSON(*bp, l, arn, name)
	}
	if len(*bp) != size {
		b.put(bp)
		return nil, "", fmt.Errorf("wire: put records body is %d bytes, computed %d", len(*bp), size)
	}
	return &Body{buf: bp, bodies: b}, contentType, nil
}

// Constant parts of the body, in the order the SDK writes them (members sorted by name).
const (
	bodyStart        = `{"Records":[`
	recordDataStart  = `{"Data":"`
	recordHashKey    = `","ExplicitHashKey":`
	recordPartKey    = `,"PartitionKey":`
	recordPartKeyRaw = `","PartitionKey":` // after Data, when there is no ExplicitHashKey
	recordsEnd       = `]`
	streamARNField   = `,"StreamARN":`
	streamNameField  = `,"StreamName":`
)

// putRecordsBodyLen is the exact length of the body appendPutRecordsBody writes for in, and false
// when in has something this serializer does not write (see sdkWritable).
func putRecordsBodyLen(in *kinesissdk.PutRecordsInput) (int, bool) {
	if !sdkWritable(in) {
		return 0, false
	}
	return bodyJSONLen(sdkRecords(in.Records), in.StreamARN, in.StreamName), true
}

// appendPutRecordsBody appends the JSON body of in, as the SDK writes it, to dst. in must be one
// putRecordsBodyLen accepts.
func appendPutRecordsBody(dst []byte, in *kinesissdk.PutRecordsInput) []byte {
	return appendBodyJSON(dst, sdkRecords(in.Records), in.StreamARN, in.StreamName)
}

// bodyJSONLen is the exact length of the body appendBodyJSON writes.
func bodyJSONLen[L recordList](l L, arn, name *string) int {
	n := len(bodyStart) + len(recordsEnd) + len("}")
	for i := range l.Len() {
		data, key, hash, hasHash := l.record(i)
		if i > 0 {
			n++ // ,
		}
		n += len(recordDataStart) + base64.StdEncoding.EncodedLen(len(data))
		if hasHash {
			n += len(recordHashKey) + jsonStringLen(hash) + len(recordPartKey)
		} else {
			n += len(recordPartKeyRaw)
		}
		n += jsonStringLen(key) + len("}")
	}
	if arn != nil {
		n += len(streamARNField) + jsonStringLen(*arn)
	}
	if name != nil {
		n += len(streamNameField) + jsonStringLen(*name)
	}
	return n
}

// appendBodyJSON appends the JSON body of a request of l to the stream arn or name (each nil when
// not sent), as the SDK writes it, to dst; with cap(dst)-len(dst) of bodyJSONLen, nothing is
// allocated.
func appendBodyJSON[L recordList](dst []byte, l L, arn, name *string) []byte {
	dst = append(dst, bodyStart...)
	for i := range l.Len() {
		data, key, hash, hasHash := l.record(i)
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, recordDataStart...)
		dst = appendBase64(dst, data)
		if hasHash {
			dst = append(dst, recordHashKey...)
			dst = appendJSONString(dst, hash)
			dst = append(dst, recordPartKey...)
		} else {
			dst = append(dst, recordPartKeyRaw...)
		}
		dst = appendJSONString(dst, key)
		dst = append(dst, '}')
	}
	dst = append(dst, recordsEnd...)
	if arn != nil {
		dst = append(dst, streamARNField...)
		dst = appendJSONString(dst, *arn)
	}
	if name != nil {
		dst = append(dst, streamNameField...)
		dst = appendJSONString(dst, *name)
	}
	return append(dst, '}')
}

// appendBase64 appends the standard base64 encoding of src to dst, encoding in place with
// encodeBase64 (vector code, the same output as encoding/base64: TestAppendBase64): every byte of
// record data goes through it, which makes encoding/base64 a large share of the CPU.
func appendBase64(dst, src []byte) []byte {
	n := len(dst)
	enc := base64.StdEncoding.EncodedLen(len(src))
	if cap(dst)-n < enc {
		dst = append(dst, make([]byte, enc)...)
	} else {
		dst = dst[:n+enc]
	}
	encodeBase64(dst[n:], src)
	return dst
}

// fastEncodeBase64 is segmentio/asm's encoder (NEON on arm64, AVX2 on amd64, encoding/base64
// otherwise).
func fastEncodeBase64(dst, src []byte) { fastbase64.StdEncoding.Encode(dst, src) }

// jsonSafe reports the ASCII bytes written as they are inside a JSON string: printable ASCII but
// '"' and '\\'. This is smithy-go's set: unlike encoding/json, it does not escape <, > and &, and
// it escapes DEL.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := byte(' '); b < 0x7f; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// safeRun returns how many bytes at the start of s are jsonSafe, reading 8 at a time: partition
// keys and stream names are all such bytes, and each key is scanned twice per record
// (jsonStringLen, appendJSONString).
func safeRun(s string) int {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		x := load64(s, i)
		// special flags '"', '\\' and control characters; x itself bytes from 0x80 on, and x+ones
		// DEL (0x7f), each exactly up to the first flagged byte (a carry only moves up).
		if m := (special(x) | x | (x + ones)) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s) && s[i] < utf8.RuneSelf && jsonSafe[s[i]]; i++ {
	}
	return i
}

// jsonStringLen is the length of appendJSONString(nil, s).
func jsonStringLen(s string) int {
	safe := safeRun(s)
	n := 2 + safe // quotes
	for i := safe; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case jsonSafe[b]:
				n++
			case b == '\\', b == '"', b == '\n', b == '\r', b == '\t':
				n += 2
			default:
				n += 6 // \u00XX
			}
			i++
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			n += len(string(utf8.RuneError))
		case c == '\u2028' || c == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// appendJSONString appends s as a JSON string, escaped exactly as smithy-go's JSON serializer does:
// '"', '\\', \n, \r and \t with a backslash, other control characters and DEL as \u00XX, U+2028
// and U+2029 as \u2028 and \u2029, and each byte of invalid UTF-8 replaced by U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := safeRun(s); i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, string(utf8.RuneError)...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
