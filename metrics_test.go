package main

import (
	"reflect"
	"testing"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/batcher"
)

// TestMetricFamilies: every total of the pool shows in some metric, names are unique and end as
// Prometheus expects (_total for counters).
func TestMetricFamilies(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	names := map[string]bool{latencyMetric: true}
	for _, f := range metricFamilies {
		if names[f.name] {
			t.Errorf("metric %s defined twice", f.name)
		}
		names[f.name] = true
		if counter := !f.gauge; counter != (len(f.name) > 6 && f.name[len(f.name)-6:] == "_total") {
			t.Errorf("metric %s: a counter's name ends with _total, a gauge's does not", f.name)
		}
		if (f.label == "") != (len(f.series) == 1 && f.series[0].label == "") {
			t.Errorf("metric %s: label %q with %d series", f.name, f.label, len(f.series))
		}
	}
	// A total shows when setting it alone changes some series.
	typ := reflect.TypeFor[batcher.Stats]()
	for i := range typ.NumField() {
		var st batcher.Stats
		reflect.ValueOf(&st).Elem().Field(i).SetInt(1)
		for _, f := range metricFamilies {
			for _, s := range f.series {
				if s.value(st) != 0 {
					used[typ.Field(i).Name] = true
				}
			}
		}
	}
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; !used[name] {
			t.Errorf("batcher.Stats.%s shows in no metric", name)
		}
	}
}
