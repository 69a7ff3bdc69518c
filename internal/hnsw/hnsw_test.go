package hnsw

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// clustered returns n vectors of dims dimensions around 50 centres
// (σ 0.3), the shape real embeddings have and the one that defeats a
// search that stops early; the same seed gives the same vectors.
func clustered(seed int64, n, dims int) [][]float32 {
	r := rand.New(rand.NewSource(seed))
	centres := make([][]float32, 50)
	for i := range centres {
		centres[i] = make([]float32, dims)
		for j := range centres[i] {
			centres[i][j] = float32(r.NormFloat64())
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[r.Intn(len(centres))]
		out[i] = make([]float32, dims)
		for j := range out[i] {
			out[i][j] = c[j] + float32(0.3*r.NormFloat64())
		}
	}
	return out
}

// exact is the truth: the k keys of live nearest q by metric m that
// accept admits.
func exact(m Metric, live map[string][]float32, q []float32, k int, accept func(string) bool) []string {
	g := New[struct{}](Config{Metric: m})
	qv, _ := g.prepare(q)
	type kd struct {
		k string
		d float32
	}
	var all []kd
	for key, v := range live {
		if accept != nil && !accept(key) {
			continue
		}
		pv, _ := g.prepare(v)
		all = append(all, kd{key, g.distance(qv, pv)})
	}
	slices.SortFunc(all, func(a, b kd) int {
		if a.d != b.d {
			if a.d < b.d {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []string
	for _, x := range all[:min(k, len(all))] {
		out = append(out, x.k)
	}
	return out
}

// recall is the share of want found in got.
func recall(got []Result[int], want []string) float64 {
	if len(want) == 0 {
		return 1
	}
	n := 0
	for _, w := range want {
		if slices.ContainsFunc(got, func(r Result[int]) bool { return r.Key == w }) {
			n++
		}
	}
	return float64(n) / float64(len(want))
}

func key(i int) string { return fmt.Sprintf("v%05d", i) }

// build adds vecs as key(i) → i and returns the graph and what it holds.
func build(t *testing.T, cfg Config, vecs [][]float32) (*Graph[int], map[string][]float32) {
	t.Helper()
	g := New[int](cfg)
	live := map[string][]float32{}
	for i, v := range vecs {
		if err := g.Add(key(i), v, i); err != nil {
			t.Fatal(err)
		}
		live[key(i)] = v
	}
	return g, live
}

// meanRecall runs queries against g and the truth and returns the mean
// recall@k.
func meanRecall(t *testing.T, g *Graph[int], m Metric, live map[string][]float32, queries [][]float32, k, ef int, accept func(string) bool) float64 {
	t.Helper()
	var sum float64
	for _, q := range queries {
		var f func(string, int) bool
		if accept != nil {
			f = func(key string, _ int) bool { return accept(key) }
		}
		got := g.Search(q, k, ef, f)
		for i, r := range got {
			if _, ok := live[r.Key]; !ok {
				t.Fatalf("search returned %s, which is not in the graph", r.Key)
			}
			if accept != nil && !accept(r.Key) {
				t.Fatalf("search returned %s, which the filter refuses", r.Key)
			}
			if i > 0 && r.Distance < got[i-1].Distance {
				t.Fatalf("results out of order at %d", i)
			}
		}
		sum += recall(got, exact(m, live, q, k, accept))
	}
	return sum / float64(len(queries))
}

// TestRecall: recall@10 against exact search on clustered vectors, for
// each metric. The build is deterministic, so the figures are too. The
// inner product is no metric (a vector is not its own nearest), and the
// neighbour heuristic, which leans on the triangle inequality, serves it
// less well: hnswlib shows the same.
func TestRecall(t *testing.T) {
	n, dims := 5000, 32
	if testing.Short() {
		n = 2000
	}
	vecs := clustered(1, n, dims)
	queries := clustered(2, 100, dims)
	for _, m := range []struct {
		metric Metric
		name   string
		want   float64
	}{{Cosine, "cosine", 0.95}, {L2, "l2", 0.95}, {Dot, "dot", 0.80}} {
		t.Run(m.name, func(t *testing.T) {
			g, live := build(t, Config{Metric: m.metric}, vecs)
			if g.Len() != n {
				t.Fatalf("Len %d, want %d", g.Len(), n)
			}
			r := meanRecall(t, g, m.metric, live, queries, 10, 64, nil)
			t.Logf("%s: recall@10 %.3f (ef 64, %d vectors)", m.name, r, n)
			if r < m.want {
				t.Errorf("%s: recall@10 %.3f, want ≥ %.2f", m.name, r, m.want)
			}
		})
	}
}

// TestFilteredRecall: a filter applied during the walk keeps the top k
// full and right, however selective, where filtering the unfiltered
// answer afterwards leaves it nearly empty.
func TestFilteredRecall(t *testing.T) {
	vecs := clustered(3, 4000, 32)
	queries := clustered(4, 50, 32)
	g, live := build(t, Config{}, vecs)
	for _, every := range []int{10, 100} { // 10% and 1% of the items
		accept := func(k string) bool {
			var i int
			fmt.Sscanf(k, "v%d", &i)
			return i%every == 0
		}
		r := meanRecall(t, g, Cosine, live, queries, 10, 64, accept)
		t.Logf("filter keeping 1/%d: recall@10 %.3f", every, r)
		if r < 0.95 {
			t.Errorf("filter keeping 1/%d: recall@10 %.3f, want ≥ 0.95", every, r)
		}
		// Filtering afterwards, for contrast: what the walk saves.
		var after float64
		for _, q := range queries {
			var kept []Result[int]
			for _, x := range g.Search(q, 10, 64, nil) {
				if accept(x.Key) {
					kept = append(kept, x)
				}
			}
			after += float64(len(kept)) / 10
		}
		if after/float64(len(queries)) > 0.5 {
			t.Errorf("filtering after the search kept %.2f of the top 10: the filter is not selective", after/float64(len(queries)))
		}
	}
}

// TestDeletesAndUpdates: deleted keys are never returned, replaced
// vectors are found at their new place, recall holds over what is left,
// and enough deletes rebuild the graph from the living.
func TestDeletesAndUpdates(t *testing.T) {
	vecs := clustered(5, 3000, 16)
	moved := clustered(6, 3000, 16)
	queries := clustered(7, 50, 16)
	g, live := build(t, Config{}, vecs)
	for i := range vecs {
		switch i % 3 {
		case 0:
			if !g.Delete(key(i)) {
				t.Fatalf("Delete(%s) found nothing", key(i))
			}
			delete(live, key(i))
		case 1:
			if err := g.Add(key(i), moved[i], -i); err != nil {
				t.Fatal(err)
			}
			live[key(i)] = moved[i]
		}
	}
	if g.Delete(key(0)) {
		t.Error("a second Delete found the key")
	}
	if g.Len() != len(live) {
		t.Fatalf("Len %d, want %d", g.Len(), len(live))
	}
	if g.dead > len(g.byKey) {
		t.Errorf("%d tombstones for %d living nodes: no rebuild", g.dead, len(g.byKey))
	}
	for i := 1; i < len(vecs); i += 3 {
		v, value, ok := g.Lookup(key(i))
		want, _ := g.prepare(moved[i])
		if !ok || value != -i || !slices.Equal(v, want) {
			t.Fatalf("Lookup(%s) = %v, %d, %v: not the replacement", key(i), v[:2], value, ok)
		}
	}
	if r := meanRecall(t, g, Cosine, live, queries, 10, 64, nil); r < 0.95 {
		t.Errorf("recall@10 after deletes and updates %.3f, want ≥ 0.95", r)
	}
	// A moved vector is its own nearest neighbour.
	for i := 1; i < 300; i += 3 {
		if got := g.Search(moved[i], 1, 64, nil); len(got) != 1 || got[0].Key != key(i) {
			t.Fatalf("searching %s's new vector found %v", key(i), got)
		}
	}
	// Deleting everything leaves an empty graph that takes a new dimension.
	for k := range live {
		g.Delete(k)
	}
	if g.Len() != 0 || g.Search(queries[0], 10, 64, nil) != nil {
		t.Fatal("an emptied graph still answers")
	}
	if err := g.Add("x", []float32{1, 2}, 0); err != nil {
		t.Fatalf("an emptied graph refuses a new dimension: %v", err)
	}
}

// TestBadVectors: what a tenant may send is refused with a reason,
// never indexed or panicked on.
func TestBadVectors(t *testing.T) {
	g := New[int](Config{})
	if err := g.Add("a", []float32{1, 0, 0}, 0); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]float32{"dimension": {1, 0}, "empty": {}, "zero": {0, 0, 0},
		"nan": {float32(math.NaN()), 0, 0}, "inf": {float32(math.Inf(1)), 0, 0}} {
		if err := g.Add("b", v, 0); err == nil {
			t.Errorf("%s: Add accepted %v", name, v)
		}
	}
	if !errors.Is(g.Add("b", []float32{1}, 0), ErrDimension) || !errors.Is(g.Add("b", []float32{0, 0, 0}, 0), ErrZeroVector) {
		t.Error("errors do not say why")
	}
	if g.Len() != 1 {
		t.Errorf("Len %d after refused adds", g.Len())
	}
	if got := g.Search([]float32{1, 0}, 1, 10, nil); got != nil {
		t.Errorf("a query of another dimension found %v", got)
	}
}

// TestExactWhenWide: a beam as wide as the graph is exact search.
func TestExactWhenWide(t *testing.T) {
	vecs := clustered(12, 500, 16)
	g := New[int](Config{M: 4, EfConstruction: 8}) // a poor graph: only the scan is exact
	live := map[string][]float32{}
	for i, v := range vecs {
		_ = g.Add(key(i), v, i)
		live[key(i)] = v
	}
	for _, q := range clustered(13, 30, 16) {
		got := g.Search(q, 10, g.Len(), nil)
		if r := recall(got, exact(Cosine, live, q, 10, nil)); r != 1 {
			t.Fatalf("recall %.2f with a beam as wide as the graph", r)
		}
	}
}

// TestDeterministic: the same operations give the same answers.
func TestDeterministic(t *testing.T) {
	vecs := clustered(8, 1500, 8)
	build := func() *Graph[int] {
		g := New[int](Config{M: 8})
		for i, v := range vecs {
			_ = g.Add(key(i), v, i)
			if i%5 == 0 {
				g.Delete(key(i / 2))
			}
		}
		return g
	}
	a, b := build(), build()
	for _, q := range clustered(9, 20, 8) {
		ra, rb := a.Search(q, 10, 32, nil), b.Search(q, 10, 32, nil)
		if !slices.Equal(ra, rb) {
			t.Fatalf("two builds answer %v and %v", ra, rb)
		}
	}
}

// FuzzGraph drives a small graph with adds, deletes and searches from
// the input: it never panics, never returns a key it does not hold or the
// filter refuses, and keeps Len true.
func FuzzGraph(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		g := New[int](Config{M: 2 + int(len(ops)%5), EfConstruction: 8, Metric: Metric(len(ops) % 3)})
		live := map[string]bool{}
		for i := 0; i+4 <= len(ops) && i < 4096; i += 4 {
			op, k := ops[i]%4, fmt.Sprint(ops[i+1]%32)
			v := []float32{float32(int8(ops[i+2])), float32(int8(ops[i+3])), float32(ops[i+1]%7) - 3}
			switch op {
			case 0, 1:
				if err := g.Add(k, v, int(ops[i+1])); err == nil {
					live[k] = true
				}
			case 2:
				if g.Delete(k) != live[k] {
					t.Fatalf("Delete(%s) disagrees with the model", k)
				}
				delete(live, k)
			case 3:
				odd := ops[i+1]%2 == 1
				for _, r := range g.Search(v, 1+int(ops[i+2]%8), 1+int(ops[i+3]%16), func(_ string, x int) bool { return !odd || x%2 == 1 }) {
					if !live[r.Key] || odd && r.Value%2 != 1 {
						t.Fatalf("search returned %s (value %d)", r.Key, r.Value)
					}
				}
			}
			if g.Len() != len(live) {
				t.Fatalf("Len %d, model %d", g.Len(), len(live))
			}
		}
	})
}

// BenchmarkAdd and BenchmarkSearch: 64-dim clustered vectors, M 16,
// efConstruction 200, ef 64.
func BenchmarkAdd(b *testing.B) {
	vecs := clustered(10, 20000, 64)
	g := New[int](Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(vecs) == 0 && i > 0 {
			g = New[int](Config{})
		}
		_ = g.Add(key(i%len(vecs)), vecs[i%len(vecs)], i)
	}
}

func BenchmarkSearch(b *testing.B) {
	vecs := clustered(10, 20000, 64)
	g := New[int](Config{})
	for i, v := range vecs {
		_ = g.Add(key(i), v, i)
	}
	queries := clustered(11, 1000, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.Search(queries[i%len(queries)], 10, 64, nil)
	}
}
