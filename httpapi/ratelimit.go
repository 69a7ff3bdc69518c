package httpapi

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// tenantLimits is a token bucket per tenant. Tenants come from API keys or
// a request header, so their number is bounded by maxTenants: past it, the
// least recently active tenant's bucket is forgotten (it starts full again
// when that tenant returns). A flood of new tenant names never resets the
// buckets of tenants that are active.
type tenantLimits struct {
	rate    rate.Limit
	burst   int
	buckets *lru.Cache[string, *rate.Limiter] // safe for concurrent use
}

const maxTenants = 100_000

func newTenantLimits(perSecond float64, burst int) *tenantLimits {
	if burst <= 0 {
		burst = max(int(perSecond), 1)
	}
	buckets, err := lru.New[string, *rate.Limiter](maxTenants)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &tenantLimits{rate: rate.Limit(perSecond), burst: burst, buckets: buckets}
}

// allow takes a token from tenant's bucket, or reports how long until one
// is available.
func (l *tenantLimits) allow(tenant string, now time.Time) (ok bool, retryAfter time.Duration) {
	b, found := l.buckets.Get(tenant)
	if !found {
		b = rate.NewLimiter(l.rate, l.burst)
		if prev, had, _ := l.buckets.PeekOrAdd(tenant, b); had {
			b = prev // another request made it first
		}
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
