package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/memory"
)

// openSyncNode opens a one-node cluster (raft, no peers) on memory.
func openSyncNode(t *testing.T, parts int) *Node {
	t.Helper()
	store := memory.New()
	n, err := Open(context.Background(), Config{Store: store, Partitions: parts,
		Raft: &RaftConfig{ID: 1, Transport: noTransport{}, Bootstrap: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		store.Close()
	})
	return n
}

// syncApply merges values into green the way a follower does: regrouped
// by green's partitions.
func syncApply(t *testing.T, green *Node, values []RemoteValue) {
	t.Helper()
	groups := map[int][]RemoteValue{}
	for _, v := range values {
		p := PartitionOf(v.Tenant, v.ID, green.Partitions())
		groups[p] = append(groups[p], v)
	}
	for p, vs := range groups {
		if _, err := green.ApplyReplicated(context.Background(), p, "~sync", 0, 0, true, vs); err != nil {
			t.Fatalf("applying %d values to partition %d: %v", len(vs), p, err)
		}
	}
}

// TestSyncCopiesAndFollows: a copy of a cluster outside a federation,
// made of small pages, then its log from the applied index read before
// the first page, brings a cluster with another partition count to the
// same items with the same versions; deletes reach it although the source
// kept no tombstones, and so do other regions' values (OpReplicate).
func TestSyncCopiesAndFollows(t *testing.T) {
	ctx := context.Background()
	blue, green := openSyncNode(t, 3), openSyncNode(t, 5)
	put := func(id, data string) {
		t.Helper()
		if _, _, err := blue.Put(ctx, "t", &item.Item{ID: id, Data: json.RawMessage(data)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		put(fmt.Sprint("a", i), fmt.Sprint(i))
	}
	// The copy, in pages of at most 7 items, from the applied index first.
	positions := map[int]uint64{}
	copied := 0
	for p := range blue.Partitions() {
		positions[p], _ = blue.Committed(p)
		var cursor []byte
		for {
			values, next, err := blue.PartitionPage(ctx, p, cursor, 7, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(values) > 7 {
				t.Fatalf("a page of %d values", len(values))
			}
			copied += len(values)
			syncApply(t, green, values)
			if next == nil {
				break
			}
			cursor = next
		}
	}
	if copied != 40 {
		t.Fatalf("copied %d values, want 40", copied)
	}
	// Writes after the copy: a replace, a patch, deletes (no tombstones
	// here: not federated), a delete and re-create, another region's value.
	put("a1", `"new"`)
	if _, err := blue.Patch(ctx, "t", "a2", &item.Patch{Data: json.RawMessage(`{"x":1}`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a3", "a4", "a5"} {
		if err := blue.Delete(ctx, "t", id, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	put("a5", `"again"`)
	other := record{hlc: uint64(blue.Clock().Now()), origin: "eu", created: 1, updated: 1, data: []byte(`"from eu"`)}
	if _, err := blue.ApplyReplicated(ctx, PartitionOf("t", "eu1", 3), "eu", 0, 1, false,
		[]RemoteValue{{Tenant: "t", ID: "eu1", Record: other.append(nil)}}); err != nil {
		t.Fatal(err)
	}
	for p := range blue.Partitions() {
		for {
			ch, committed, err := blue.SyncChanges(ctx, p, positions[p], 200)
			if err != nil {
				t.Fatal(err)
			}
			syncApply(t, green, ch.Values)
			positions[p] = ch.To
			if ch.To >= committed {
				break
			}
		}
	}
	for i := range 40 {
		checkSame(t, blue, green, fmt.Sprint("a", i))
	}
	checkSame(t, blue, green, "eu1")
	if _, err := green.Get(ctx, "t", "a3"); !errors.Is(err, item.ErrNotFound) {
		t.Fatalf("a3, deleted in blue, in green: %v", err)
	}
}

func checkSame(t *testing.T, blue, green *Node, id string) {
	t.Helper()
	b, berr := blue.Get(context.Background(), "t", id)
	g, gerr := green.Get(context.Background(), "t", id)
	if (berr == nil) != (gerr == nil) {
		t.Fatalf("%s: blue %v, green %v", id, berr, gerr)
	}
	if berr == nil && (b.Version != g.Version || string(b.Data) != string(g.Data)) {
		t.Fatalf("%s: blue %s %s, green %s %s", id, b.Version, b.Data, g.Version, g.Data)
	}
}

// TestSyncState: a sync state is stored through raft and read back; bad
// ones are refused before they are proposed.
func TestSyncState(t *testing.T) {
	ctx := context.Background()
	n := openSyncNode(t, 2)
	if _, found, err := n.SyncState(ctx, 1, "b/7"); found || err != nil {
		t.Fatalf("before: %v %v", found, err)
	}
	if err := n.SaveSyncState(ctx, 1, "b/7", []byte("state")); err != nil {
		t.Fatal(err)
	}
	if s, found, err := n.SyncState(ctx, 1, "b/7"); string(s) != "state" || !found || err != nil {
		t.Fatalf("after: %q %v %v", s, found, err)
	}
	if err := n.SaveSyncState(ctx, 1, "", nil); err == nil {
		t.Fatal("a nameless state was saved")
	}
	if err := n.SaveSyncState(ctx, 1, "x", make([]byte, 5000)); err == nil {
		t.Fatal("a state of 5000 bytes was saved")
	}
	// Not an item: lists and counts do not see it.
	if m := n.Metrics(); m.Storage.Items != 0 {
		t.Fatalf("%d items", m.Storage.Items)
	}
}

// TestVersionsGrowAcrossDeletes: outside a federation a delete leaves no
// tombstone, yet an item created after it — even by a command made
// (stamped) before the delete's, applied after it — gets a later version
// than the delete gave, so a follower merging by version keeps it over
// the delete's tombstone (SyncChanges). The count survives the partition
// state's encoding, which snapshots carry.
func TestVersionsGrowAcrossDeletes(t *testing.T) {
	r := newSimRegion("")
	put := func(now int64, id string) *item.Item {
		t.Helper()
		res := r.apply(&Command{Op: OpPut, Now: now, Tenant: "t", ID: id, Data: []byte(`1`)})
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.item
	}
	put(100, "x")
	if res := r.apply(&Command{Op: OpDelete, Now: 105, Tenant: "t", ID: "x"}); res.err != nil {
		t.Fatal(res.err)
	}
	if got := r.sm.parts[0].deleted; got != 105 {
		t.Fatalf("the partition's latest deleted version is %d, want 105", got)
	}
	for _, id := range []string{"x", "y"} { // the same item again, or another
		if it := put(103, id); it.Version != FormatVersion(106, "") {
			t.Fatalf("%s created at 103 after a delete at 105: version %s, want %s", id, it.Version, FormatVersion(106, ""))
		}
	}
	var ps partState
	if err := ps.decode(r.sm.parts[0].encode()); err != nil || ps.deleted != 105 || ps.applied != r.sm.parts[0].applied {
		t.Fatalf("decoded %+v (%v), want deleted 105", ps, err)
	}
}
