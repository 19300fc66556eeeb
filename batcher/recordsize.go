package batcher

import "github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"

// recordLimits are the size limits of the Kinesis records of one flush. A batcher takes them from
// its pool when a flush begins, so that a stream's maximum record size learned while the plugin
// runs (Options.RecordSizeLimit) applies from the next flush on, and never changes within one.
type recordLimits struct {
	maxRecordSize int // data + partition key
	aggMaxSize    int // an aggregate before compression, so that compressed it fits maxRecordSize
}

// recordLimits returns the limits for a flush that begins now.
func (p *Pool) recordLimits() recordLimits {
	max := p.maxRecordSize
	if p.recordSizeLimit != nil {
		if n := p.recordSizeLimit(); n > 0 {
			max = min(n, limits.MaxRequestBytes)
		}
	}
	if max == p.maxRecordSize {
		return recordLimits{maxRecordSize: max, aggMaxSize: p.aggMaxSize}
	}
	return recordLimits{maxRecordSize: max, aggMaxSize: aggregateLimit(max, p.compression)}
}

// setLimits takes the pool's limits for the flush that begins, and gives the batcher's idle
// aggregates the new size limit when it changed.
func (b *batcher) setLimits() {
	l := b.pool.recordLimits()
	if l.aggMaxSize != b.aggMaxSize {
		for _, g := range b.groups {
			g.agg.SetMaxSize(l.aggMaxSize)
		}
	}
	b.recordLimits = l
}
