// Package record owns the bytes of a Fluent Bit chunk: decoding its msgpack events
// (Decoder), encoding one event into the data of one Kinesis record (Encoder):
// JSON of the record map, time_key, log_key and the trailing newline, and finding
// the partition key field of a record (KeyPath).
//
// It works on the chunk in place: Event.Body aliases the chunk, and the encoder and
// the key lookup append into buffers the caller reuses, so decoding and encoding an
// event and finding its key do not allocate. It does not batch, compress, or know about Fluent Bit's return codes.
//
// Errors are split by what the caller can do about them:
//   - The Decoder stops, with a *DecodeError, only at what it cannot step over: bytes
//     that are not msgpack, a chunk cut short, an event that is not [time, record] or
//     [[time, metadata], record], or a time that is not ext 0, an integer or a float.
//     Events before the error have been returned by Next; the rest of the chunk is
//     unusable.
//   - The Decoder does not look inside a record beyond checking that it is complete
//     msgpack. A record that cannot be encoded is reported by Encoder.Append for that
//     event alone (ErrNotMap, ErrMissingLogKey, ErrTooDeep, ErrNestedKey), so the caller can count
//     it, skip it and go on with the next event.
package record

import (
	"errors"
	"fmt"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/timefmt"
)

// Event is one decoded event; Body aliases the chunk (the raw msgpack record,
// normally a map). Body's capacity ends with the record, so appending to it never
// overwrites the chunk.
type Event struct {
	Sec  int64
	Nsec uint32
	Body []byte
}

var (
	// ErrNotMap is returned by Encoder.Append for a record that is not a msgpack map.
	// Only that record is lost: the caller counts it and goes on.
	ErrNotMap = errors.New("record: record is not a map")

	// ErrMissingLogKey is returned by Encoder.Append when log_key is set and the
	// record has no top-level key of that name. The caller skips and counts the record.
	ErrMissingLogKey = errors.New("record: log_key not in record")

	// ErrTooDeep is returned by Encoder.Append for a record with arrays or maps
	// nested more than 1000 levels deep.
	ErrTooDeep = errors.New("record: nested more than 1000 levels deep")

	// ErrNestedKey is returned by Encoder.Append for a record with a map key that is
	// an array or map holding, at any depth, another such key. A single level is
	// encoded as the key's JSON text in quotes; more levels would double the size
	// of the output at each level.
	ErrNestedKey = errors.New("record: array or map key inside an array or map key")

	// ErrTruncated means the data ends inside a msgpack value.
	ErrTruncated = errors.New("truncated")

	// ErrMalformed means bytes that are not valid msgpack.
	ErrMalformed = errors.New("malformed msgpack")

	// ErrBadEvent means valid msgpack that is not a Fluent Bit event: not an array of
	// 2, or a time that is not ext 0, an integer or a float in range.
	ErrBadEvent = errors.New("bad event")
)

// DecodeError is the error that stops a Decoder. Err is ErrTruncated, or wraps
// ErrMalformed or ErrBadEvent.
type DecodeError struct {
	Index  int   // index of the event in the chunk, from 0
	Offset int   // byte offset in the chunk where that event starts
	Err    error // what is wrong
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("record: event %d at offset %d: %v", e.Index, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Options select what the encoder writes.
type Options struct {
	// DataKeys, when it holds a name, keeps only the top-level fields whose key is a
	// str or bin of one of these names (byte for byte, before ReplaceDots rewrites
	// them), every occurrence, in the record's order; other fields and keys of other
	// types are dropped. Empty names are ignored. The time key is still added.
	// Ignored when LogKey is set (the configuration rejects the pair).
	DataKeys []string

	// ReplaceDots, when not empty, replaces each '.' in the name of every map key, at
	// any depth (maps in arrays included), with this text, escaped as JSON on its
	// own. A key that is not a str or bin is rewritten in its JSON text (1.5 ->
	// "1_5"). It rewrites the time key's name too, and applies to the maps of a
	// LogKey value that is sent as JSON. DataKeys and LogKey match the names as they
	// are in the record, before this. An empty value means off: a configuration
	// value cannot tell "unset" from "empty", so dots cannot be removed outright.
	ReplaceDots string

	// TimeKey, when not empty and TimeFormat is not nil, adds the event's time,
	// formatted by TimeFormat, as the last field under this name (with ReplaceDots
	// applied); a record field whose name, as written in the output, is the same is
	// dropped, so the output never holds that name twice: with ReplaceDots "_" and
	// TimeKey "event.time", fields "event.time" and "event_time" both give way to
	// the added "event_time". Ignored when LogKey is set.
	TimeKey    string
	TimeFormat *timefmt.Formatter

	// LogKey, when not empty, makes the data only this top-level key's value: a str
	// or bin as its raw bytes, anything else as JSON.
	LogKey string

	// AppendNewline ends the data with '\n'.
	AppendNewline bool
}
