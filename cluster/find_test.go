package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
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
	waitIndex(t, n2, 3)
	for round := range 20 {
		writer, reader := c.members[[]string{"node-1", "node-3"}[round%2]], n2
		q := []float32{float32(round), -5, float32(round % 4)}
		id := fmt.Sprintf("near-%02d", round)
		if _, _, err := writer.node.Put(ctx, "t", &item.Item{ID: id, Type: "v", Vector: q}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		ids, ok := reader.node.core.Nearest(ctx, "t", "v", q, 1, nil)
		if !ok || len(ids) != 1 || ids[0] != id {
			t.Fatalf("round %d: nearest on node-2 = %v (%v), want %s written just before through %s", round, ids, ok, id, writer.id)
		}
		// A rewrite that keeps the vector: the find reads the candidate
		// on node-2's own replica, which must hold the new data.
		data := fmt.Sprintf(`{"round":%d}`, round)
		if _, _, err := writer.node.Put(ctx, "t", &item.Item{ID: id, Type: "v", Vector: q, Data: []byte(data)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		parsed, err := query.Parse(fmt.Appendf(nil, `{"type":"v","near":{"vector":[%g,%g,%g],"k":1}}`, q[0], q[1], q[2]), item.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := query.Find(ctx, reader.node, "t", parsed)
		if err != nil || len(res.Hits) != 1 || res.Hits[0].ID != id || string(res.Hits[0].Data) != data {
			t.Fatalf("round %d: find on node-2 after a rewrite through %s: %+v %v, want %s with %s", round, writer.id, res, err, id, data)
		}
	}
}

// TestSnapshotReplicaFindsAlike: a member whose replicas all came by
// snapshot (the logs that held the writes were compacted) answers finds
// as brute force does, from its own vector index, and its index's
// nearest agree with the leader's.
func TestSnapshotReplicaFindsAlike(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	c.start("node-2")
	c.waitPlacement(2)
	g := querytest.New(5)
	items := g.Items(400) // 50 writes a partition, past LogKeep (20)
	querytest.Write(t, n1.node, "t", items)
	n3 := c.start("node-3")
	c.waitPlacement(3)
	if got := n3.node.Metrics().Replication.SnapshotsInstalled; got == 0 {
		t.Fatal("node-3 installed no snapshot: the test does not test what it says")
	}
	ctx := context.Background()
	waitIndex(t, n1, 4)
	waitIndex(t, n3, 4)
	querytest.Check(t, g, n3.node, "t", items, 15)
	for i := range 20 {
		q := []float32{float32(i%5) - 2, 1, float32(i % 3), -1}
		a, _ := n1.node.core.Nearest(ctx, "t", "", q, 10, nil)
		b, _ := n3.node.core.Nearest(ctx, "t", "", q, 10, nil)
		if !slices.Equal(a, b) {
			t.Fatalf("nearest %v: node-1 %v, node-3 (by snapshot) %v", q, a, b)
		}
	}
}

// TestFindWhileALeaderDies: a member crashes (no word to the others)
// while leading partitions; finds through another member, started at
// once, answer completely — each partition's read waits for its new
// leader — by scan and from the vector index alike, never with fewer
// items unflagged.
func TestFindWhileALeaderDies(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	c.start("node-2")
	c.start("node-3")
	c.waitPlacement(3)
	g := querytest.New(7)
	items := g.Items(200)
	querytest.Write(t, n1.node, "t", items)
	waitIndex(t, n1, 4)
	var victim *member
	led := 0
	for _, p := range n1.node.Metrics().Partitions {
		if m := c.members[p.Leader]; m != nil && m != n1 {
			if victim == nil {
				victim = m
			}
			if m == victim {
				led++
			}
		}
	}
	if victim == nil {
		t.Fatal("node-1 leads every partition: nothing to kill")
	}
	c.crash(victim.id)
	t.Logf("killed %s, leader of %d partitions", victim.id, led)
	querytest.Check(t, g, n1.node, "t", items, 10)
}

// waitIndex asks m's vector index for tenant t's vectors of dims
// dimensions — the first find by vector has it built — and waits (30 s at
// most) until it answers.
func waitIndex(t *testing.T, m *member, dims int) {
	t.Helper()
	q := make([]float32, dims)
	q[0] = 1
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := m.node.core.Nearest(context.Background(), "t", "", q, 1, nil); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's vector index is not ready after 30 s", m.id)
		}
	}
}

// TestFindScattersOverMembers: in a cluster larger than the replication
// factor no member holds every partition; a find through any member asks
// the others for their shares and answers as brute force, page after
// page, never partial.
func TestFindScattersOverMembers(t *testing.T) {
	c := newTestCluster(t)
	ids := []string{"node-1", "node-2", "node-3", "node-4", "node-5"}
	for _, id := range ids {
		c.start(id)
	}
	c.waitPlacement(3)
	g := querytest.New(11)
	items := g.Items(250)
	querytest.Write(t, c.members["node-1"].node, "t", items)
	for _, id := range []string{"node-5", "node-2"} {
		m := c.members[id]
		if held, _ := m.node.heldPartitions(context.Background()); len(held) == 8 {
			t.Fatalf("%s holds every partition: the test does not test what it says", id)
		}
		querytest.Check(t, g, m.node, "t", items, 15)
	}
}

// TestFindNamesPartitionsWithoutQuorum: two of five members crash (the
// directory still lists them, so nothing is re-placed); the partitions
// that had two of their three voters there have no leader. A find
// through a survivor answers within its timeout, names exactly those
// partitions as missing, and holds every matching item of the others —
// by scan, by vector and across pages.
func TestFindNamesPartitionsWithoutQuorum(t *testing.T) {
	c := newTestCluster(t)
	c.findTimeout = 800 * time.Millisecond
	ids := []string{"node-1", "node-2", "node-3", "node-4", "node-5"}
	for _, id := range ids {
		c.start(id)
	}
	c.waitPlacement(3)
	g := querytest.New(13)
	items := g.Items(120)
	asker := c.members["node-5"]
	querytest.Write(t, asker.node, "t", items)
	voters := map[int][]string{}
	for _, m := range c.members {
		for _, p := range m.node.Metrics().Partitions {
			voters[p.ID] = p.Voters
		}
	}
	// The pair of members (not the asker) sharing the most partitions.
	var dead [2]string
	var lost []int
	for i, a := range ids[:4] {
		for _, b := range ids[i+1 : 4] {
			var both []int
			for p := range 8 {
				if slices.Contains(voters[p], a) && slices.Contains(voters[p], b) {
					both = append(both, p)
				}
			}
			if len(both) > len(lost) {
				dead, lost = [2]string{a, b}, both
			}
		}
	}
	if len(lost) == 0 || len(lost) == 8 {
		t.Fatalf("placement %v: no pair of members to kill that loses some partitions and not all", voters)
	}
	for _, id := range dead {
		c.crash(id)
	}
	var missing []string
	for _, p := range lost {
		missing = append(missing, query.PartName(p))
	}
	t.Logf("killed %v: partitions %v lost their quorum", dead, lost)
	// The other partitions elect new leaders where they need to (a find
	// started before then waits for them, within its budget:
	// TestFindWhileALeaderDies). Idle partitions are quiesced and, with
	// the dead still listed, learn of the loss from the first request that
	// needs their leader: reads of one item per partition through every
	// member stand for clients'.
	probe := map[int]string{}
	for _, it := range items {
		probe[core.PartitionOf("t", it.ID, 8)] = it.ID
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, m := range c.members {
			for _, id := range probe {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				_, _ = m.node.Get(ctx, "t", id)
				cancel()
			}
		}
		led := map[int]bool{}
		for _, m := range c.members {
			for _, p := range m.node.Metrics().Partitions {
				if p.Leader != "" && c.members[p.Leader] != nil {
					led[p.ID] = true
				}
			}
		}
		if len(led) == 8-len(lost) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions led after the crash: %v, want all but %v", led, lost)
		}
	}
	querytest.CheckPartial(t, g, asker.node, "t", items, 6, missing, func(it *item.Item) bool {
		return slices.Contains(lost, core.PartitionOf("t", it.ID, 8))
	})
}

// TestFindRefusesStrangeMissing: a member's answer naming as missing a
// partition it was not asked for is malformed, not passed on to the
// client.
func TestFindRefusesStrangeMissing(t *testing.T) {
	for _, m := range [][]string{{"p9"}, {"9"}, {"p-1"}, {"eu-west"}, {"p3", "p4x"}, {"p+3"}, {"p03"}} {
		if err := checkMissing(&query.Result{Missing: m}, []int{3, 4}); err == nil {
			t.Errorf("missing %q from a member asked for 3 and 4: accepted", m)
		}
	}
	if err := checkMissing(&query.Result{Missing: []string{"p4", "p3"}}, []int{3, 4}); err != nil {
		t.Fatal(err)
	}
}
