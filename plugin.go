// Command kinesis_streams_go is a Fluent Bit output plugin, built as a C shared
// library, that sends records to Amazon Kinesis Data Streams.
//
// This file is the cgo edge: the exports Fluent Bit calls, the registry of
// instances, and the mapping of flush outcomes to FLB return codes. Everything
// worth testing without Fluent Bit lives in the packages it wires together.
package main

import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
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
	inst, err := newInstance(propertyGetter{plugin}, pluginName, instances.nextName())
	if err != nil {
		return output.FLB_ERROR
	}
	instances.add(inst)
	output.FLBPluginSetContext(plugin, inst)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) (rc int) {
	defer recoverExport("flush", &rc)
	inst, ok := output.FLBPluginGetContext(ctx).(*instance)
	if !ok {
		pluginLogger().Error("flush called with an unknown context: chunk dropped")
		return output.FLB_ERROR
	}
	var chunk []byte
	if data != nil && length > 0 {
		chunk = unsafe.Slice((*byte)(data), int(length))
	}
	return flbCode(inst.flush(chunk, C.GoString(tag)))
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) (rc int) {
	defer recoverExport("exit", &rc)
	// fluent-bit --dry-run calls this with a context it never created.
	if inst, ok := output.FLBPluginGetContext(ctx).(*instance); ok {
		instances.remove(inst)
		inst.close()
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() (rc int) {
	defer recoverExport("exit", &rc)
	for _, inst := range instances.takeAll() {
		inst.close()
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

// registry holds the live instances, so that FLBPluginExit can close those
// that FLBPluginExitCtx did not, and names them as Fluent Bit numbers them.
type registry struct {
	mu    sync.Mutex
	next  int
	alive map[*instance]struct{}
}

var instances = &registry{alive: make(map[*instance]struct{})}

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

func (r *registry) add(i *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alive[i] = struct{}{}
}

// remove forgets an instance that exited. Once none is left, the next Init
// starts a new configuration (a hot reload), numbered from 0 again.
func (r *registry) remove(i *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.alive, i)
	if len(r.alive) == 0 {
		r.next = 0
	}
}

func (r *registry) takeAll() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := make([]*instance, 0, len(r.alive))
	for i := range r.alive {
		all = append(all, i)
	}
	clear(r.alive)
	r.next = 0
	return all
}
