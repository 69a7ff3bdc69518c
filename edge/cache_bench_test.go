package edge_test

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/tiers/memory"
)

// BenchmarkEdgeCacheHit is a GET answered from the edge cache: the hot
// path of an edge, which should not allocate.
func BenchmarkEdgeCacheHit(b *testing.B) {
	store := memory.New()
	node, err := core.Open(context.Background(), core.Config{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	cache, err := edge.NewCache(edge.CacheConfig{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	h, err := httpapi.NewHandler(httpapi.Config{Cache: cache}, node)
	if err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("PUT")
	ctx.Request.SetRequestURI("/v1/items/hot")
	ctx.Request.SetBodyString(`{"type":"bench","data":{"name":"John","age":30}}`)
	h.Serve(&ctx)
	for i := 0; string(ctx.Response.Header.Peek("X-Cache")) != "HIT"; i++ {
		if i > 1000 {
			b.Fatal("never cached")
		}
		ctx.Request.Reset()
		ctx.Request.SetRequestURI("/v1/items/hot")
		h.Serve(&ctx)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Request.SetRequestURI("/v1/items/hot")
			h.Serve(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("GET: %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}
