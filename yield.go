package main

/*
#include "fluentbit.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

// FlushModeEnv chooses how a flush waits for its answers in Fluent Bit: "yield" (the default)
// yields the worker's coroutine, so that the worker runs other flushes meanwhile; "block" holds
// the worker until the chunk's last answer, as Go outputs do. See flush.c.
const FlushModeEnv = "KINESIS_STREAMS_GO_FLUSH"

// hostYields reports whether the host exports what a flush needs to yield (flush.c).
func hostYields() bool { return C.kgo_async_flush_available() != 0 }

// flushMode decides whether an instance's flushes yield, and says so in a line to log at info
// (none when they yield) or, for a bad FlushModeEnv, in a warning.
func flushMode(canYield, partitionKey bool) (yields bool, info, warning string) {
	v := os.Getenv(FlushModeEnv)
	switch v {
	case "", "yield":
	case "block":
		return false, "flushes hold their worker until the chunk's last answer, as " + FlushModeEnv + "=block asks", ""
	default:
		warning = fmt.Sprintf("invalid %s value %q: want yield or block", FlushModeEnv, v)
	}
	switch {
	case partitionKey:
		return false, "flushes hold their worker until the chunk's last answer: with partition_key, one worker sends one chunk at a time, " +
			"which keeps a key's records in order across chunks", warning
	case !canYield:
		return false, "flushes hold their worker until the chunk's last answer: the host does not export what yielding needs " +
			"(see the README, Workers)", warning
	}
	return true, "", warning
}

// kgoFlushYields reports whether FLBPluginFlushCtx may run the instance's flush on a goroutine
// while Fluent Bit's coroutine yields.
//
//export kgoFlushYields
func kgoFlushYields(ctx unsafe.Pointer) C.int {
	if r := instances.get(uintptr(ctx)); r != nil && r.inst.yields.Load() {
		return 1
	}
	return 0
}

// kgoFlushHeld is told why a flush of an instance whose flushes yield could not, and whether
// later flushes cannot either (lasting is not 0).
//
//export kgoFlushHeld
func kgoFlushHeld(ctx unsafe.Pointer, why *C.char, lasting C.int) {
	if r := instances.get(uintptr(ctx)); r != nil {
		r.inst.flushHeld(C.GoString(why), lasting != 0)
	}
}

// kgoFlushStart starts a flush on a goroutine and returns 1; 0 means it did not start, and the
// caller flushes with kgoFlush. Once the flush is over, the goroutine stores its FLB code in *rc
// and then writes a byte to fd: the chunk's data stays Fluent Bit's until that byte is read.
//
//export kgoFlushStart
func kgoFlushStart(ctx, data unsafe.Pointer, length C.int, tag *C.char, rc *C.int, fd C.int) (started C.int) {
	defer func() {
		if p := recover(); p != nil {
			pluginLogger().Error("internal error in flush: flushing on Fluent Bit's thread", slog.Any("panic", p))
			started = 0
		}
	}()
	r := instances.get(uintptr(ctx))
	if r == nil {
		return 0
	}
	chunk, t := chunkBytes(data, length), C.GoString(tag)
	go func() {
		code := output.FLB_RETRY
		defer func() {
			if p := recover(); p != nil {
				pluginLogger().Error("internal error in flush: chunk dropped", slog.Any("panic", p))
				code = output.FLB_ERROR
			}
			*rc = C.int(code)
			C.kgo_flush_done(fd)
		}()
		code = flbCode(r.inst.flushYielding(chunk, t))
	}()
	return 1
}
