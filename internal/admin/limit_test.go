package admin

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := newLimiter(2, time.Minute)
	t0 := time.Unix(1_800_000_000, 0)
	for _, step := range []struct {
		addr  string
		at    time.Duration
		fail  bool
		allow bool
	}{
		{"203.0.113.1", 0, true, true},
		{"203.0.113.1", time.Second, true, true},
		{"203.0.113.1", 2 * time.Second, false, false}, // two failures within the minute
		{"203.0.113.2", 2 * time.Second, false, true},  // another address is not affected
		{"203.0.113.1", 61 * time.Second, false, true}, // the first failure has aged out
	} {
		now := t0.Add(step.at)
		if got := l.allow(step.addr, now); got != step.allow {
			t.Errorf("%s at %v: allow = %v, want %v", step.addr, step.at, got, step.allow)
		}
		if step.fail {
			l.fail(step.addr, now)
		}
	}
}
