// Package ledger remembers which records of a chunk were delivered, for chunks Fluent Bit will
// flush again: a Ledger maps a chunk (the SHA-256 of its tag and bytes) to the set of its events
// that need not be sent again, bounded in chunks and bytes. It knows nothing of Kinesis or of how
// the records are sent; package batcher takes a chunk's set out when it flushes the chunk, and puts
// back what it did not deliver.
package ledger

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Ledger bounds. A chunk's entry costs one bit per event plus ledgerEntryOverhead bytes: with the
// defaults the ledger holds at most 1024 chunks (64 in each of its 16 shards) and about 16 MiB.
const (
	DefaultChunks = 1024
	DefaultBytes  = 16 << 20
	// Shards is how many parts the ledger is split into, by the first byte of a chunk's key: its
	// bounds are split evenly among them, and each forgets its own oldest entries.
	Shards              = 16
	ledgerEntryOverhead = 160 // key, list element, map slot, slice header
)

// Key identifies a chunk: the SHA-256 of its tag and bytes.
type Key [sha256.Size]byte

// KeyOf returns the key of chunk flushed with tag. The tag's length comes first, so that no two
// (tag, chunk) pairs hash the same input.
func KeyOf(chunk []byte, tag string) Key {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(tag)))
	h.Write(n[:])
	h.Write([]byte(tag))
	h.Write(chunk)
	var k Key
	h.Sum(k[:0])
	return k
}

// Bitset is a set of event indexes (an event's index is its position in the chunk, from 0).
type Bitset []uint64

// Has reports whether i is in the set.
func (b Bitset) Has(i int) bool {
	w := i >> 6
	return i >= 0 && w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

// Full returns the set [0, n).
func Full(n int) Bitset {
	b := make(Bitset, (n+63)/64)
	for i := range b {
		b[i] = ^uint64(0)
	}
	if r := n & 63; r != 0 {
		b[len(b)-1] = 1<<uint(r) - 1
	}
	return b
}

// Clear removes i from the set.
func (b Bitset) Clear(i int) {
	if w := i >> 6; i >= 0 && w < len(b) {
		b[w] &^= 1 << (uint(i) & 63)
	}
}

// Ledger remembers, for chunks that Fluent Bit will flush again (the flush returned
// batcher.ErrNotDelivered), which of their events need not be sent again: those Kinesis accepted and those
// skipped on purpose. Entries are keyed by Key, so a chunk whose bytes or tag differ in any
// way is a different chunk, and its records are all sent.
//
// It is bounded: past its bounds it forgets its oldest entries (per shard). A forgotten chunk, if
// flushed again, is sent whole: the records Kinesis had accepted are duplicated, none is lost.
// It is safe for concurrent use; flushes of different chunks contend only when their keys fall in
// the same one of 16 shards, for a map operation (the hashing is done outside any lock). A flush
// takes its chunk's entry out for its duration: two flushes of the same chunk at once (Fluent Bit
// never does that) would both send what the entry says is left.
type Ledger struct {
	shards    [Shards]ledgerShard
	maxChunks int // per shard
	maxBytes  int // per shard
	n         atomic.Int64
	evicted   atomic.Int64
}

type ledgerShard struct {
	mu      sync.Mutex
	entries map[Key]*list.Element // of *ledgerEntry
	order   list.List             // oldest first
	bytes   int
}

type ledgerEntry struct {
	key  Key
	done Bitset
}

func (e *ledgerEntry) size() int { return ledgerEntryOverhead + 8*len(e.done) }

// New returns a ledger of at most maxChunks chunks and about maxBytes bytes; 0 means
// DefaultChunks or DefaultBytes. The bounds are split evenly among the shards.
func New(maxChunks, maxBytes int) *Ledger {
	if maxChunks <= 0 {
		maxChunks = DefaultChunks
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	l := &Ledger{
		maxChunks: max(1, maxChunks/Shards),
		maxBytes:  max(1, maxBytes/Shards),
	}
	for i := range l.shards {
		l.shards[i].entries = make(map[Key]*list.Element)
	}
	return l
}

// Len returns the number of chunks remembered. It takes no lock: a flush calls it to know whether
// the chunk must be hashed at all.
func (l *Ledger) Len() int { return int(l.n.Load()) }

// Evicted returns how many entries were forgotten to stay within the bounds.
func (l *Ledger) Evicted() int64 { return l.evicted.Load() }

func (l *Ledger) shard(k Key) *ledgerShard { return &l.shards[k[0]%Shards] }

// Take removes the entry of k and returns its set of events not to send again. The flush that took
// it owns it; it puts it back, updated, if the chunk is still not fully delivered.
func (l *Ledger) Take(k Key) (Bitset, bool) {
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[k]
	if !ok {
		return nil, false
	}
	e := s.remove(el)
	l.n.Add(-1)
	return e.done, true
}

// Put remembers done for k, replacing what k had, and returns how many other entries it forgot to
// stay within the bounds (the oldest of the shard first). The newest entry is always kept.
func (l *Ledger) Put(k Key, done Bitset) (evicted int) {
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[k]; ok {
		s.remove(el)
		l.n.Add(-1)
	}
	e := &ledgerEntry{key: k, done: done}
	s.entries[k] = s.order.PushBack(e)
	s.bytes += e.size()
	l.n.Add(1)
	for s.order.Len() > 1 && (s.order.Len() > l.maxChunks || s.bytes > l.maxBytes) {
		s.remove(s.order.Front())
		l.n.Add(-1)
		evicted++
	}
	l.evicted.Add(int64(evicted))
	return evicted
}

func (s *ledgerShard) remove(el *list.Element) *ledgerEntry {
	e := s.order.Remove(el).(*ledgerEntry)
	delete(s.entries, e.key)
	s.bytes -= e.size()
	return e
}
