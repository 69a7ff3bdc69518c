package itemrpc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// front is a real node seen through a counter: it tells which side of
// Register a request reached, and whether it came marked stale.
type front struct {
	*core.Node
	gets, stale atomic.Int64
}

func (f *front) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	f.gets.Add(1)
	if item.StaleReads(ctx) {
		f.stale.Add(1)
	}
	return f.Node.Get(ctx, tenant, id)
}

type rig struct {
	local      *core.Node
	front      *front
	plain, hop *itemrpc.Remote
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ca, err := pki.NewCA("itemrpc test")
	if err != nil {
		t.Fatal(err)
	}
	srvCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	cliCreds, _ := ca.NewBundle("edge-1", nil)
	store := memory.New()
	node, err := core.Open(context.Background(), core.Config{Store: store, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.NewServer(transport.LocalConfig(srvCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	f := &front{Node: node}
	itemrpc.Register(srv, node, f)
	itemrpc.RegisterListPartitions(srv, node.Partitions, node.ListPartitions)
	itemrpc.RegisterFind(srv, item.Limits{MaxBodyBytes: 4 << 10}, f)
	go srv.Serve(context.Background())
	client, err := transport.NewClient(transport.LocalConfig(cliCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); srv.Close(); node.Close(); store.Close() })
	addr := srv.Addr().String()
	call := func(ctx context.Context, method uint16, _ itemrpc.Target, req []byte) ([]byte, error) {
		return client.Call(ctx, addr, method, req)
	}
	return &rig{local: node, front: f, plain: &itemrpc.Remote{Call: call}, hop: &itemrpc.Remote{Call: call, Forwarded: true}}
}

// TestForwardedGoesLocal: an edge's request reaches the front (which may
// forward it once), a forwarded one the local node, never the front again.
func TestForwardedGoesLocal(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.plain.Add(ctx, "acme", &item.Item{ID: "a", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.plain.Get(ctx, "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if got := r.front.gets.Load(); got != 1 {
		t.Fatalf("an edge's GET reached the front %d times, want 1", got)
	}
	if _, err := r.hop.Get(ctx, "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if got := r.front.gets.Load(); got != 1 {
		t.Fatal("a forwarded GET reached the front: it could be forwarded again")
	}
	if _, err := r.plain.Get(item.WithStaleReads(ctx), "acme", "a"); err != nil {
		t.Fatal(err)
	}
	if r.front.stale.Load() != 1 {
		t.Fatal("?consistency=stale did not cross the wire")
	}
}

// TestErrorsCrossAsThemselves: the caller sees the sentinel (and for bad
// input the code) a local caller would.
func TestErrorsCrossAsThemselves(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.plain.Get(ctx, "acme", "missing"); !errors.Is(err, item.ErrNotFound) {
		t.Fatalf("missing item: %v", err)
	}
	it, err := r.plain.Add(ctx, "acme", &item.Item{ID: "x", Data: []byte(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.plain.Add(ctx, "acme", &item.Item{ID: "x", Data: []byte(`1`)}); !errors.Is(err, item.ErrConflict) {
		t.Fatalf("second add: %v", err)
	}
	_, _, err = r.plain.Put(ctx, "acme", &item.Item{ID: "x", Data: []byte(`2`)}, item.Cond{IfMatch: it.Version + "0"})
	if !errors.Is(err, item.ErrPreconditionFailed) {
		t.Fatalf("lost If-Match race: %v", err)
	}
	_, err = r.plain.Add(ctx, "acme", &item.Item{ID: "bad\x00id", Data: []byte(`1`)})
	var inv *item.InvalidError
	if !errors.As(err, &inv) || inv.Code == "" {
		t.Fatalf("bad id: want an InvalidError with its code, got %v", err)
	}
	if err := r.plain.Delete(ctx, "acme", "x", item.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.plain.Get(ctx, "acme", "x"); !errors.Is(err, item.ErrNotFound) {
		t.Fatalf("deleted item: %v", err)
	}
}

// TestListPartitions: a partition list answers only for the partitions
// named, and a request naming a partition that does not exist is bad
// input, not a crash.
func TestListPartitions(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	want := map[int]int{}
	for i := range 40 {
		id := string(rune('a'+i%26)) + string(rune('0'+i/26))
		if _, err := r.plain.Add(ctx, "acme", &item.Item{ID: id, Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
		want[core.PartitionOf("acme", id, 8)]++
	}
	p, err := r.plain.ListPartitions(ctx, "acme", item.ListOptions{Limit: 100}, []int{2, 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != want[2]+want[5] {
		t.Fatalf("partitions 2 and 5 hold %d items; the list gave %d", want[2]+want[5], len(p.Items))
	}
	for _, it := range p.Items {
		if part := core.PartitionOf("acme", it.ID, 8); part != 2 && part != 5 {
			t.Fatalf("item %s of partition %d listed", it.ID, part)
		}
	}
	_, err = r.plain.ListPartitions(ctx, "acme", item.ListOptions{}, []int{8})
	if !errors.Is(err, item.ErrInvalid) {
		t.Fatalf("partition 8 of 8: %v", err)
	}
}

// TestFindRemotely: a find sent to a core answers as the same find run
// there; what a hostile caller sends — garbage, a find over the body
// limit, a malformed query — is refused as bad input, and the core goes
// on answering.
func TestFindRemotely(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	for i := range 5 {
		if _, _, err := r.local.Put(ctx, "acme", &item.Item{ID: fmt.Sprint("v", i), Vector: []float32{1, float32(i)}}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	raw := []byte(`{"near":{"vector":[1,3.1],"k":2}}`)
	res, err := r.plain.Find(ctx, "acme", raw, 0)
	if err != nil || len(res.Hits) != 2 || res.Hits[0].ID != "v3" || res.Hits[1].ID != "v4" || res.Hits[0].Score <= res.Hits[1].Score {
		t.Fatalf("find: %+v %v", res, err)
	}
	call := func(req []byte) error {
		_, err := r.plain.Call(ctx, wire.MethodFind, itemrpc.Target{Tenant: "acme"}, req)
		var re *transport.RemoteError
		if errors.As(err, &re) {
			return wire.Error(re.Code, re.Message)
		}
		return err
	}
	for name, req := range map[string][]byte{
		"garbage":         []byte{0xff, 1, 2},
		"over the limit":  wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "acme", Query: []byte(`{"type":"` + strings.Repeat("x", 8<<10) + `"}`)}),
		"malformed query": wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "acme", Query: []byte(`{"near":{"k":"x"}}`)}),
		"bad tenant":      wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "", Query: raw}),
		// A node that is no cluster member answers for no partitions.
		"partitions": wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "acme", Query: raw, Parts: []int{1}}),
		"a budget of an hour": append(wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "acme", Query: raw})[:len(wire.AppendFindRequest(nil, &wire.FindRequest{Tenant: "acme", Query: raw}))-1],
			0x80, 0xdd, 0xdb, 0x01), // 3,600,000 ms
	} {
		if err := call(req); !errors.Is(err, item.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-input error", name, err)
		}
	}
	if _, err := r.plain.Find(ctx, "acme", raw, 0); err != nil {
		t.Fatalf("a find after the refused ones: %v", err)
	}
}
