// Package compress owns the "compression" setting: the algorithms a Kinesis record's data may be
// compressed with (gzip, zlib, zstd, from github.com/klauspost/compress), parsing the setting, and
// an append-style Compressor that reuses its encoder from record to record, so that compressing
// allocates nothing in steady state.
//
// Each call compresses one whole record into one self-contained stream (a gzip member, a zlib
// stream, a zstd frame) that the standard tools and libraries decompress. It does not know which
// bytes are a record nor when to compress: that is the batcher's concern.
package compress

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Kind is a compression algorithm.
type Kind uint8

const (
	None Kind = iota // the data as it is
	Gzip             // RFC 1952
	Zlib             // RFC 1950
	Zstd             // RFC 8878, one frame with a checksum
)

// ErrUnknown: the name of the algorithm is not one of none, gzip, zlib or zstd.
var ErrUnknown = errors.New("unknown compression")

// String is the algorithm's name, as Parse accepts it.
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zlib:
		return "zlib"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Parse returns the algorithm named name: none, gzip, zlib or zstd, in any case, surrounding
// spaces ignored; "" is none. Otherwise the error wraps ErrUnknown and says what is allowed.
func Parse(name string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "none":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "zlib":
		return Zlib, nil
	case "zstd":
		return Zstd, nil
	}
	return None, fmt.Errorf("%w %q: want none, gzip, zlib or zstd", ErrUnknown, name)
}

// Bound is the largest size that compressing n bytes with k can give, whatever the bytes: a
// caller can tell that data of n bytes will fit a limit once compressed without compressing it.
//
// For deflate (gzip and zlib) it allows 5 bytes per 16 KiB stored block (incompressible data is
// stored, in blocks of at most 64 KiB), an empty final block and the header and trailer; for zstd
// it is ZSTD_COMPRESSBOUND of the reference implementation.
func (k Kind) Bound(n int) int {
	if n < 0 {
		n = 0
	}
	switch k {
	case Gzip:
		return deflateBound(n) + 10 + 8 // header, CRC-32 and size
	case Zlib:
		return deflateBound(n) + 2 + 4 // header, Adler-32
	case Zstd:
		b := n + n>>8
		if n < 128<<10 {
			b += (128<<10 - n) >> 11
		}
		return b
	}
	return n
}

func deflateBound(n int) int {
	return n + 5*(n/(16<<10)+1) + 5
}

// Compressor compresses data with one algorithm. It keeps its encoder between calls and creates
// it at the first call only, so that a Compressor for None costs nothing, and compressing
// allocates nothing in steady state (beyond growing dst).
//
// A Compressor is not safe for concurrent use: give each batcher its own, as its buffers are.
type Compressor struct {
	kind Kind
	out  appendWriter
	gz   *gzip.Writer
	zl   *zlib.Writer
	zs   *zstd.Encoder
}

// New returns a Compressor for k.
func New(k Kind) *Compressor {
	return &Compressor{kind: k}
}

// Kind is the Compressor's algorithm.
func (c *Compressor) Kind() Kind { return c.kind }

// Append appends src, compressed into one self-contained stream, to dst and returns the extended
// slice; for None it appends src as it is. Empty input gives a valid (empty) stream too. On error
// dst is returned with its original length.
func (c *Compressor) Append(dst, src []byte) ([]byte, error) {
	switch c.kind {
	case None:
		return append(dst, src...), nil
	case Zstd:
		if c.zs == nil {
			zs, err := zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstd.SpeedDefault),
				zstd.WithEncoderConcurrency(1), // one record at a time, no goroutines
				zstd.WithEncoderCRC(true),
				zstd.WithZeroFrames(true), // empty input: a frame, not zero bytes
			)
			if err != nil {
				return dst, fmt.Errorf("compress: zstd: %w", err)
			}
			c.zs = zs
		}
		return c.zs.EncodeAll(src, dst), nil
	case Gzip:
		if c.gz == nil {
			c.gz = gzip.NewWriter(&c.out)
		}
		return c.deflate(c.gz, dst, src)
	case Zlib:
		if c.zl == nil {
			c.zl = zlib.NewWriter(&c.out)
		}
		return c.deflate(c.zl, dst, src)
	}
	return dst, fmt.Errorf("compress: %w %s", ErrUnknown, c.kind)
}

// deflater is what gzip.Writer and zlib.Writer have in common.
type deflater interface {
	Reset(w io.Writer)
	Write(p []byte) (int, error)
	Close() error
}

func (c *Compressor) deflate(w deflater, dst, src []byte) ([]byte, error) {
	n := len(dst)
	c.out.b = dst
	w.Reset(&c.out)
	_, err := w.Write(src)
	if err == nil {
		err = w.Close() // flushes the last block and writes the trailer
	}
	out := c.out.b
	c.out.b = nil // keep no reference to the caller's buffer
	if err != nil {
		return dst[:n], fmt.Errorf("compress: %s: %w", c.kind, err)
	}
	return out, nil
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
