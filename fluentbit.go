package main

/*
#cgo linux LDFLAGS: -ldl
#include <stdlib.h>
#include "fluentbit.h"
*/
import "C"

import (
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
)

// flbHost is what Fluent Bit gave one instance in FLBPluginInit: its logger, the level it logs
// at, its name and its cmetrics context. It is valid until detach, which FLBPluginExitCtx calls
// last: Fluent Bit frees the instance (and its metrics) when ExitCtx returns.
type flbHost struct {
	mu   sync.RWMutex // held for reading by every use of x, for writing by detach
	x    C.struct_kgo_instance
	live bool // x.api is Fluent Bit's, and the instance has not exited
}

// attachHost reads what Fluent Bit gave the instance being initialised. It returns nil when the
// host is not Fluent Bit (the C test host, an unknown host): the plugin then logs to stderr itself
// and keeps no metrics.
func attachHost(plugin unsafe.Pointer) *flbHost {
	h := &flbHost{}
	if C.kgo_attach(plugin, &h.x) == 0 {
		return nil
	}
	h.live = true
	return h
}

// name returns the name Fluent Bit prints for the instance (its alias, or plugin.N), or "".
func (h *flbHost) name() string {
	var buf [256]C.char
	if h == nil || C.kgo_output_name(&h.x, &buf[0], C.size_t(len(buf))) == 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// detach ends every use of what Fluent Bit gave the instance: later lines go to stderr, later
// metric updates nowhere. Safe on a nil host.
func (h *flbHost) detach() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.live = false
	h.mu.Unlock()
}

// flbLevel is Fluent Bit's number for a slog level.
func flbLevel(l slog.Level) C.int {
	switch {
	case l >= slog.LevelError:
		return C.KGO_LOG_ERROR
	case l >= slog.LevelWarn:
		return C.KGO_LOG_WARN
	case l >= slog.LevelInfo:
		return C.KGO_LOG_INFO
	default:
		return C.KGO_LOG_DEBUG
	}
}

// enabled reports whether the instance logs at l: its log_level, or the service's Log_Level.
func (h *flbHost) enabled(l slog.Level) bool { return flbLevel(l) <= h.x.level }

// writeLine writes one line through Fluent Bit's logger, and reports false when the instance has
// exited (the caller then writes it itself).
func (h *flbHost) writeLine(l slog.Level, line []byte) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if !h.live {
		return false
	}
	cs := C.CString(string(line))
	C.kgo_log(&h.x, flbLevel(l), cs)
	C.free(unsafe.Pointer(cs))
	return true
}

// cmtMetrics are an instance's metrics in its cmetrics context (see metricFamilies). Every
// series is created in Init, as Fluent Bit does: cmetrics updates values atomically, but adding a
// series is not safe while Fluent Bit collects the metrics on its engine thread.
type cmtMetrics struct {
	host     *flbHost
	families []cmtFamily
	latency  unsafe.Pointer // struct cmt_histogram *
	name     *C.char        // the instance's name, the value of every series' "name" label

	mu   sync.Mutex // one update at a time, so that counters never go back
	vals [2]*C.char

	// The durations of the requests answered since the last update (observeRequest), and the
	// slice update hands to cmetrics while requests add to the other.
	pendingMu sync.Mutex
	pending   []C.double
	spare     []C.double
}

// maxPendingObservations bounds the durations kept between two updates; past it, a request's
// duration goes to cmetrics at once. A flush, which updates at its end, makes a few hundred
// requests at most.
const maxPendingObservations = 1 << 14

type cmtFamily struct {
	metric unsafe.Pointer // struct cmt_counter * or struct cmt_gauge *
	family *metricFamily
	label  []*C.char // the family's label values, one per series
}

