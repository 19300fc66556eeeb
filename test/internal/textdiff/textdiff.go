// Package textdiff shortens long texts for test failure messages: a payload cut to its start, the
// place where two payloads first differ, a log cut to its end.
package textdiff

import (
	"fmt"
	"strings"
)

// Clip returns s, or its first n bytes and its length when it is longer.
func Clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// FirstDiff says where want and got first differ, with 40 bytes of each around that place.
func FirstDiff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("at byte %d\nwant ...%q\n got ...%q", i, want[lo:min(len(want), i+40)], got[lo:min(len(got), i+40)])
}

// LastBytes returns about the last n bytes of s, from the start of a line, saying how much it cut.
func LastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	if nl := strings.IndexByte(s[cut:], '\n'); nl >= 0 {
		cut += nl + 1
	}
	return fmt.Sprintf("...(%d bytes cut)\n%s", cut, s[cut:])
}
