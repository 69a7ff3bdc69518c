package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tenantLimits is a token bucket per tenant. Tenants come from API keys or
// a request header, so their number is bounded by maxTenants: past it, the
// buckets start over (briefly lenient, never unbounded in memory).
type tenantLimits struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // guarded by mu
}

const maxTenants = 100_000

func newTenantLimits(perSecond float64, burst int) *tenantLimits {
	if burst <= 0 {
		burst = max(int(perSecond), 1)
	}
	return &tenantLimits{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from tenant's bucket, or reports how long until one
// is available.
func (l *tenantLimits) allow(tenant string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	b := l.buckets[tenant]
	if b == nil {
		if len(l.buckets) >= maxTenants {
			clear(l.buckets)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[tenant] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
