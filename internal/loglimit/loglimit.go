// Package loglimit rate-limits a kind of log line: a Limiter lets one line through per interval
// and counts those it holds back, so that the next line written can say how many were.
//
// Each place that can write the same kind of line many times a second (a failure per flush, a
// skipped record per flush) holds its own Limiter; the log handler itself limits nothing, so that
// a line is limited once, by the code that knows what the line is about.
package loglimit

import (
	"fmt"
	"sync"
	"time"
)

// Limiter lets a line through at most once per Every, and counts the lines it holds back. A
// negative Every limits nothing. The zero Limiter lets every line through. It is safe for
// concurrent use.
type Limiter struct {
	Every time.Duration

	mu   sync.Mutex
	next time.Time
	held int
}

// Allow reports whether a line may be written at now, and how many were held back since the last
// one written.
func (l *Limiter) Allow(now time.Time) (ok bool, held int) {
	if l.Every <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return false, 0
	}
	l.next = now.Add(l.Every)
	held, l.held = l.held, 0
	return true, held
}

// HeldBack is the suffix of a line written after n were held back: "" when n is 0.
func HeldBack(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d similar lines held back)", n)
}
