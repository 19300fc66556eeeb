package main

import "testing"

// TestRegistryNames: instances are named as Fluent Bit numbers them, in Init order from 0 (an Init
// that failed takes its number too), and from 0 again once every instance has exited (a hot reload
// exits them all, then initialises anew).
func TestRegistryNames(t *testing.T) {
	t.Parallel()
	r := &registry{alive: make(map[*instance]struct{})}
	a, b := &instance{}, &instance{}
	for round := range 3 {
		n0 := r.nextName()
		r.add(a)
		_ = r.nextName() // an instance whose Init failed
		n2 := r.nextName()
		r.add(b)
		if n0 != pluginName+".0" || n2 != pluginName+".2" {
			t.Fatalf("round %d: names %q, %q; want %s.0 and %s.2", round, n0, n2, pluginName, pluginName)
		}
		if round%2 == 0 {
			r.remove(a)
			r.remove(b)
		} else if got := len(r.takeAll()); got != 2 {
			t.Fatalf("takeAll returned %d instances, want 2", got)
		}
	}
}
