// Package timefmt formats record timestamps with strftime patterns, in UTC.
// STUB: replaced by the real implementation.
package timefmt

// Formatter is a compiled pattern. It is safe for concurrent use.
type Formatter struct{ pattern string }

// Compile parses pattern; an invalid pattern is an error.
func Compile(pattern string) (*Formatter, error) { return &Formatter{pattern: pattern}, nil }

// Append appends the UTC time sec.nsec formatted by f to dst.
func (f *Formatter) Append(dst []byte, sec int64, nsec uint32) []byte { return dst }
