package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// errStartupCheck makes Init fail: startup_check fail, and the stream is not known to be usable.
var errStartupCheck = errors.New("start-up check failed")

// checker is what the start-up check needs of the client.
type checker interface {
	Check(ctx context.Context) (kinesis.CheckResult, error)
}

// startupCheck runs the start-up check that startup_check asks for, and logs what it found in one
// line: an info line when the stream is usable, an error line that says what to fix when it is not
// (a warning when only DescribeStreamSummary is denied, which leaves the check off). limit, for
// max_record_size auto, learns the stream's maximum record size. It returns errStartupCheck when
// Init must fail. It takes kinesis.CheckTimeout at most.
func startupCheck(log *slog.Logger, c checker, cfg config.Config, limit *streamLimit) error {
	if cfg.StartupCheck == config.StartupCheckOff {
		return nil
	}
	fail := cfg.StartupCheck == config.StartupCheckFail
	res, err := c.Check(context.Background())
	var ce *kinesis.CheckError
	switch {
	case err == nil:
	case errors.As(err, &ce) && ce.Problem == kinesis.CheckDescribeDenied:
		if limit != nil {
			limit.deny()
		}
		log.Warn("start-up check: " + err.Error() + "; going on without the check" + autoSuffix(limit))
		return nil
	default:
		log.Error("start-up check: " + err.Error() + consequence(fail))
		if fail {
			return errStartupCheck
		}
		return nil
	}

	line := "start-up check: " + res.Stream.String() + "; credentials from " + res.Credentials
	if limit != nil {
		limit.learn(res.Stream, "")
		line += fmt.Sprintf("; max_record_size auto: %d bytes", limit.get())
	}
	switch res.Stream.Status {
	case "ACTIVE", "UPDATING":
		log.Info(line)
	case "CREATING":
		log.Warn(line + ": records are retried until it is ACTIVE")
	default: // DELETING, or a status this plugin does not know
		log.Error(line + ": it cannot take records" + consequence(fail))
		if fail {
			return errStartupCheck
		}
		return nil
	}
	if limit == nil && res.Stream.MaxRecordSize > 0 && cfg.MaxRecordSize > res.Stream.MaxRecordSize {
		log.Warn(fmt.Sprintf("max_record_size %d is larger than the stream's maximum record size (%d bytes): Kinesis refuses "+
			"the records between the two, and the chunks that hold them are dropped; set max_record_size auto, or raise the "+
			"stream's (UpdateMaxRecordSize)", cfg.MaxRecordSize, res.Stream.MaxRecordSize))
	}
	return nil
}

// consequence ends a failed check's line with what the plugin does about it.
func consequence(fail bool) string {
	if fail {
		return "; not starting (startup_check fail)"
	}
	return "; starting anyway, records are retried until this is fixed (startup_check fail would refuse to start)"
}

// autoSuffix says what max_record_size auto does without the stream's answer.
func autoSuffix(limit *streamLimit) string {
	if limit == nil {
		return ""
	}
	return fmt.Sprintf("; max_record_size auto: %d bytes (the default, the stream's own being unknown)", limit.get())
}
