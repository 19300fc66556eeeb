package main

import "testing"

// TestRaiseMmapThreshold: after raiseMmapThreshold, glibc takes blocks of Fluent Bit's chunk
// sizes from its heap instead of mapping them.
func TestRaiseMmapThreshold(t *testing.T) {
	if _, ok := mallocMaps(1); !ok {
		t.Skip("the C library is not glibc 2.33 or later: mallinfo2 cannot tell")
	}
	raiseMmapThreshold()
	for _, n := range []int{256 << 10, 2 << 20, 4 << 20} {
		if maps, _ := mallocMaps(n); maps {
			t.Errorf("malloc(%d) maps its block after raiseMmapThreshold", n)
		}
	}
	if maps, _ := mallocMaps(64 << 20); !maps {
		t.Error("malloc(64 MiB) does not map its block: mallocMaps cannot tell a mapped block")
	}
}
