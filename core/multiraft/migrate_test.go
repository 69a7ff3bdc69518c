package multiraft

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

// cloneStore copies every key of src into a new memory store.
func cloneStore(t *testing.T, src tiers.Store) *memory.Store {
	t.Helper()
	it, err := src.NewIter(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var b tiers.Batch
	for it.Next() {
		b.Set(it.Key(), it.Value())
	}
	dst := memory.New()
	if err := dst.Apply(context.Background(), &b, true); err != nil {
		t.Fatal(err)
	}
	return dst
}

// sameLog fails unless l holds exactly what store's in-store log holds.
func sameLog(t *testing.T, store tiers.Store, l *raftlog.Log) {
	t.Helper()
	ctx := context.Background()
	groups, _, err := storedRaftKeys(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) == 0 {
		t.Fatal("the store holds no raft log")
	}
	if got := l.Groups(); len(got) != len(groups) {
		t.Fatalf("the log holds groups %v, the store %v", got, groups)
	}
	for _, g := range groups {
		want, err := loadGroup(ctx, store, g)
		if err != nil {
			t.Fatal(err)
		}
		st, ents, err := l.Load(raftlog.GroupID(g))
		if err != nil {
			t.Fatal(err)
		}
		if st.Compacted != want.compacted || st.CompactedTerm != want.compactedTerm || !proto.Equal(st.HardState, want.hs) {
			t.Fatalf("group %d: the log holds %+v, the store compaction point %d/%d and hard state %v", g, st, want.compacted, want.compactedTerm, want.hs)
		}
		if len(ents) != len(want.ents) {
			t.Fatalf("group %d: %d entries in the log, %d in the store", g, len(ents), len(want.ents))
		}
		for i, e := range ents {
			w := want.ents[i]
			if e.GetIndex() != w.GetIndex() || e.GetTerm() != w.GetTerm() || e.GetType() != w.GetType() || !bytes.Equal(e.GetData(), w.GetData()) {
				t.Fatalf("group %d: entry %v in the log, %v in the store", g, e, w)
			}
		}
	}
}

// TestMigrateFromStore: nodes that kept their raft logs in their stores
// (compacted, so with truncation points) restart with dedicated logs: the
// logs get exactly what the stores held, the stores' raft keys go, and the
// groups go on. A migration interrupted after the log's write is finished
// at the next start without copying again.
func TestMigrateFromStore(t *testing.T) {
	ctx := context.Background()
	c := emptyCluster(t, false, []GroupID{3, 5}, 4)
	c.ids = []NodeID{1, 2, 3}
	for _, id := range c.ids {
		c.start(id)
	}
	for _, g := range c.groups {
		for i := range 30 {
			c.propose(g, fmt.Sprintf("g%d-before-%d", g, i))
		}
		c.waitSame(g, 30)
	}
	for _, id := range c.ids {
		c.stop(id)
	}

	for _, g := range c.groups {
		if p, err := loadGroup(ctx, c.stores[1], g); err != nil || p.compacted == 0 || len(p.ents) == 0 {
			t.Fatalf("group %d: want a compacted log with entries: %+v, %v", g, p, err)
		}
	}
	// The move itself, on a copy of node 1's store.
	store := cloneStore(t, c.stores[1])
	if _, keys, _ := storedRaftKeys(ctx, store); len(keys) == 0 {
		t.Fatal("the store holds no raft keys")
	}
	l, err := raftlog.Open(raftlog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := migrate(ctx, store, l, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	sameLog(t, c.stores[1], l)
	if _, keys, _ := storedRaftKeys(ctx, store); len(keys) != 0 {
		t.Fatalf("%d raft keys left in the store", len(keys))
	}
	// Interrupted after the log's write: the keys are still there. The
	// next start deletes them and leaves the log as it is.
	before := l.Stats().Writes
	leftovers := cloneStore(t, c.stores[1])
	if err := migrate(ctx, leftovers, l, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if l.Stats().Writes != before {
		t.Fatal("a migration found the log written and copied into it again")
	}
	if _, keys, _ := storedRaftKeys(ctx, leftovers); len(keys) != 0 {
		t.Fatalf("%d raft keys left in the store", len(keys))
	}
	sameLog(t, c.stores[1], l)

	// The nodes restart on their stores with dedicated logs (their state
	// machines kept, as a durable one's would be), and go on.
	c.dedicated = true
	for _, id := range c.ids {
		c.restartKeeping(id)
	}
	for _, g := range c.groups {
		c.propose(g, fmt.Sprintf("g%d-after", g))
		got := c.waitSame(g, 31)
		if got[0] != fmt.Sprintf("g%d-before-0", g) || got[30] != fmt.Sprintf("g%d-after", g) {
			t.Fatalf("group %d after the move: %v", g, got)
		}
	}
	for _, id := range c.ids {
		if _, keys, _ := storedRaftKeys(ctx, c.stores[id]); len(keys) != 0 {
			t.Fatalf("node %d: %d raft keys left in the store", id, len(keys))
		}
		if gs := c.logs[id].Groups(); len(gs) != len(c.groups) {
			t.Fatalf("node %d: the log holds groups %v", id, gs)
		}
	}
	// And again, from the dedicated logs alone.
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.restartKeeping(id)
	}
	for _, g := range c.groups {
		c.propose(g, fmt.Sprintf("g%d-again", g))
		c.waitSame(g, 32)
	}
}
