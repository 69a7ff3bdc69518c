// Package memory is the in-RAM tiers.Store: an ordered B-tree behind a
// read/write lock. Nothing survives Close; sync is a no-op.
package memory

import (
	"bytes"
	"context"
	"sync"

	"github.com/google/btree"

	"github.com/soullabs/brainy/tiers"
)

type entry struct{ key, value []byte }

func less(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// Store is an in-memory tiers.Store.
type Store struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[entry] // guarded by mu; cloned (copy-on-write) for iterators
	bytes  int64                // guarded by mu
	closed bool                 // guarded by mu
}

var _ tiers.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{tree: btree.NewG(32, less)}
}

// Get implements tiers.Store.
func (s *Store) Get(_ context.Context, key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, tiers.ErrClosed
	}
	e, ok := s.tree.Get(entry{key: key})
	if !ok {
		return nil, tiers.ErrNotFound
	}
	return bytes.Clone(e.value), nil
}

// Apply implements tiers.Store.
func (s *Store) Apply(_ context.Context, b *tiers.Batch, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return tiers.ErrClosed
	}
	return b.Each(func(del bool, key, value []byte) error {
		if del {
			if old, ok := s.tree.Delete(entry{key: key}); ok {
				s.bytes -= int64(len(old.key) + len(old.value))
			}
			return nil
		}
		e := entry{key: bytes.Clone(key), value: bytes.Clone(value)}
		if old, ok := s.tree.ReplaceOrInsert(e); ok {
			s.bytes -= int64(len(old.key) + len(old.value))
		}
		s.bytes += int64(len(e.key) + len(e.value))
		return nil
	})
}

// NewIter implements tiers.Store. The iterator walks a copy-on-write clone
// of the tree, so it sees a snapshot and holds no lock.
func (s *Store) NewIter(_ context.Context, lower, upper []byte) (tiers.Iterator, error) {
	s.mu.Lock() // Clone mutates the tree's copy-on-write bookkeeping.
	if s.closed {
		s.mu.Unlock()
		return nil, tiers.ErrClosed
	}
	snap := s.tree.Clone()
	s.mu.Unlock()
	it := &iter{}
	snap.AscendGreaterOrEqual(entry{key: lower}, func(e entry) bool {
		if upper != nil && bytes.Compare(e.key, upper) >= 0 {
			return false
		}
		it.entries = append(it.entries, e)
		return len(it.entries) < iterChunk
	})
	it.snap, it.upper = snap, upper
	it.pos = -1
	return it, nil
}

// iterChunk is how many entries an iterator copies out of the snapshot at
// a time: listings read a page, not the whole range.
const iterChunk = 256

type iter struct {
	snap    *btree.BTreeG[entry]
	upper   []byte
	entries []entry
	pos     int
	done    bool
}

func (it *iter) Next() bool {
	it.pos++
	if it.pos < len(it.entries) {
		return true
	}
	if it.done || len(it.entries) < iterChunk {
		it.done = true
		return false
	}
	last := it.entries[len(it.entries)-1].key
	it.entries = it.entries[:0]
	it.pos = 0
	it.snap.AscendGreaterOrEqual(entry{key: last}, func(e entry) bool {
		if bytes.Equal(e.key, last) {
			return true
		}
		if it.upper != nil && bytes.Compare(e.key, it.upper) >= 0 {
			return false
		}
		it.entries = append(it.entries, e)
		return len(it.entries) < iterChunk
	})
	if len(it.entries) == 0 {
		it.done = true
		return false
	}
	return true
}

func (it *iter) Key() []byte   { return it.entries[it.pos].key }
func (it *iter) Value() []byte { return it.entries[it.pos].value }
func (it *iter) Err() error    { return nil }
func (it *iter) Close() error  { it.entries = nil; it.snap = nil; return nil }

// Stats implements tiers.Store.
func (s *Store) Stats() tiers.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return tiers.Stats{Backend: "memory", LiveBytes: s.bytes}
}

// Close implements tiers.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.tree = btree.NewG(2, less)
	return nil
}
