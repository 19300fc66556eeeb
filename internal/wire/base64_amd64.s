//go:build !purego

#include "textflag.h"

// func encodeBlocksAVX2(dst, src []byte) int
//
// Base64 (standard alphabet) of src, 24 bytes per iteration while at least 28 are left (each
// 128-bit lane loads 16 bytes and encodes 12), into dst, which must have room for 4/3 as many.
// Returns the number of bytes of src encoded, a multiple of 24. The method is Wojciech Muła's:
// a shuffle puts each 3-byte group in a 32-bit word, two multiplies move the four 6-bit
// indices into bytes, and a 16-entry table adds the offset of each index's range.
TEXT ·encodeBlocksAVX2(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	XORQ AX, AX
	XORQ DX, DX
	CMPQ CX, $28
	JB   done

	VBROADCASTI128 b64shuf<>(SB), Y6
	VPBROADCASTD   b64mask1<>(SB), Y7
	VPBROADCASTD   b64mult1<>(SB), Y8
	VPBROADCASTD   b64mask2<>(SB), Y9
	VPBROADCASTD   b64mult2<>(SB), Y10
	VPBROADCASTB   b64c51<>(SB), Y11
	VPBROADCASTB   b64c25<>(SB), Y12
	VBROADCASTI128 b64lut<>(SB), Y13

loop:
	VMOVDQU     (SI)(AX*1), X0
	VINSERTI128 $1, 12(SI)(AX*1), Y0, Y0
	VPSHUFB     Y6, Y0, Y0  // each word: b a c b, for the group a b c
	VPAND       Y7, Y0, Y1
	VPMULHUW    Y8, Y1, Y1  // indices 0 and 2 into bytes 0 and 2
	VPAND       Y9, Y0, Y2
	VPMULLW     Y10, Y2, Y2 // indices 1 and 3 into bytes 1 and 3
	VPOR        Y1, Y2, Y0
	VPSUBUSB    Y11, Y0, Y1 // 0 for 0-51, 1-12 for 52-63
	VPCMPGTB    Y12, Y0, Y2 // -1 for 26-63
	VPSUBB      Y2, Y1, Y1  // table index: 0, 1, then 2-13
	VPSHUFB     Y1, Y13, Y1
	VPADDB      Y1, Y0, Y0
	VMOVDQU     Y0, (DI)(DX*1)
	ADDQ        $24, AX
	ADDQ        $32, DX
	LEAQ        28(AX), BX
	CMPQ        BX, CX
	JBE         loop
	VZEROUPPER

done:
	MOVQ AX, ret+48(FP)
	RET

// For the group a b c at bytes 3k to 3k+2 of a lane: bytes 3k+1, 3k, 3k+2, 3k+1.
DATA b64shuf<>+0(SB)/8, $0x0405030401020001
DATA b64shuf<>+8(SB)/8, $0x0a0b090a07080607
GLOBL b64shuf<>(SB), RODATA|NOPTR, $16

DATA b64mask1<>+0(SB)/4, $0x0fc0fc00
GLOBL b64mask1<>(SB), RODATA|NOPTR, $4
DATA b64mult1<>+0(SB)/4, $0x04000040
GLOBL b64mult1<>(SB), RODATA|NOPTR, $4
DATA b64mask2<>+0(SB)/4, $0x003f03f0
GLOBL b64mask2<>(SB), RODATA|NOPTR, $4
DATA b64mult2<>+0(SB)/4, $0x01000010
GLOBL b64mult2<>(SB), RODATA|NOPTR, $4
DATA b64c51<>+0(SB)/1, $51
GLOBL b64c51<>(SB), RODATA|NOPTR, $1
DATA b64c25<>+0(SB)/1, $25
GLOBL b64c25<>(SB), RODATA|NOPTR, $1

// Offsets by table index: 'A', 'a'-26, ten times '0'-52, '+'-62, '/'-63, two unused.
DATA b64lut<>+0(SB)/8, $0xfcfcfcfcfcfc4741
DATA b64lut<>+8(SB)/8, $0x0000f0edfcfcfcfc
GLOBL b64lut<>(SB), RODATA|NOPTR, $16
