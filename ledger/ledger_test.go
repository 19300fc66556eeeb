package ledger

import (
	"fmt"
	"sync"
	"testing"
)

func TestKeyOf(t *testing.T) {
	t.Parallel()
	chunk := []byte("\x92\x92\xd7\x00chunk bytes")
	base := KeyOf(chunk, "app.log")
	if KeyOf(append([]byte(nil), chunk...), "app.log") != base {
		t.Error("the same chunk and tag hash differently")
	}
	tests := []struct {
		name  string
		chunk []byte
		tag   string
	}{
		{"other tag", chunk, "app.log2"},
		{"one byte changed", append([]byte("\x92\x92\xd7\x01"), chunk[4:]...), "app.log"},
		{"one byte more", append(append([]byte(nil), chunk...), 0), "app.log"},
		{"tag and chunk boundary moved", append([]byte("g"), chunk...), "app.lo"},
		{"empty", nil, ""},
	}
	seen := map[Key]string{base: "base"}
	for _, tt := range tests {
		k := KeyOf(tt.chunk, tt.tag)
		if prev, ok := seen[k]; ok {
			t.Errorf("%s: same key as %s", tt.name, prev)
		}
		seen[k] = tt.name
	}
}

func TestBitset(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 63, 64, 65, 130} {
		b := Full(n)
		if len(b) != (n+63)/64 {
			t.Errorf("Full(%d) has %d words", n, len(b))
		}
		for i := -1; i <= n+64; i++ {
			if got, want := b.Has(i), i >= 0 && i < n; got != want {
				t.Fatalf("Full(%d).Has(%d) = %v, want %v", n, i, got, want)
			}
		}
		if n > 0 {
			b.Clear(n - 1)
			b.Clear(0)
			b.Clear(n + 100) // outside: ignored
			if b.Has(0) || b.Has(n-1) || (n > 2 && !b.Has(1)) {
				t.Errorf("clear in a set of %d", n)
			}
		}
	}
	var none Bitset
	if none.Has(0) {
		t.Error("nil bitset has 0")
	}
}

func ledgerKey(i int) Key { return KeyOf([]byte(fmt.Sprint(i)), "t") }

func TestLedgerTakePut(t *testing.T) {
	t.Parallel()
	l := New(0, 0)
	k := ledgerKey(1)
	if _, ok := l.Take(k); ok || l.Len() != 0 {
		t.Fatal("empty ledger has an entry")
	}
	done := Full(10)
	done.Clear(3)
	if n := l.Put(k, done); n != 0 || l.Len() != 1 {
		t.Fatalf("Put evicted %d, Len %d", n, l.Len())
	}
	// Put again replaces.
	done2 := Full(10)
	l.Put(k, done2)
	if l.Len() != 1 {
		t.Fatalf("Len after replacing = %d", l.Len())
	}
	got, ok := l.Take(k)
	if !ok || !got.Has(3) || l.Len() != 0 {
		t.Fatalf("Take = %v, %v; Len %d", got, ok, l.Len())
	}
	if _, ok := l.Take(k); ok {
		t.Error("an entry taken is still there")
	}
}

// TestLedgerEviction fills one shard past its bounds: its oldest entries go first, by count and
// by bytes; the newest entry always stays; entries of other shards are not touched.
func TestLedgerEviction(t *testing.T) {
	t.Parallel()
	// Keys of one shard, and one of another.
	var same []Key
	var other Key
	for i := 0; len(same) < 40 || other == (Key{}); i++ {
		k := ledgerKey(i)
		switch {
		case k[0]%Shards == 0 && len(same) < 40:
			same = append(same, k)
		case k[0]%Shards != 0 && other == (Key{}):
			other = k
		}
	}
	t.Run("chunks", func(t *testing.T) {
		t.Parallel()
		l := New(4*Shards, 0) // 4 chunks per shard
		l.Put(other, Full(1))
		evicted := 0
		for _, k := range same[:10] {
			evicted += l.Put(k, Full(1))
		}
		if evicted != 6 || l.Evicted() != 6 || l.Len() != 5 {
			t.Errorf("evicted %d (%d), Len %d; want 6 and 4+1", evicted, l.Evicted(), l.Len())
		}
		for i, k := range same[:10] {
			if _, ok := l.Take(k); ok != (i >= 6) {
				t.Errorf("entry %d kept = %v, want the 4 newest kept", i, ok)
			}
		}
		if _, ok := l.Take(other); !ok {
			t.Error("an entry of another shard was evicted")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		perShard := 3 * (ledgerEntryOverhead + 8*16) // three entries of 1024 events
		l := New(0, perShard*Shards)
		for _, k := range same[:5] {
			l.Put(k, Full(1024))
		}
		if l.Len() != 3 || l.Evicted() != 2 {
			t.Errorf("Len %d, evicted %d; want 3, 2", l.Len(), l.Evicted())
		}
		// One entry larger than the whole budget evicts the others, and stays.
		l.Put(same[5], Full(1<<20))
		if l.Len() != 1 {
			t.Errorf("Len %d after a huge entry, want 1", l.Len())
		}
		if _, ok := l.Take(same[5]); !ok {
			t.Error("the newest entry was evicted")
		}
	})
}

// TestLedgerConcurrent takes and puts entries from many goroutines (run with -race): every
// goroutine finds its own entries intact, and the count is right at the end.
func TestLedgerConcurrent(t *testing.T) {
	t.Parallel()
	l := New(1<<20, 1<<30) // no eviction
	const goroutines, rounds = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				k := ledgerKey(g*rounds + r)
				done := Full(r + 1)
				done.Clear(r)
				l.Put(k, done)
				if r%2 == 0 {
					continue // keep half of them
				}
				got, ok := l.Take(k)
				if !ok || got.Has(r) || (r > 0 && !got.Has(r-1)) {
					errs <- fmt.Errorf("goroutine %d round %d: entry %v, %v", g, r, ok, got)
					return
				}
				_ = l.Len()
			}
		})
	}
	// One shared key, put and taken by everyone: no entry is lost or doubled.
	shared := ledgerKey(-1)
	for range goroutines {
		wg.Go(func() {
			for range rounds {
				l.Put(shared, Full(1))
				l.Take(shared)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l.Take(shared)
	if want := goroutines * rounds / 2; l.Len() != want || l.Evicted() != 0 {
		t.Errorf("Len = %d, evicted %d; want %d, 0", l.Len(), l.Evicted(), want)
	}
}
