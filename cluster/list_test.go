package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers/memory"
)

// TestMergedListPagesWithinByteBudget: a list merged from two nodes' pages
// (one core here, listing half the partitions each, as two nodes would)
// pages through items totalling several budgets with every merged page
// within item.MaxPageBytes (a page of one item of the largest size
// excepted) and every item exactly once, in order, whatever the limit.
func TestMergedListPagesWithinByteBudget(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	n, err := core.Open(ctx, core.Config{Store: store, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var want []string
	for i := range 30 {
		id := fmt.Sprintf("item-%02d", i)
		size := 100 << 10
		if i%7 == 3 {
			size = item.MaxItemBytes
		}
		data := []byte(`"` + strings.Repeat("x", size-2) + `"`)
		if _, err := n.Add(ctx, "t", &item.Item{ID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	halves := [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}}
	for _, limit := range []int{1000, 5} {
		var got []string
		opts := item.ListOptions{Limit: limit}
		for {
			var pages []*item.Page
			for _, parts := range halves {
				p, err := n.ListPartitions(ctx, "t", opts, parts)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, p)
			}
			page := MergePages(pages, limit, nil)
			if size := len(wire.AppendPage(nil, page)); size > item.MaxPageBytes && len(page.Items) > 1 {
				t.Errorf("limit %d: a merged page of %d items takes %d bytes, over the budget of %d", limit, len(page.Items), size, item.MaxPageBytes)
			}
			if len(page.Items) == 0 || len(page.Items) > limit {
				t.Fatalf("limit %d: a merged page of %d items", limit, len(page.Items))
			}
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if page.Cursor == "" {
				break
			}
			opts.Cursor = page.Cursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %v, want %v", limit, got, want)
		}
	}
}
