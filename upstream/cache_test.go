package upstream_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/transport"
)

func newCache(t *testing.T) *edge.Cache {
	c, err := edge.NewCache(edge.CacheConfig{MaxBytes: 16 << 20, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// eventually polls f for up to 10 s.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
	}
}

var acme = []string{"X-Brainy-Tenant", "acme"}

// TestCacheHitsAndPushedInvalidation: a read is MISS then HIT; a write made
// at the core by someone else reaches the edge by push, well before the
// TTL; a 404 is cached until the key is created; the edge reads its own
// writes at once.
func TestCacheHitsAndPushedInvalidation(t *testing.T) {
	r := newRigWith(t, item.Limits{}, newCache(t))
	ctx := context.Background()
	if _, _, err := r.core.Put(ctx, "acme", &item.Item{ID: "a", Data: []byte(`1`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	if status, body, xc := r.doH(t, "GET", "/v1/items/a", "", acme...); status != 200 || xc != "MISS" || !strings.Contains(body, `"data":1`) {
		t.Fatalf("first GET: %d %s %s", status, xc, body)
	}
	eventually(t, "HIT", func() bool { _, _, xc := r.doH(t, "GET", "/v1/items/a", "", acme...); return xc == "HIT" })

	// Someone writes at the core directly: the push drops the cached answer.
	if _, _, err := r.core.Put(ctx, "acme", &item.Item{ID: "a", Data: []byte(`2`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new value at the edge", func() bool {
		_, body := r.do(t, "GET", "/v1/items/a", "", acme...)
		return strings.Contains(body, `"data":2`)
	})

	// A 404 is cached, and a create elsewhere clears it.
	if status, _, xc := r.doH(t, "GET", "/v1/items/new", "", acme...); status != 404 || xc != "MISS" {
		t.Fatalf("GET of a missing item: %d %s", status, xc)
	}
	eventually(t, "404 HIT", func() bool { s, _, xc := r.doH(t, "GET", "/v1/items/new", "", acme...); return s == 404 && xc == "HIT" })
	if _, _, err := r.core.Put(ctx, "acme", &item.Item{ID: "new", Data: []byte(`3`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the created item at the edge", func() bool { s, _ := r.do(t, "GET", "/v1/items/new", "", acme...); return s == 200 })

	// Read-your-writes: right after a write through the edge, the edge
	// answers with it (Ristretto stores a new key asynchronously, so the
	// first read may still go to the core), and then from the cache.
	status, put := r.do(t, "PUT", "/v1/items/b", `{"data":"mine"}`, acme...)
	if status != 201 {
		t.Fatalf("PUT: %d %s", status, put)
	}
	if status, body := r.do(t, "GET", "/v1/items/b", "", acme...); status != 200 || body != put {
		t.Fatalf("GET after own PUT: %d %s, want the PUT's answer", status, body)
	}
	eventually(t, "own write cached", func() bool {
		_, body, xc := r.doH(t, "GET", "/v1/items/b", "", acme...)
		return xc == "HIT" && body == put
	})
	_, put = r.do(t, "PUT", "/v1/items/b", `{"data":"mine again"}`, acme...)
	if status, body := r.do(t, "GET", "/v1/items/b", "", acme...); status != 200 || body != put {
		t.Fatalf("GET after replacing a cached item: %d %s, want the new answer", status, body)
	}
	// Tenants do not share cache entries.
	if status, _ := r.do(t, "GET", "/v1/items/b", "", "X-Brainy-Tenant", "other"); status != 404 {
		t.Fatalf("another tenant read acme's cached item: %d", status)
	}
	if st := r.cache.Counters(); st.Hits == 0 || st.Invalidations == 0 {
		t.Fatalf("cache stats %+v", st)
	}
}

// TestConcurrentMissesCoalesce: 100 concurrent GETs of one uncached key
// make one request to the core.
func TestConcurrentMissesCoalesce(t *testing.T) {
	r := newRigWith(t, item.Limits{}, newCache(t))
	if _, _, err := r.core.Put(context.Background(), "acme", &item.Item{ID: "hot", Data: []byte(`1`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	// Connect first, and let the subscription's reset land.
	r.do(t, "GET", "/v1/items/warmup", "", acme...)
	eventually(t, "subscribed", func() bool { return r.cache.Counters().Resets > 0 })
	before := r.core.Metrics().Operations.Gets
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 100 {
		wg.Go(func() {
			<-start
			if status, _ := r.do(t, "GET", "/v1/items/hot", "", acme...); status != 200 {
				t.Errorf("GET: %d", status)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := r.core.Metrics().Operations.Gets - before; n != 1 {
		t.Fatalf("100 concurrent misses made %d requests to the core, want 1", n)
	}
}

// TestStaleWhileCoreIsDown: with the core gone, cached items answer 200
// STALE and others 503; once the core is back, fresh answers return.
func TestStaleWhileCoreIsDown(t *testing.T) {
	r := newRigWith(t, item.Limits{}, newCache(t))
	if _, _, err := r.core.Put(context.Background(), "acme", &item.Item{ID: "a", Data: []byte(`1`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HIT", func() bool { _, _, xc := r.doH(t, "GET", "/v1/items/a", "", acme...); return xc == "HIT" })
	addr := r.server.Addr().String()
	r.server.Close()
	eventually(t, "STALE", func() bool {
		s, body, xc := r.doH(t, "GET", "/v1/items/a", "", acme...)
		return s == 200 && xc == "STALE" && strings.Contains(body, `"data":1`)
	})
	if status, body := r.do(t, "GET", "/v1/items/uncached", "", acme...); status != 503 {
		t.Fatalf("uncached GET with the core down: %d %s", status, body)
	}
	// The core comes back on the same address with a newer value.
	if _, _, err := r.core.Put(context.Background(), "acme", &item.Item{ID: "a", Data: []byte(`2`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	cfg := transport.LocalConfig(r.creds.TLSConfig())
	cfg.ListenAddr = addr
	srv, err := transport.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveCore(srv, r.core, nil)
	go srv.Serve(context.Background())
	t.Cleanup(func() { srv.Close() })
	eventually(t, "a fresh answer after the core returned", func() bool {
		s, body, xc := r.doH(t, "GET", "/v1/items/a", "", acme...)
		return s == 200 && xc != "STALE" && strings.Contains(body, `"data":2`)
	})
}

// TestEdgeConsistency: a read that names ?consistency=strong is never
// answered from the cache — written at the core, read at the edge, 0 stale
// in 1,000 — while the default read is the cache's; an unknown
// consistency is 400 at the edge as at the core.
func TestEdgeConsistency(t *testing.T) {
	r := newRigWith(t, item.Limits{}, newCache(t))
	ctx := context.Background()
	stale := 0
	for i := range 1000 {
		if _, _, err := r.core.Put(ctx, "acme", &item.Item{ID: "c", Data: []byte(strconv.Itoa(i))}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		status, body, xc := r.doH(t, "GET", "/v1/items/c?consistency=strong", "", acme...)
		if status != 200 || xc == "HIT" {
			t.Fatalf("strong read %d: %d %s %s", i, status, xc, body)
		}
		if !strings.Contains(body, `"data":`+strconv.Itoa(i)+`,`) {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 1000 strong reads at the edge were stale", stale)
	}
	// The default read is cached.
	eventually(t, "a cached answer", func() bool { _, _, xc := r.doH(t, "GET", "/v1/items/c", "", acme...); return xc == "HIT" })
	for _, q := range []string{"bogus", "STRONG", ""} {
		status, body, _ := r.doH(t, "GET", "/v1/items/c?consistency="+q, "", acme...)
		if want := 400; q == "" {
			if status != 200 {
				t.Fatalf("?consistency= (empty): %d %s", status, body)
			}
		} else if status != want || code(body) != "invalid_consistency" {
			t.Fatalf("?consistency=%s at the edge: %d %s", q, status, body)
		}
	}
}

// TestItemGrowthCapped: PATCHes of 900 KB each, every one under the body
// limit, once grew one item past the transport's frame limit; reading it
// through the edge then failed as "core unreachable", and every tenant got
// 503. Now growth past item.MaxItemBytes is refused with 413
// item_too_large, the item keeps its last version, and another tenant's
// reads and writes through the edge, and its readiness, are untouched.
func TestItemGrowthCapped(t *testing.T) {
	defer func(d time.Duration) { rigCallTimeout = d }(rigCallTimeout)
	rigCallTimeout = 10 * time.Second // megabyte merges under -race
	r := newRigWith(t, item.Limits{}, newCache(t))
	if status, body := r.do(t, "PUT", "/v1/items/big", `{"data":{}}`, acme...); status != 201 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	chunk := strings.Repeat("y", 900<<10)
	refused := 0
	for i := range 6 {
		status, body := r.do(t, "PATCH", "/v1/items/big", fmt.Sprintf(`{"data":{"k%d":%q}}`, i, chunk), acme...)
		switch {
		case status == 200:
		case status == 413 && code(body) == "item_too_large":
			refused++
		default:
			t.Fatalf("PATCH %d: %d %.200s", i, status, body)
		}
		bob := []string{"X-Brainy-Tenant", "bob"}
		if status, body := r.do(t, "PUT", fmt.Sprintf("/v1/items/b%d", i), `{"data":1}`, bob...); status != 201 {
			t.Fatalf("bob's write after PATCH %d: %d %s", i, status, body)
		}
		if status, body := r.do(t, "GET", fmt.Sprintf("/v1/items/b%d", i), "", bob...); status != 200 {
			t.Fatalf("bob's read after PATCH %d: %d %s", i, status, body)
		}
		if status, _ := r.do(t, "GET", "/readyz", ""); status != 200 {
			t.Fatalf("readyz after PATCH %d: %d", i, status)
		}
	}
	if refused == 0 {
		t.Fatal("six 900 KB patches all landed: the item grew past the cap")
	}
	status, body := r.do(t, "GET", "/v1/items/big?consistency=strong", "", acme...)
	if status != 200 || len(body) > item.MaxItemBytes+4096 {
		t.Fatalf("the capped item: %d, %d bytes", status, len(body))
	}
}
