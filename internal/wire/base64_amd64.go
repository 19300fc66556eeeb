//go:build !purego

package wire

import (
	"encoding/base64"

	"golang.org/x/sys/cpu"
)

// encodeBlocksAVX2 encodes the leading 24-byte blocks of src into dst (assembly, AVX2), while at
// least 28 bytes are left, and returns how many bytes of src it encoded.
//
//go:noescape
func encodeBlocksAVX2(dst, src []byte) int

var hasAVX2 = cpu.X86.HasAVX2

// encodeBase64 writes the standard base64 encoding of src to dst, which has room for it.
//
// segmentio/asm's AVX2 encoder costs about 210 ns for a 395-byte record here, three quarters of
// it on the first instructions of its kernel (perf annotate: a legacy-SSE insert and the
// broadcasts after it), once per call; this one costs about 65 ns (BenchmarkAppendBase64).
func encodeBase64(dst, src []byte) {
	if !hasAVX2 {
		fastEncodeBase64(dst, src)
		return
	}
	n := encodeBlocksAVX2(dst, src)
	base64.StdEncoding.Encode(dst[n/3*4:], src[n:])
}
