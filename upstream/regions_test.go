package upstream

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
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

// TestRegionsRouteToNearest: with the cores of two regions pushing their
// topologies, requests go to the region whose cores answer probes sooner;
// when that region slows down they move, only after the other has been
// clearly nearer for a few rounds; jitter between two close regions moves
// nothing; and when the chosen region stops answering they move at once.
func TestRegionsRouteToNearest(t *testing.T) {
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	coreCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	edgeCreds, _ := ca.NewBundle("edge-1", nil)
	type region struct {
		addr  string
		delay atomic.Int64 // ping delay, ns; jittered ±10%
		srv   *transport.Server
	}
	start := func(name string) *region {
		r := &region{}
		n, err := core.Open(context.Background(), core.Config{Store: memory.New()})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.Put(context.Background(), "acme", &item.Item{ID: "x", Data: []byte(`"` + name + `"`)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		if r.srv, err = transport.NewServer(transport.LocalConfig(coreCreds.TLSConfig())); err != nil {
			t.Fatal(err)
		}
		itemrpc.Register(r.srv, n, n)
		r.srv.Handle(wire.MethodPing, func(context.Context, *transport.Peer, []byte) ([]byte, error) {
			d := float64(r.delay.Load())
			time.Sleep(time.Duration(d * (0.9 + 0.2*rand.Float64())))
			return nil, nil
		})
		go r.srv.Serve(context.Background())
		t.Cleanup(func() { r.srv.Close(); n.Close() })
		r.addr = r.srv.Addr().String()
		return r
	}
	near, far := start("near"), start("far")
	near.delay.Store(int64(5 * time.Millisecond))
	far.delay.Store(int64(40 * time.Millisecond))
	client, err := transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b, err := New(Config{Addrs: []string{far.addr}, Client: client, ProbeInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, r := range []struct {
		name string
		addr string
	}{{"far", far.addr}, {"near", near.addr}} {
		b.learn(&wire.Topology{Region: r.name, Partitions: 1, Nodes: []wire.TopologyNode{{ID: r.name, Addr: r.addr}},
			Leaders: []wire.Lead{{Node: 0, Term: 1}}}, "")
	}
	chosen := func() string {
		if m := b.Metrics().Routing; m != nil {
			return m.Region
		}
		return ""
	}
	answer := func() string {
		it, err := b.Get(context.Background(), "acme", "x")
		if err != nil {
			t.Fatal(err)
		}
		return string(it.Data)
	}
	if c := chosen(); c != "far" {
		t.Fatalf("before any probe: region %q, want the first heard of", c)
	}
	waitUntil(t, "the near region chosen", func() bool { return chosen() == "near" })
	if a := answer(); a != `"near"` {
		t.Fatalf("a read answered %s, want the near region's", a)
	}

	// The near region slows down: requests move, after a few rounds.
	near.delay.Store(int64(80 * time.Millisecond))
	waitUntil(t, "the far region chosen", func() bool { return chosen() == "far" })
	if a := answer(); a != `"far"` {
		t.Fatalf("a read answered %s, want the far region's", a)
	}

	// Two regions within jitter of each other: no move, round after round.
	near.delay.Store(int64(36 * time.Millisecond))
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		if c := chosen(); c != "far" {
			t.Fatalf("jitter moved requests to %q", c)
		}
	}

	// The chosen region stops answering: requests move at the next probe.
	far.srv.Close()
	waitUntil(t, "failover to the near region", func() bool { return chosen() == "near" })
	if a := answer(); a != `"near"` {
		t.Fatalf("after failover a read answered %s", a)
	}
}

// waitUntil polls f for up to 10 s.
func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
	}
}

// TestRecentRTTFollowsAStep: the round trip that regions are chosen by follows
// a lasting step within two samples, and one outlier does not move it.
func TestRecentRTTFollowsAStep(t *testing.T) {
	var r rtt
	for range 10 {
		r.sample(10)
	}
	r.sample(500) // one outlier
	if got := r.recent(); got != 10 {
		t.Fatalf("one outlier moved the recent round trip to %v", got)
	}
	r.sample(160)
	r.sample(160)
	if got := r.recent(); got != 160 {
		t.Fatalf("two samples after a step to 160 ms the recent round trip is %v", got)
	}
	if r.srtt > 100 {
		t.Fatalf("the smoothed round trip (%v) was expected to lag the step", r.srtt)
	}
}
