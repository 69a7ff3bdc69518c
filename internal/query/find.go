package query

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/soullabs/brainy/internal/item"
)

// Lister is what a find scans: a node, a cluster or an edge.
type Lister interface {
	List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error)
}

// WhereLister is what a Lister may also offer: a list narrowed by an
// index to items that may match where — every match, in id order, with
// List's pages and cursors, and maybe items that do not match, which the
// find then drops. Find uses it for finds that name a type.
type WhereLister interface {
	ListWhere(ctx context.Context, tenant string, opts item.ListOptions, where *Filter) (*item.Page, error)
}

// Hit is an item a find returns, with its score when the find ranks.
type Hit struct {
	*item.Item
	// Score is the similarity (cosine, dot: higher is nearer) or distance
	// (l2: lower is nearer) to Near.Vector; zero without Near.
	Score float64
}

// Result is a find's answer.
type Result struct {
	// Hits come in id order, or nearest first with Near.
	Hits []Hit
	// Cursor continues the find, when not empty (without Near).
	Cursor string
	// Missing names what did not answer in time: partitions (PartName)
	// or, for a find of every region, regions by name. Hits are then the
	// answer of the rest only: the result is partial, never silently
	// short.
	Missing []string
}

// Partial reports whether part of the data did not answer (Missing).
func (r *Result) Partial() bool { return len(r.Missing) > 0 }

// PartName is how a result's Missing names partition p.
func PartName(p int) string { return "p" + strconv.Itoa(p) }

// Scatterer is what a Lister may also offer: it runs finds itself,
// where its partitions are (a cluster: every member finds in the
// partitions it holds, and the answers are merged), and says which
// partitions did not answer. Find hands it every query.
type Scatterer interface {
	FindScattered(ctx context.Context, tenant string, q *Query) (*Result, error)
}

// Bounds of one find request. A find without Near that has scanned
// MaxScan items, or gathered MaxResultBytes of matches, answers what it
// has with a cursor to continue from: fewer than Limit items with a
// cursor means "more may follow", as a list's page does. A find with Near
// must read everything; its k nearest may hold at most MaxNearBytes.
const (
	MaxScan        = 100_000
	MaxResultBytes = item.MaxPageBytes
	MaxNearBytes   = 64 << 20
)

// Find runs q over tenant's items in src: it lists the items of q.Type in
// id order and keeps those q.Where matches — up to q.Limit, or, with
// q.Near, the q.Near.K nearest. Where src has indexes it lists fewer: a
// WhereLister's candidates for q.Where, an Indexed's nearest candidates
// for a cosine Near; every item kept is still judged by q itself. A
// Scatterer (a cluster) runs q itself.
func Find(ctx context.Context, src Lister, tenant string, q *Query) (*Result, error) {
	if s, ok := src.(Scatterer); ok {
		return s.FindScattered(ctx, tenant, q)
	}
	if q.Consistency == "stale" {
		ctx = item.WithStaleReads(ctx)
	}
	opts := item.ListOptions{Type: q.Type, Limit: item.MaxListLimit, Cursor: q.Cursor}
	if q.Near != nil {
		return findNear(ctx, src, tenant, q, opts)
	}
	list := src.List
	if wl, ok := src.(WhereLister); ok && q.Type != "" && q.Where != nil {
		list = func(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
			return wl.ListWhere(ctx, tenant, opts, q.Where)
		}
	}
	res := &Result{}
	scanned, bytes := 0, 0
	for {
		page, err := list(ctx, tenant, opts)
		if err != nil {
			return nil, err
		}
		for i, it := range page.Items {
			scanned++
			if q.Where.Match(NewDoc(it)) {
				res.Hits = append(res.Hits, Hit{Item: it})
				bytes += itemBytes(it)
			}
			more := i < len(page.Items)-1 || page.Cursor != ""
			if len(res.Hits) == q.Limit || bytes >= MaxResultBytes || scanned >= MaxScan {
				if more {
					res.Cursor = item.ListCursor(it.ID)
				}
				return res, nil
			}
		}
		if page.Cursor == "" {
			return res, nil
		}
		opts.Cursor = page.Cursor
	}
}

func findNear(ctx context.Context, src Lister, tenant string, q *Query, opts item.ListOptions) (*Result, error) {
	if ix, ok := src.(Indexed); ok && q.Near.Metric == Cosine {
		res, ok, err := findIndexed(ctx, ix, tenant, q)
		if ok || err != nil {
			return res, err
		}
	}
	n := q.Near
	h := &hitHeap{metric: n.Metric}
	held := 0
	for {
		page, err := src.List(ctx, tenant, opts)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			score, ok := Score(n.Metric, n.Vector, it.Vector)
			if !ok || !q.Where.Match(NewDoc(it)) {
				continue
			}
			hit := Hit{Item: it, Score: score}
			if h.Len() < n.K {
				heap.Push(h, hit)
				held += itemBytes(it)
			} else if h.better(hit, h.hits[0]) {
				held += itemBytes(it) - itemBytes(h.hits[0].Item)
				h.hits[0] = hit
				heap.Fix(h, 0)
			}
			if held > MaxNearBytes {
				return nil, item.Invalid("result_too_large", "the %d nearest items hold more than %d MiB; ask for fewer (near.k)", n.K, MaxNearBytes>>20)
			}
		}
		if page.Cursor == "" {
			break
		}
		opts.Cursor = page.Cursor
	}
	return &Result{Hits: h.sorted()}, nil
}

