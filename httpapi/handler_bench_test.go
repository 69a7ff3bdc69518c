package httpapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
)

// benchHandler returns a handler on a real node, with n items loaded.
func benchHandler(b *testing.B, storage string, n int) *Handler {
	var store tiers.Store = memory.New()
	if storage == "disk" {
		var err error
		if store, err = disk.Open(disk.Config{Dir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
	node, err := core.Open(context.Background(), core.Config{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Close(); store.Close() })
	h, err := NewHandler(Config{}, node)
	if err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	for i := range n {
		ctx.Request.Reset()
		ctx.Request.Header.SetMethod("PUT")
		ctx.Request.SetRequestURI(fmt.Sprintf("/v1/items/key-%d", i))
		ctx.Request.SetBodyString(`{"type":"bench","data":{"name":"John","age":30,"city":"Oslo","tags":["a","b","c"]}}`)
		h.Serve(&ctx)
		if ctx.Response.StatusCode() != 201 {
			b.Fatalf("load: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	return h
}

// BenchmarkHandlerGet is a GET of an existing item through the whole API
// handler (routing, tenant, store read, JSON encoding), without sockets.
func BenchmarkHandlerGet(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run(storage, func(b *testing.B) {
			const n = 10_000
			h := benchHandler(b, storage, n)
			uris := make([]string, n)
			for i := range uris {
				uris[i] = fmt.Sprintf("/v1/items/key-%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				i := 0
				for pb.Next() {
					// The response is not reset: like the server (which resets
					// it keeping the body buffer), the handler reuses its buffer;
					// every header it sets replaces the previous value.
					ctx.Request.Reset()
					ctx.Request.SetRequestURI(uris[i%n])
					h.Serve(&ctx)
					if ctx.Response.StatusCode() != 200 {
						b.Errorf("GET: %d", ctx.Response.StatusCode())
						return
					}
					i += 13
				}
			})
		})
	}
}

// BenchmarkHandlerPut is a durable PUT replacing an existing item, with 64
// concurrent callers sharing syncs.
func BenchmarkHandlerPut(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run(storage, func(b *testing.B) {
			const n = 10_000
			h := benchHandler(b, storage, n)
			uris := make([]string, n)
			for i := range uris {
				uris[i] = fmt.Sprintf("/v1/items/key-%d", i)
			}
			body := []byte(`{"type":"bench","data":{"name":"Jane","age":31,"city":"Bergen","tags":["x","y","z"]}}`)
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				i := 0
				for pb.Next() {
					ctx.Request.Reset()
					ctx.Request.Header.SetMethod("PUT")
					ctx.Request.SetRequestURI(uris[i%n])
					ctx.Request.SetBody(body)
					h.Serve(&ctx)
					if ctx.Response.StatusCode() != 200 {
						b.Errorf("PUT: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
						return
					}
					i += 13
				}
			})
		})
	}
}
