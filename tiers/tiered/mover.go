package tiered

import (
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

// scanChunk is how many candidates a pass collects before it closes its
// iterator and moves them: an iterator is not held open across moves.
const scanChunk = 256

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
// and stays.
type candidate struct {
	key    []byte
	access int64
	size   int64
}

// demoteIdle moves from tier i to the tier below every key last accessed
// at or before cutoff (hot keys only if Demotable). It records tier i's
// key count.
func (p *passRun) demoteIdle(i int, cutoff int64) error {
	s := p.s
	var lower []byte
	var seen, moved int64
	for {
		var cands []candidate
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
			if t := s.access.get(k); t <= cutoff {
				cands = append(cands, candidate{key: append([]byte(nil), k...), access: t})
				if len(cands) == scanChunk {
					more = true
					lower = append(append(lower[:0], k...), 0)
					break
				}
			}
		}
		err = errors.Join(it.Err(), it.Close())
		if err != nil {
			return fmt.Errorf("tiered: list %s: %w", tierNames[i], err)
		}
		for _, c := range cands {
			ok, err := p.move(i, c)
			if err != nil {
				return err
			}
			if ok {
				moved++
			}
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
	var moved int64
	for _, c := range cands {
		if moved >= need {
			break
		}
		ok, err := p.move(0, c)
		if err != nil {
			return err
		}
		if ok {
			moved += c.size
			s.stats[0].keys.Add(-1)
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

// pace waits until the next move is due under MaxMoveRate.
func (p *passRun) pace() error {
	if p.every == 0 {
		return p.ctx.Err()
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	wait := p.next.Sub(now)
	p.next = p.next.Add(p.every)
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

// move moves c.key from tier i to tier i+1, unless it was accessed since it
// was listed or is no longer in tier i. It reports whether it moved.
func (p *passRun) move(i int, c candidate) (bool, error) {
	s := p.s
	if s.closed.Load() {
		return false, tiers.ErrClosed
	}
	if err := p.pace(); err != nil {
		return false, err
	}
	ok, err := s.demote(p.ctx, i, c)
	if ok {
		p.moved++
	}
	return ok, err
}

// demote runs the two steps of a demotion of c.key from tier i to i+1
// (see the package doc).
func (s *Store) demote(ctx context.Context, i int, c candidate) (bool, error) {
	key := c.key
	unlock := s.keys.lock(key)
	defer unlock()
	if s.access.get(key) != c.access {
		return false, nil
	}
	from, to := s.tiers[i], s.tiers[i+1]
	v, err := from.Get(ctx, key)
	if errors.Is(err, tiers.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tiered: demote: get from %s: %w", tierNames[i], err)
	}
	var b tiers.Batch
	if i > 0 {
		// A copy below hot that hot shadows is stale: drop it rather than
		// carry it further down.
		_, err := s.tiers[0].Get(ctx, key)
		if err == nil {
			b.Delete(key)
			if err := from.Apply(ctx, &b, true); err != nil {
				return false, fmt.Errorf("tiered: drop stale copy from %s: %w", tierNames[i], err)
			}
			return false, nil
		}
		if !errors.Is(err, tiers.ErrNotFound) {
			return false, fmt.Errorf("tiered: demote: get from hot: %w", err)
		}
	}

	s.gate.RLock()
	defer s.gate.RUnlock()
	b.Set(key, v)
	if err := to.Apply(ctx, &b, true); err != nil {
		return false, fmt.Errorf("tiered: demote: copy to %s: %w", tierNames[i+1], err)
	}
	b.Reset()
	b.Delete(key)
	undo := false
	if i == 0 {
		s.mu.Lock()
		cur, err := from.Get(ctx, key)
		switch {
		case err == nil && sameValue(cur, v):
			err = from.Apply(ctx, &b, true)
		case err == nil:
			// Apply wrote a newer value during the copy; it stays hot and
			// the copy below is shadowed.
			s.mu.Unlock()
			return false, nil
		case errors.Is(err, tiers.ErrNotFound):
			undo, err = true, nil
		}
		s.mu.Unlock()
		if err != nil {
			return false, fmt.Errorf("tiered: demote: delete from hot: %w", err)
		}
	} else {
		// Below hot only Apply's deletes change a key we hold the lock of.
		_, err := from.Get(ctx, key)
		switch {
		case err == nil:
			err = from.Apply(ctx, &b, true)
		case errors.Is(err, tiers.ErrNotFound):
			undo, err = true, nil
		}
		if err != nil {
			return false, fmt.Errorf("tiered: demote: delete from %s: %w", tierNames[i], err)
		}
	}
	if undo {
		// Apply deleted the key during the copy; the copy must not
		// bring it back.
		if err := to.Apply(ctx, &b, true); err != nil {
			return false, fmt.Errorf("tiered: demote: undo copy to %s: %w", tierNames[i+1], err)
		}
		return false, nil
	}
	if i+2 >= len(s.tiers) {
		s.access.forget(key) // in the lowest tier its age no longer matters
	}
	s.stats[i].demoted.Add(1)
	return true, nil
}
