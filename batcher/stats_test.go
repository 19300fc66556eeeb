package batcher

import (
	"reflect"
	"testing"
)

// TestStatList: every field of Stats has exactly one entry in StatList, with a unique name, so that
// summaries and metrics cannot miss a new total.
func TestStatList(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[Stats]()
	if len(StatList) != typ.NumField() {
		t.Fatalf("StatList has %d entries, Stats %d fields", len(StatList), typ.NumField())
	}
	var s Stats
	v := reflect.ValueOf(&s).Elem()
	names := map[string]bool{}
	for i, st := range StatList {
		if st.Name == "" || st.Help == "" || names[st.Name] {
			t.Errorf("entry %d: name %q (empty or repeated), help %q", i, st.Name, st.Help)
		}
		names[st.Name] = true
		s = Stats{}
		v.Field(i).SetInt(int64(i + 1))
		if got := st.Of(s); got != int64(i+1) {
			t.Errorf("%s reads another field than Stats.%s", st.Name, typ.Field(i).Name)
		}
	}
}

func TestStatsAddSince(t *testing.T) {
	t.Parallel()
	a := Stats{Flushes: 2, Records: 10, Accepted: 9, LedgerChunks: 3}
	b := Stats{Flushes: 1, Records: 5, Throttled: 4, LedgerChunks: 7}
	sum := a
	sum.add(b)
	if want := (Stats{Flushes: 3, Records: 15, Accepted: 9, Throttled: 4, LedgerChunks: 3}); sum != want {
		t.Errorf("add: %+v, want %+v (levels are not added)", sum, want)
	}
	if d, want := sum.Since(a), (Stats{Flushes: 1, Records: 5, Throttled: 4, LedgerChunks: 3}); d != want {
		t.Errorf("Since: %+v, want %+v (levels are the latest)", d, want)
	}
}
