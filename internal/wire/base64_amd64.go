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
// It is an AVX2 kernel of its own because segmentio/asm's spends most of its time on a short
// record in the first instructions of its kernel (a legacy-SSE insert and the broadcasts after
// it), once per call, and a request encodes 500 short records (BenchmarkAppendBase64 compares).
func encodeBase64(dst, src []byte) {
	if !hasAVX2 {
		fastEncodeBase64(dst, src)
		return
	}
	n := encodeBlocksAVX2(dst, src)
	base64.StdEncoding.Encode(dst[n/3*4:], src[n:])
}
