package query

import (
	"cmp"
	"slices"

	"github.com/soullabs/brainy/internal/item"
)

// Merge merges the results of q over disjoint sets of partitions (the
// members' shares of a scattered find) into q's result over all of them.
// Results that may hold the same items (regions' answers to a global
// find, each with its own copy) pass newer, and of each id the hit whose
// item newer says is the later is kept; disjoint ones pass nil.
//
// With Near, it is the K nearest of all the hits. Without, hits are in id
// order: every result is the first matches past the same cursor in its
// partitions, up to q.Limit, and one that stopped early (its cursor is
// set) may hold more matches past its last position that the others'
// hits do not account for. So the merged page takes hits only up to the
// smallest such position, then q.Limit and MaxResultBytes, and its cursor
// continues from the last hit taken — or from that position when no hit
// came before it. Since ids order every partition alike, one cursor is
// every partition's position.
//
// Missing is the union of the results', p2 before p10.
func Merge(q *Query, results []*Result, newer func(a, b *item.Item) bool) (*Result, error) {
	out := &Result{}
	for _, r := range results {
		out.Missing = append(out.Missing, r.Missing...)
	}
	if newer != nil {
		results = latest(results, newer)
	}
	// Shorter first: p2 before p10.
	slices.SortFunc(out.Missing, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) })
	out.Missing = slices.Compact(out.Missing)
	if q.Near != nil {
		h := &hitHeap{metric: q.Near.Metric}
		for _, r := range results {
			h.hits = append(h.hits, r.Hits...)
		}
		hits := h.sorted()
		out.Hits = hits[:min(q.Near.K, len(hits))]
		return out, nil
	}
	var all []Hit
	bounded, end := false, ""
	for _, r := range results {
		all = append(all, r.Hits...)
		if r.Cursor == "" {
			continue
		}
		at, err := item.CursorID(r.Cursor)
		if err != nil {
			return nil, err
		}
		if !bounded || at < end {
			bounded, end = true, at
		}
	}
	slices.SortFunc(all, func(a, b Hit) int { return cmp.Compare(a.ID, b.ID) })
	more, bytes := bounded, 0
	for _, h := range all {
		if bounded && h.ID > end || len(out.Hits) == q.Limit || bytes >= MaxResultBytes {
			more = true
			break
		}
		out.Hits = append(out.Hits, h)
		bytes += itemBytes(h.Item)
	}
	switch {
	case !more:
	case len(out.Hits) > 0:
		out.Cursor = item.ListCursor(out.Hits[len(out.Hits)-1].ID)
	case bounded:
		out.Cursor = item.ListCursor(end)
	}
	return out, nil
}

// latest returns results with one hit per id across them all: the one
// whose item newer says is the later.
func latest(results []*Result, newer func(a, b *item.Item) bool) []*Result {
	type place struct{ r, h int }
	at := map[string]place{}
	out := make([]*Result, len(results))
	for i, r := range results {
		out[i] = &Result{Cursor: r.Cursor}
		for _, h := range r.Hits {
			p, ok := at[h.ID]
			switch {
			case !ok:
				at[h.ID] = place{i, len(out[i].Hits)}
				out[i].Hits = append(out[i].Hits, h)
			case newer(h.Item, out[p.r].Hits[p.h].Item):
				out[p.r].Hits[p.h] = h
			}
		}
	}
	return out
}
