package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LogLevelEnv names the environment variable that sets the plugin's log level.
//
// Fluent Bit's own log_level key cannot do it: Fluent Bit consumes log_level (like match, alias,
// workers and retry_limit) while it reads an [OUTPUT] section (flb_output_set_property stores it
// in the instance, not in its property list), and a Go plugin sees only the property list through
// FLBPluginConfigKey, so the plugin never learns it. The variable applies to every instance.
const LogLevelEnv = "KINESIS_STREAMS_GO_LOG_LEVEL"

// levelOff is above every level the plugin logs at: log_level off.
const levelOff = slog.LevelError + 4

// repeatInterval is the least time between two warnings of the same shape (the same message with
// its numbers left out) from one instance; those in between are counted, and the next one
// that is written says how many were held back.
const repeatInterval = 10 * time.Second

// fluentBitHandler is a slog.Handler that writes lines the way Fluent Bit
// prints its own, so the plugin's lines read like the rest of the log:
//
//	[2026/11/26 02:52:55.926108443] [ warn] [output:kinesis_streams_go:kinesis_streams_go.0] message key=value
type fluentBitHandler struct {
	out     *lockedWriter
	level   slog.Leveler
	prefix  string // "[output:NAME:INSTANCE] "
	attrs   []byte // pre-rendered attributes from WithAttrs
	group   string // dotted prefix for keys, from WithGroup
	now     func() time.Time
	repeats *repeatLimiter // shared by the handlers derived from this one
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

func newFluentBitHandler(w io.Writer, instanceName string, level slog.Leveler) *fluentBitHandler {
	return &fluentBitHandler{
		out:     &lockedWriter{w: w},
		level:   level,
		prefix:  "[output:" + pluginName + ":" + instanceName + "] ",
		now:     time.Now,
		repeats: &repeatLimiter{every: repeatInterval, last: make(map[string]time.Time), held: make(map[string]int)},
	}
}

// newLogger returns the logger of one instance.
func newLogger(w io.Writer, instanceName string, level slog.Leveler) *slog.Logger {
	return slog.New(newFluentBitHandler(w, instanceName, level))
}

// pluginLogger is for the rare line that belongs to no instance.
func pluginLogger() *slog.Logger {
	level, _ := parseLogLevel(os.Getenv(LogLevelEnv))
	return newLogger(os.Stderr, pluginName, level)
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
	return l >= h.level.Level()
}

func (h *fluentBitHandler) Handle(_ context.Context, r slog.Record) error {
	t := r.Time
	if t.IsZero() {
		t = h.now()
	}
	held := 0
	if r.Level >= slog.LevelWarn && r.Level < slog.LevelError {
		ok, n := h.repeats.allow(r.Message, t)
		if !ok {
			return nil
		}
		held = n
	}
	buf := make([]byte, 0, 128+len(r.Message))
	buf = append(buf, '[')
	buf = t.AppendFormat(buf, "2006/01/02 15:04:05.000000000")
	buf = append(buf, "] ["...)
	buf = append(buf, levelName(r.Level)...)
	buf = append(buf, "] "...)
	buf = append(buf, h.prefix...)
	buf = appendOneLine(buf, r.Message)
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = appendAttr(buf, h.group, a)
		return true
	})
	if held > 0 {
		buf = append(buf, " ("...)
		buf = strconv.AppendInt(buf, int64(held), 10)
		buf = append(buf, " similar warnings held back)"...)
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

// repeatLimiter lets a warning through when no warning of the same shape was written in the last
// interval. A shape is the message with its digits left out, so "3 of 500 records throttled" and
// "7 of 500 records throttled" are the same warning; the tag and key names in a message keep
// different causes apart.
type repeatLimiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time // shape: when it was last written
	held map[string]int       // shape: lines held back since
}

// maxShapes bounds the limiter's memory; past it, shapes not seen for an interval are forgotten.
const maxShapes = 256

// allow reports whether a warning may be written at now, and how many of its shape were held back.
func (l *repeatLimiter) allow(msg string, now time.Time) (ok bool, held int) {
	shape := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[shape]; seen && now.Sub(last) < l.every && !now.Before(last) {
		l.held[shape]++
		return false, 0
	}
	if len(l.last) >= maxShapes {
		for s, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, s)
				delete(l.held, s)
			}
		}
	}
	held = l.held[shape]
	delete(l.held, shape)
	if len(l.last) < maxShapes {
		l.last[shape] = now
	}
	return true, held
}
