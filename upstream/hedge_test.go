package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// slowGets delays every Get of the core it fronts.
type slowGets struct {
	item.API
	delay time.Duration
}

func (s slowGets) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.API.Get(ctx, tenant, id)
}

// TestHedgedStaleRead: a stale read goes to the first replica the
// topology names; when that one is slow, the read is sent to the next as
// well and the first answer wins — here the second replica's, told apart
// by its data — and the hedge is counted against the budget.
func TestHedgedStaleRead(t *testing.T) {
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	coreCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	edgeCreds, _ := ca.NewBundle("edge-1", nil)
	replica := func(data string, delay time.Duration) string {
		n, err := core.Open(context.Background(), core.Config{Store: memory.New()})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.Put(context.Background(), "acme", &item.Item{ID: "x", Data: []byte(data)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		srv, err := transport.NewServer(transport.LocalConfig(coreCreds.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		var front item.API = n
		if delay > 0 {
			front = slowGets{n, delay}
		}
		itemrpc.Register(srv, n, front)
		go srv.Serve(context.Background())
		t.Cleanup(func() { srv.Close(); n.Close() })
		return srv.Addr().String()
	}
	slow, fast := replica(`"slow"`, 3*time.Second), replica(`"fast"`, 0)
	client, err := transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b, err := New(Config{Addrs: []string{slow}, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.learn(&wire.Topology{Partitions: 1, Nodes: []wire.TopologyNode{{ID: "a", Addr: slow}, {ID: "b", Addr: fast}},
		Leaders: []wire.Lead{{Node: 0, Term: 1, Replicas: []int{0, 1}}}})

	it, err := b.Get(item.WithStaleReads(context.Background()), "acme", "x")
	if err != nil {
		t.Fatal(err)
	}
	if string(it.Data) != `"fast"` {
		t.Fatalf("the stale read answered %s: not hedged to the fast replica", it.Data)
	}
	if h := b.hedges.Load(); h != 1 {
		t.Fatalf("%d hedges counted, want 1", h)
	}
	// A read that must be current goes to the leader, slow or not, once.
	if it, err := b.Get(context.Background(), "acme", "x"); err != nil || string(it.Data) != `"slow"` {
		t.Fatalf("a strong read: %v %v, want the leader's answer", it, err)
	}
	if h := b.hedges.Load(); h != 1 {
		t.Fatalf("a strong read was hedged: %d hedges", h)
	}
}

// TestHedgeBudget: hedges stay within their share of stale reads.
func TestHedgeBudget(t *testing.T) {
	b := &Backend{}
	granted := 0
	for range 1000 {
		b.staleReads.Add(1)
		if b.mayHedge() {
			granted++
		}
	}
	if limit := int(maxHedgeShare*1000) + hedgeBurst; granted > limit || granted < limit-1 {
		t.Fatalf("%d hedges granted for 1,000 stale reads, want about %d", granted, limit)
	}
}
