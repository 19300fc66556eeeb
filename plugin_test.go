package main

import "testing"

// TestRegistryNames: instances are named as Fluent Bit numbers them, in Init order from 0 (an Init
// that failed takes its number too), and from 0 again once every instance has exited (a hot reload
// exits them all, then initialises anew). IDs are never reused, nor 0.
func TestRegistryNames(t *testing.T) {
	t.Parallel()
	r := &registry{alive: make(map[uintptr]*registered)}
	seen := map[uintptr]bool{0: true}
	for round := range 3 {
		n0 := r.nextName()
		a := r.add(&registered{})
		_ = r.nextName() // an instance whose Init failed
		n2 := r.nextName()
		b := r.add(&registered{})
		if n0 != pluginName+".0" || n2 != pluginName+".2" {
			t.Fatalf("round %d: names %q, %q; want %s.0 and %s.2", round, n0, n2, pluginName, pluginName)
		}
		if seen[a] || seen[b] || r.get(a) == nil || r.get(b) == nil {
			t.Fatalf("round %d: IDs %d and %d reused, zero or not found", round, a, b)
		}
		seen[a], seen[b] = true, true
		if round%2 == 0 {
			if r.remove(a) == nil || r.remove(b) == nil || r.remove(b) != nil {
				t.Fatalf("round %d: remove did not return each instance exactly once", round)
			}
		} else if got := len(r.takeAll()); got != 2 {
			t.Fatalf("takeAll returned %d instances, want 2", got)
		}
		if r.get(a) != nil {
			t.Fatalf("round %d: an exited instance is still found", round)
		}
	}
}
