package google

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Pacer spaces Calendar API requests per user. Google's limits are per
// project and per user; a token bucket per user keeps each one under the
// per-user limit and shares the project's budget fairly, so that one
// person's big calendar (a full sync of thousands of events, a retry
// storm) cannot use up what everybody else's syncs need.
type Pacer struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// Default pace per user: Google's default per-user quota is 600 requests
// a minute; half of it leaves room for the user's own apps.
const (
	DefaultPacePerSecond = 5
	DefaultPaceBurst     = 10
	// pacerIdle: a bucket unused this long is forgotten (it is full again
	// by then anyway).
	pacerIdle = 10 * time.Minute
)

// NewPacer allows perSecond requests a second per key, in bursts of up to
// burst (≤ 0: the defaults).
func NewPacer(perSecond float64, burst int) *Pacer {
	if perSecond <= 0 {
		perSecond = DefaultPacePerSecond
	}
	if burst <= 0 {
		burst = DefaultPaceBurst
	}
	return &Pacer{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

func (p *Pacer) limiter(key string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	b := p.buckets[key]
	if b == nil {
		if len(p.buckets) >= 1024 {
			for k, old := range p.buckets {
				if now.Sub(old.used) > pacerIdle {
					delete(p.buckets, k)
				}
			}
		}
		b = &bucket{lim: rate.NewLimiter(p.rate, p.burst)}
		p.buckets[key] = b
	}
	b.used = now
	return b.lim
}

// pacedTransport waits for the key's turn before each request.
type pacedTransport struct {
	base  http.RoundTripper
	pacer *Pacer
	key   string
}

func (t *pacedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.pacer.limiter(t.key).Wait(req.Context()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("google: pace: %w", err)
	}
	return t.base.RoundTrip(req)
}
