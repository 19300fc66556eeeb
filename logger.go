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

// LogLevelEnv names the environment variable that sets the plugin's log level.
//
// Fluent Bit's own log_level key cannot do it: Fluent Bit consumes log_level (like match, alias,
// workers and retry_limit) while it reads an [OUTPUT] section (flb_output_set_property stores it
// in the instance, not in its property list), and a Go plugin sees only the property list through
// FLBPluginConfigKey, so the plugin never learns it. The variable applies to every instance.
const LogLevelEnv = "KINESIS_STREAMS_GO_LOG_LEVEL"

// levelOff is above every level the plugin logs at: log_level off.
const levelOff = slog.LevelError + 4

// fluentBitHandler is a slog.Handler that writes lines the way Fluent Bit
// prints its own, so the plugin's lines read like the rest of the log:
//
//	[2026/11/26 02:52:55.926108443] [ warn] [output:kinesis_streams_go:kinesis_streams_go.0] message key=value
//
// It writes every line it is given: the code that may write one kind of line
// many times limits it (package loglimit), once.
type fluentBitHandler struct {
	out    *lockedWriter
	level  slog.Leveler
	prefix string // "[output:NAME:INSTANCE] "
	attrs  []byte // pre-rendered attributes from WithAttrs
	group  string // dotted prefix for keys, from WithGroup
	now    func() time.Time
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
