package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
)

// bigData is a JSON string of exactly item.MaxItemBytes bytes that names
// id, so a mixed-up item shows.
func bigData(id string) []byte {
	s := `"` + id + ":"
	return []byte(s + strings.Repeat("x", item.MaxItemBytes-len(s)-1) + `"`)
}

// waitLocal waits until m's own replica holds id with data want (a stale
// read: the local copy, not the leader's).
func waitLocal(t *testing.T, m *member, id string, want []byte) {
	t.Helper()
	ctx := item.WithStaleReads(context.Background())
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var it *item.Item
		if it, err = m.node.Core().Get(ctx, "t", id); err == nil {
			if string(it.Data) == string(want) {
				return
			}
			err = fmt.Errorf("holds %d bytes, want %d", len(it.Data), len(want))
		}
	}
	t.Fatalf("%s: %s: %v", m.id, id, err)
}

// TestMaxSizeItems: items at item.MaxItemBytes, written all at once through
// every node of a 3-node cluster, reach every replica; a node that joins
// later gets them by snapshot (LogKeep is small, so the log that held them
// is gone). Raft batches and snapshot chunks must stay under the transport's
// frame limit to carry them.
func TestMaxSizeItems(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector (see raceEnabled)")
	}
	c := newTestCluster(t)
	c.logKeep = 2
	ms := []*member{c.start("node-1"), c.start("node-2"), c.start("node-3")}
	c.waitPlacement(3)

	// An item of the largest size in every partition.
	var ids []string
	seen := map[int]bool{}
	for i := 0; len(ids) < 8; i++ {
		id := fmt.Sprint("big-", i)
		if p := core.PartitionOf("t", id, 8); !seen[p] {
			seen[p] = true
			ids = append(ids, id)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() {
			m, it := ms[i%len(ms)], &item.Item{ID: id, Data: bigData(id)}
			_, _, err := m.node.Put(context.Background(), "t", it, item.Cond{})
			// A put of the same value can be sent again.
			for deadline := time.Now().Add(30 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				_, _, err = m.node.Put(context.Background(), "t", it, item.Cond{})
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		data := bigData(id)
		for _, m := range ms {
			waitLocal(t, m, id, data)
		}
	}

	// Small writes after them push every partition's log past LogKeep.
	for i := range 64 {
		if _, err := ms[0].node.Add(context.Background(), "t", &item.Item{ID: fmt.Sprint("small-", i), Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	n4 := c.start("node-4")
	c.waitPlacement(3)
	if r := n4.node.Metrics().Replication; r.SnapshotsInstalled == 0 {
		t.Fatalf("node-4 caught up without snapshots: %+v", r)
	}
	held := map[int]bool{}
	for _, p := range n4.node.Metrics().Partitions {
		held[p.ID] = true
	}
	if len(held) == 0 {
		t.Fatal("node-4 holds no partition")
	}
	for _, id := range ids {
		if held[core.PartitionOf("t", id, 8)] {
			waitLocal(t, n4, id, bigData(id))
		}
	}
}
