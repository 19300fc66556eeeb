// Package kpl owns the Kinesis Producer Library's aggregated record format and the stream's shard
// map: Aggregator packs user records, each with its partition key, into one KPL aggregated record
// (magic, protobuf, MD5) under a size limit, and ShardMap maps a partition key to the open shard
// Kinesis puts it in (the MD5 of the key in the shards' hash key ranges), so that an aggregate can
// hold the records of one shard and be sent to it with an explicit hash key.
//
// It does not send anything, nor list the shards (package kinesis does), nor decide which records
// go together (package batcher does).
package kpl
