// Command kinesis_streams_go is a Fluent Bit output plugin, built as a C shared
// library, that sends records to Amazon Kinesis Data Streams.
//
// This file is the cgo edge: the exports Fluent Bit calls, the registry of
// instances, and the mapping of flush outcomes to FLB return codes. Everything
// worth testing without Fluent Bit lives in the packages it wires together.
package main

/*
#include <stdint.h>
#include "fluentbit.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

// pluginName is the output name users write in [OUTPUT] Name. It cannot be
// kinesis_streams: Fluent Bit's built-in C plugin of that name always wins.
// The Makefile can change it with -ldflags "-X main.pluginName=...".
var pluginName = "kinesis_streams_go"

const pluginDescription = "Amazon Kinesis Data Streams (Go)"

// propertyGetter adapts Fluent Bit's property lookup to config.Getter. It is
// only valid during FLBPluginInit, while the plugin pointer is.
type propertyGetter struct{ plugin unsafe.Pointer }

func (g propertyGetter) Get(key string) string { return output.FLBPluginConfigKey(g.plugin, key) }

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, pluginName, pluginDescription)
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) (rc int) {
	defer recoverExport("init", &rc)
	raiseMmapThreshold()
	host := attachHost(plugin) // nil outside Fluent Bit
	name := instances.nextName()
	if n := host.name(); n != "" {
		name = n // the alias, when the output has one
	}
	env := instanceEnv{plugin: pluginName, name: name}
	metrics := newCmtMetrics(host, name)
	if host != nil {
		env.host = host
		env.canYield = hostYields()
	}
	if metrics != nil {
		env.metrics = metrics
	}
	inst, err := newInstance(propertyGetter{plugin}, env)
	if err != nil {
		host.detach()
		metrics.release()
		return output.FLB_ERROR
	}
	id := instances.add(&registered{inst: inst, host: host, metrics: metrics})
	C.kgo_set_context(plugin, C.uintptr_t(id))
	return output.FLB_OK
}

// kgoFlush is a flush run on Fluent Bit's thread until the chunk's last answer: FLBPluginFlushCtx
// (flush.c) calls it when the flush cannot run while the worker's coroutine yields.
//
//export kgoFlush
func kgoFlush(ctx, data unsafe.Pointer, length C.int, tag *C.char) (rc int) {
	defer recoverExport("flush", &rc)
	r := instances.get(uintptr(ctx))
	if r == nil {
		pluginLogger().Error("flush called with an unknown context: chunk dropped")
		return output.FLB_ERROR
	}
	return flbCode(r.inst.flush(chunkBytes(data, length), C.GoString(tag)))
}

// chunkBytes is Fluent Bit's chunk as a slice, valid until the flush returns to Fluent Bit.
func chunkBytes(data unsafe.Pointer, length C.int) []byte {
	if data == nil || length <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(data), int(length))
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) (rc int) {
	defer recoverExport("exit", &rc)
	// fluent-bit --dry-run calls this with a context it never created.
	if r := instances.remove(uintptr(ctx)); r != nil {
		r.close()
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() (rc int) {
	defer recoverExport("exit", &rc)
	for _, r := range instances.takeAll() {
		r.close()
	}
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	output.FLBPluginUnregister(def)
}

// pluginLogger is for the rare line that belongs to no instance.
func pluginLogger() *slog.Logger {
	level, _ := parseLogLevel(os.Getenv(LogLevelEnv))
	return newLogger(os.Stderr, pluginName, pluginName, level)
}

// recoverExport is the last resort against a bug: it logs the panic and makes
// the export return FLB_ERROR instead of taking Fluent Bit down.
func recoverExport(export string, rc *int) {
	if r := recover(); r != nil {
		pluginLogger().Error("internal error in "+export+": chunk dropped", slog.Any("panic", r))
		*rc = output.FLB_ERROR
	}
}

func main() {}

// flbCode maps a flush outcome to what Fluent Bit should do with the chunk.
func flbCode(o outcome) int {
	switch o {
	case outcomeDelivered:
		return output.FLB_OK
	case outcomeRetry:
		return output.FLB_RETRY
	default:
		return output.FLB_ERROR
	}
}

// registered is a live instance and what Fluent Bit gave it.
type registered struct {
	inst    *instance
	host    *flbHost    // nil outside Fluent Bit
	metrics *cmtMetrics // nil without cmetrics
}

// exitLogSettle is how long the exit export waits after the instance's last line. Fluent Bit 4's
// logger thread reads one line per wake-up from each thread's pipe, and stops at shutdown without
// reading what is left: the lines written just before, the plugin's exit summary and Fluent Bit's
// own "worker stopped", were seen lost on a busy machine. The wait lets it read them.
const exitLogSettle = 100 * time.Millisecond

// close drains and closes the instance, then lets go of Fluent Bit's logger and metrics, which
// Fluent Bit frees once the exit export returns.
func (r *registered) close() {
	r.inst.close()
	if r.host != nil {
		time.Sleep(exitLogSettle)
	}
	r.host.detach()
	r.metrics.release()
}

// registry holds the live instances by the context Fluent Bit passes back to the exports (an ID:
// Fluent Bit only hands it back, and fluent-bit-go's own map of contexts never forgets one, which
// would keep every instance of every hot reload alive), and names them as Fluent Bit numbers them.
type registry struct {
	mu     sync.Mutex
	next   int     // the number of the next instance's name
	lastID uintptr // IDs start at 1: Fluent Bit takes a NULL context for a failed Init
	alive  map[uintptr]*registered
}

var instances = &registry{alive: make(map[uintptr]*registered)}

// nextName returns the instance name Fluent Bit gives the next [OUTPUT] of
// this plugin: instances are initialised in config order, numbered from 0,
// and numbered from 0 again after a hot reload, which exits them all first
// (see remove).
func (r *registry) nextName() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := fmt.Sprintf("%s.%d", pluginName, r.next)
	r.next++
	return name
}

// add registers a live instance and returns its ID.
func (r *registry) add(reg *registered) uintptr {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastID++
	r.alive[r.lastID] = reg
	return r.lastID
}

// get returns the instance of an ID, or nil.
func (r *registry) get(id uintptr) *registered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alive[id]
}

// remove forgets an instance that exits and returns it, or nil for an unknown ID. Once none is
// left, the next Init starts a new configuration (a hot reload), numbered from 0 again.
func (r *registry) remove(id uintptr) *registered {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := r.alive[id]
	delete(r.alive, id)
	if len(r.alive) == 0 {
		r.next = 0
	}
	return reg
}

// takeAll forgets every instance and returns them.
func (r *registry) takeAll() []*registered {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*registered, 0, len(r.alive))
	for _, reg := range r.alive {
		all = append(all, reg)
	}
	clear(r.alive)
	r.next = 0
	return all
}
