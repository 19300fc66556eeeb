package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// operationDeserializerID is the SDK's Deserialize-step middleware that decodes responses.
const operationDeserializerID = "OperationDeserializer"

// InstallResponseDecoder is an APIOptions function: it wraps the operation deserializer of the
// stack so that a successful PutRecords response is decoded by putRecordsDecoder, in JSON or CBOR
// as its Content-Type says, and every other response (errors included, whatever the operation) by
// the SDK, an error in CBOR rewritten as JSON first.
//
// The SDK decodes through its generic schema-driven JSON reader, a few allocations per value, a
// noticeable share of the CPU for a 500-record response; the response is flat and known, and read
// here in place (BenchmarkPutRecordsResponse compares the two).
func InstallResponseDecoder(stack *middleware.Stack) error {
	sdk, ok := stack.Deserialize.Get(operationDeserializerID)
	if !ok {
		return fmt.Errorf("wire: no %q middleware to replace", operationDeserializerID)
	}
	_, err := stack.Deserialize.Swap(operationDeserializerID, &putRecordsDecoder{sdk: sdk})
	return err
}

// maxResponseHint bounds the Content-Length trusted to size the read buffer: a 500-record response
// is about 60 KB.
const maxResponseHint = 1 << 20

// freeList keeps values between requests, for every client of the process: up to its capacity
// (about one per request in flight), the rest are dropped. Not a sync.Pool: that is emptied at
// every garbage collection, which with a few MB of live heap comes every few requests. (Nor a
// field of putRecordsDecoder: the SDK builds the middleware stack, and so a decoder, for every
// request.)
type freeList[T any] chan T

// get returns a kept value, or false when there is none.
func (f freeList[T]) get() (T, bool) {
	select {
	case v := <-f:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// put keeps v if there is room.
func (f freeList[T]) put(v T) {
	select {
	case f <- v:
	default:
	}
}

// responseBuffers holds the buffers responses are read into: a 500-record response is about
// 50 KB to grow again otherwise.
var responseBuffers = make(freeList[*bytes.Buffer], 16)

func getResponseBuffer() *bytes.Buffer {
	if b, ok := responseBuffers.get(); ok {
		return b
	}
	return new(bytes.Buffer)
}

func putResponseBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxResponseHint { // an unusual response: do not keep its memory
		responseBuffers.put(b)
	}
}

// resultEntries holds the Records of decoded outputs: 500 entries are 16 KB, which would otherwise
// be allocated for every response.
var resultEntries = make(freeList[[]types.PutRecordsResultEntry], 16)

// getResultEntries returns an empty slice with room for n entries.
func getResultEntries(n int) []types.PutRecordsResultEntry {
	if s, ok := resultEntries.get(); ok && cap(s) >= n {
		return s
	}
	return make([]types.PutRecordsResultEntry, 0, max(n, limits.MaxRecordsPerRequest))
}

// ReleaseResultEntries gives back the Records of an output once nothing reads them.
func ReleaseResultEntries(s []types.PutRecordsResultEntry) {
	if cap(s) < limits.MaxRecordsPerRequest || cap(s) > 2*limits.MaxRecordsPerRequest {
		return // not one of ours, or an unusual response
	}
	clear(s) // the strings of this response
	resultEntries.put(s[:0])
}

// putRecordsDecoder decodes successful PutRecords responses, reading each into a reused buffer,
// and hands everything else to the SDK's deserializer.
type putRecordsDecoder struct {
	sdk middleware.DeserializeMiddleware
}

func (*putRecordsDecoder) ID() string { return operationDeserializerID }

func (m *putRecordsDecoder) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	out middleware.DeserializeOutput, md middleware.Metadata, err error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok || req.Header.Get("X-Amz-Target") != putRecordsTarget {
		return m.sdk.HandleDeserialize(ctx, in, next)
	}
	out, md, err = next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		if err == nil && ok && isCBOR(resp.Header.Get("Content-Type")) {
			cborErrorAsJSON(resp)
		}
		// The SDK's own handling of failures, from the response already received.
		return m.sdk.HandleDeserialize(ctx, in, replayHandler{out, md, err})
	}
	defer func() { smithyhttp.CloseResponseBody(ctx, resp, false, err) }()
	result, err := ReadPutRecords(resp.Response)
	if err != nil {
		return out, md, err
	}
	out.Result = result
	return out, md, nil
}

