package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query/querytest"
)

// TestFindAcrossCluster: finds through any member of a 3-node cluster
// answer as brute force over the items written through another, page
// after page.
func TestFindAcrossCluster(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	c.start("node-2")
	c.start("node-3")
	c.waitPlacement(3)
	g := querytest.New(3)
	items := g.Items(300)
	querytest.Write(t, n1.node, "t", items)
	for _, id := range []string{"node-2", "node-3"} {
		querytest.Check(t, g, c.members[id].node, "t", items, 20)
	}
}

// TestNearestFromIndexSeesAcknowledgedWrites: a find by vector answered
// from a member's own index covers every write acknowledged before it,
// wherever it was made: the member's replicas first apply what their
// leaders committed. Each round writes through one member the item
// nearest the query, then asks another.
func TestNearestFromIndexSeesAcknowledgedWrites(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	n2 := c.start("node-2")
	c.start("node-3")
	c.waitPlacement(3)
	ctx := context.Background()
	for i := range 50 {
		if _, _, err := n1.node.Put(ctx, "t", &item.Item{ID: fmt.Sprintf("base-%02d", i), Type: "v", Vector: []float32{float32(i % 7), 1, float32(i % 3)}}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	// The first find asks for the index; wait until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := n2.node.Nearest(ctx, "t", "v", []float32{1, 0, 0}, 1, nil); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-2's vector index is not ready after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for round := range 20 {
		writer, reader := c.members[[]string{"node-1", "node-3"}[round%2]], n2
		q := []float32{float32(round), -5, float32(round % 4)}
		id := fmt.Sprintf("near-%02d", round)
		if _, _, err := writer.node.Put(ctx, "t", &item.Item{ID: id, Type: "v", Vector: q}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		ids, ok := reader.node.Nearest(ctx, "t", "v", q, 1, nil)
		if !ok || len(ids) != 1 || ids[0] != id {
			t.Fatalf("round %d: nearest on node-2 = %v (%v), want %s written just before through %s", round, ids, ok, id, writer.id)
		}
	}
}
