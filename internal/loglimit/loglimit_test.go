package loglimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := Limiter{Every: time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at       time.Duration
		ok       bool
		heldBack int
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	}
	for _, s := range steps {
		ok, held := l.Allow(t0.Add(s.at))
		if ok != s.ok || held != s.heldBack {
			t.Errorf("at %v: Allow = %v, %d; want %v, %d", s.at, ok, held, s.ok, s.heldBack)
		}
	}
	for _, every := range []time.Duration{-1, 0} {
		unlimited := Limiter{Every: every}
		for range 3 {
			if ok, _ := unlimited.Allow(t0); !ok {
				t.Errorf("Every %v limits", every)
			}
		}
	}
}

func TestHeldBack(t *testing.T) {
	t.Parallel()
	if got := HeldBack(0); got != "" {
		t.Errorf("HeldBack(0) = %q", got)
	}
	if got, want := HeldBack(3), " (3 similar lines held back)"; got != want {
		t.Errorf("HeldBack(3) = %q, want %q", got, want)
	}
}