// SDKDeserializer returns the SDK's own deserializer of the operation of stack, the one
// InstallResponseDecoder wraps when it has been installed, for ReadError.
func SDKDeserializer(stack *middleware.Stack) (middleware.DeserializeMiddleware, bool) {
	m, ok := stack.Deserialize.Get(operationDeserializerID)
	if d, ours := m.(*putRecordsDecoder); ours {
		m = d.sdk
	}
	return m, ok && m != nil
}

// ReadPutRecords reads the body of a successful PutRecords response into a reused buffer and
// decodes it, in JSON or CBOR as its Content-Type says. Its errors are the SDK's
// *smithy.DeserializationError. It does not close the body.
func ReadPutRecords(resp *http.Response) (*kinesissdk.PutRecordsOutput, error) {
	buf := getResponseBuffer()
	defer putResponseBuffer(buf)
	buf.Reset()
	if resp.ContentLength > 0 && resp.ContentLength <= maxResponseHint {
		buf.Grow(int(resp.ContentLength))
	}
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, &smithy.DeserializationError{Err: fmt.Errorf("failed to read response body: %w", err)}
	}
	decode := decodePutRecordsOutput
	if isCBOR(resp.Header.Get("Content-Type")) {
		decode = decodePutRecordsCBOR
	}
	result, err := decode(buf.Bytes())
	if err != nil {
		return nil, &smithy.DeserializationError{Err: err, Snapshot: bytes.Clone(buf.Bytes())}
	}
	return result, nil
}

// ReadError makes the SDK's error of a PutRecords answer that is not a success, with sdk, the
// SDK's deserializer of PutRecords (SDKDeserializer): the same
// typed API error, or *smithy.GenericAPIError, as the SDK's own call returns, a CBOR error rewritten
// as JSON first. It reads and closes the body.
func ReadError(ctx context.Context, sdk middleware.DeserializeMiddleware, req *http.Request, resp *http.Response) error {
	sresp := &smithyhttp.Response{Response: resp}
	if isCBOR(resp.Header.Get("Content-Type")) {
		cborErrorAsJSON(sresp)
	}
	in := middleware.DeserializeInput{Request: &smithyhttp.Request{Request: req}}
	_, _, err := sdk.HandleDeserialize(ctx, in, replayHandler{out: middleware.DeserializeOutput{RawResponse: sresp}})
	resp.Body.Close()
	if err == nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("HTTP %d answered without an error", resp.StatusCode)}
	}
	return err
}

// maxErrorBody bounds the error answer read to be rewritten as JSON: Kinesis's are a few hundred
// bytes.
const maxErrorBody = 1 << 20

// cborErrorAsJSON replaces the CBOR body of an error answer by its JSON (cborErrorToJSON), which
// the SDK's error deserializer reads, so that a CBOR error becomes the same API error as its JSON
// counterpart. A body it cannot read is replaced by an empty one: the SDK then makes the error of
// the X-Amzn-ErrorType header, or of the HTTP status.
func cborErrorAsJSON(resp *smithyhttp.Response) {
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		resp.Body.Close()
	}
	js, err := cborErrorToJSON(body)
	if err != nil || len(body) > maxErrorBody {
		js = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(js))
	resp.ContentLength = int64(len(js))
	resp.Header.Set("Content-Type", jsonContentType)
}

// replayHandler returns what the rest of the stack already returned.
type replayHandler struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (h replayHandler) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return h.out, h.md, h.err
}

// errMalformedJSON is what decodePutRecordsOutput returns for a body that is not the JSON it reads.
var errMalformedJSON = errors.New("malformed PutRecords response")