// newCmtMetrics creates the instance's metrics, or returns nil when the host has no cmetrics.
func newCmtMetrics(h *flbHost, instance string) *cmtMetrics {
	if h == nil || h.x.cmt == nil {
		return nil
	}
	m := &cmtMetrics{host: h, name: C.CString(instance)}
	cstrs := func(ss ...string) []*C.char {
		out := make([]*C.char, len(ss))
		for i, s := range ss {
			out[i] = C.CString(s)
		}
		return out
	}
	free := func(cs []*C.char) {
		for _, c := range cs {
			C.free(unsafe.Pointer(c))
		}
	}
	for i := range metricFamilies {
		f := &metricFamilies[i]
		keys := cstrs("name")
		if f.label != "" {
			keys = append(keys, C.CString(f.label))
		}
		name, help := C.CString(f.name), C.CString(f.help)
		var metric unsafe.Pointer
		if f.gauge {
			metric = C.kgo_gauge(h.x.cmt, name, help, C.int(len(keys)), &keys[0])
		} else {
			metric = C.kgo_counter(h.x.cmt, name, help, C.int(len(keys)), &keys[0])
		}
		free(keys)
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(help))
		if metric == nil {
			continue
		}
		fam := cmtFamily{metric: metric, family: f}
		for _, s := range f.series {
			fam.label = append(fam.label, C.CString(s.label))
		}
		m.families = append(m.families, fam)
	}
	name, help := C.CString(latencyMetric), C.CString(latencyHelp)
	bounds := make([]C.double, len(latencyBuckets))
	for i, b := range latencyBuckets {
		bounds[i] = C.double(b)
	}
	key := cstrs("name")
	m.latency = C.kgo_histogram(h.x.cmt, name, help, &bounds[0], C.size_t(len(bounds)), 1, &key[0])
	free(key)
	C.free(unsafe.Pointer(name))
	C.free(unsafe.Pointer(help))
	// Every series shows from the start, at 0.
	m.update(batcher.Stats{})
	return m
}

// update sets every series from the pool's totals.
func (m *cmtMetrics) update(s batcher.Stats) {
	if m == nil {
		return
	}
	m.host.mu.RLock()
	defer m.host.mu.RUnlock()
	if !m.host.live {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals[0] = m.name
	for _, f := range m.families {
		n := C.int(1)
		if f.family.label != "" {
			n = 2
		}
		for i, sr := range f.family.series {
			m.vals[1] = f.label[i]
			v := C.double(sr.value(s))
			if f.family.gauge {
				C.kgo_gauge_set(f.metric, v, n, &m.vals[0])
			} else {
				C.kgo_counter_set(f.metric, v, n, &m.vals[0])
			}
		}
	}
	if m.latency != nil {
		m.observePending() // m.vals[0] is m.name
	}
}

// release frees the C strings of the metrics; FLBPluginExitCtx calls it after detach.
func (m *cmtMetrics) release() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.families {
		for _, c := range f.label {
			C.free(unsafe.Pointer(c))
		}
	}
	m.families, m.latency = nil, nil
	C.free(unsafe.Pointer(m.name))
	m.name = nil
}

// observeRequest adds one PutRecords request's duration to the latency histogram, at the next
// update (the end of the flush that made the request).
//
// It runs on the request's goroutine. A call into C there tells the Go runtime that its thread
// enters a system call, and when the runtime was idle (the request waited tens of milliseconds for
// its answer) that wakes its monitor thread, which then polls every 20 µs for a millisecond before
// it backs off: in real Fluent Bit, that cost more CPU than the observation (docs/performance.md).
// The flush's own goroutine, which calls update, is in a call from C already.
func (m *cmtMetrics) observeRequest(d time.Duration) {
	if m == nil || m.latency == nil {
		return
	}
	m.pendingMu.Lock()
	if len(m.pending) < maxPendingObservations {
		m.pending = append(m.pending, C.double(d.Seconds()))
		m.pendingMu.Unlock()
		return
	}
	m.pendingMu.Unlock()
	m.observe([]C.double{C.double(d.Seconds())})
}

// observePending hands the kept durations to cmetrics. m.mu is held.
func (m *cmtMetrics) observePending() {
	m.pendingMu.Lock()
	obs := m.pending
	m.pending = m.spare[:0]
	m.pendingMu.Unlock()
	if len(obs) > 0 {
		C.kgo_histogram_observe(m.latency, &obs[0], C.size_t(len(obs)), 1, &m.vals[0])
	}
	m.spare = obs[:0]
}

// observe hands durations to cmetrics at once.
func (m *cmtMetrics) observe(obs []C.double) {
	m.host.mu.RLock()
	defer m.host.mu.RUnlock()
	if !m.host.live {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latency == nil {
		return
	}
	m.vals[0] = m.name
	C.kgo_histogram_observe(m.latency, &obs[0], C.size_t(len(obs)), 1, &m.vals[0])
}
