package kinesis

import "math/rand/v2"

// KeyLen is the length of a random partition key: 16 characters of 6 bits each (96 random bits),
// far below limits.MaxPartitionKeyLen, and spread uniformly over the hash key space of every shard.
const KeyLen = 16

// keyAlphabet has 64 characters, so 6 random bits pick one with exactly uniform probability.
const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// keysPerRefill keys are generated at once into one string; each key is a substring of it, so a
// key costs no allocation of its own.
const keysPerRefill = 64

// KeyGen generates random partition keys. It has its own PRNG and is not safe for concurrent use:
// use one per goroutine (the batcher gives one to each concurrent flush). The keys are not secret
// and need not be unpredictable, only uniform.
type KeyGen struct {
	rng rand.PCG
	buf string // keysPerRefill keys, of which buf[off:] are unused
	off int
}

// NewKeyGen returns a generator seeded with seed; generators with different seeds give different
// sequences.
func NewKeyGen(seed uint64) *KeyGen {
	g := &KeyGen{}
	g.rng.Seed(seed, splitmix64(seed))
	return g
}

// Next returns a new random partition key of KeyLen characters.
func (g *KeyGen) Next() string {
	if g.off+KeyLen > len(g.buf) {
		g.refill()
	}
	k := g.buf[g.off : g.off+KeyLen]
	g.off += KeyLen
	return k
}

func (g *KeyGen) refill() {
	var b [keysPerRefill * KeyLen]byte
	// 8 characters from each random word (48 of its 64 bits), unrolled: this loop is most of the
	// cost of packing small records.
	for i := 0; i < len(b); i += 8 {
		u := g.rng.Uint64()
		c := b[i : i+8 : i+8]
		c[0] = keyAlphabet[u&63]
		c[1] = keyAlphabet[u>>6&63]
		c[2] = keyAlphabet[u>>12&63]
		c[3] = keyAlphabet[u>>18&63]
		c[4] = keyAlphabet[u>>24&63]
		c[5] = keyAlphabet[u>>30&63]
		c[6] = keyAlphabet[u>>36&63]
		c[7] = keyAlphabet[u>>42&63]
	}
	g.buf, g.off = string(b[:]), 0
}

// splitmix64 derives PCG's second seed word from the first, so that nearby seeds (a counter) give
// unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
