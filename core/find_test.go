package core

import (
	"context"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query/querytest"
	"github.com/soullabs/brainy/tiers"
)

// TestFindOnNode: finds on a node, memory and disk, answer as brute force
// over the items written, page after page; after rewrites and deletes,
// the answers follow at once (read-your-writes).
func TestFindOnNode(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()
		g := querytest.New(2)
		items := g.Items(300)
		querytest.Write(t, n, "t", items)
		querytest.Check(t, g, n, "t", items, 150)

		// Rewrite a third with new metadata, delete a tenth.
		fresh := g.Items(300)
		var now = items[:0:0]
		for i, it := range items {
			switch {
			case i%10 == 0:
				if err := n.Delete(context.Background(), "t", it.ID, item.Cond{}); err != nil {
					t.Fatal(err)
				}
			case i%3 == 0:
				querytest.Write(t, n, "t", fresh[i:i+1])
				now = append(now, fresh[i])
			default:
				now = append(now, it)
			}
		}
		querytest.Check(t, g, n, "t", now, 150)
	})
}
