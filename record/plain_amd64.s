//go:build !purego

#include "textflag.h"

// PLAIN_MASK sets bit i of BX when byte i of X0 is below 0x20, '"', '\' or 0x80 and up, with
// X1-X4 as plainBlocks sets them (0x1f, '"' and '\' in every byte, zero). Clobbers X5, X6.
#define PLAIN_MASK \
	MOVOU X0, X5 \
	PSUBUSB X1, X5 \ // c-0x1f, saturated: 0 where c <= 0x1f
	PCMPEQB X4, X5 \ // 0xff where c < 0x20
	MOVOU X0, X6 \
	PCMPEQB X2, X6 \ // '"'
	POR X6, X5 \
	MOVOU X0, X6 \
	PCMPEQB X3, X6 \ // '\'
	POR X6, X5 \
	POR X0, X5 \ // the high bit of bytes from 0x80 on
	PMOVMSKB X5, BX

// func plainBlocks(s []byte) int
//
// SSE2 (every amd64): 16 bytes per iteration, stopping at the first byte below 0x20, '"', '\'
// or 0x80 and up. Returns its index; or, when there is none, len(s) if the last 1 to 15 bytes
// could be read as 16 (cap(s) allows it), and otherwise the length of the 16-byte blocks.
TEXT ·plainBlocks(SB), NOSPLIT, $0-32
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), CX
	XORQ AX, AX

	MOVQ $0x1f1f1f1f1f1f1f1f, DX
	MOVQ DX, X1
	PUNPCKLQDQ X1, X1 // 0x1f in every byte
	MOVQ $0x2222222222222222, DX
	MOVQ DX, X2
	PUNPCKLQDQ X2, X2 // '"'
	MOVQ $0x5c5c5c5c5c5c5c5c, DX
	MOVQ DX, X3
	PUNPCKLQDQ X3, X3 // '\'
	PXOR X4, X4       // zero

loop:
	MOVQ CX, DX
	SUBQ AX, DX // bytes left
	CMPQ DX, $16
	JLT  tail
	MOVOU (SI)(AX*1), X0
	PLAIN_MASK
	TESTL BX, BX
	JNZ  found
	ADDQ $16, AX
	JMP  loop

tail:
	// 1 to 15 bytes left: read 16 when the slice's capacity allows (s is most often a piece of a
	// chunk) and ignore the bytes past its length.
	TESTQ DX, DX
	JZ    done
	MOVQ  s_cap+16(FP), R8
	SUBQ  AX, R8
	CMPQ  R8, $16
	JLT   done // the caller reads the rest
	MOVOU (SI)(AX*1), X0
	PLAIN_MASK
	MOVL  $1, R9
	MOVQ  DX, CX
	SHLL  CX, R9
	DECL  R9
	ANDL  R9, BX // the bytes of s only
	JNZ   found
	ADDQ  DX, AX // all of s is plain
	JMP   done

found:
	BSFL BX, BX
	ADDQ BX, AX

done:
	MOVQ AX, ret+24(FP)
	RET

