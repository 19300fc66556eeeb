package main

import "testing"

// TestRegistryNames: instances are named as Fluent Bit numbers them, in Init order from 0, and from
// 0 again once every instance has exited (a hot reload exits them all, then initialises anew).
func TestRegistryNames(t *testing.T) {
	t.Parallel()
	r := &registry{alive: make(map[*instance]struct{})}
	a, b := &instance{}, &instance{}
	for round := range 3 {
		n0 := r.nextName()
		r.add(a)
		n1 := r.nextName()
		r.add(b)
		if n0 != pluginName+".0" || n1 != pluginName+".1" {
			t.Fatalf("round %d: names %q, %q; want %s.0 and %s.1", round, n0, n1, pluginName, pluginName)
		}
		if round%2 == 0 {
			r.remove(a)
			r.remove(b)
		} else if got := len(r.takeAll()); got != 2 {
			t.Fatalf("takeAll returned %d instances, want 2", got)
		}
	}
}
