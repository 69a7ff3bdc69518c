package core

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers/memory"
)

// jsonString is a JSON string of n bytes.
func jsonString(n int) []byte { return []byte(`"` + strings.Repeat("x", n-2) + `"`) }

// TestListPagesWithinByteBudget: items totalling several times
// item.MaxPageBytes list in pages whose encoding stays within the budget
// (a page of one item of the largest size excepted), every item exactly
// once and in order, with and without a type, whatever the limit.
func TestListPagesWithinByteBudget(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	defer s.Close()
	n := openNode(t, s)
	defer n.Close()
	var want []string
	for i := range 24 {
		id := fmt.Sprintf("item-%02d", i)
		size := 150 << 10
		switch i {
		case 5, 6, 17: // the largest items, two in a row
			size = item.MaxItemBytes
		case 9, 10:
			size = 10
		}
		if _, err := n.Add(ctx, "t", &item.Item{ID: id, Type: "doc", Data: jsonString(size)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	for _, opts := range []item.ListOptions{{Limit: 1000}, {Limit: 4}, {Type: "doc", Limit: 1000}} {
		var got []string
		for {
			page, err := n.List(ctx, "t", opts)
			if err != nil {
				t.Fatal(err)
			}
			if size := len(wire.AppendPage(nil, page)); size > item.MaxPageBytes && len(page.Items) > 1 {
				t.Errorf("%+v: a page of %d items takes %d bytes, over the budget of %d", opts, len(page.Items), size, item.MaxPageBytes)
			}
			if len(page.Items) == 0 || len(page.Items) > opts.Limit {
				t.Fatalf("%+v: a page of %d items", opts, len(page.Items))
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
			t.Fatalf("%+v: listed %v, want %v", opts, got, want)
		}
	}
}
