package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/config"
	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis"
)

// fakeChecker answers Check as scripted, and counts the calls.
type fakeChecker struct {
	res   kinesis.CheckResult
	err   error
	calls atomic.Int32
}

func (f *fakeChecker) Check(context.Context) (kinesis.CheckResult, error) {
	f.calls.Add(1)
	return f.res, f.err
}

// checkErr is an error of problem p as Client.Check returns them; its message (package kinesis
// tests the real ones) starts with "fake".
func checkErr(p kinesis.CheckProblem) error {
	return fmt.Errorf("fake %d: %w", p, &kinesis.CheckError{Problem: p})
}

func TestStartupCheck(t *testing.T) {
	t.Parallel()
	active := kinesis.CheckResult{Credentials: "EnvConfigCredentials", Stream: kinesis.StreamSummary{
		Name: "logs", Status: "ACTIVE", Mode: "PROVISIONED", OpenShards: 2, RetentionHours: 24, Encryption: "NONE",
		MaxRecordSize: 2 << 20}}
	deleting := active
	deleting.Stream.Status = "DELETING"
	creating := active
	creating.Stream.Status = "CREATING"
	tests := []struct {
		name      string
		check     config.StartupCheck
		auto      bool
		maxSize   int
		res       kinesis.CheckResult
		err       kinesis.CheckProblem
		wantErr   bool
		wantLines []string // "level substring", one per line
		wantLimit int
	}{
		{name: "off", check: config.StartupCheckOff, err: kinesis.CheckNotFound},
		{name: "active, auto", check: config.StartupCheckWarn, auto: true, res: active, wantLimit: 2 << 20, wantLines: []string{
			`info start-up check: stream "logs" is ACTIVE, provisioned, 2 open shards, retention 24h, encryption NONE, max record size 2048 KiB; ` +
				`credentials from EnvConfigCredentials; max_record_size auto: 2097152 bytes`}},
		{name: "active, fixed size under the stream's", check: config.StartupCheckFail, maxSize: 1 << 20, res: active,
			wantLines: []string{"info start-up check: stream \"logs\" is ACTIVE"}},
		{name: "active, fixed size over the stream's", check: config.StartupCheckWarn, maxSize: 4 << 20, res: active,
			wantLines: []string{"info start-up check:", "warn max_record_size 4194304 is larger than the stream's maximum record size (2097152 bytes)"}},
		{name: "creating", check: config.StartupCheckFail, res: creating,
			wantLines: []string{"warn start-up check: stream \"logs\" is CREATING"}},
		{name: "deleting, warn", check: config.StartupCheckWarn, res: deleting,
			wantLines: []string{"error start-up check: stream \"logs\" is DELETING", "it cannot take records; starting anyway"}},
		{name: "deleting, fail", check: config.StartupCheckFail, res: deleting, wantErr: true,
			wantLines: []string{"error start-up check: stream \"logs\" is DELETING", "; not starting (startup_check fail)"}},
		{name: "not found, warn", check: config.StartupCheckWarn, err: kinesis.CheckNotFound,
			wantLines: []string{"error start-up check: fake", "; starting anyway, records are retried until this is fixed"}},
		{name: "not found, fail", check: config.StartupCheckFail, err: kinesis.CheckNotFound, wantErr: true,
			wantLines: []string{"error start-up check: fake", "; not starting (startup_check fail)"}},
		{name: "no credentials, fail", check: config.StartupCheckFail, err: kinesis.CheckNoCredentials, wantErr: true,
			wantLines: []string{"error start-up check:"}},
		{name: "unreachable, fail", check: config.StartupCheckFail, err: kinesis.CheckUnreachable, wantErr: true,
			wantLines: []string{"error start-up check:"}},
		{name: "describe denied, fail", check: config.StartupCheckFail, auto: true, err: kinesis.CheckDescribeDenied, wantLimit: 1 << 20,
			wantLines: []string{"warn start-up check: fake", "going on without the check; max_record_size auto: 1048576 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := slog.New(&levelSink{w: &buf})
			c := &fakeChecker{res: tt.res}
			if tt.err != 0 {
				c.err = checkErr(tt.err)
			}
			cfg := config.Config{StartupCheck: tt.check, MaxRecordSize: tt.maxSize}
			var limit *streamLimit
			if tt.auto {
				limit = newStreamLimit(log, nil)
			}
			err := startupCheck(log, c, cfg, limit)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errStartupCheck)) {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.check == config.StartupCheckOff && c.calls.Load() != 0 {
				t.Error("startup_check off called Check")
			}
			var lines []string
			if buf.Len() > 0 {
				lines = strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			}
			want := 0
			for _, w := range tt.wantLines {
				if strings.HasPrefix(w, "info ") || strings.HasPrefix(w, "warn ") || strings.HasPrefix(w, "error ") {
					want++
				}
			}
			if len(lines) != want {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), want, buf.String())
			}
			n := -1
			for _, w := range tt.wantLines {
				if strings.HasPrefix(w, "info ") || strings.HasPrefix(w, "warn ") || strings.HasPrefix(w, "error ") {
					n++
					if !strings.HasPrefix(lines[n], w) {
						t.Errorf("line %d\n%s\ndoes not start with\n%s", n, lines[n], w)
					}
					continue
				}
				if !strings.Contains(lines[n], w) {
					t.Errorf("line %d\n%s\nlacks\n%s", n, lines[n], w)
				}
			}
			if limit != nil && limit.get() != tt.wantLimit {
				t.Errorf("limit %d, want %d", limit.get(), tt.wantLimit)
			}
		})
	}
}

