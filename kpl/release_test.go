package kpl

import (
	"bytes"
	"testing"
)

// TestAggregatorRelease: Release drops an empty aggregator's buffers (Retained 0), leaves one that
// holds records alone, and an aggregator released then reused builds the same bytes as a new one.
func TestAggregatorRelease(t *testing.T) {
	t.Parallel()
	fill := func(a *Aggregator) {
		for i, k := range []string{"a", "b", "a", "c"} {
			if r := a.Add(bytes.Repeat([]byte{byte('0' + i)}, 100), k); r != Added {
				t.Fatalf("Add: %v", r)
			}
		}
	}
	a := NewAggregator(0)
	fill(a)
	held := a.Retained()
	a.Release()
	if a.Retained() != held || a.Len() != 4 {
		t.Fatalf("Release emptied an aggregate that holds records: retained %d, want %d; %d records", a.Retained(), held, a.Len())
	}
	a.Reset()
	if a.Retained() == 0 {
		t.Fatal("Reset dropped the buffers: Retained is 0")
	}
	a.Release()
	if a.Retained() != 0 {
		t.Fatalf("after Release, Retained = %d, want 0", a.Retained())
	}
	fill(a)
	fresh := NewAggregator(0)
	fill(fresh)
	if got, want := a.Finish(nil), fresh.Finish(nil); !bytes.Equal(got, want) {
		t.Errorf("a released aggregator builds %x, a new one %x", got, want)
	}
}
