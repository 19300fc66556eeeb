package kinesis

import (
	"strings"
	"testing"
)

func TestKeyGenShape(t *testing.T) {
	t.Parallel()
	g := NewKeyGen(1)
	seen := make(map[string]bool)
	for range 10000 {
		k := g.Next()
		if len(k) != KeyLen {
			t.Fatalf("key %q has %d characters, want %d", k, len(k), KeyLen)
		}
		for _, c := range k {
			if !strings.ContainsRune(keyAlphabet, c) {
				t.Fatalf("key %q has %q, outside the alphabet", k, c)
			}
		}
		if seen[k] {
			t.Fatalf("key %q repeated", k)
		}
		seen[k] = true
	}
}

// TestKeyGenUniform runs a chi-square test per position over 100k keys: 64 equally likely
// characters give 63 degrees of freedom, whose 99.99th percentile is about 120. The seed is fixed,
// so the test is deterministic; a biased alphabet lookup would exceed the bound by far.
func TestKeyGenUniform(t *testing.T) {
	t.Parallel()
	const n = 100000
	var counts [KeyLen][256]int
	g := NewKeyGen(42)
	for range n {
		k := g.Next()
		for pos := range KeyLen {
			counts[pos][k[pos]]++
		}
	}
	want := float64(n) / float64(len(keyAlphabet))
	for pos := range KeyLen {
		chi2 := 0.0
		for i := range len(keyAlphabet) {
			d := float64(counts[pos][keyAlphabet[i]]) - want
			chi2 += d * d / want
		}
		if chi2 > 120 {
			t.Errorf("position %d: chi-square %.1f over 63 degrees of freedom, want < 120", pos, chi2)
		}
	}
}

func TestKeyGenSeeds(t *testing.T) {
	t.Parallel()
	a, b, a2 := NewKeyGen(1), NewKeyGen(2), NewKeyGen(1)
	same := 0
	for range 1000 {
		ka, kb := a.Next(), b.Next()
		if ka == kb {
			same++
		}
		if ka2 := a2.Next(); ka2 != ka {
			t.Fatalf("same seed gave %q and %q", ka, ka2)
		}
	}
	if same > 0 {
		t.Errorf("seeds 1 and 2 gave %d equal keys out of 1000", same)
	}
}

func TestKeyGenAllocs(t *testing.T) {
	g := NewKeyGen(7)
	allocs := testing.AllocsPerRun(10000, func() { _ = g.Next() })
	if allocs > 1.0/keysPerRefill+0.01 {
		t.Errorf("Next allocates %.3f times per key, want at most 1/%d", allocs, keysPerRefill)
	}
}

func BenchmarkKeyGen(b *testing.B) {
	g := NewKeyGen(1)
	b.ReportAllocs()
	b.SetBytes(KeyLen)
	for b.Loop() {
		_ = g.Next()
	}
}
