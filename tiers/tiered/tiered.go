package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers"
)

// Tier names, in precedence order.
var tierNames = [...]string{"hot", "warm", "cold"}

// Store is a tiers.Store over a hot, a warm and an optional cold store.
// All methods are safe for concurrent use; see the package doc for the
// contract.
type Store struct {
	cfg   Config
	tiers []tiers.Store // tiers[0] is hot, then warm, then cold if set
	stats []tierCounters

	// Lock order: a key lock, then gate, then mu.

	// mu serialises Apply with the steps of a move that must see hot and
	// the lower tiers unchanged by Apply: a promotion's check and write to
	// hot, a demotion's check and delete from hot. NewIter holds it while
	// opening its iterators. Promotions and demotions never hold it while
	// talking to a lower tier, except a promotion re-reading after a racing
	// delete.
	mu   sync.Mutex
	dels tiers.Batch // guarded by mu; the deletes of the batch being applied

	// gate is held shared by a move from its first step to its last, and
	// exclusively by NewIter while it opens its iterators, so that an
	// iterator never sees a key half moved (a promoted key gone from warm
	// and not yet in hot's snapshot, or a copy that is about to be undone).
	gate sync.RWMutex

	// delGen counts Applies that deleted keys, bumped under mu after their
	// deletes reached the lower tiers. A promotion that read a lower tier
	// before a delete re-reads it before writing to hot.
	delGen atomic.Uint64

	keys   keyLocks
	access *accessTimes

	passMu   sync.Mutex // serialises mover passes
	mover    moverState
	lastCold atomic.Int64 // unix seconds of the last warm→cold scan by the background mover

	closed atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// tierCounters are a tier's move counters and its key count as of the last
// full scan (-1 before one).
type tierCounters struct {
	demoted, promoted atomic.Uint64
	keys              atomic.Int64
}

var _ tiers.Store = (*Store)(nil)

// Open returns a Store over cfg's tiers and starts its mover (unless
// cfg.Interval is negative).
func Open(cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, tiers: []tiers.Store{cfg.Hot, cfg.Warm}}
	if cfg.Cold != nil {
		s.tiers = append(s.tiers, cfg.Cold)
	}
	s.stats = make([]tierCounters, len(s.tiers))
	for i := range s.stats {
		s.stats[i].keys.Store(-1)
	}
	s.access = newAccessTimes(cfg.Now().Unix())
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if cfg.Interval > 0 {
		s.wg.Add(1)
		go s.run(ctx)
	}
	cfg.Logger.Info("tiered store open", "component", "tiered", "tiers", len(s.tiers),
		"demote_after", cfg.DemoteAfter, "cold_after", cfg.ColdAfter, "hot_max_bytes", cfg.HotMaxBytes,
		"hot_min_free_bytes", cfg.HotMinFreeBytes, "interval", cfg.Interval, "max_move_rate", cfg.MaxMoveRate)
	return s, nil
}

func (s *Store) now() int64 { return s.cfg.Now().Unix() }

// Get implements tiers.Store. It reads hot, then the lower tiers, and
// promotes a lower hit to hot.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	v, err := s.tiers[0].Get(ctx, key)
	if err == nil {
		s.access.touch(key, s.now())
		return v, nil
	}
	if !errors.Is(err, tiers.ErrNotFound) {
		return nil, err
	}
	return s.getLower(ctx, key)
}

// getLower looks key up below hot, holding its key lock so no move of key
// is under way, and promotes a hit.
func (s *Store) getLower(ctx context.Context, key []byte) ([]byte, error) {
	unlock := s.keys.lock(key)
	defer unlock()
	gen := s.delGen.Load()
	// A promotion may have finished while we waited for the key lock.
	v, err := s.tiers[0].Get(ctx, key)
	if err == nil {
		s.access.touch(key, s.now())
		return v, nil
	}
	if !errors.Is(err, tiers.ErrNotFound) {
		return nil, err
	}
	for i := 1; i < len(s.tiers); i++ {
		v, err := s.tiers[i].Get(ctx, key)
		if errors.Is(err, tiers.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tiered: get from %s: %w", tierNames[i], err)
		}
		return s.promote(ctx, key, i, v, gen)
	}
	return nil, tiers.ErrNotFound
}