// Score compares an item's vector to the query's: ok is false when the
// item has no vector of the query's dimension, or, for cosine, either is
// all zeros.
func Score(m Metric, q, v []float32) (float64, bool) {
	if len(v) != len(q) {
		return 0, false
	}
	var dot, nq, nv, l2 float64
	for i := range q {
		a, b := float64(q[i]), float64(v[i])
		dot += a * b
		nq += a * a
		nv += b * b
		l2 += (a - b) * (a - b)
	}
	switch m {
	case Dot:
		return dot, true
	case L2:
		return math.Sqrt(l2), true
	}
	if nq == 0 || nv == 0 {
		return 0, false
	}
	return dot / math.Sqrt(nq*nv), true
}

// hitHeap keeps the k best hits with the worst on top.
type hitHeap struct {
	hits   []Hit
	metric Metric
}

// better reports whether a ranks before b: nearer, then the smaller id.
func (h *hitHeap) better(a, b Hit) bool {
	if a.Score != b.Score {
		if h.metric == L2 {
			return a.Score < b.Score
		}
		return a.Score > b.Score
	}
	return cmp.Less(a.ID, b.ID)
}

// sorted returns the hits, nearest first.
func (h *hitHeap) sorted() []Hit {
	slices.SortFunc(h.hits, func(a, b Hit) int {
		if h.better(a, b) {
			return -1
		}
		return 1
	})
	return h.hits
}

func (h *hitHeap) Len() int           { return len(h.hits) }
func (h *hitHeap) Less(i, j int) bool { return h.better(h.hits[j], h.hits[i]) } // the worst on top
func (h *hitHeap) Swap(i, j int)      { h.hits[i], h.hits[j] = h.hits[j], h.hits[i] }
func (h *hitHeap) Push(x any)         { h.hits = append(h.hits, x.(Hit)) }
func (h *hitHeap) Pop() any {
	x := h.hits[len(h.hits)-1]
	h.hits = h.hits[:len(h.hits)-1]
	return x
}

func itemBytes(it *item.Item) int {
	return len(it.ID) + len(it.Type) + len(it.Data) + len(it.Metadata) + 4*len(it.Vector) + 128
}

// Indexed is what a Lister may also offer: a nearest-neighbour index (by
// cosine) to take candidates from, and reads to verify them with.
type Indexed interface {
	// Nearest returns the ids of up to n items of tenant (of type typ, or
	// any) that where matches (nil: all) and whose vectors are probably
	// nearest to vec; ok is false when no index covers the tenant here.
	// With ok, reads of ctx made stale (item.WithStaleReads) see every
	// write acknowledged before the call, unless ctx already asked for
	// stale reads: the local replicas have caught up.
	Nearest(ctx context.Context, tenant, typ string, vec []float32, n int, where *Filter) (ids []string, ok bool)
	Get(ctx context.Context, tenant, id string) (*item.Item, error)
}

// findIndexed answers a cosine find from an index: it takes the nearest
// candidates that match (the index applies where during its walk), reads
// each — an index may lag, so a deleted or rewritten item is judged by
// what it is now — keeps those the query still matches and ranks them
// exactly. ok is false when no index can answer; the find then scans.
func findIndexed(ctx context.Context, ix Indexed, tenant string, q *Query) (_ *Result, ok bool, _ error) {
	n := q.Near
	// A few more candidates than asked for: some may have changed since
	// the index saw them.
	ids, ok := ix.Nearest(ctx, tenant, q.Type, n.Vector, n.K+n.K/4+4, q.Where)
	if !ok {
		return nil, false, nil
	}
	// Nearest brought the local replicas up to date: the candidates are
	// read there, not through their leaders.
	items, err := getAll(item.WithStaleReads(ctx), ix, tenant, ids)
	if err != nil {
		return nil, false, err
	}
	h := &hitHeap{metric: n.Metric}
	held := 0
	for _, it := range items {
		if it == nil || (q.Type != "" && it.Type != q.Type) {
			continue
		}
		score, ok := Score(n.Metric, n.Vector, it.Vector)
		if ok && q.Where.Match(NewDoc(it)) {
			h.hits = append(h.hits, Hit{Item: it, Score: score})
			if held += itemBytes(it); held > MaxNearBytes {
				return nil, false, item.Invalid("result_too_large", "the %d nearest items hold more than %d MiB; ask for fewer (near.k)", n.K, MaxNearBytes>>20)
			}
		}
	}
	hits := h.sorted()
	return &Result{Hits: hits[:min(n.K, len(hits))]}, true, nil
}

// getAll reads ids, eight at a time; a missing item is nil.
func getAll(ctx context.Context, ix Indexed, tenant string, ids []string) ([]*item.Item, error) {
	out := make([]*item.Item, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			it, err := ix.Get(ctx, tenant, id)
			if errors.Is(err, item.ErrNotFound) {
				err = nil
			}
			out[i], errs[i] = it, err
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
