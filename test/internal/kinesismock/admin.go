package kinesismock

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// SetMaxRecordSize raises (or lowers) the maximum record size of stream to
// kib KiB (1024 to 10240) with UpdateMaxRecordSize, which takes the stream's
// ARN, and checks that DescribeStreamSummary then reports it.
func (s *Server) SetMaxRecordSize(ctx context.Context, stream string, kib int32) error {
	ctx, cancel := context.WithTimeout(ctx, activeTimeout)
	defer cancel()
	sum, err := s.Client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return fmt.Errorf("kinesismock: describe stream %q: %w", stream, err)
	}
	arn := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	if _, err := s.Client.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{
		StreamARN:          aws.String(arn),
		MaxRecordSizeInKiB: aws.Int32(kib),
	}); err != nil {
		return fmt.Errorf("kinesismock: update max record size of %q to %d KiB: %w", arn, kib, err)
	}
	sum, err = s.Client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return fmt.Errorf("kinesismock: describe stream %q: %w", stream, err)
	}
	if got := aws.ToInt32(sum.StreamDescriptionSummary.MaxRecordSizeInKiB); got != kib {
		return fmt.Errorf("kinesismock: stream %q has a maximum record size of %d KiB after UpdateMaxRecordSize(%d)", stream, got, kib)
	}
	return nil
}

// ShardRange is the hash key range of an open shard, both ends included.
type ShardRange struct {
	ID         string
	Start, End *big.Int
}

// Contains reports whether hash key h is in r.
func (r ShardRange) Contains(h *big.Int) bool { return r.Start.Cmp(h) <= 0 && h.Cmp(r.End) <= 0 }

// ShardRanges lists the open shards of stream with their hash key ranges,
// sorted by shard ID.
func (s *Server) ShardRanges(ctx context.Context, stream string) ([]ShardRange, error) {
	var out []ShardRange
	var next *string
	for pages := 0; ; pages++ {
		if pages == 100 {
			return nil, fmt.Errorf("kinesismock: list shards of %q: more than %d pages", stream, pages)
		}
		in := &kinesis.ListShardsInput{NextToken: next}
		if next == nil {
			in.StreamName = aws.String(stream)
		}
		page, err := s.Client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("kinesismock: list shards of %q: %w", stream, err)
		}
		for _, sh := range page.Shards {
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed
			}
			if sh.HashKeyRange == nil {
				return nil, fmt.Errorf("kinesismock: shard %s of %q has no hash key range", aws.ToString(sh.ShardId), stream)
			}
			start, ok1 := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
			end, ok2 := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("kinesismock: shard %s of %q: bad hash key range %+v", aws.ToString(sh.ShardId), stream, *sh.HashKeyRange)
			}
			out = append(out, ShardRange{ID: aws.ToString(sh.ShardId), Start: start, End: end})
		}
		if page.NextToken == nil {
			break
		}
		next = page.NextToken
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// HashKey is the hash key Kinesis computes for a partition key: the MD5 of
// its bytes read as a 128-bit big-endian unsigned integer. It is written
// here independently of the plugin's own shard map.
func HashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// ShardOf returns the ID of the range in ranges that holds hash key h, or ""
// when none does.
func ShardOf(ranges []ShardRange, h *big.Int) string {
	for _, r := range ranges {
		if r.Contains(h) {
			return r.ID
		}
	}
	return ""
}

// EvenKeys returns n partition keys starting with prefix, as many in each shard of ranges (n a
// multiple of their number), or an error when it finds none among 100n candidates.
func EvenKeys(ranges []ShardRange, prefix string, n int) ([]string, error) {
	per := map[string]int{}
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if i == 100*n {
			return nil, fmt.Errorf("no %d keys spread evenly over %d shards among %d", n, len(ranges), i)
		}
		k := fmt.Sprintf("%s%03d", prefix, i)
		if shard := ShardOf(ranges, HashKey(k)); per[shard] < n/len(ranges) {
			per[shard]++
			keys = append(keys, k)
		}
	}
	return keys, nil
}
