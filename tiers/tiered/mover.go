package tiered

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/soullabs/brainy/tiers"
)

// MoverStat reports the mover's progress.
type MoverStat struct {
	// Running is true while a pass is under way.
	Running bool `json:"running"`
	// Passes counts the passes finished since Open.
	Passes uint64 `json:"passes"`
	// LastRun is when the last finished pass started (zero before one).
	LastRun time.Time `json:"last_run,omitzero"`
	// LastDuration is how long it took.
	LastDuration time.Duration `json:"last_duration"`
	// LastMoved counts the keys it moved down.
	LastMoved int64 `json:"last_moved"`
	// LastError is the error that ended it, if any.
	LastError string `json:"last_error,omitempty"`
	// Moved counts the keys moved down by every pass since Open.
	Moved int64 `json:"moved"`
}

type moverState struct {
	mu sync.Mutex
	st MoverStat // guarded by mu
}

// MoverStats reports the mover's progress.
func (s *Store) MoverStats() MoverStat {
	s.mover.mu.Lock()
	defer s.mover.mu.Unlock()
	return s.mover.st
}

// MoveNow runs one pass synchronously: demotion by age from hot to warm,
// demotion of the least recently used keys while hot is over HotMaxBytes or
// its disk under HotMinFreeBytes, and demotion by age from warm to cold. It
// waits for a pass of the background mover to end first.
func (s *Store) MoveNow(ctx context.Context) error {
	return s.pass(ctx, true)
}

// run is the mover goroutine.
func (s *Store) run(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.pass(ctx, false); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("mover pass failed", "component", "tiered", "err", err)
		}
	}
}

// pass runs one pass. full also scans warm for cold regardless of when it
// was last scanned.
func (s *Store) pass(ctx context.Context, full bool) error {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	if s.closed.Load() {
		return tiers.ErrClosed
	}
	start := time.Now()
	s.mover.mu.Lock()
	s.mover.st.Running = true
	s.mover.st.LastMoved = 0
	s.mover.st.LastError = ""
	s.mover.mu.Unlock()

	p := &passRun{s: s, ctx: ctx}
	if s.cfg.MaxMoveRate > 0 {
		p.every = time.Second / time.Duration(s.cfg.MaxMoveRate)
	}
	err := p.run(full)

	s.mover.mu.Lock()
	st := &s.mover.st
	st.Running = false
	st.Passes++
	st.LastRun = start
	st.LastDuration = time.Since(start)
	st.LastMoved = p.moved
	st.Moved += p.moved
	if err != nil {
		st.LastError = err.Error()
	}
	s.mover.mu.Unlock()
	if p.moved > 0 || err != nil {
		s.cfg.Logger.Info("mover pass", "component", "tiered", "moved", p.moved,
			"duration", time.Since(start), "err", err)
	}
	return err
}

// passRun is one pass's state.
type passRun struct {
	s     *Store
	ctx   context.Context
	every time.Duration // pause between moves; 0 for none
	next  time.Time     // earliest time of the next move
	moved int64
}

func (p *passRun) run(full bool) error {
	s := p.s
	now := s.now()
	if err := p.demoteIdle(0, now-int64(s.cfg.DemoteAfter/time.Second)); err != nil {
		return err
	}
	if need := s.hotExcess(); need > 0 {
		if err := p.demoteLRU(need); err != nil {
			return err
		}
	}
	if len(s.tiers) < 3 {
		return nil
	}
	if !full {
		// Listing warm is a full listing of an object store: once per
		// ColdAfter/30 keeps a key's stay in warm within ~3% of ColdAfter.
		if elapsed(now-s.lastCold.Load()) < max(s.cfg.ColdAfter/30, s.cfg.Interval) {
			return nil
		}
	}
	s.lastCold.Store(now)
	return p.demoteIdle(1, now-int64(s.cfg.ColdAfter/time.Second))
}

// candidate is a key a pass means to move, with its access time when
// listed: if that changed by the time of the move, the key was used since
// and stays. value is the listed value, kept only for moves below hot.
type candidate struct {
	key, value []byte
	access     int64
	size       int64
}

// Chunk bounds: a pass moves keys in batches of up to chunkKeys keys and
// about chunkBytes of values, one synced Apply per tier per batch, so an
// object store sees one write per batch, not per key. It holds no iterator
// open while it moves.
const (
	chunkKeys  = 256
	chunkBytes = 4 << 20
)

