package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport/pki"
)

// TestReaderReplica: a reader holds a learner replica of every partition,
// serves stale reads from it while the voters have lost their quorum,
// never leads, and leaving costs the voters nothing: writes go on while
// it is gone, and it fills in again when it returns.
func TestReaderReplica(t *testing.T) {
	c := newTestCluster(t)
	c.readers["r"] = true
	a := c.start("a")
	c.start("b")
	c.start("c")
	c.start("r")
	c.waitPlacement(3)

	// c, a voter of every partition up to the end, never sees the reader
	// lead, whatever happens below.
	voter := c.members["c"]
	stop := make(chan struct{})
	var led atomic.Pointer[string]
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, p := range voter.node.Metrics().Partitions {
				if p.Leader == "r" {
					s := fmt.Sprintf("c saw the reader lead partition %d", p.ID)
					led.Store(&s)
				}
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		if s := led.Load(); s != nil {
			t.Error(*s)
		}
	}()

	var ids []string
	write := func(n int) {
		t.Helper()
		for range n {
			id := fmt.Sprint("item-", len(ids))
			if _, err := a.node.Add(context.Background(), "t", &item.Item{ID: id, Data: fmt.Appendf(nil, "%q", id)}); err != nil {
				t.Fatalf("writing %s: %v", id, err)
			}
			ids = append(ids, id)
		}
	}
	write(100)
	c.waitStaleReads(ids, c.members["r"])
	// Edges learn where stale reads may go from the pushed topology: the
	// reader is among the replicas of the partitions whose leader pushes.
	c.waitReaderRouted(a, "r")
	for _, n := range a.node.Metrics().Nodes.List {
		if n.ID == "r" && n.Role != "reader" {
			t.Errorf("a lists the reader as a %q", n.Role)
		}
	}

	// The reader leaves under writes: no write waits for it or fails.
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(100 * time.Millisecond)
		c.stop("r")
	}()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		write(1)
	}
	<-done
	write(50)

	// It returns with empty storage and is filled in again.
	c.start("r")
	c.waitPlacement(3)
	c.waitStaleReads(ids, c.members["r"])

	// Two voters of three down: no partition has a quorum, and the reader
	// still answers every item from its own replicas.
	c.stop("a")
	c.stop("b")
	r := c.members["r"]
	for _, id := range ids {
		it, err := r.node.Get(item.WithStaleReads(context.Background()), "t", id)
		if err != nil {
			t.Fatalf("a stale read of %s at the reader, two voters down: %v", id, err)
		}
		if string(it.Data) != fmt.Sprintf("%q", id) {
			t.Fatalf("the reader holds %s for %s", it.Data, id)
		}
	}
	st, err := r.node.Core().GroupStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st {
		if g.Leader == core.RaftID("r") {
			t.Errorf("the reader leads partition %d", g.Group)
		}
	}
}

// waitStaleReads waits until via answers every one of ids, read stale
// (from its own replica), with its value.
func (c *testCluster) waitStaleReads(ids []string, via *member) {
	c.t.Helper()
	ctx := item.WithStaleReads(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for {
			it, err := via.node.Get(ctx, "t", id)
			if err == nil && string(it.Data) == fmt.Sprintf("%q", id) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s never answered %s read stale: %v", via.id, id, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestReaderNeverFounds: a reader with the smallest id, alone or beside
// a voter that has not founded yet, founds nothing (its partitions would
// have it as their only voter); the voter founds.
func TestReaderNeverFounds(t *testing.T) {
	c := newTestCluster(t)
	client := clientAs(t, c, pki.RoleCore, "a")
	// The other member's address answers nothing: asking whether it is
	// clustered fails, as for a node still starting.
	dir := &directory{}
	node := func(id string, reader bool) *Node {
		return &Node{cfg: Config{Core: core.Config{NodeID: id}, Reader: reader, Directory: dir, Client: client},
			log: slog.New(slog.DiscardHandler)}
	}
	find := func(n *Node) (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		found, _, err := n.findCluster(ctx)
		return found, err
	}
	dir.set([]Peer{{ID: "0-reader", Reader: true, QUICAddr: "127.0.0.1:1"}})
	if found, err := find(node("0-reader", true)); found || err == nil {
		t.Fatalf("a reader alone: found %v, err %v; want it to wait", found, err)
	}
	dir.set([]Peer{{ID: "0-reader", Reader: true, QUICAddr: "127.0.0.1:1"}, {ID: "a", QUICAddr: "127.0.0.1:2"}})
	if found, err := find(node("0-reader", true)); found || err == nil {
		t.Fatalf("a reader beside a voter: found %v, err %v; want it to wait", found, err)
	}
	if found, err := find(node("a", false)); !found || err != nil {
		t.Fatalf("the voter beside a reader of a smaller id: found %v, err %v; want it to found", found, err)
	}
}

// waitReaderRouted waits until via's pushed topology lists reader among
// the stale-read replicas of every partition via leads.
func (c *testCluster) waitReaderRouted(via *member, reader string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := routedFeed{n: via.node}.Topology()
		topo, err := wire.DecodeTopology(b)
		if err != nil {
			c.t.Fatal(err)
		}
		missing, led := -1, 0
		for p, l := range topo.Leaders {
			if l.Node < 0 || topo.Nodes[l.Node].ID != via.id {
				continue
			}
			led++
			if !slices.ContainsFunc(l.Replicas, func(i int) bool { return topo.Nodes[i].ID == reader }) {
				missing = p
			}
		}
		if missing < 0 && led > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s's topology never lists %s as a replica of partition %d", via.id, reader, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
