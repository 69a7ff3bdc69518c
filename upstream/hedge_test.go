package upstream

import (
	"context"
	"fmt"
	"slices"
	"sync"
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
	delay func() time.Duration
}

func (s slowGets) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	select {
	case <-time.After(s.delay()):
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
	replica, client := replicas(t)
	slow, fast := replica(`"slow"`, func() time.Duration { return 3 * time.Second }), replica(`"fast"`, nil)
	b, err := New(Config{Addrs: []string{slow}, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.learn(&wire.Topology{Partitions: 1, Nodes: []wire.TopologyNode{{ID: "a", Addr: slow}, {ID: "b", Addr: fast}},
		Leaders: []wire.Lead{{Node: 0, Term: 1, Replicas: []int{0, 1}}}}, "")

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

// replicas returns a function that starts a replica holding item x of
// tenant acme with data, whose Gets answer after slow(), and a client.
func replicas(t testing.TB) (start func(data string, slow func() time.Duration) string, client *transport.Client) {
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	coreCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	edgeCreds, _ := ca.NewBundle("edge-1", nil)
	start = func(data string, slow func() time.Duration) string {
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
		if slow != nil {
			front = slowGets{n, slow}
		}
		itemrpc.Register(srv, n, front)
		go srv.Serve(context.Background())
		t.Cleanup(func() { srv.Close(); n.Close() })
		return srv.Addr().String()
	}
	if client, err = transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return start, client
}

// BenchmarkHedgedStaleRead: stale reads of one item from two replicas,
// the nearer of which stalls 100 ms in the first tenth of every second;
// p50 and p99 per read, 8 readers, with hedging and without.
func BenchmarkHedgedStaleRead(b *testing.B) {
	for _, hedge := range []bool{true, false} {
		b.Run(fmt.Sprint("hedge=", hedge), func(b *testing.B) {
			start, client := replicas(b)
			stall := func() time.Duration {
				if time.Now().UnixMilli()%1000 < 100 {
					return 100 * time.Millisecond
				}
				return 0
			}
			first, second := start(`"a"`, stall), start(`"b"`, nil)
			be, err := New(Config{Addrs: []string{first}, Client: client})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			be.noHedge = !hedge
			be.learn(&wire.Topology{Partitions: 1, Nodes: []wire.TopologyNode{{ID: "a", Addr: first}, {ID: "b", Addr: second}},
				Leaders: []wire.Lead{{Node: 0, Term: 1, Replicas: []int{0, 1}}}}, "")
			// Round trips as probes on loopback measure them, the stalling
			// replica nearer, so reads go to it first.
			be.rtts[first] = &rtt{srtt: 0.2, dev: 0.05, samples: 10}
			be.rtts[second] = &rtt{srtt: 0.3, dev: 0.05, samples: 10}
			ctx := item.WithStaleReads(context.Background())
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(4) // 8 readers on this machine's 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := be.Get(ctx, "acme", "x"); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(lat[len(lat)*999/1000].Microseconds()), "p99.9-µs")
			b.ReportMetric(float64(lat[len(lat)*9999/10000].Microseconds()), "p99.99-µs")
			b.ReportMetric(float64(be.hedges.Load())/float64(len(lat))*100, "hedged-%")
		})
	}
}
