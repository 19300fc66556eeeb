// Package kpltest holds shard fixtures for the tests of the packages that build or use shard maps.
// Only tests import it.
package kpltest

import (
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// FourShards are four shards of equal size, as CreateStream makes them: the two top bits of a
// key's MD5 pick its shard. Bounds computed by hand: 2^126 = 85070591730234615865843651857942052864.
var FourShards = []types.Shard{
	Shard("shardId-000000000000", "0", "85070591730234615865843651857942052863"),
	Shard("shardId-000000000001", "85070591730234615865843651857942052864", "170141183460469231731687303715884105727"),
	Shard("shardId-000000000002", "170141183460469231731687303715884105728", "255211775190703847597530955573826158591"),
	Shard("shardId-000000000003", "255211775190703847597530955573826158592", "340282366920938463463374607431768211455"),
}

// Shard is an open shard with the hash key range start to end (decimal, inclusive).
func Shard(id, start, end string) types.Shard {
	return types.Shard{
		ShardId:             aws.String(id),
		HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(start), EndingHashKey: aws.String(end)},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("49590338271490256608559692538361571095921575989136588898")},
	}
}

// Closed returns s closed: with an ending sequence number, as after a split or a merge.
func Closed(s types.Shard) types.Shard {
	s.SequenceNumberRange = &types.SequenceNumberRange{
		StartingSequenceNumber: s.SequenceNumberRange.StartingSequenceNumber,
		EndingSequenceNumber:   aws.String("49590338271512557353758223161503106814194224350642569250"),
	}
	return s
}

// Even returns n open shards of equal hash key ranges (the last one takes the remainder), as
// CreateStream makes them, named shardId-000000000000 on.
func Even(n int) []types.Shard {
	top := new(big.Int).Lsh(big.NewInt(1), 128)
	span := new(big.Int).Div(top, big.NewInt(int64(n)))
	shards := make([]types.Shard, n)
	for i := range n {
		start := new(big.Int).Mul(span, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, span), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Sub(top, big.NewInt(1))
		}
		shards[i] = Shard(fmt.Sprintf("shardId-%012d", i), start.String(), end.String())
	}
	return shards
}
