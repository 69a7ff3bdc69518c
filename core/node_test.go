package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
)

// stores runs f against every local backend.
func stores(t *testing.T, f func(t *testing.T, open func() tiers.Store)) {
	t.Run("memory", func(t *testing.T) {
		s := memory.New()
		f(t, func() tiers.Store { return s })
	})
	t.Run("disk", func(t *testing.T) {
		dir := t.TempDir()
		f(t, func() tiers.Store {
			s, err := disk.Open(disk.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func openNode(t *testing.T, s tiers.Store) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCRUD(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()

		it, err := n.Add(ctx, "t1", &item.Item{Type: "person", Data: json.RawMessage(`{ "name": "John" }`)})
		if err != nil {
			t.Fatal(err)
		}
		if it.ID == "" || it.Version == "" || string(it.Data) != `{"name":"John"}` || it.Tenant != "t1" {
			t.Fatalf("add returned %+v", it)
		}
		got, err := n.Get(ctx, "t1", it.ID)
		if err != nil || string(got.Data) != `{"name":"John"}` || got.Version != it.Version || got.Type != "person" {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if _, err := n.Add(ctx, "t1", &item.Item{ID: it.ID}); !errors.Is(err, item.ErrConflict) {
			t.Fatalf("second add of %s: %v, want ErrConflict", it.ID, err)
		}
		// Conditional replace with a stale version loses.
		if _, _, err := n.Put(ctx, "t1", &item.Item{ID: it.ID, Type: "person"}, item.Cond{IfMatch: "zzz"}); !errors.Is(err, item.ErrPreconditionFailed) {
			t.Fatalf("put with stale If-Match: %v", err)
		}
		up, created, err := n.Put(ctx, "t1", &item.Item{ID: it.ID, Type: "robot", Data: json.RawMessage(`{"name":"R2","age":3}`)}, item.Cond{IfMatch: it.Version})
		if err != nil || created || up.Version == it.Version || !up.CreatedAt.Equal(it.CreatedAt) {
			t.Fatalf("put = %+v, %v, %v", up, created, err)
		}
		typ := "droid"
		pt, err := n.Patch(ctx, "t1", it.ID, &item.Patch{Type: &typ, Data: json.RawMessage(`{"age":null,"color":"blue"}`), Metadata: json.RawMessage(`{"k":1}`)}, item.Cond{})
		if err != nil || string(pt.Data) != `{"name":"R2","color":"blue"}` || string(pt.Metadata) != `{"k":1}` || pt.Type != "droid" {
			t.Fatalf("patch = %+v, %v", pt, err)
		}
		page, err := n.List(ctx, "t1", item.ListOptions{Type: "robot"})
		if err != nil || len(page.Items) != 0 {
			t.Fatalf("list of old type = %+v, %v", page, err)
		}
		page, err = n.List(ctx, "t1", item.ListOptions{Type: "droid"})
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != it.ID {
			t.Fatalf("list of new type = %+v, %v", page, err)
		}
		if err := n.Delete(ctx, "t1", it.ID, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Get(ctx, "t1", it.ID); !errors.Is(err, item.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := n.Delete(ctx, "t1", it.ID, item.Cond{}); !errors.Is(err, item.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if m := n.Metrics(); m.Storage.Items != 0 || m.Operations.Adds != 2 {
			t.Fatalf("metrics = %+v", m)
		}
	})
}

func TestListPagesAcrossPartitions(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()
		var want []string
		for i := range 250 {
			id := fmt.Sprintf("item-%03d", i)
			typ := "even"
			if i%2 == 1 {
				typ = "odd"
			}
			if _, err := n.Add(ctx, "t", &item.Item{ID: id, Type: typ}); err != nil {
				t.Fatal(err)
			}
			if _, err := n.Add(ctx, "other", &item.Item{ID: id, Type: typ}); err != nil {
				t.Fatal(err)
			}
			if typ == "odd" {
				want = append(want, id)
			}
		}
		var got []string
		cursor := ""
		pages := 0
		for {
			page, err := n.List(ctx, "t", item.ListOptions{Type: "odd", Limit: 30, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, it := range page.Items {
				if it.Tenant != "t" {
					t.Fatalf("item of tenant %q in t's list", it.Tenant)
				}
				got = append(got, it.ID)
			}
			if page.Cursor == "" {
				break
			}
			cursor = page.Cursor
		}
		if !sort.StringsAreSorted(got) || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("listed %d ids, want %d in order", len(got), len(want))
		}
		if pages != 5 {
			t.Fatalf("%d pages, want 5", pages)
		}
		all, err := n.List(ctx, "t", item.ListOptions{Limit: 1000})
		if err != nil || len(all.Items) != 250 || all.Cursor != "" {
			t.Fatalf("list all: %d items, cursor %q, %v", len(all.Items), all.Cursor, err)
		}
	})
}

// TestConcurrentWritersShareCommits checks group commit: many concurrent
// writers, each write acknowledged, and fewer commits than writes.
func TestConcurrentWritersShareCommits(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		n := openNode(t, s)
		const writers, each = 32, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("w%d-%d", w, i)
					if _, _, err := n.Put(ctx, "t", &item.Item{ID: id, Data: json.RawMessage(`1`)}, item.Cond{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		m := n.Metrics()
		if m.Operations.StoredWrites != writers*each || m.Operations.Commits >= m.Operations.StoredWrites {
			t.Fatalf("writes %d, commits %d: want %d writes in fewer commits", m.Operations.StoredWrites, m.Operations.Commits, writers*each)
		}
		if m.Storage.Items != writers*each {
			t.Fatalf("items = %d", m.Storage.Items)
		}
		n.Close()
		s.Close()
		if _, isMem := s.(*memory.Store); isMem {
			return
		}
		// Reopen: everything acknowledged is there, counts included.
		s = open()
		defer s.Close()
		n = openNode(t, s)
		defer n.Close()
		if m := n.Metrics(); m.Storage.Items != writers*each {
			t.Fatalf("after reopen: items = %d", m.Storage.Items)
		}
		for w := range writers {
			for i := range each {
				if _, err := n.Get(ctx, "t", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					t.Fatalf("w%d-%d after reopen: %v", w, i, err)
				}
			}
		}
	})
}

// TestSameKeyRace: concurrent conditional creates of one id; exactly one wins.
func TestSameKeyRace(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()
		var mu sync.Mutex
		won, lost := 0, 0
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				_, _, err := n.Put(context.Background(), "t", &item.Item{ID: "k"}, item.Cond{IfNoneMatch: true})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, item.ErrPreconditionFailed):
					lost++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 || lost != 15 {
			t.Fatalf("won %d lost %d", won, lost)
		}
	})
}

// TestConcurrentPatchesLoseNothing: concurrent merges into one item each
// add a field; every field must survive. A stale read in the write path
// (a prefetched value older than a write it missed) would drop fields.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()
		if _, err := n.Add(ctx, "t", &item.Item{ID: "doc", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		const goroutines, each = 16, 30
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					patch := fmt.Sprintf(`{"g%d_%d":true}`, g, i)
					if _, err := n.Patch(ctx, "t", "doc", &item.Patch{Data: json.RawMessage(patch)}, item.Cond{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		it, err := n.Get(ctx, "t", "doc")
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]bool
		if err := json.Unmarshal(it.Data, &fields); err != nil {
			t.Fatal(err)
		}
		if len(fields) != goroutines*each {
			t.Fatalf("%d fields survived, want %d", len(fields), goroutines*each)
		}
	})
}

// TestProposalView pins down which source the write path trusts for an
// item's current value.
func TestProposalView(t *testing.T) {
	s := memory.New()
	var b tiers.Batch
	b.Set([]byte("k"), []byte("stored"))
	s.Apply(context.Background(), &b, true)
	n := &Node{store: s, recent: newRecentWrites()}
	key := []byte("k")
	p := &proposal{key: key, pre: []byte("prefetched"), preOK: true, preSeq: 5, prefetched: true}
	get := func() string {
		v, ok, err := proposalView{n: n, p: p}.get(key)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "<absent>"
		}
		return string(v)
	}
	if got := get(); got != "prefetched" {
		t.Fatalf("no recent write: got %q, want the prefetched value", got)
	}
	n.recent.put(key, []byte("older"), 4, nil)
	if got := get(); got != "prefetched" {
		t.Fatalf("recent write before preSeq: got %q, want the prefetched value", got)
	}
	n.recent.put(key, []byte("newer"), 6, nil)
	if got := get(); got != "newer" {
		t.Fatalf("recent write after preSeq: got %q", got)
	}
	n.recent.put(key, nil, 7, nil)
	if got := get(); got != "<absent>" {
		t.Fatalf("recent delete after preSeq: got %q", got)
	}
	// Once cycles after preSeq may have been pruned, the prefetch is not
	// trusted: the driver reads the store.
	n.recent = newRecentWrites()
	n.recent.prunedThrough = 6
	if got := get(); got != "stored" {
		t.Fatalf("stale prefetch: got %q, want the store's value", got)
	}
	// Pruning drops a cycle's writes only when no later cycle rewrote them.
	r := newRecentWrites()
	r.put([]byte("a"), []byte("1"), 1, nil)
	r.put([]byte("b"), []byte("1"), 1, nil)
	r.put([]byte("b"), []byte("2"), 2, nil)
	r.prune(recentCycles) // forgets cycle 1
	if _, ok := r.byKey["a"]; ok {
		t.Fatal("a from cycle 1 was not pruned")
	}
	if e := r.byKey["b"]; e.seq != 2 {
		t.Fatalf("b rewritten in cycle 2 was pruned: %+v", e)
	}
}

// TestApplyEmptyEntries: log entries without a command (raft's own) take
// an index; the next command's version is its clock time.
func TestApplyEmptyEntries(t *testing.T) {
	s := memory.New()
	sm := stateMachine{limits: item.DefaultLimits(), parts: make([]partState, 1)}
	sm.limits.EnsureDefaults()
	n := &Node{store: s, recent: newRecentWrites()}
	c := &cycle{touched: make([]bool, 1), states: make([]partState, 1)}
	w := cycleWriter{n: n, c: c}
	v := proposalView{n: n, p: &proposal{}}
	if res := sm.apply(v, w, 0, 1, nil); res.err != nil || res.item != nil {
		t.Fatalf("empty entry: %+v", res)
	}
	res := sm.apply(v, w, 0, 2, &Command{Op: OpPut, Now: 77, Tenant: "t", ID: "x", Data: []byte("1")})
	if res.err != nil || res.item.Version != FormatVersion(77, "") || sm.parts[0].applied != 2 {
		t.Fatalf("command after an empty entry: %+v, applied %d", res, sm.parts[0].applied)
	}
}

func TestSubscribeChanges(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	defer s.Close()
	n := openNode(t, s)
	defer n.Close()
	sub := n.SubscribeChanges(8)
	defer sub.Close()
	it, _, err := n.Put(ctx, "t", &item.Item{ID: "a", Data: json.RawMessage(`1`)}, item.Cond{})
	if err != nil {
		t.Fatal(err)
	}
	// The batch is published before the write is acknowledged.
	select {
	case batch := <-sub.C():
		if len(batch) != 1 || batch[0].Tenant != "t" || batch[0].ID != "a" || batch[0].Version != it.Version || batch[0].Deleted {
			t.Fatalf("change %+v, want t/a at %s", batch, it.Version)
		}
	default:
		t.Fatal("no change published by the time the write was acknowledged")
	}
	if err := n.Delete(ctx, "t", "a", item.Cond{}); err != nil {
		t.Fatal(err)
	}
	if batch := <-sub.C(); len(batch) != 1 || !batch[0].Deleted {
		t.Fatalf("delete published as %+v", batch)
	}
	// A subscriber that does not keep up loses batches and is told so.
	for i := range 20 {
		n.Put(ctx, "t", &item.Item{ID: fmt.Sprint("x", i)}, item.Cond{})
	}
	if !sub.Lost() {
		t.Fatal("20 commits into a buffer of 8 lost nothing?")
	}
}

// TestCycleKeepsLastItemWrite: a cycle that writes one item twice hands
// the committer one write of it, the last. The committer fills the record
// cache write by write after the store holds the whole cycle; with both
// writes listed, a read between the two would find the older value in the
// cache after another read found the newer one in the store (a stale read
// TestLinearizable caught about once in a hundred runs).
func TestCycleKeepsLastItemWrite(t *testing.T) {
	k1 := itemKey(nil, 3, "t", "a")
	k2 := itemKey(nil, 3, "t", "b")
	other := stateKey(3)
	check := func(t *testing.T, items []itemWrite, want ...string) {
		t.Helper()
		var got []string
		for _, w := range items {
			got = append(got, fmt.Sprintf("%q=%s", w.key, w.val))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("items %v, want %v", got, want)
		}
	}
	a, b := fmt.Sprintf("%q", k1), fmt.Sprintf("%q", k2)

	t.Run("single node", func(t *testing.T) {
		r := newRecentWrites()
		var items []itemWrite
		items = r.put(k1, []byte("1"), 7, items)
		items = r.put(k2, []byte("1"), 7, items)
		items = r.put(other, []byte("x"), 7, items)
		items = r.put(k1, []byte("2"), 7, items)
		items = r.put(k1, []byte("3"), 7, items)
		check(t, items, a+"=3", b+"=1")
		if e := r.byKey[string(k1)]; string(e.val) != "3" || e.seq != 7 {
			t.Fatalf("recent write of a: %q in cycle %d", e.val, e.seq)
		}
		items = r.put(k2, nil, 7, items)
		check(t, items, a+"=3", b+"=")
		// The next cycle starts its own list.
		items = r.put(k1, []byte("4"), 8, nil)
		check(t, items, a+"=4")
	})
	t.Run("replicated", func(t *testing.T) {
		r := &raftSM{n: &Node{}, overlay: map[string]overlayEntry{}}
		r.set(k1, []byte("1"))
		r.set(k2, []byte("1"))
		r.set(other, []byte("x"))
		r.set(k1, []byte("2"))
		r.del(k2)
		r.set(k1, []byte("3"))
		check(t, r.items, a+"=3", b+"=")
		if v, ok, _ := r.get(k1); !ok || string(v) != "3" {
			t.Fatalf("overlay read of a: %q %v", v, ok)
		}
	})
}
