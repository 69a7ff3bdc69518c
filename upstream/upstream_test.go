package upstream_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

var _ httpapi.Backend = (*upstream.Backend)(nil)

type rig struct {
	core   *core.Node
	server *transport.Server
	h      *httpapi.Handler
	cache  *edge.Cache
	creds  *pki.Bundle
}

// newRig runs a real core node behind a real QUIC server, and the HTTP API
// handler of an edge whose backend calls that core.
func newRig(t *testing.T, lim item.Limits, onChanges ...func([]wire.Change, bool)) *rig {
	return newRigWith(t, lim, nil, onChanges...)
}

// newRigWith runs the rig with an edge cache when cache is set; the cache
// then takes the pushed changes.
// rigCallTimeout is the rig edge's call timeout: short, so tests that stop
// the core see failover quickly. Tests of slow writes raise it.
var rigCallTimeout = 500 * time.Millisecond

// rigFront, when set, wraps what the rig's core serves to the edge: for
// tests that need the core to be slow or to record what it was sent.
var rigFront func(*core.Node) item.API

func newRigWith(t *testing.T, lim item.Limits, cache *edge.Cache, onChanges ...func([]wire.Change, bool)) *rig {
	t.Helper()
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	coreCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	edgeCreds, _ := ca.NewBundle("edge-1", nil)

	store := memory.New()
	node, err := core.Open(context.Background(), core.Config{Store: store, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.NewServer(transport.LocalConfig(coreCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	var front item.API
	if rigFront != nil {
		front = rigFront(node)
	}
	serveCore(srv, node, front)
	go srv.Serve(context.Background())
	client, err := transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := upstream.Config{Addrs: []string{srv.Addr().String()}, Client: client, CallTimeout: rigCallTimeout}
	if len(onChanges) > 0 {
		cfg.OnChanges = onChanges[0]
	}
	if cache != nil {
		cfg.OnChanges = cache.Apply
	}
	be, err := upstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{Cache: cacheOf(cache)}, be) // the edge's limits are the defaults

	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		be.Close()
		client.Close()
		srv.Close()
		node.Close()
		store.Close()
	})
	return &rig{core: node, server: srv, h: h, cache: cache, creds: coreCreds}
}

func (r *rig) do(t *testing.T, method, path, body string, headers ...string) (int, string) {
	status, body, _ := r.doH(t, method, path, body, headers...)
	return status, body
}

// doH also returns the X-Cache header.
func (r *rig) doH(t *testing.T, method, path, body string, headers ...string) (int, string, string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	if body != "" {
		ctx.Request.SetBodyString(body)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	r.h.Serve(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body()), string(ctx.Response.Header.Peek("X-Cache"))
}

func code(body string) string {
	var e struct{ Error struct{ Code string } }
	json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// TestAPIThroughUpstream runs the HTTP API on an edge whose every request
// crosses QUIC to a core: answers and errors are the core's.
func TestAPIThroughUpstream(t *testing.T) {
	r := newRig(t, item.Limits{MaxDepth: 4})
	status, body := r.do(t, "PUT", "/v1/items/john", `{"type":"person","data":{"name":"John"},"vector":[0.5]}`, "X-Brainy-Tenant", "acme")
	if status != 201 || !strings.Contains(body, `"tenant":"acme"`) || !strings.Contains(body, `"vector":[0.5]`) {
		t.Fatalf("PUT: %d %s", status, body)
	}
	var it item.Item
	json.Unmarshal([]byte(body), &it)
	if got, err := r.core.Get(context.Background(), "acme", "john"); err != nil || got.Version != it.Version {
		t.Fatalf("the core does not hold what the edge acknowledged: %+v %v", got, err)
	}
	if status, got := r.do(t, "GET", "/v1/items/john", "", "X-Brainy-Tenant", "acme"); status != 200 || got != body {
		t.Fatalf("GET: %d %s, want %s", status, got, body)
	}
	status, body = r.do(t, "PATCH", "/v1/items/john", `{"data":{"city":"Oslo"}}`, "X-Brainy-Tenant", "acme", "If-Match", `"`+it.Version+`"`)
	if status != 200 || !strings.Contains(body, `"data":{"name":"John","city":"Oslo"}`) {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	if status, body := r.do(t, "POST", "/v1/items", `{"type":"person"}`, "X-Brainy-Tenant", "acme"); status != 201 {
		t.Fatalf("POST: %d %s", status, body)
	}
	if status, body := r.do(t, "GET", "/v1/items?type=person", "", "X-Brainy-Tenant", "acme"); status != 200 || strings.Count(body, `"type":"person"`) != 2 {
		t.Fatalf("list: %d %s", status, body)
	}
	for _, tc := range []struct {
		method, path, body string
		headers            []string
		status             int
		code               string
	}{
		{"GET", "/v1/items/nope", "", nil, 404, "not_found"},
		{"GET", "/v1/items/john", "", nil, 404, "not_found"}, // another tenant
		{"POST", "/v1/items", `{"id":"john"}`, []string{"X-Brainy-Tenant", "acme"}, 409, "conflict"},
		{"PUT", "/v1/items/john", `{}`, []string{"X-Brainy-Tenant", "acme", "If-Match", `"0"`}, 412, "precondition_failed"},
		// The core's stricter limits judge the data: the edge passes its error code on.
		{"PATCH", "/v1/items/john", `{"data":{"a":{"b":{"c":{"d":{"e":1}}}}}}`, []string{"X-Brainy-Tenant", "acme"}, 400, "too_deep"},
		{"GET", "/v1/items?cursor=zz", "", nil, 400, "invalid_cursor"},
		{"DELETE", "/v1/items/john", "", []string{"X-Brainy-Tenant", "acme"}, 204, ""},
		{"DELETE", "/v1/items/john", "", []string{"X-Brainy-Tenant", "acme"}, 404, "not_found"},
	} {
		status, body := r.do(t, tc.method, tc.path, tc.body, tc.headers...)
		if status != tc.status || code(body) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, status, body, tc.status, tc.code)
		}
	}
	// With the core gone, the edge answers 503 and says it is not ready.
	r.server.Close()
	if status, body := r.do(t, "GET", "/v1/items/x", "", "X-Brainy-Tenant", "acme"); status != 503 || code(body) != "unavailable" {
		t.Fatalf("GET with the core down: %d %s", status, body)
	}
	if status, _ := r.do(t, "GET", "/readyz", ""); status != 503 {
		t.Fatalf("readyz with the core down: %d", status)
	}
}

// TestChangesArePushed: an edge learns of writes made at the core by any
// client, and is told to reset when it (re)connects.
func TestChangesArePushed(t *testing.T) {
	type push struct {
		changes []wire.Change
		reset   bool
	}
	pushes := make(chan push, 100)
	r := newRig(t, item.Limits{}, func(cs []wire.Change, reset bool) { pushes <- push{cs, reset} })
	// The first request connects; connecting subscribes and resets.
	if status, _ := r.do(t, "GET", "/v1/items/x", ""); status != 404 {
		t.Fatalf("GET: %d", status)
	}
	if p := <-pushes; !p.reset {
		t.Fatalf("first push %+v: want a reset on connect", p)
	}
	it, _, err := r.core.Put(context.Background(), "acme", &item.Item{ID: "john", Data: []byte(`1`)}, item.Cond{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-pushes:
			for _, c := range p.changes {
				if c.Tenant == "acme" && c.ID == "john" && c.Version == it.Version {
					return
				}
			}
		case <-deadline:
			t.Fatal("the write at the core was never pushed to the edge")
		}
	}
}

// serveCore serves a single core's items and change feed on srv, as a
// cluster of one does; front, when not nil, answers the item requests.
func serveCore(srv *transport.Server, node *core.Node, front item.API) {
	itemrpc.Register(srv, node, front)
	itemrpc.RegisterSubscribe(srv, func() itemrpc.Subscription { return node.SubscribeChanges(1024) })
}

// cacheOf turns a possibly nil cache into the handler's setting: a nil
// *edge.Cache must become a nil interface, not an interface holding nil.
func cacheOf(c *edge.Cache) httpapi.Cache {
	if c == nil {
		return nil
	}
	return c
}
