// Package buffered holds a store's unsynced writes in memory until the
// next synced one, so that they cost no write of their own.
//
// On a local disk an unsynced write is cheap already. On an object store
// (tiers/segment) every Apply is an object Put, synced or not; a raft
// node, which syncs its log and then applies the committed entries
// unsynced, would pay two Puts per cycle. Wrapped, the applied state rides
// along with the next log write.
//
// Invariants:
//   - Readers see a write once its Apply returns, synced or not: Get and
//     NewIter consult the buffer before the store below.
//   - A synced Apply writes the buffer and its own batch as one batch,
//     buffered writes first, so the store below sees writes in Apply order.
//   - Unsynced writes are lost if the process dies before the next synced
//     Apply or flush (the tiers.Store contract allows it); FlushAfter bounds
//     how long they wait.
package buffered

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/soullabs/brainy/tiers"
)

// Store is a tiers.Store buffering unsynced writes over another.
type Store struct {
	inner      tiers.Store
	flushAfter time.Duration

	// mu serialises writes (and flushes) and guards mem and pending; reads
	// take it shared.
	mu      sync.RWMutex
	mem     *btree.BTreeG[entry] // buffered writes; del marks a deletion
	pending tiers.Batch          // the same writes, in order, for the store below
	since   time.Time            // when pending got its first write
	closed  bool

	stop chan struct{}
	done chan struct{}
}

type entry struct {
	key, val []byte
	del      bool
}

func less(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// New wraps inner. Unsynced writes are flushed by the next synced Apply,
// or flushAfter after the first of them (0: 100 ms).
func New(inner tiers.Store, flushAfter time.Duration) *Store {
	if flushAfter <= 0 {
		flushAfter = 100 * time.Millisecond
	}
	s := &Store{inner: inner, flushAfter: flushAfter, mem: btree.NewG(16, less),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.flushLoop()
	return s
}

// Inner returns the store below.
func (s *Store) Inner() tiers.Store { return s.inner }

// Apply implements tiers.Store.
func (s *Store) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return tiers.ErrClosed
	}
	if !sync {
		if s.pending.Len() == 0 {
			s.since = time.Now()
		}
		return b.Each(func(del bool, key, value []byte) error {
			if del {
				s.pending.Delete(key)
			} else {
				s.pending.Set(key, value)
			}
			e := entry{key: bytes.Clone(key), val: bytes.Clone(value), del: del}
			if e.val == nil && !del {
				e.val = []byte{}
			}
			s.mem.ReplaceOrInsert(e)
			return nil
		})
	}
	if s.pending.Len() == 0 {
		return s.inner.Apply(ctx, b, true)
	}
	// One batch: the buffered writes, then b's. Built apart from pending,
	// so that if it fails the buffer is as it was and b is not in it.
	var all tiers.Batch
	appendBatch(&all, &s.pending)
	appendBatch(&all, b)
	if err := s.inner.Apply(ctx, &all, true); err != nil {
		return err
	}
	s.pending.Reset()
	s.mem.Clear(false)
	return nil
}

func appendBatch(dst, src *tiers.Batch) {
	_ = src.Each(func(del bool, key, value []byte) error {
		if del {
			dst.Delete(key)
		} else {
			dst.Set(key, value)
		}
		return nil
	})
}

// flushLocked writes the buffer (synced) and, on success, empties it.
func (s *Store) flushLocked(ctx context.Context) error {
	if err := s.inner.Apply(ctx, &s.pending, true); err != nil {
		return err
	}
	s.pending.Reset()
	s.mem.Clear(false)
	return nil
}

func (s *Store) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(s.flushAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if !s.closed && s.pending.Len() > 0 && time.Since(s.since) >= s.flushAfter {
			_ = s.flushLocked(context.Background()) // a failure retries next tick
		}
		s.mu.Unlock()
	}
}

// Get implements tiers.Store.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, tiers.ErrClosed
	}
	e, ok := s.mem.Get(entry{key: key})
	s.mu.RUnlock()
	if ok {
		if e.del {
			return nil, tiers.ErrNotFound
		}
		return bytes.Clone(e.val), nil
	}
	return s.inner.Get(ctx, key)
}

// NewIter implements tiers.Store: the buffer's writes merged over the
// store below, both as of the call.
func (s *Store) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, tiers.ErrClosed
	}
	inner, err := s.inner.NewIter(ctx, lower, upper)
	if err != nil {
		return nil, err
	}
	var mem []entry
	s.mem.AscendGreaterOrEqual(entry{key: lower}, func(e entry) bool {
		if upper != nil && bytes.Compare(e.key, upper) >= 0 {
			return false
		}
		mem = append(mem, e)
		return true
	})
	it := &iter{inner: inner, mem: mem}
	it.innerOK = inner.Next()
	return it, nil
}

// Stats implements tiers.Store: the store below, plus the buffered bytes.
func (s *Store) Stats() tiers.Stats {
	st := s.inner.Stats()
	s.mu.RLock()
	st.LiveBytes += int64(s.pending.Size())
	s.mu.RUnlock()
	return st
}

// Close flushes the buffer and closes the store below.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	var err error
	if s.pending.Len() > 0 {
		err = s.flushLocked(context.Background())
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if cerr := s.inner.Close(); err == nil {
		err = cerr
	}
	return err
}

// iter merges the buffer's entries (mem, sorted) over the inner iterator.
type iter struct {
	inner   tiers.Iterator
	innerOK bool
	mem     []entry
	mi      int
	key     []byte
	val     []byte
	err     error
}

func (it *iter) Next() bool {
	for {
		var m *entry
		if it.mi < len(it.mem) {
			m = &it.mem[it.mi]
		}
		switch {
		case m == nil && !it.innerOK:
			it.err = it.inner.Err()
			return false
		case m == nil || (it.innerOK && bytes.Compare(it.inner.Key(), m.key) < 0):
			// Copies: the inner iterator moves on at once.
			it.key, it.val = bytes.Clone(it.inner.Key()), bytes.Clone(it.inner.Value())
			if it.val == nil {
				it.val = []byte{}
			}
			it.innerOK = it.inner.Next()
			return true
		default:
			if it.innerOK && bytes.Equal(it.inner.Key(), m.key) {
				it.innerOK = it.inner.Next() // shadowed by the buffer
			}
			it.mi++
			if m.del {
				continue
			}
			it.key, it.val = m.key, m.val
			return true
		}
	}
}

func (it *iter) Key() []byte   { return it.key }
func (it *iter) Value() []byte { return it.val }
func (it *iter) Err() error    { return it.err }
func (it *iter) Close() error  { return it.inner.Close() }
