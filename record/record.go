// Package record decodes Fluent Bit chunks and encodes records.
// STUB: replaced by the real implementation.
package record

import "github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"

// Event is one decoded event; Body aliases the chunk (the raw msgpack record map).
type Event struct {
	Sec  int64
	Nsec uint32
	Body []byte
}

// Decoder walks a chunk event by event without copying it.
type Decoder struct{}

// Reset makes d read chunk from its start.
func (d *Decoder) Reset(chunk []byte) {}

// Next decodes the next event into ev; it returns false at the end of the chunk or on error (see Err).
func (d *Decoder) Next(ev *Event) bool { return false }

// Err is the decoding error that stopped Next, or nil at a clean end.
func (d *Decoder) Err() error { return nil }

// Options select what the encoder writes.
type Options struct {
	TimeKey       string
	TimeFormat    *timefmt.Formatter
	LogKey        string
	AppendNewline bool
}

// Encoder turns events into the bytes sent to Kinesis.
type Encoder struct{}

// NewEncoder returns an encoder for o.
func NewEncoder(o Options) *Encoder { return &Encoder{} }

// Append appends ev's encoding to dst.
func (e *Encoder) Append(dst []byte, ev *Event) ([]byte, error) { return dst, nil }
