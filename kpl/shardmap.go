package kpl

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// Kinesis routes a record to the shard whose hash key range holds the record's hash key: its
// ExplicitHashKey when it has one, otherwise the MD5 of its partition key read as a 128-bit
// big-endian unsigned integer. The open shards of a stream cover the hash key space, 0 to
// 2^128-1, without gaps or overlaps
// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html).
//
// A consumer that deaggregates with the KCL drops the user records of an aggregate whose hash keys
// are not in the range of the shard the aggregate was read from: shard-aware aggregation puts in
// one aggregate only user records of one shard, and sends it with an ExplicitHashKey in that
// shard's range.

// ErrShardMap: the shards listed do not make a usable map: an open shard without an ID or a valid
// hash key range, open shards that overlap or leave part of the hash key space uncovered (the
// stream was being resharded while it was listed), or no open shard at all. Listing again later
// may succeed.
var ErrShardMap = errors.New("kpl: inconsistent shard map")

// maxKeyBytes bounds a partition key in bytes: at most 4 bytes a character in UTF-8.
const maxKeyBytes = 4 * limits.MaxPartitionKeyLen

// hashKey is a 128-bit hash key: hi holds the most significant 64 bits.
type hashKey struct{ hi, lo uint64 }

func (h hashKey) less(o hashKey) bool { return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo) }

// next is h + 1, and whether it did not overflow.
func (h hashKey) next() (hashKey, bool) {
	if h.lo != ^uint64(0) {
		return hashKey{h.hi, h.lo + 1}, true
	}
	if h.hi != ^uint64(0) {
		return hashKey{h.hi + 1, 0}, true
	}
	return hashKey{}, false
}

// HashKeyOf is the hash key Kinesis computes for a partition key: its MD5, as a big-endian
// 128-bit integer, split into its high and low 64 bits.
func HashKeyOf(partitionKey string) (hi, lo uint64) {
	h := hashOf(partitionKey)
	return h.hi, h.lo
}

func hashOf(partitionKey string) hashKey {
	// Keys are short: hash them from a stack copy, so that the conversion to []byte does not
	// allocate.
	var buf [maxKeyBytes]byte
	var sum [md5.Size]byte
	if len(partitionKey) <= len(buf) {
		n := copy(buf[:], partitionKey)
		sum = md5.Sum(buf[:n])
	} else {
		sum = md5.Sum([]byte(partitionKey))
	}
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// Shard is one open shard of a stream.
type Shard struct {
	ID string
	// StartingHashKey and EndingHashKey are the bounds of the shard's hash key range, inclusive,
	// in decimal, without leading zeros.
	StartingHashKey string
	EndingHashKey   string
}

// ExplicitHashKey is a hash key in the shard's range, in decimal: sending a record with it puts
// the record in this shard whatever its partition key. It is the starting hash key.
func (s Shard) ExplicitHashKey() string { return s.StartingHashKey }

// ShardMap maps partition keys to the open shards of a stream, as Kinesis does. It is immutable
// and safe for concurrent use; Lookup allocates nothing.
type ShardMap struct {
	shards []Shard   // sorted by hash key range
	ends   []hashKey // ends[i] is the ending hash key of shards[i]
}

// NewShardMap builds a map of the open shards among shards (those without an ending sequence
// number; closed shards receive no records). Their ranges must cover the hash key space exactly,
// or the error wraps ErrShardMap.
func NewShardMap(shards []types.Shard) (*ShardMap, error) {
	type ranged struct {
		shard      Shard
		start, end hashKey
	}
	var open []ranged
	for _, s := range shards {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue // closed
		}
		id := aws.ToString(s.ShardId)
		if id == "" || s.HashKeyRange == nil {
			return nil, fmt.Errorf("%w: shard %q without an ID or a hash key range", ErrShardMap, id)
		}
		start, startStr, err := parseHashKey(aws.ToString(s.HashKeyRange.StartingHashKey))
		if err != nil {
			return nil, fmt.Errorf("%w: shard %q: starting hash key: %w", ErrShardMap, id, err)
		}
		end, endStr, err := parseHashKey(aws.ToString(s.HashKeyRange.EndingHashKey))
		if err != nil {
			return nil, fmt.Errorf("%w: shard %q: ending hash key: %w", ErrShardMap, id, err)
		}
		if end.less(start) {
			return nil, fmt.Errorf("%w: shard %q: hash key range %s to %s is empty", ErrShardMap, id, startStr, endStr)
		}
		open = append(open, ranged{Shard{ID: id, StartingHashKey: startStr, EndingHashKey: endStr}, start, end})
	}
	if len(open) == 0 {
		return nil, fmt.Errorf("%w: no open shard", ErrShardMap)
	}
	slices.SortFunc(open, func(a, b ranged) int {
		if c := cmp.Compare(a.start.hi, b.start.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.start.lo, b.start.lo)
	})

	m := &ShardMap{shards: make([]Shard, len(open)), ends: make([]hashKey, len(open))}
	want := hashKey{} // the next hash key to cover
	for i, r := range open {
		if r.start != want {
			what := "overlaps the previous shard"
			if want.less(r.start) {
				what = "leaves a gap before it"
			}
			return nil, fmt.Errorf("%w: shard %q starting at %s %s", ErrShardMap, r.shard.ID, r.shard.StartingHashKey, what)
		}
		m.shards[i], m.ends[i] = r.shard, r.end
		next, ok := r.end.next()
		if !ok {
			if i != len(open)-1 {
				return nil, fmt.Errorf("%w: shard %q overlaps shard %q", ErrShardMap, open[i+1].shard.ID, r.shard.ID)
			}
			return m, nil
		}
		want = next
	}
	return nil, fmt.Errorf("%w: the open shards end at %s, below 2^128-1", ErrShardMap, open[len(open)-1].shard.EndingHashKey)
}

// maxHashKey is 2^128 - 1.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// parseHashKey parses a decimal hash key, and returns it with its canonical decimal form.
func parseHashKey(s string) (hashKey, string, error) {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() < 0 || v.Cmp(maxHashKey) > 0 {
		return hashKey{}, "", fmt.Errorf("%q is not an integer from 0 to 2^128-1", s)
	}
	var b [16]byte
	v.FillBytes(b[:])
	return hashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, v.String(), nil
}

// Len is the number of open shards.
func (m *ShardMap) Len() int { return len(m.shards) }

// Shard returns the i-th open shard, in hash key order, 0 <= i < Len().
func (m *ShardMap) Shard(i int) Shard { return m.shards[i] }

// Lookup returns the index of the shard Kinesis puts a record with this partition key in.
func (m *ShardMap) Lookup(partitionKey string) int {
	return m.lookupHash(hashOf(partitionKey))
}

// lookupHash returns the index of the first shard whose range ends at or after h: the shard of h,
// since the ranges cover the hash key space in order.
func (m *ShardMap) lookupHash(h hashKey) int {
	lo, hi := 0, len(m.ends)-1 // the last shard ends at 2^128-1 >= h
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.ends[mid].less(h) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
