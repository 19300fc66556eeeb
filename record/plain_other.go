//go:build !amd64 || purego

package record

import "encoding/binary"

// plainBlocks returns the index in s of the first 16-byte block that holds a byte that is not
// plain ASCII (see plainASCII), or the length of the first len(s)/16 blocks when all are plain.
func plainBlocks(s []byte) int {
	i := 0
	for ; len(s)-i >= 16; i += 16 {
		if notPlain(binary.LittleEndian.Uint64(s[i:]))|notPlain(binary.LittleEndian.Uint64(s[i+8:])) != 0 {
			break
		}
	}
	return i
}

// plainBlocksExact: plainBlocks stops at the block, not at the byte itself.
const plainBlocksExact = false
