package kinesis

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	kinesissdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kpl"
)

// listShardsPageSize is the MaxResults of one ListShards call: the API's maximum (and default).
const listShardsPageSize = 1000

// maxListShardsPages bounds the pagination of one ListShards listing (a million shards).
const maxListShardsPages = 1000

// ErrListShardsUnsupported: the client's API does not implement ListShards.
var ErrListShardsUnsupported = errors.New("kinesis: list shards not supported by this client")

// shardLister is the part of the SDK client that ListShards uses.
type shardLister interface {
	ListShards(ctx context.Context, in *kinesissdk.ListShardsInput, optFns ...func(*kinesissdk.Options)) (*kinesissdk.ListShardsOutput, error)
}

var _ shardLister = (*kinesissdk.Client)(nil)

// ListShards lists the stream's shards, following the pagination, and returns the map of its open
// shards. An error that IsAccessDenied means the credentials may not call ListShards
// (kinesis:ListShards): the caller can aggregate without a shard map.
func (c *Client) ListShards(ctx context.Context) (*kpl.ShardMap, error) {
	l, ok := c.api.(shardLister)
	if !ok {
		return nil, ErrListShardsUnsupported
	}
	return listShards(ctx, l, c.streamName, c.streamARN)
}

func listShards(ctx context.Context, l shardLister, streamName, streamARN *string) (*kpl.ShardMap, error) {
	var shards []types.Shard
	in := &kinesissdk.ListShardsInput{StreamName: streamName, StreamARN: streamARN, MaxResults: aws.Int32(listShardsPageSize)}
	for page := 0; ; page++ {
		if page == maxListShardsPages {
			return nil, fmt.Errorf("kinesis: list shards: more than %d pages", maxListShardsPages)
		}
		out, err := l.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("kinesis: list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		token := aws.ToString(out.NextToken)
		if token == "" {
			break
		}
		if token == aws.ToString(in.NextToken) {
			return nil, fmt.Errorf("kinesis: list shards: the same NextToken twice")
		}
		// The token identifies the stream: the API rejects a stream name along with it.
		in = &kinesissdk.ListShardsInput{NextToken: aws.String(token), MaxResults: aws.Int32(listShardsPageSize)}
	}
	return kpl.NewShardMap(shards)
}

// IsAccessDenied reports whether err is Kinesis refusing the call to the credentials' identity
// (AccessDeniedException): the IAM policy does not allow the action.
func IsAccessDenied(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "AccessDeniedException", "AccessDenied":
		return true
	}
	return false
}