// decodePutRecordsOutput reads a PutRecords response body as the SDK does: unknown members are
// skipped, null ones left nil; except that each record's SequenceNumber is checked but left nil,
// as nothing reads it (and it is the largest member). The output does not alias body, which may
// be reused after.
func decodePutRecordsOutput(body []byte) (*kinesissdk.PutRecordsOutput, error) {
	d := jsonReader{s: unsafe.String(unsafe.SliceData(body), len(body))}
	out := &kinesissdk.PutRecordsOutput{}
	err := d.object(func(key string) error {
		switch key {
		case "FailedRecordCount":
			tok, ok := d.scalar()
			switch {
			case !ok:
				return d.errorf("want a number")
			case tok == "null":
				return nil
			}
			n, err := strconv.ParseInt(tok, 10, 32)
			if err != nil {
				return fmt.Errorf("%w: FailedRecordCount %q", errMalformedJSON, tok)
			}
			out.FailedRecordCount = aws.Int32(int32(n))
			return nil
		case "EncryptionType":
			s, null, err := d.stringOrNull()
			if err == nil && !null {
				out.EncryptionType = types.EncryptionType(strings.Clone(s))
			}
			return err
		case "Records":
			return d.records(out)
		}
		return d.skip()
	})
	if err != nil {
		return nil, err
	}
	if d.ws(); d.i != len(d.s) {
		return nil, fmt.Errorf("%w: data after the object at offset %d", errMalformedJSON, d.i)
	}
	return out, nil
}

