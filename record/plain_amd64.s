//go:build !purego

#include "textflag.h"

// func plainBlocks(s []byte) int
//
// SSE2 (every amd64): 16 bytes per iteration, stopping at the first byte below 0x20, '"', '\'
// or 0x80 and up. Returns its index, or the length of the 16-byte blocks read when they are all
// plain (len(s)-result < 16).
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
	SUBQ AX, DX
	CMPQ DX, $16
	JLT  done
	MOVOU (SI)(AX*1), X0
	MOVOU X0, X5
	PSUBUSB X1, X5    // c-0x1f, saturated: 0 where c <= 0x1f
	PCMPEQB X4, X5    // 0xff where c < 0x20
	MOVOU X0, X6
	PCMPEQB X2, X6    // 0xff where c == '"'
	POR  X6, X5
	MOVOU X0, X6
	PCMPEQB X3, X6    // 0xff where c == '\'
	POR  X6, X5
	POR  X0, X5       // high bit where c >= 0x80
	PMOVMSKB X5, DX
	TESTL DX, DX
	JNZ  found
	ADDQ $16, AX
	JMP  loop

found:
	BSFL DX, DX
	ADDQ DX, AX

done:
	MOVQ AX, ret+24(FP)
	RET