// promote moves key, read as v from tier i after delete generation gen, to
// hot. The caller holds key's lock.
func (s *Store) promote(ctx context.Context, key []byte, i int, v []byte, gen uint64) ([]byte, error) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, tiers.ErrClosed
	}
	cur, err := s.tiers[0].Get(ctx, key)
	switch {
	case err == nil:
		// Apply wrote key since we looked: hot's value is newer.
		s.mu.Unlock()
		s.access.touch(key, s.now())
		return cur, nil
	case !errors.Is(err, tiers.ErrNotFound):
		s.mu.Unlock()
		return nil, err
	}
	if s.delGen.Load() != gen {
		// A delete ran since we read tier i; promoting what we read could
		// bring a deleted key back.
		cur, err := s.tiers[i].Get(ctx, key)
		if err != nil {
			s.mu.Unlock()
			if errors.Is(err, tiers.ErrNotFound) {
				return nil, err
			}
			return nil, fmt.Errorf("tiered: get from %s: %w", tierNames[i], err)
		}
		v = cur
	}
	var b tiers.Batch
	b.Set(key, v)
	err = s.tiers[0].Apply(ctx, &b, true)
	s.mu.Unlock()
	if err != nil {
		// Not promoted, but the value read is current.
		s.cfg.Logger.Warn("promotion failed", "component", "tiered", "from", tierNames[i], "err", err)
		return v, nil
	}
	s.access.touch(key, s.now())
	b.Reset()
	b.Delete(key)
	if err := s.tiers[i].Apply(ctx, &b, true); err != nil {
		// The copy below stays, shadowed by hot; a later delete or
		// demotion of key overwrites or removes it.
		s.cfg.Logger.Warn("promotion left a stale copy", "component", "tiered", "from", tierNames[i], "err", err)
	}
	s.stats[i].promoted.Add(1)
	return v, nil
}

// Apply implements tiers.Store. Deleted keys are deleted from the lower
// tiers (warm first, synced) before the batch goes to hot.
func (s *Store) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	if s.closed.Load() {
		return tiers.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return tiers.ErrClosed
	}
	s.dels.Reset()
	_ = b.Each(func(del bool, key, _ []byte) error {
		// A key that may not leave hot is in no lower tier: its delete
		// need not reach them (core's type index changes on every
		// retype and delete).
		if del && s.cfg.Demotable(key) {
			s.dels.Delete(key)
		}
		return nil
	})
	if s.dels.Len() > 0 {
		// Bumped when Apply is done with the lower tiers (deferred, so
		// also on an error after a delete took effect), still under mu. A
		// promotion that loaded the generation before this bump sees it
		// changed once it gets mu, and re-reads. One that loads it after
		// reads the lower tiers after the deletes. Bumping first would
		// let a reader load the new generation, read a value the deletes
		// below have yet to remove, and promote it unchecked.
		defer s.delGen.Add(1)
		// Top down: a demotion from warm to cold copies to cold before it
		// checks warm, so deleting warm first means it either sees the
		// delete and undoes its copy, or its copy lands before our delete
		// of cold.
		for i := 1; i < len(s.tiers); i++ {
			if err := s.tiers[i].Apply(ctx, &s.dels, true); err != nil {
				return fmt.Errorf("tiered: delete from %s: %w", tierNames[i], err)
			}
		}
	}
	if err := s.tiers[0].Apply(ctx, b, sync); err != nil {
		return err
	}
	now := s.now()
	return b.Each(func(del bool, key, _ []byte) error {
		if del {
			s.access.forget(key)
		} else {
			s.access.touch(key, now)
		}
		return nil
	})
}

// NewIter implements tiers.Store: the tiers' iterators merged, the topmost
// tier winning on equal keys.
func (s *Store) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	s.gate.Lock()
	s.mu.Lock()
	defer s.gate.Unlock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	its := make([]tiers.Iterator, 0, len(s.tiers))
	for i, t := range s.tiers {
		it, err := t.NewIter(ctx, lower, upper)
		if err != nil {
			for _, it := range its {
				it.Close()
			}
			return nil, fmt.Errorf("tiered: iterate %s: %w", tierNames[i], err)
		}
		its = append(its, it)
	}
	return newMergeIter(its), nil
}

// Stats implements tiers.Store: the sum over the tiers, located at hot.
// Stale copies shadowed by a higher tier count too.
func (s *Store) Stats() tiers.Stats {
	st := tiers.Stats{Backend: "tiered", Location: s.tiers[0].Stats().Location}
	for _, t := range s.tiers {
		st.LiveBytes += t.Stats().LiveBytes
	}
	return st
}

// TierStats reports each tier, topmost first, in the shape of the node's
// metrics (GET /v1/metrics).
func (s *Store) TierStats() []nodestats.Tier {
	out := make([]nodestats.Tier, len(s.tiers))
	for i, t := range s.tiers {
		st := t.Stats()
		out[i] = nodestats.Tier{
			Name:     tierNames[i],
			Backend:  st.Backend,
			Location: st.Location,
			Bytes:    st.LiveBytes,
			Keys:     s.stats[i].keys.Load(),
			Demoted:  s.stats[i].demoted.Load(),
			Promoted: s.stats[i].promoted.Load(),
		}
	}
	return out
}

// Close stops the mover, waits for moves and Applies under way, and closes
// every tier. Closing twice is a no-op.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	s.passMu.Lock() // a MoveNow sees closed and stops at its next key
	defer s.passMu.Unlock()
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i, t := range s.tiers {
		if err := t.Close(); err != nil {
			errs = append(errs, fmt.Errorf("tiered: close %s: %w", tierNames[i], err))
		}
	}
	return errors.Join(errs...)
}

// sameValue reports whether a and b hold the same bytes.
func sameValue(a, b []byte) bool { return bytes.Equal(a, b) }

// elapsed is d seconds as a Duration, for comparing whole-second ages.
func elapsed(d int64) time.Duration { return time.Duration(d) * time.Second }
