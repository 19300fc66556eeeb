package batcher

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/internal/loglimit"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// What a flush tells the log: failed sends, skipped records and the ledger's evictions, each kind
// of line rate-limited per pool.

// logFailures writes at most one line about a flush whose sends failed: how many records of how
// many, the error codes, whether the resends delivered them, and what happens to the chunk. It is
// a warning for transient failures, an error for credentials, missing streams and rejected
// requests; the lines are rate-limited per pool.
func (b *batcher) logFailures(res Result, err error) {
	sent := &b.f.sent
	if sent.FirstFailed == 0 && res.Failed == 0 && res.Rejected == 0 {
		return
	}
	serious := res.Rejected > 0
	var de *DeliveryError
	if errors.As(err, &de) && (de.Class == kinesis.ClassCredentials || de.Class == kinesis.ClassNotFound) {
		serious = true
	}
	limiter := &b.pool.warnLimit
	if serious {
		limiter = &b.pool.errorLimit
	}
	ok, held := limiter.Allow(time.Now())
	if !ok {
		return
	}

	var msg strings.Builder
	fmt.Fprintf(&msg, "%d of %d records failed (%s)", sent.FirstFailed, sent.FirstSent, sent.Codes.String())
	switch {
	case res.Failed == 0 && res.Rejected == 0:
		fmt.Fprintf(&msg, ", resent: all delivered after %d attempts", sent.MaxAttempt)
	case res.Failed > 0:
		fmt.Fprintf(&msg, ", %d not delivered after %d attempts", res.Failed, sent.MaxAttempt)
		switch {
		case de != nil && de.Class != kinesis.ClassRetryable:
			fmt.Fprintf(&msg, " (%s)", de.Class)
		case sent.MaxAttempt < b.pool.retry.MaxAttempts:
			msg.WriteString(" (retry window over)")
		}
	}
	if res.Rejected > 0 {
		fmt.Fprintf(&msg, ", %d rejected by Kinesis as invalid", res.Rejected)
		if sent.RejectErr != nil {
			fmt.Fprintf(&msg, " (%s, request id %q): request of %s", kinesis.ErrorCode(sent.RejectErr),
				kinesis.RequestID(sent.RejectErr), sent.RejectShape)
		}
	}
	if res.Earlier > 0 {
		fmt.Fprintf(&msg, "; %d records were delivered by an earlier flush of this chunk", res.Earlier)
	}
	switch {
	case res.Failed > 0:
		msg.WriteString("; chunk will be retried")
	case err != nil:
		msg.WriteString("; chunk will be dropped")
	}
	// The request error's text helps with network and credential problems; a rejected
	// request's text may quote its data, so only its code and shape are logged.
	if sent.FirstErr != nil && sent.FirstErr != sent.RejectErr {
		msg.WriteString("; first error: " + sent.FirstErr.Error())
	}
	msg.WriteString(loglimit.HeldBack(held))

	log, tag := b.pool.log, slog.String("tag", b.f.tag)
	if serious {
		log.Error(msg.String(), tag)
	} else {
		log.Warn(msg.String(), tag)
	}
}

// logSkips writes at most one line per reason for the records the flush skipped; the lines are
// rate-limited per pool, and the totals count every skipped record.
func (b *batcher) logSkips() {
	st := &b.f.stats
	if st.SkippedOversize == 0 && st.SkippedNoLogKey == 0 && st.RandomKeyFallback == 0 {
		return
	}
	ok, held := b.pool.skipLimit.Allow(time.Now())
	if !ok {
		return
	}
	log, tag, suffix := b.pool.log, slog.String("tag", b.f.tag), loglimit.HeldBack(held)
	if st.SkippedOversize > 0 {
		log.Warn(fmt.Sprintf("skipped %d records larger than max_record_size %d bytes (largest %d bytes) in a chunk of tag %q%s",
			st.SkippedOversize, b.maxRecordSize, b.f.largest, b.f.tag, suffix), tag)
	}
	if st.SkippedNoLogKey > 0 {
		log.Warn(fmt.Sprintf("skipped %d records without log_key %q in a chunk of tag %q%s",
			st.SkippedNoLogKey, b.pool.recordOpts.LogKey, b.f.tag, suffix), tag)
	}
	if st.RandomKeyFallback > 0 {
		log.Debug(fmt.Sprintf("%d records without a usable partition_key %q field got a random partition key in a chunk of tag %q%s",
			st.RandomKeyFallback, b.pool.keyPath.String(), b.f.tag, suffix), tag)
	}
	// Records that cannot be encoded make the flush fail with ErrBadChunk, logged by the caller;
	// when a delivery failure takes precedence, they are reported on the retry.
}

func (p *Pool) logLedgerEviction(n int) {
	if ok, held := p.warnLimit.Allow(time.Now()); ok {
		p.log.Warn(fmt.Sprintf("ledger full (%d chunks): forgot the %d oldest partly delivered chunks; "+
			"if flushed again, they are sent whole and their delivered records duplicated%s",
			p.ledger.Len(), n, loglimit.HeldBack(held)))
	}
}
