//go:build !purego

package record

// plainBlocks returns the index in s of the first byte that is not plain ASCII (see plainASCII),
// or, when there is none in the first len(s)/16 blocks of 16 bytes, their length. In assembly
// (SSE2): the log line of a container record is scanned about three times faster than by words.
//
//go:noescape
func plainBlocks(s []byte) int

// plainBlocksExact: plainBlocks stops at the byte itself, not at its block.
const plainBlocksExact = true