// levelSink writes "level message" lines.
type levelSink struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *levelSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *levelSink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "%s %s\n", strings.ToLower(r.Level.String()), r.Message)
	return nil
}
func (s *levelSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *levelSink) WithGroup(string) slog.Handler      { return s }

func (s *levelSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// describer answers DescribeStream as scripted, and counts the calls.
type describer struct {
	mu    sync.Mutex
	kib   int
	err   error
	calls int
	block chan struct{} // when set, each call waits for it (or for ctx)
}

func (d *describer) describe(ctx context.Context) (kinesis.StreamSummary, error) {
	d.mu.Lock()
	d.calls++
	kib, err, block := d.kib, d.err, d.block
	d.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return kinesis.StreamSummary{}, ctx.Err()
		}
	}
	return kinesis.StreamSummary{MaxRecordSize: kib << 10}, err
}

func (d *describer) set(kib int, err error) {
	d.mu.Lock()
	d.kib, d.err = kib, err
	d.mu.Unlock()
}

func (d *describer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// waitIdle waits for the refresh in progress, if any.
func waitIdle(l *streamLimit) { l.wg.Wait() }

// putterFunc is a batcher.Putter.
type putterFunc func([]kinesis.Entry) (kinesis.PutResult, error)

func (f putterFunc) PutRecords(_ context.Context, e []kinesis.Entry) (kinesis.PutResult, error) {
	return f(e)
}

// TestStreamLimit: max_record_size auto reads the stream's limit again when Kinesis refuses a
// record or a request as invalid (at most once a minute), after records were skipped as too large
// (at most once in ten minutes), at the first flush when it is unknown, and never once
// DescribeStreamSummary was denied. Each change is logged once.
func TestStreamLimit(t *testing.T) {
	t.Parallel()
	sink := &levelSink{w: &bytes.Buffer{}}
	d := &describer{kib: 1024}
	l := newStreamLimit(slog.New(sink), d.describe)
	defer l.close()

	var answer atomic.Value // func([]kinesis.Entry) (kinesis.PutResult, error)
	w := limitWatch{putterFunc(func(e []kinesis.Entry) (kinesis.PutResult, error) {
		return answer.Load().(func([]kinesis.Entry) (kinesis.PutResult, error))(e)
	}), l}
	put := func() {
		t.Helper()
		_, _ = w.PutRecords(context.Background(), []kinesis.Entry{{Data: []byte("d"), PartitionKey: "k"}})
		waitIdle(l)
	}
	accepted := func(e []kinesis.Entry) (kinesis.PutResult, error) {
		return kinesis.PutResult{ErrorCodes: make([]string, len(e))}, nil
	}
	refusedRecord := func(e []kinesis.Entry) (kinesis.PutResult, error) {
		return kinesis.PutResult{FailedCount: 1, ErrorCodes: []string{"InvalidArgumentException"}}, nil
	}
	throttled := func(e []kinesis.Entry) (kinesis.PutResult, error) {
		return kinesis.PutResult{FailedCount: 1, ErrorCodes: []string{kinesis.CodeThroughputExceeded}}, nil
	}

	if l.get() != 1<<20 {
		t.Fatalf("unknown limit %d, want 1 MiB", l.get())
	}
	// Unknown: the first flush reads it.
	d.set(2048, nil)
	l.afterFlush(false)
	waitIdle(l)
	if l.get() != 2<<20 || d.count() != 1 {
		t.Fatalf("after the first flush: limit %d after %d calls, want 2 MiB after 1", l.get(), d.count())
	}
	l.afterFlush(false) // known now: nothing
	waitIdle(l)

	// Accepted and throttled records do not ask; a refused record does, once a minute.
	answer.Store(accepted)
	put()
	answer.Store(throttled)
	put()
	if d.count() != 1 {
		t.Fatalf("%d calls after accepted and throttled records, want 1", d.count())
	}
	d.set(1024, nil)
	answer.Store(refusedRecord)
	// The last refresh was just now: wait out the minute by moving its time back.
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterRejection)
	l.mu.Unlock()
	put()
	put()
	if l.get() != 1<<20 || d.count() != 2 {
		t.Fatalf("after refused records: limit %d after %d calls, want 1 MiB after 2", l.get(), d.count())
	}

	// A request refused as invalid asks too.
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterRejection)
	l.mu.Unlock()
	d.set(3072, nil)
	answer.Store(func([]kinesis.Entry) (kinesis.PutResult, error) {
		return kinesis.PutResult{}, &smithy.GenericAPIError{Code: "ValidationException", Message: "fake"}
	})
	put()
	if l.get() != 3<<20 || d.count() != 3 {
		t.Fatalf("after a refused request: limit %d after %d calls, want 3 MiB after 3", l.get(), d.count())
	}

	// Skipped records ask at most once in ten minutes.
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterRejection)
	l.mu.Unlock()
	l.afterFlush(true)
	waitIdle(l)
	if d.count() != 3 {
		t.Fatalf("%d calls after a skip a minute after the last, want 3", d.count())
	}
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterSkip)
	l.mu.Unlock()
	d.set(4096, nil)
	l.afterFlush(true)
	waitIdle(l)
	if l.get() != 4<<20 || d.count() != 4 {
		t.Fatalf("after a skip ten minutes after the last: limit %d after %d calls, want 4 MiB after 4", l.get(), d.count())
	}

	// Denied: one warning, the limit kept, never asked again.
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterSkip)
	l.mu.Unlock()
	d.set(1024, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "fake"})
	l.afterFlush(true)
	waitIdle(l)
	l.mu.Lock()
	l.last = time.Now().Add(-refreshAfterSkip)
	l.mu.Unlock()
	l.afterFlush(true)
	put()
	if l.get() != 4<<20 || d.count() != 5 {
		t.Fatalf("after a denial: limit %d after %d calls, want 4 MiB after 5", l.get(), d.count())
	}

	lines := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	want := []string{
		"info max_record_size auto: the stream's maximum record size is 2048 KiB (was 1024 KiB), read after start-up",
		"info max_record_size auto: the stream's maximum record size is 1024 KiB (was 2048 KiB), read again after Kinesis refused a record as invalid (InvalidArgumentException)",
		"info max_record_size auto: the stream's maximum record size is 3072 KiB (was 1024 KiB), read again after Kinesis refused a request as invalid",
		"info max_record_size auto: the stream's maximum record size is 4096 KiB (was 3072 KiB), read again after records larger than it were skipped",
		"warn max_record_size auto: not allowed to describe the stream (kinesis:DescribeStreamSummary): keeping 4194304 bytes",
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s\nwant %d lines", sink.String(), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d\n%s\nwant\n%s", i, lines[i], want[i])
		}
	}
}

// TestStreamLimitClose: close stops a refresh that waits for an answer, and no refresh starts after.
func TestStreamLimitClose(t *testing.T) {
	t.Parallel()
	d := &describer{kib: 2048, block: make(chan struct{})}
	l := newStreamLimit(slog.New(&levelSink{w: &bytes.Buffer{}}), d.describe)
	l.afterFlush(false)
	done := make(chan struct{})
	go func() {
		l.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not stop the refresh in progress")
	}
	l.afterFlush(false)
	waitIdle(l)
	if d.count() != 1 || l.get() != 1<<20 {
		t.Errorf("%d calls, limit %d: want 1 call, the limit unchanged", d.count(), l.get())
	}
}
