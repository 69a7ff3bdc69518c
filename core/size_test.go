package core

import (
	"context"
	"errors"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/memory"
)

// TestOversizedWritesNeverProposed: a put or a patch carrying more than
// item.MaxItemBytes is refused with item_too_large before it is proposed:
// it takes no log index, so no raft entry too large for a transport frame
// is ever written.
func TestOversizedWritesNeverProposed(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	defer s.Close()
	n := openNode(t, s)
	defer n.Close()
	// The partition's applied index, as stored with the write.
	applied := func(it *item.Item, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Get(ctx, stateKey(PartitionOf("t", it.ID, n.Partitions())))
		if err != nil {
			t.Fatal(err)
		}
		var ps partState
		if err := ps.decode(b); err != nil {
			t.Fatal(err)
		}
		return ps.applied
	}
	tooLarge := func(what string, err error) {
		t.Helper()
		var inv *item.InvalidError
		if !errors.As(err, &inv) || inv.Code != "item_too_large" {
			t.Fatalf("%s: %v, want item_too_large", what, err)
		}
	}
	put := func(data []byte) (*item.Item, error) {
		it, _, err := n.Put(ctx, "t", &item.Item{ID: "a", Data: data}, item.Cond{})
		return it, err
	}
	first := applied(put([]byte(`1`)))
	_, err := put(jsonString(item.MaxItemBytes + 1))
	tooLarge("put", err)
	_, err = n.Patch(ctx, "t", "a", &item.Patch{Data: append(append([]byte(`{"x":`), jsonString(item.MaxItemBytes)...), '}')}, item.Cond{})
	tooLarge("patch", err)
	if v := applied(put(jsonString(item.MaxItemBytes))); v != first+1 {
		t.Fatalf("the put after two refused writes was applied at %d, want %d: a refused write took a log index", v, first+1)
	}
}
