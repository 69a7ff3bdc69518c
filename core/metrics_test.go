package core

import (
	"context"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/memory"
)

// TestOperationTotals: metrics count reads (gets and lists) and writes
// (adds, updates, deletes) as totals beside the per-operation counts, and
// a store without a local volume reports no available space.
func TestOperationTotals(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	n, err := Open(ctx, Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	defer n.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := n.Add(ctx, "t", &item.Item{ID: id, Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Get(ctx, "t", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.List(ctx, "t", item.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(ctx, "t", "b", item.Cond{}); err != nil {
		t.Fatal(err)
	}
	m := n.Metrics()
	if o := m.Operations; o.Reads != 2 || o.Writes != 3 || o.StoredWrites == 0 {
		t.Errorf("reads %d (want 2), writes %d (want 3), stored writes %d", o.Reads, o.Writes, o.StoredWrites)
	}
	if m.Storage.Available != nil || m.Storage.Used != m.Storage.Bytes {
		t.Errorf("memory store: available %v (want none), used %d, bytes %d", m.Storage.Available, m.Storage.Used, m.Storage.Bytes)
	}
}
