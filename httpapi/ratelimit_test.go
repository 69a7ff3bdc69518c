package httpapi

import (
	"strconv"
	"testing"
	"time"
)

// TestRateLimitSurvivesTenantFlood: a flood of new tenant names (free to
// invent where auth is off) once reset every bucket at 100,000 tenants,
// giving a throttled tenant a full bucket again. Buckets are now evicted
// least recently used first: an active tenant stays throttled.
func TestRateLimitSurvivesTenantFlood(t *testing.T) {
	l := newTenantLimits(0.001, 1) // one request, then none for a long time
	now := time.Now()
	if ok, _ := l.allow("busy", now); !ok {
		t.Fatal("the first request was refused")
	}
	flood := func(from, n int) {
		for i := range n {
			l.allow("flood-"+strconv.Itoa(from+i), now)
		}
	}
	flood(0, maxTenants/2)
	if ok, _ := l.allow("busy", now); ok {
		t.Fatal("the busy tenant got a second token")
	}
	flood(maxTenants/2, maxTenants*6/10)
	if ok, _ := l.allow("busy", now); ok {
		t.Fatal("a flood of new tenants reset the busy tenant's bucket")
	}
	if n := l.buckets.Len(); n > maxTenants {
		t.Fatalf("%d buckets held; the bound is %d", n, maxTenants)
	}
}
