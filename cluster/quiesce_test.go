package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
)

// TestQuiescedPartitionsFailOver: an idle cluster's partitions quiesce on
// every member; when the leader of some of them goes — leaving the
// directory, or crashing while it still lists it — the others elect new
// leaders and every partition takes writes again: woken by the directory
// change, or by the first write that cannot reach the old leader.
func TestQuiescedPartitionsFailOver(t *testing.T) {
	for _, mode := range []string{"leaves", "crashes"} {
		t.Run(mode, func(t *testing.T) {
			c := newTestCluster(t)
			for i := range 3 {
				c.start(fmt.Sprint("node-", i+1))
			}
			c.waitPlacement(3)
			via := c.members["node-1"]
			var ids []string
			for i := range 40 {
				id := fmt.Sprint("item-", i)
				ids = append(ids, id)
				if _, _, err := via.node.Put(context.Background(), "t", &item.Item{ID: id, Data: []byte(`1`)}, item.Cond{}); err != nil {
					t.Fatal(err)
				}
			}
			waitQuiesced(t, c, 8)
			// The victim leads partition 0; writes go through another.
			victim := via.node.Metrics().Partitions[0].Leader
			if victim == via.id {
				via = c.members["node-2"]
			}
			if mode == "leaves" {
				c.stop(victim)
			} else {
				c.crash(victim)
			}
			for _, id := range ids {
				deadline := time.Now().Add(15 * time.Second)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, _, err := via.node.Put(ctx, "t", &item.Item{ID: id, Data: []byte(`2`)}, item.Cond{})
					cancel()
					if err == nil {
						break
					}
					if !errors.Is(err, item.ErrUnavailable) && !errors.Is(err, item.ErrOutcomeUnknown) && !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("writing %s: %v", id, err)
					}
					if time.Now().After(deadline) {
						t.Fatalf("writing %s after %s %s: still %v", id, victim, mode, err)
					}
				}
			}
			for _, p := range via.node.Metrics().Partitions {
				if p.Leader == victim || p.Leader == "" {
					t.Errorf("partition %d led by %q after %s %s", p.ID, p.Leader, victim, mode)
				}
			}
		})
	}
}

// waitQuiesced waits until every member has parts partitions quiesced.
func waitQuiesced(t *testing.T, c *testCluster, parts int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := true
		for _, m := range c.members {
			if m.node.Metrics().Replication.Quiesced != parts {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for id, m := range c.members {
				t.Logf("%s: %d of %d partitions quiesced", id, m.node.Metrics().Replication.Quiesced, parts)
			}
			t.Fatal("partitions did not quiesce")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
