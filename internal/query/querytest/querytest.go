// Package querytest checks finds against brute force: it makes random
// items (metadata of mixed types, vectors) and random where trees, runs
// each find through a real lister — a node, a cluster, an edge — page
// after page, and compares every answer with the same query evaluated over
// the items it wrote, in memory.
package querytest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
)

// Store is what the check writes through and finds in.
type Store interface {
	query.Lister
	Put(ctx context.Context, tenant string, it *item.Item, cond item.Cond) (*item.Item, bool, error)
}

// Gen makes random items and queries from one seed.
type Gen struct{ rng *rand.Rand }

// New returns a generator seeded with seed.
func New(seed uint64) *Gen { return &Gen{rng: rand.New(rand.NewPCG(seed, 42))} }

var (
	langs  = []string{"en", "no", "de", "fr"}
	cities = []string{"Oslo", "Bergen", "Berlin"}
	tags   = []string{"red", "green", "blue"}
	types  = []string{"doc", "note", "img"}
)

// Items makes n items with ids item-0000…, of three types, with metadata
// fields that are sometimes missing, of varying JSON types, and 4-dim
// vectors on most.
func (g *Gen) Items(n int) []*item.Item {
	out := make([]*item.Item, n)
	for i := range out {
		meta := map[string]any{}
		if g.rng.IntN(5) > 0 {
			meta["lang"] = langs[g.rng.IntN(len(langs))]
		}
		if g.rng.IntN(5) > 0 {
			meta["n"] = g.rng.IntN(20)
		}
		if g.rng.IntN(8) == 0 {
			meta["n"] = fmt.Sprint(g.rng.IntN(20)) // a string where others have numbers
		}
		if g.rng.IntN(2) == 0 {
			var ts []string
			for _, t := range tags {
				if g.rng.IntN(2) == 0 {
					ts = append(ts, t)
				}
			}
			meta["tags"] = ts
		}
		if g.rng.IntN(3) == 0 {
			meta["addr"] = map[string]any{"city": cities[g.rng.IntN(len(cities))]}
		}
		if g.rng.IntN(6) == 0 {
			meta["flag"] = g.rng.IntN(2) == 0
		}
		if g.rng.IntN(10) == 0 {
			meta["gone"] = nil
		}
		mb, _ := json.Marshal(meta)
		it := &item.Item{ID: fmt.Sprintf("item-%04d", i), Type: types[g.rng.IntN(len(types))], Metadata: mb, Data: []byte(fmt.Sprint(i))}
		if g.rng.IntN(6) > 0 {
			it.Vector = g.vector()
		}
		out[i] = it
	}
	return out
}

func (g *Gen) vector() []float32 {
	v := make([]float32, 4)
	for i := range v {
		v[i] = float32(g.rng.IntN(21)-10) / 4
	}
	return v
}

