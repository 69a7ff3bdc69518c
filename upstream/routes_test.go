package upstream

import (
	"fmt"
	"testing"

	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
)

// TestRoutesMergeByTerm: pushed views merge partition by partition, the
// higher term winning, so a late push from a core that missed an election
// cannot route back to the deposed leader; an unknown leader keeps the
// known one; and the view holds only the nodes some leader names.
func TestRoutesMergeByTerm(t *testing.T) {
	b, err := New(Config{Addrs: []string{"10.0.0.1:7071"}, Client: &transport.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	// An id of each partition of two.
	ids := map[int]string{}
	for i := 0; len(ids) < 2; i++ {
		id := fmt.Sprint("id-", i)
		ids[wire.PartitionOf("t", id, 2)] = id
	}
	leader := func(part int) string {
		addr, _ := b.leaderOf(itemrpc.Target{Tenant: "t", ID: ids[part]})
		return addr
	}
	nodes := []wire.TopologyNode{{ID: "a", Addr: "10.0.0.1:7071"}, {ID: "b", Addr: "10.0.0.2:7071"}, {ID: "c", Addr: "10.0.0.3:7071"}}
	b.learn(&wire.Topology{Partitions: 2, Nodes: nodes, Leaders: []wire.Lead{{Node: 0, Term: 5}, {Node: 1, Term: 2}}}, "")
	if leader(0) != "10.0.0.1:7071" || leader(1) != "10.0.0.2:7071" {
		t.Fatalf("first view: %q %q", leader(0), leader(1))
	}
	// A stale view (term 4 < 5) of partition 0, a newer one of partition 1.
	b.learn(&wire.Topology{Partitions: 2, Nodes: nodes, Leaders: []wire.Lead{{Node: 2, Term: 4}, {Node: 2, Term: 3}}}, "")
	if leader(0) != "10.0.0.1:7071" || leader(1) != "10.0.0.3:7071" {
		t.Fatalf("after a partly stale view: %q %q", leader(0), leader(1))
	}
	// A view that does not know partition 0's leader keeps the known one.
	b.learn(&wire.Topology{Partitions: 2, Nodes: nodes, Leaders: []wire.Lead{{Node: -1}, {Node: 1, Term: 9}}}, "")
	if leader(0) != "10.0.0.1:7071" || leader(1) != "10.0.0.2:7071" {
		t.Fatalf("after a view with an unknown leader: %q %q", leader(0), leader(1))
	}
	if r := b.routes.Load(); len(r.nodes) != 2 {
		t.Fatalf("the view holds %d nodes, want the 2 leaders", len(r.nodes))
	}
	// The configured core's skip-until time is shared with its route.
	if _, down := b.leaderOf(itemrpc.Target{Tenant: "t", ID: ids[0]}); down != &b.downUntil[0] {
		t.Fatal("the configured core's route has a skip-until time of its own")
	}
	if addr, _ := b.leaderOf(itemrpc.Target{Tenant: "t"}); addr != "" {
		t.Fatalf("a list was routed to %q", addr)
	}
}
