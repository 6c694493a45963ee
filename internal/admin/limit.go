package admin

import (
	"sync"
	"time"
)

// maxTracked bounds the addresses the limiter remembers; past it, the
// addresses whose failures have all expired are dropped first.
const maxTracked = 10_000

// limiter counts failed sign-ins per client address in a sliding window.
// It lives in the process: with several api processes behind a load
// balancer each allows its own share, which still bounds guessing far
// below what a 256-bit key needs.
type limiter struct {
	mu       sync.Mutex
	max      int
	window   time.Duration
	failures map[string][]time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, failures: map[string][]time.Time{}}
}

// allow reports whether addr may try to sign in now.
func (l *limiter) allow(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(addr, now)) < l.max
}

// fail records a failed sign-in and returns the failures within the window.
func (l *limiter) fail(addr string, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.failures[addr]; !ok && len(l.failures) >= maxTracked {
		l.prune(now)
	}
	f := append(l.recent(addr, now), now)
	l.failures[addr] = f
	return len(f)
}

// recent drops addr's failures older than the window and returns the rest.
func (l *limiter) recent(addr string, now time.Time) []time.Time {
	f := l.failures[addr]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.failures, addr)
		return nil
	}
	l.failures[addr] = f
	return f
}

func (l *limiter) prune(now time.Time) {
	for addr := range l.failures {
		l.recent(addr, now)
	}
	// Still full: forget arbitrary addresses rather than grow without bound.
	for addr := range l.failures {
		if len(l.failures) < maxTracked {
			break
		}
		delete(l.failures, addr)
	}
}