func (d *jsonReader) records(out *kinesissdk.PutRecordsOutput) error {
	if d.ws(); d.peek() == 'n' {
		return d.literal("null")
	}
	if !d.consume('[') {
		return d.errorf("want an array of records")
	}
	if d.ws(); d.consume(']') {
		out.Records = []types.PutRecordsResultEntry{}
		return nil
	}
	// Each record is an object: the objects left bound their number.
	out.Records = getResultEntries(strings.Count(d.s[d.i:], "{"))
	for {
		var e types.PutRecordsResultEntry
		switch d.ws(); {
		case d.acceptedEntry(&e):
		case d.peek() == 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		default:
			err := d.object(func(key string) error {
				var dst **string
				shared := true // shard IDs and error codes: a few distinct values per response
				switch key {
				case "ErrorCode":
					dst = &e.ErrorCode
				case "ShardId":
					dst = &e.ShardId
				case "ErrorMessage":
					dst, shared = &e.ErrorMessage, false
				case "SequenceNumber": // nothing reads it: checked, not kept
					_, _, err := d.stringOrNull()
					return err
				default:
					return d.skip()
				}
				s, null, err := d.stringOrNull()
				switch {
				case err != nil || null:
				case shared:
					*dst = d.intern(s)
				default:
					*dst = cloneString(s)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		out.Records = append(out.Records, e)
		if d.ws(); d.consume(']') {
			return nil
		}
		if !d.consume(',') {
			return d.errorf("want , or ] in records")
		}
	}
}

// acceptedEntry reads into e the entry Kinesis writes for each accepted record,
// {"SequenceNumber":"…","ShardId":"…"} without spaces or escapes, and reports whether it did:
// when the reader is at anything else, it reads nothing, and object reads it.
func (d *jsonReader) acceptedEntry(e *types.PutRecordsResultEntry) bool {
	const seq, shard = `{"SequenceNumber":"`, `","ShardId":"`
	s := d.s[d.i:]
	if !strings.HasPrefix(s, seq) {
		return false
	}
	// The first '"', '\\' or control character must end the number, then the shard ID.
	n := len(seq) + specialIndex(s[len(seq):])
	if !strings.HasPrefix(s[n:], shard) {
		return false
	}
	start := n + len(shard)
	n = start + specialIndex(s[start:])
	if len(s)-n < 2 || s[n] != '"' || s[n+1] != '}' {
		return false
	}
	e.ShardId = d.intern(s[start:n])
	d.i += n + 2
	return true
}

// jsonReader reads JSON from s at i: just what a PutRecords response needs.
type jsonReader struct {
	s string // may alias a buffer that is reused: results hold copies (intern, strings.Clone)
	i int
	interner
}

// cloneString returns a pointer to a copy of s.
func cloneString(s string) *string { return aws.String(strings.Clone(s)) }

// maxInterned bounds the distinct strings intern shares per response.
const maxInterned = 16

// interner shares the copies of the strings a response repeats.
type interner struct{ interned []*string }

// intern returns a pointer to a copy of s, shared with the earlier calls for the same s: a
// response names a few shards and error codes, each for many records.
func (in *interner) intern(s string) *string {
	for _, p := range in.interned {
		if *p == s {
			return p
		}
	}
	p := cloneString(s)
	if len(in.interned) < maxInterned {
		in.interned = append(in.interned, p)
	}
	return p
}

func (d *jsonReader) errorf(msg string) error {
	return fmt.Errorf("%w: %s at offset %d", errMalformedJSON, msg, d.i)
}

func (d *jsonReader) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonReader) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *jsonReader) consume(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

func (d *jsonReader) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || d.s[d.i:d.i+len(lit)] != lit {
		return d.errorf("want " + lit)
	}
	d.i += len(lit)
	return nil
}

// object reads an object, calling member for each key with the reader at its value.
func (d *jsonReader) object(member func(key string) error) error {
	if d.ws(); !d.consume('{') {
		return d.errorf("want an object")
	}
	if d.ws(); d.consume('}') {
		return nil
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		if d.ws(); !d.consume(':') {
			return d.errorf("want :")
		}
		if err := member(key); err != nil {
			return err
		}
		if d.ws(); d.consume('}') {
			return nil
		}
		if !d.consume(',') {
			return d.errorf("want , or }")
		}
	}
}

// stringOrNull reads a string or null.
func (d *jsonReader) stringOrNull() (s string, null bool, err error) {
	if d.ws(); d.peek() == 'n' {
		return "", true, d.literal("null")
	}
	s, err = d.str()
	return s, false, err
}

// str reads a string. Without escapes it is a substring of s, invalid UTF-8 kept as the SDK keeps
// it; with them, encoding/json decodes it.
func (d *jsonReader) str() (string, error) {
	if !d.consume('"') {
		return "", d.errorf("want a string")
	}
	start := d.i
	if n := specialIndex(d.s[start:]); start+n < len(d.s) {
		switch c := d.s[start+n]; {
		case c == '"':
			d.i = start + n + 1
			return d.s[start : start+n], nil
		case c < 0x20:
			d.i = start + n
			return "", d.errorf("control character in string")
		}
	}
	// Escapes: find the closing quote, and let encoding/json check and decode the rest.
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case '"':
			d.i++
			var v string
			if err := json.Unmarshal([]byte(d.s[start-1:d.i]), &v); err != nil {
				return "", fmt.Errorf("%w: %w", errMalformedJSON, err)
			}
			return v, nil
		case '\\':
			d.i += 2
		default:
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

// specialIndex returns the index in s of the first '"', '\\' or control character (below 0x20),
// or len(s). It reads 8 bytes at a time: a response is mostly strings of 20 to 60 such bytes,
// where two strings.IndexByte calls and a loop for control characters cost twice as much.
func specialIndex(s string) int {
	i := 0
	for ; len(s)-i >= 16 && (special(load64(s, i))|special(load64(s, i+8)))&highs == 0; i += 16 {
	}
	for ; len(s)-i >= 8; i += 8 {
		if m := special(load64(s, i)) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return i
		}
	}
	return len(s)
}

// Words of 8 bytes, for the scans of JSON strings.
const ones, highs = 0x0101010101010101, 0x8080808080808080

// load64 returns the 8 bytes of s at i, little-endian: byte i is the lowest.
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// special has the high bit set in each byte of x (among others: mask with highs) that is below
// 0x20, '"' or '\\'. After the first such byte, others may be flagged wrongly (a borrow moves up),
// never before it, so the lowest flag is exact.
func special(x uint64) uint64 {
	q, b := x^(ones*'"'), x^(ones*'\\')
	return (x-ones*0x20)&^x | (q-ones)&^q | (b-ones)&^b
}

// scalar reads a number, true, false or null token; false when there is none.
func (d *jsonReader) scalar() (string, bool) {
	d.ws()
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		d.i++
	}
	tok := d.s[start:d.i]
	return tok, tok != "" && (tok == "null" || tok == "true" || tok == "false" || json.Valid([]byte(tok)))
}

// skip reads a value of any type and discards it.
func (d *jsonReader) skip() error {
	switch d.ws(); d.peek() {
	case '"':
		_, err := d.str()
		return err
	case '{':
		return d.object(func(string) error { return d.skip() })
	case '[':
		d.i++
		if d.ws(); d.consume(']') {
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			if d.ws(); d.consume(']') {
				return nil
			}
			if !d.consume(',') {
				return d.errorf("want , or ]")
			}
		}
	default:
		if _, ok := d.scalar(); !ok {
			return d.errorf("want a value")
		}
		return nil
	}
}
