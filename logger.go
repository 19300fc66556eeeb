package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LogLevelEnv names the environment variable that sets the plugin's log level where the host has
// no logger for it (a host other than Fluent Bit, such as the project's C test host). In Fluent
// Bit, the output's log_level, or the service's Log_Level, decides, as for every output: Fluent
// Bit keeps log_level to itself (a Go plugin cannot read it as a property) and answers through its
// API whether the instance logs at a level.
const LogLevelEnv = "KINESIS_STREAMS_GO_LOG_LEVEL"

// levelOff is above every level the plugin logs at: log_level off.
const levelOff = slog.LevelError + 4

// fluentBitHandler is a slog.Handler that writes an instance's lines through
// Fluent Bit's own logger when the host offers it (so that Log_File, Log_Level
// and the output's log_level apply), and otherwise to a writer, the way Fluent
// Bit prints its own lines:
//
//	[2026/11/26 02:52:55.926108443] [ warn] [output:kinesis_streams_go:kinesis_streams_go.0] message key=value
//
// It writes every line it is given: the code that may write one kind of line
// many times limits it (package loglimit), once.
type fluentBitHandler struct {
	host   hostLogger // nil: lines go to out
	out    *lockedWriter
	level  slog.Leveler // of the lines written to out
	prefix string       // "[output:NAME:INSTANCE] "
	attrs  []byte       // pre-rendered attributes from WithAttrs
	group  string       // dotted prefix for keys, from WithGroup
	now    func() time.Time
}

// hostLogger is a host's own logger: Fluent Bit's, through its API (flbHost).
type hostLogger interface {
	// enabled reports whether the instance logs at l.
	enabled(l slog.Level) bool
	// writeLine writes one line, which has no newline, and reports false when the host no
	// longer takes lines (the instance exited): the handler then writes it to out.
	writeLine(l slog.Level, line []byte) bool
}

// lockedWriter makes each line a single Write, whole, among concurrent flushes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(p)
}

// newFluentBitHandler returns a handler whose lines name the output plugin and the instance, as
// "[output:plugin:instance]".
func newFluentBitHandler(w io.Writer, plugin, instance string, level slog.Leveler) *fluentBitHandler {
	return &fluentBitHandler{
		out:    &lockedWriter{w: w},
		level:  level,
		prefix: "[output:" + plugin + ":" + instance + "] ",
		now:    time.Now,
	}
}

// newLogger returns the logger of one instance of the plugin.
func newLogger(w io.Writer, plugin, instance string, level slog.Leveler) *slog.Logger {
	return slog.New(newFluentBitHandler(w, plugin, instance, level))
}

// withHost makes h write through the host's logger, and to its writer once the host takes no more.
func (h *fluentBitHandler) withHost(host hostLogger) *fluentBitHandler {
	h.host = host
	return h
}

// parseLogLevel reads a level as Fluent Bit names them: off, error, warn (or warning), info,
// debug, trace (the plugin has nothing more detailed than debug), in any case. "" is info; an
// unknown name is info and false.
func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, true
	case "off":
		return levelOff, true
	case "error":
		return slog.LevelError, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "debug", "trace":
		return slog.LevelDebug, true
	}
	return slog.LevelInfo, false
}

func (h *fluentBitHandler) Enabled(_ context.Context, l slog.Level) bool {
	if h.host != nil {
		return h.host.enabled(l)
	}
	return l >= h.level.Level()
}

// timeLevelLen is the length of "[2006/01/02 15:04:05.000000000] [ warn] ".
const timeLevelLen = 41

func (h *fluentBitHandler) Handle(_ context.Context, r slog.Record) error {
	// The time and level first, then the line as Fluent Bit's logger takes it.
	buf := make([]byte, timeLevelLen, 256+len(r.Message))
	buf = append(buf, h.prefix...)
	buf = appendOneLine(buf, r.Message)
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.group, a)
		return true
	})
	if h.host != nil && h.host.writeLine(r.Level, buf[timeLevelLen:]) {
		return nil
	}
	t := r.Time
	if t.IsZero() {
		t = h.now()
	}
	var headBuf [64]byte
	head := append(headBuf[:0], '[')
	head = t.AppendFormat(head, "2006/01/02 15:04:05.000000000")
	head = append(head, "] ["...)
	head = append(head, levelName(r.Level)...)
	head = append(head, "] "...)
	if len(head) == timeLevelLen {
		copy(buf, head)
	} else { // a year beyond 9999
		buf = append(head, buf[timeLevelLen:]...)
	}
	buf = append(buf, '\n')
	h.out.write(buf)
	return nil
}

func (h *fluentBitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		h2.attrs = appendAttr(h2.attrs, h.group, a)
	}
	return &h2
}

func (h *fluentBitHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

// levelName pads names to five characters, as Fluent Bit does.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return " warn"
	case l >= slog.LevelInfo:
		return " info"
	default:
		return "debug"
	}
}

// appendAttr writes " key=value", quoting values that contain spaces, quotes
// or control characters so a line stays one line.
func appendAttr(buf []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		attrs := a.Value.Group()
		if len(attrs) == 0 {
			return buf
		}
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, ga := range attrs {
			buf = appendAttr(buf, group, ga)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = append(buf, group...)
	buf = append(buf, a.Key...)
	buf = append(buf, '=')
	s := a.Value.String()
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// appendOneLine appends s with each line break replaced by "; ", so that a
// multi-line message (errors.Join of several config problems) stays one line.
func appendOneLine(buf []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return append(buf, s...)
		}
		buf = append(buf, strings.TrimSuffix(s[:i], "\r")...)
		buf = append(buf, "; "...)
		s = s[i+1:]
	}
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '=' || c == 0x7f {
			return true
		}
	}
	return false
}
