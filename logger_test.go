package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

func TestLoggerFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newFluentBitHandler(&buf, "kinesis_streams_go", "kinesis_streams_go.3", slog.LevelInfo)
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
		slog.New(newFluentBitHandler(&buf, "kinesis_streams_go", "x.0", slog.LevelDebug)).Log(t.Context(), tc.level, "m")
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
	h := newFluentBitHandler(&buf, "kinesis_streams_go", "x.0", slog.LevelInfo)
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

// TestParseLogLevel: the plugin's level is read as Fluent Bit names levels.
func TestParseLogLevel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"", slog.LevelInfo, true},
		{"info", slog.LevelInfo, true},
		{" Debug ", slog.LevelDebug, true},
		{"trace", slog.LevelDebug, true},
		{"warn", slog.LevelWarn, true},
		{"WARNING", slog.LevelWarn, true},
		{"error", slog.LevelError, true},
		{"off", levelOff, true},
		{"verbose", slog.LevelInfo, false},
		{"3", slog.LevelInfo, false},
	} {
		got, ok := parseLogLevel(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseLogLevel(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestLoggerLevelFilters: at each level, the lines below it are not written; off writes none.
func TestLoggerLevelFilters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level string
		want  []string
	}{
		{"debug", []string{"[debug]", "[ info]", "[ warn]", "[error]"}},
		{"info", []string{"[ info]", "[ warn]", "[error]"}},
		{"warn", []string{"[ warn]", "[error]"}},
		{"error", []string{"[error]"}},
		{"off", nil},
	} {
		level, _ := parseLogLevel(tc.level)
		var buf bytes.Buffer
		log := newLogger(&buf, "kinesis_streams_go", "x.0", level)
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
		var got []string
		for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			if _, rest, ok := strings.Cut(line, "] "); ok { // after the timestamp
				got = append(got, rest[:7])
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("level %s: wrote levels %q, want %q", tc.level, got, tc.want)
		}
	}
}

// TestLoggerWritesEveryLine: the handler limits nothing, repeated warnings included: the code that
// writes a kind of line limits it, once (package loglimit).
func TestLoggerWritesEveryLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(newFluentBitHandler(&buf, "kinesis_streams_go", "kinesis_streams_go.0", slog.LevelInfo))
	for range 3 {
		log.Warn(`skipped 3 records without log_key "log" in a chunk of tag "app"`)
	}
	if got := strings.Count(buf.String(), "] skipped 3 records without log_key"); got != 3 {
		t.Errorf("%d lines written of 3:\n%s", got, buf.String())
	}
}

// fakeHost is a host logger that keeps the lines it is given, at or below its level, until closed.
type fakeHost struct {
	level  slog.Level
	closed bool
	lines  []string
}

func (f *fakeHost) enabled(l slog.Level) bool { return l >= f.level }

func (f *fakeHost) writeLine(l slog.Level, line []byte) bool {
	if f.closed {
		return false
	}
	f.lines = append(f.lines, levelName(l)+" "+string(line))
	return true
}

// TestLoggerThroughHost: with a host logger, lines go to it without time or level (the host adds
// them), its level decides, and once it takes no more lines they go to the writer in full.
func TestLoggerThroughHost(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	host := &fakeHost{level: slog.LevelWarn}
	h := newFluentBitHandler(&buf, "kinesis_streams_go", "kin_a", slog.LevelDebug).withHost(host)
	log := slog.New(h)
	log.Info("hidden by the host's level")
	log.Warn("throttled", "tag", "app log")
	log.Error("credentials")
	want := []string{
		` warn [output:kinesis_streams_go:kin_a] throttled tag="app log"`,
		`error [output:kinesis_streams_go:kin_a] credentials`,
	}
	if !slices.Equal(host.lines, want) || buf.Len() != 0 {
		t.Errorf("host got %q, want %q; writer got %q", host.lines, want, buf.String())
	}
	host.closed = true
	log.Error("exit after the host let go")
	if got := buf.String(); !regexp.MustCompile(`^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{9}\] \[error\] \[output:kinesis_streams_go:kin_a\] exit after the host let go\n$`).MatchString(got) {
		t.Errorf("writer got %q", got)
	}
}
