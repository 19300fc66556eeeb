package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

func TestLoggerFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newFluentBitHandler(&buf, "kinesis_streams_go.3", slog.LevelInfo)
	log := slog.New(h)
	log.Warn("3 of 500 records throttled", "code", "ProvisionedThroughputExceededException", "tag", "kube.var log")
	log.Debug("not shown")
	log.With("stream", "s1").WithGroup("req").Error("failed", "attempt", 2)
	log.Error("config: bad \"a\"\nconfig: bad \"b\"")

	want := []string{
		`[ warn] [output:kinesis_streams_go:kinesis_streams_go.3] 3 of 500 records throttled code=ProvisionedThroughputExceededException tag="kube.var log"`,
		`[error] [output:kinesis_streams_go:kinesis_streams_go.3] failed stream=s1 req.attempt=2`,
		`[error] [output:kinesis_streams_go:kinesis_streams_go.3] config: bad "a"; config: bad "b"`,
	}
	stamp := regexp.MustCompile(`^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{9}\] `)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, line := range lines {
		loc := stamp.FindStringIndex(line)
		if loc == nil {
			t.Fatalf("line %d has no Fluent Bit timestamp: %q", i, line)
		}
		if got := line[loc[1]:]; got != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, got, want[i])
		}
	}
}

func TestLoggerLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug, "[debug]"},
		{slog.LevelInfo, "[ info]"},
		{slog.LevelWarn, "[ warn]"},
		{slog.LevelError, "[error]"},
	} {
		var buf bytes.Buffer
		slog.New(newFluentBitHandler(&buf, "x.0", slog.LevelDebug)).Log(t.Context(), tc.level, "m")
		if !strings.Contains(buf.String(), "] "+tc.want+" [output:") {
			t.Errorf("level %v: got %q, want %s", tc.level, buf.String(), tc.want)
		}
	}
}

// TestLoggerSlogtest runs the standard library's handler conformance suite,
// parsing our lines back into maps. A Fluent Bit line always has a time, so a
// record without one is stamped with now(); the parser reads that stamp back
// as "no time".
func TestLoggerSlogtest(t *testing.T) {
	var buf bytes.Buffer
	h := newFluentBitHandler(&buf, "x.0", slog.LevelInfo)
	noTime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.Local)
	h.now = func() time.Time { return noTime }
	line := regexp.MustCompile(`^\[(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{9})\] \[([ a-z]{5})\] \[output:[^\]]+\] (.*)$`)
	results := func() []map[string]any {
		var out []map[string]any
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			m := line.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Fatalf("unparseable line %q", sc.Text())
			}
			rec := map[string]any{slog.LevelKey: strings.TrimSpace(m[2])}
			if ts, err := time.ParseInLocation("2006/01/02 15:04:05.000000000", m[1], time.Local); err == nil && !ts.Equal(noTime) {
				rec[slog.TimeKey] = ts
			}
			// The message has no spaces in slogtest's records; attributes follow.
			fields := strings.Fields(m[3])
			rec[slog.MessageKey] = fields[0]
			for _, f := range fields[1:] {
				k, v, _ := strings.Cut(f, "=")
				put(rec, strings.Split(k, "."), v)
			}
			out = append(out, rec)
		}
		return out
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Fatal(err)
	}
}

func put(m map[string]any, path []string, v string) {
	for _, p := range path[:len(path)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[path[len(path)-1]] = v
}