// Where makes a random where tree, JSON.
func (g *Gen) Where(depth int) string {
	var parts []string
	for range 1 + g.rng.IntN(2) {
		parts = append(parts, g.clause(depth))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func (g *Gen) clause(depth int) string {
	r := g.rng.IntN(12)
	if depth > 0 && r < 3 {
		switch r {
		case 0:
			return fmt.Sprintf(`"and":[%s,%s]`, g.Where(depth-1), g.Where(depth-1))
		case 1:
			return fmt.Sprintf(`"or":[%s,%s]`, g.Where(depth-1), g.Where(depth-1))
		default:
			return fmt.Sprintf(`"not":%s`, g.Where(depth-1))
		}
	}
	pick := func(xs []string) string { return xs[g.rng.IntN(len(xs))] }
	switch g.rng.IntN(11) {
	case 0:
		return fmt.Sprintf(`"metadata.lang":%q`, pick(langs))
	case 1:
		return fmt.Sprintf(`"metadata.lang":{"in":[%q,%q]}`, pick(langs), pick(langs))
	case 2:
		return fmt.Sprintf(`"metadata.n":{"%s":%d}`, pick([]string{"gt", "gte", "lt", "lte"}), g.rng.IntN(20))
	case 3:
		return fmt.Sprintf(`"metadata.n":{"gte":%d,"lt":%d}`, g.rng.IntN(10), 5+g.rng.IntN(15))
	case 4:
		return fmt.Sprintf(`"metadata.tags":{"contains":%q}`, pick(tags))
	case 5:
		return fmt.Sprintf(`"metadata.addr.city":%q`, pick(cities))
	case 6:
		return fmt.Sprintf(`"metadata.%s":{"exists":%v}`, pick([]string{"flag", "gone", "addr", "n"}), g.rng.IntN(2) == 0)
	case 7:
		return fmt.Sprintf(`"metadata.lang":{"ne":%q}`, pick(langs))
	case 8:
		return fmt.Sprintf(`"type":%q`, pick(types))
	case 9:
		return fmt.Sprintf(`"metadata.flag":%v`, g.rng.IntN(2) == 0)
	default:
		return fmt.Sprintf(`"id":{"lt":"item-%04d"}`, g.rng.IntN(400))
	}
}

// Query makes a random find body: sometimes a type, usually a where,
// sometimes near, a small limit so that answers take several pages.
func (g *Gen) Query() string {
	var parts []string
	if g.rng.IntN(3) == 0 {
		parts = append(parts, fmt.Sprintf(`"type":%q`, types[g.rng.IntN(len(types))]))
	}
	if g.rng.IntN(5) > 0 {
		parts = append(parts, `"where":`+g.Where(2))
	}
	if g.rng.IntN(3) == 0 {
		v, _ := json.Marshal(g.vector())
		parts = append(parts, fmt.Sprintf(`"near":{"vector":%s,"k":%d,"metric":%q}`, v, 1+g.rng.IntN(15), []string{"cosine", "dot", "l2"}[g.rng.IntN(3)]))
	} else {
		parts = append(parts, fmt.Sprintf(`"limit":%d`, 1+g.rng.IntN(40)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Write puts items into s under tenant.
func Write(t testing.TB, s Store, tenant string, items []*item.Item) {
	t.Helper()
	for _, it := range items {
		if _, _, err := s.Put(context.Background(), tenant, it, item.Cond{}); err != nil {
			t.Fatalf("put %s: %v", it.ID, err)
		}
	}
}

// Check runs rounds random finds on s (holding items under tenant) and
// fails t at the first answer that differs from brute force: the same ids,
// in the same order, across every page; scores equal for near; no answer
// partial.
func Check(t testing.TB, g *Gen, s query.Lister, tenant string, items []*item.Item, rounds int) {
	t.Helper()
	CheckPartial(t, g, s, tenant, items, rounds, nil, nil)
}

// CheckPartial is Check where some of the data cannot answer: every page
// must name missing (sorted) as its Missing, and its items must be brute
// force over the items that lost does not report.
func CheckPartial(t testing.TB, g *Gen, s query.Lister, tenant string, items []*item.Item, rounds int, missing []string, lost func(*item.Item) bool) {
	t.Helper()
	var left []*item.Item
	for _, it := range items {
		if lost == nil || !lost(it) {
			left = append(left, it)
		}
	}
	ctx := context.Background()
	for round := range rounds {
		body := g.Query()
		q, err := query.Parse([]byte(body), item.Limits{})
		if err != nil {
			t.Fatalf("round %d: generated query %s: %v", round, body, err)
		}
		want := bruteForce(left, q)
		var got []query.Hit
		pages := 0
		for {
			res, err := query.Find(ctx, s, tenant, q)
			if err != nil {
				t.Fatalf("round %d: find %s: %v", round, body, err)
			}
			if !slices.Equal(res.Missing, missing) {
				t.Fatalf("round %d: find %s, page %d: missing %v, want %v", round, body, pages+1, res.Missing, missing)
			}
			got = append(got, res.Hits...)
			if pages++; res.Cursor == "" || pages > len(items)+1 {
				break
			}
			q.Cursor = res.Cursor
		}
		if d := diff(got, want, q.Near != nil); d != "" {
			t.Fatalf("round %d: find %s (%d pages): %s", round, body, pages, d)
		}
	}
}

// bruteForce evaluates q over items in memory: every item, filtered, in id
// order, or the k nearest (ties by id).
func bruteForce(items []*item.Item, q *query.Query) []query.Hit {
	var out []query.Hit
	for _, it := range items {
		if q.Type != "" && it.Type != q.Type {
			continue
		}
		if !q.Where.Match(query.NewDoc(it)) {
			continue
		}
		h := query.Hit{Item: it}
		if q.Near != nil {
			s, ok := query.Score(q.Near.Metric, q.Near.Vector, it.Vector)
			if !ok {
				continue
			}
			h.Score = s
		}
		out = append(out, h)
	}
	if q.Near == nil {
		slices.SortFunc(out, func(a, b query.Hit) int { return cmp.Compare(a.ID, b.ID) })
		return out
	}
	slices.SortFunc(out, func(a, b query.Hit) int {
		if a.Score != b.Score {
			if q.Near.Metric == query.L2 {
				return cmp.Compare(a.Score, b.Score)
			}
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out[:min(len(out), q.Near.K)]
}

func diff(got, want []query.Hit, scored bool) string {
	ids := func(hs []query.Hit) []string {
		var s []string
		for _, h := range hs {
			s = append(s, h.ID)
		}
		return s
	}
	if !slices.Equal(ids(got), ids(want)) {
		return fmt.Sprintf("got %d items %v, brute force %d %v", len(got), ids(got), len(want), ids(want))
	}
	for i := range got {
		if scored && got[i].Score != want[i].Score {
			return fmt.Sprintf("item %s scored %v, brute force %v", got[i].ID, got[i].Score, want[i].Score)
		}
	}
	return ""
}