// demoteIdle moves from tier i to the tier below every key last accessed
// at or before cutoff (hot keys only if Demotable). It records tier i's
// key count.
func (p *passRun) demoteIdle(i int, cutoff int64) error {
	s := p.s
	var lower []byte
	var seen, moved int64
	for {
		var cands []candidate
		var size int64
		it, err := s.tiers[i].NewIter(p.ctx, lower, nil)
		if err != nil {
			return fmt.Errorf("tiered: list %s: %w", tierNames[i], err)
		}
		more := false
		for it.Next() {
			seen++
			k := it.Key()
			if i == 0 && !s.cfg.Demotable(k) {
				continue
			}
			t := s.access.get(k)
			if t > cutoff {
				continue
			}
			c := candidate{key: append([]byte(nil), k...), access: t}
			if i > 0 {
				// Below hot only the mover sets keys, so the listed value
				// is the one to move if the key is still there.
				c.value = append([]byte(nil), it.Value()...)
				size += int64(len(c.value))
			}
			cands = append(cands, c)
			if len(cands) == chunkKeys || size >= chunkBytes {
				more = true
				lower = append(append([]byte(nil), k...), 0) // the open iterator may still refer to the old bound
				break
			}
		}
		err = errors.Join(it.Err(), it.Close())
		if err != nil {
			return fmt.Errorf("tiered: list %s: %w", tierNames[i], err)
		}
		n, _, err := p.move(i, cands)
		moved += int64(n)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	s.stats[i].keys.Store(seen - moved)
	return nil
}

// hotExcess reports how many bytes should leave hot now for HotMaxBytes and
// HotMinFreeBytes to hold.
func (s *Store) hotExcess() int64 {
	var need int64
	if s.cfg.HotMaxBytes > 0 {
		if b := s.tiers[0].Stats().LiveBytes; b > s.cfg.HotMaxBytes {
			need = b - s.cfg.HotMaxBytes
		}
	}
	if s.cfg.HotMinFreeBytes > 0 && s.cfg.FreeBytes != nil {
		free, err := s.cfg.FreeBytes()
		if err != nil {
			s.cfg.Logger.Warn("free space of hot unknown", "component", "tiered", "err", err)
		} else if free < s.cfg.HotMinFreeBytes {
			need = max(need, s.cfg.HotMinFreeBytes-free)
		}
	}
	return need
}

// demoteLRU moves the least recently used demotable hot keys to warm until
// need bytes of keys and values have moved. It lists hot once, keeping only
// the oldest keys that add up to need.
func (p *passRun) demoteLRU(need int64) error {
	s := p.s
	it, err := s.tiers[0].NewIter(p.ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("tiered: list hot: %w", err)
	}
	var h newestFirst
	var total int64
	for it.Next() {
		k := it.Key()
		if !s.cfg.Demotable(k) {
			continue
		}
		c := candidate{access: s.access.get(k), size: int64(len(k) + len(it.Value()))}
		if total >= need && h.Len() > 0 && c.access >= h[0].access {
			continue // newer than everything already enough to cover need
		}
		c.key = append([]byte(nil), k...)
		heap.Push(&h, c)
		total += c.size
		for h.Len() > 0 && total-h[0].size >= need {
			total -= heap.Pop(&h).(candidate).size
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return fmt.Errorf("tiered: list hot: %w", err)
	}
	cands := []candidate(h)
	sort.Slice(cands, func(a, b int) bool { return cands[a].access < cands[b].access })
	var sum int64
	for n, c := range cands {
		if sum >= need {
			cands = cands[:n]
			break
		}
		sum += c.size
	}
	// Keys are locked in key order, so the chunks go in key order.
	sort.Slice(cands, func(a, b int) bool { return bytes.Compare(cands[a].key, cands[b].key) < 0 })
	var moved int64
	for len(cands) > 0 && moved < need {
		chunk := cands[:min(chunkKeys, len(cands))]
		cands = cands[len(chunk):]
		n, size, err := p.move(0, chunk)
		s.stats[0].keys.Add(-int64(n))
		moved += size
		if err != nil {
			return err
		}
	}
	return nil
}

// newestFirst is a max-heap of candidates by access time.
type newestFirst []candidate

func (h newestFirst) Len() int           { return len(h) }
func (h newestFirst) Less(a, b int) bool { return h[a].access > h[b].access }
func (h newestFirst) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *newestFirst) Push(x any)        { *h = append(*h, x.(candidate)) }
func (h *newestFirst) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// pace waits until n more moves are due under MaxMoveRate.
func (p *passRun) pace(n int) error {
	if p.every == 0 {
		return p.ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(time.Duration(n) * p.every)
	if wait <= 0 {
		return p.ctx.Err()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return p.ctx.Err()
	case <-t.C:
		return nil
	}
}

// move demotes cands, sorted by key, from tier i to i+1, and reports how
// many keys and how many bytes of keys and values moved.
func (p *passRun) move(i int, cands []candidate) (int, int64, error) {
	if len(cands) == 0 {
		return 0, 0, nil
	}
	if p.s.closed.Load() {
		return 0, 0, tiers.ErrClosed
	}
	if err := p.pace(len(cands)); err != nil {
		return 0, 0, err
	}
	n, size, err := p.s.demote(p.ctx, i, cands)
	p.moved += int64(n)
	return n, size, err
}

// demote runs the two steps of a demotion (see the package doc) for a
// batch of keys, sorted, from tier i to i+1. Keys accessed since they were
// listed, or gone from tier i, are left alone.
func (s *Store) demote(ctx context.Context, i int, cands []candidate) (int, int64, error) {
	from, to := s.tiers[i], s.tiers[i+1]
	// Key order: the mover is the only one holding several key locks.
	for _, c := range cands {
		unlock := s.keys.lock(c.key)
		defer unlock()
	}
	var keep []candidate
	var stale tiers.Batch
	for _, c := range cands {
		if s.access.get(c.key) != c.access {
			continue
		}
		if i == 0 {
			v, err := from.Get(ctx, c.key)
			if errors.Is(err, tiers.ErrNotFound) {
				continue
			}
			if err != nil {
				return 0, 0, fmt.Errorf("tiered: demote: get from hot: %w", err)
			}
			c.value = v
		} else {
			// A copy below hot that hot shadows is stale: drop it rather
			// than carry it further down.
			_, err := s.tiers[0].Get(ctx, c.key)
			if err == nil {
				stale.Delete(c.key)
				continue
			}
			if !errors.Is(err, tiers.ErrNotFound) {
				return 0, 0, fmt.Errorf("tiered: demote: get from hot: %w", err)
			}
		}
		c.size = int64(len(c.key) + len(c.value))
		keep = append(keep, c)
	}
	if stale.Len() > 0 {
		if err := from.Apply(ctx, &stale, true); err != nil {
			return 0, 0, fmt.Errorf("tiered: drop stale copies from %s: %w", tierNames[i], err)
		}
	}
	if len(keep) == 0 {
		return 0, 0, nil
	}

	s.gate.RLock()
	defer s.gate.RUnlock()
	var b tiers.Batch
	for _, c := range keep {
		b.Set(c.key, c.value)
	}
	if err := to.Apply(ctx, &b, true); err != nil {
		return 0, 0, fmt.Errorf("tiered: demote: copy to %s: %w", tierNames[i+1], err)
	}

	var dels, undo tiers.Batch
	moved := keep[:0]
	if i == 0 {
		// Under mu, Apply cannot change hot between the check and the
		// delete: a value written during the copy stays, and the copy
		// below is shadowed.
		s.mu.Lock()
		for _, c := range keep {
			cur, err := from.Get(ctx, c.key)
			switch {
			case err == nil && sameValue(cur, c.value):
				dels.Delete(c.key)
				moved = append(moved, c)
			case errors.Is(err, tiers.ErrNotFound):
				undo.Delete(c.key) // deleted during the copy
			case err != nil:
				s.mu.Unlock()
				return 0, 0, fmt.Errorf("tiered: demote: get from hot: %w", err)
			}
		}
		var err error
		if dels.Len() > 0 {
			err = from.Apply(ctx, &dels, true)
		}
		s.mu.Unlock()
		if err != nil {
			return 0, 0, fmt.Errorf("tiered: demote: delete from hot: %w", err)
		}
	} else {
		// Below hot, only Apply's deletes remove a key we hold the lock
		// of; one listing of the batch's range tells which are left.
		present, err := s.present(ctx, from, keep)
		if err != nil {
			return 0, 0, err
		}
		for _, c := range keep {
			if present[string(c.key)] {
				dels.Delete(c.key)
				moved = append(moved, c)
			} else {
				undo.Delete(c.key)
			}
		}
		if dels.Len() > 0 {
			if err := from.Apply(ctx, &dels, true); err != nil {
				return 0, 0, fmt.Errorf("tiered: demote: delete from %s: %w", tierNames[i], err)
			}
		}
	}
	if undo.Len() > 0 {
		// Apply deleted these keys during the copy; the copy must not
		// bring them back.
		if err := to.Apply(ctx, &undo, true); err != nil {
			return 0, 0, fmt.Errorf("tiered: demote: undo copy to %s: %w", tierNames[i+1], err)
		}
	}
	var size int64
	for _, c := range moved {
		size += c.size
		if i+2 >= len(s.tiers) {
			s.access.forget(c.key) // in the lowest tier its age no longer matters
		}
	}
	s.stats[i].demoted.Add(uint64(len(moved)))
	return len(moved), size, nil
}

// present reports which of cands (sorted) tier t holds, listing their range
// once.
func (s *Store) present(ctx context.Context, t tiers.Store, cands []candidate) (map[string]bool, error) {
	want := make(map[string]bool, len(cands))
	for _, c := range cands {
		want[string(c.key)] = false
	}
	last := cands[len(cands)-1].key
	it, err := t.NewIter(ctx, cands[0].key, append(append([]byte(nil), last...), 0))
	if err != nil {
		return nil, fmt.Errorf("tiered: demote: list: %w", err)
	}
	for it.Next() {
		if _, ok := want[string(it.Key())]; ok {
			want[string(it.Key())] = true
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, fmt.Errorf("tiered: demote: list: %w", err)
	}
	return want, nil
}
