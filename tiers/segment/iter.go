package segment

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/google/btree"
	"golang.org/x/sync/errgroup"

	"github.com/soullabs/brainy/tiers"
)

// Iterator chunking: entries are taken from the snapshot a chunk at a time
// and the chunk's values fetched together, coalescing nearby records of one
// segment into one range read.
const (
	iterChunk      = 256     // entries per chunk
	iterChunkBytes = 4 << 20 // record bytes per chunk (at least one entry)
	coalesceGap    = 64 << 10
	// wholeSegmentRead: a segment this small is read whole by an
	// iterator, and every record in it cached. Small segments are what
	// a raft node writes (one per driver cycle); the keys of one range —
	// a raft group's log, a partition — are spread over many of them,
	// interleaved with other ranges', so without this each range read
	// would fetch one record, and loading every group's log at start
	// would cost a round trip per entry.
	wholeSegmentRead = 64 << 10
	maxRangeRead     = 8 << 20
	// fetchParallelism bounds an iterator's concurrent range reads.
	fetchParallelism = 8
)

// NewIter implements tiers.Store. The iterator walks a copy-on-write clone
// of the index, so it sees the store as of NewIter, and fetches values
// lazily. Segments its snapshot references are not deleted until it is
// closed, so iterators must be closed.
func (s *Store) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	s.mu.Lock() // Clone mutates the tree's copy-on-write bookkeeping.
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	it := &iter{s: s, ctx: ctx, snap: s.tree.Clone(), next: bytes.Clone(lower), upper: bytes.Clone(upper), pos: -1}
	s.iters[it] = s.applied
	return it, nil
}

type iter struct {
	s *Store
	// ctx is NewIter's: tiers.Iterator's methods take none, and the lazy
	// reads belong to the iteration NewIter started.
	ctx   context.Context
	snap  *btree.BTreeG[entry]
	next  []byte // where the next chunk starts
	skip  bool   // the next chunk starts after next, not at it
	upper []byte
	ents  []entry
	vals  [][]byte
	pos   int
	done  bool
	err   error
}

func (it *iter) Next() bool {
	if it.err != nil {
		return false
	}
	it.pos++
	if it.pos < len(it.ents) {
		return true
	}
	if it.done || it.snap == nil {
		return false
	}
	return it.fill()
}

func (it *iter) fill() bool {
	it.ents, it.vals, it.pos = it.ents[:0], nil, 0
	size := int64(0)
	visit := func(e entry) bool {
		if it.skip && bytes.Equal(e.key, it.next) {
			return true
		}
		if len(it.ents) >= iterChunk || (len(it.ents) > 0 && size+e.n > iterChunkBytes) {
			return false
		}
		it.ents = append(it.ents, e)
		size += e.n
		return true
	}
	pivot := entry{key: it.next}
	complete := true // whether the walk reached the end of the range
	wrapped := func(e entry) bool {
		if !visit(e) {
			complete = false
			return false
		}
		return true
	}
	if it.upper == nil {
		it.snap.AscendGreaterOrEqual(pivot, wrapped)
	} else {
		it.snap.AscendRange(pivot, entry{key: it.upper}, wrapped)
	}
	it.done = complete
	if len(it.ents) == 0 {
		it.done = true
		return false
	}
	it.next, it.skip = it.ents[len(it.ents)-1].key, true
	if it.s.closed.Load() {
		it.err = tiers.ErrClosed
		return false
	}
	vals, err := it.s.fetch(it.ctx, it.ents)
	if err != nil {
		it.err = err
		return false
	}
	it.vals = vals
	return true
}

func (it *iter) Key() []byte   { return it.ents[it.pos].key }
func (it *iter) Value() []byte { return it.vals[it.pos] }
func (it *iter) Err() error    { return it.err }

func (it *iter) Close() error {
	if it.snap == nil {
		return nil
	}
	it.s.mu.Lock()
	delete(it.s.iters, it)
	it.s.mu.Unlock()
	it.snap, it.ents, it.vals = nil, nil, nil
	return nil
}

// fetch returns the values of ents, from the cache or with range reads
// that cover nearby records of one segment at once. Values may be shared
// with the cache: callers must not modify them.
func (s *Store) fetch(ctx context.Context, ents []entry) ([][]byte, error) {
	vals := make([][]byte, len(ents))
	bySeg := map[uint64][]int{}
	for i, e := range ents {
		if v, ok := s.cache.get(loc{e.seq, e.off}); ok {
			vals[i] = v
			continue
		}
		bySeg[e.seq] = append(bySeg[e.seq], i)
	}
	// One range read per run of nearby records, a few at a time: listings
	// over many segments are bounded by round trips, not bandwidth.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallelism)
	for seq, idx := range bySeg {
		if s.cache != nil {
			s.mu.RLock()
			info := s.segs[seq]
			s.mu.RUnlock()
			if info != nil && info.size <= wholeSegmentRead {
				g.Go(func() error { return s.fetchWhole(gctx, seq, ents, idx, vals) })
				continue
			}
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ents[a].off, ents[b].off) })
		for len(idx) > 0 {
			start, end := ents[idx[0]].off, ents[idx[0]].off+ents[idx[0]].n
			n := 1
			for n < len(idx) {
				e := ents[idx[n]]
				if e.off > end+coalesceGap || e.off+e.n-start > maxRangeRead {
					break
				}
				end = max(end, e.off+e.n)
				n++
			}
			run := idx[:n]
			idx = idx[n:]
			g.Go(func() error {
				b, err := s.objs.GetRange(gctx, segKey(seq), start, end-start)
				if err != nil {
					return fmt.Errorf("segment: reading %s: %w", segKey(seq), err)
				}
				for _, i := range run {
					e := ents[i]
					if e.off-start+e.n > int64(len(b)) {
						return corrupt("%s ends before the record of %q at %d", segKey(seq), e.key, e.off)
					}
					v, err := checkRecord(b[e.off-start:], e)
					if err != nil {
						return err
					}
					vals[i] = v
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return vals, nil
}

// fetchWhole reads segment seq whole, checks it, caches every value it
// holds, and sets vals[i] for the entries idx of ents in it.
func (s *Store) fetchWhole(ctx context.Context, seq uint64, ents []entry, idx []int, vals [][]byte) error {
	_, recs, err := s.readSegment(ctx, seq)
	if err != nil {
		return err
	}
	at := make(map[int64]record, len(recs))
	for _, r := range recs {
		at[r.Off] = r
		if !r.Del {
			// A copy: a cached value must not pin the whole segment.
			s.cache.add(loc{seq, r.Off}, bytes.Clone(r.Value))
		}
	}
	for _, i := range idx {
		e := ents[i]
		r, ok := at[e.off]
		if !ok || r.Del || r.Len != e.n || !bytes.Equal(r.Key, e.key) {
			return corrupt("%s has no record of %q at offset %d", segKey(seq), e.key, e.off)
		}
		vals[i] = r.Value
	}
	return nil
}
