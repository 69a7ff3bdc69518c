// Package buffered holds a store's unsynced writes in memory until the
// next synced one, so that they cost no write of their own.
//
// On a local disk an unsynced write is cheap already. On an object store
// (tiers/segment) every Apply is an object Put, synced or not. A raft
// node on an object store keeps its raft log in the store and writes each
// driver cycle with one Apply, synced when it holds new log entries (or a
// group's log is due for compaction); a cycle that only applies what was
// committed since (a lone write's second cycle, a follower learning the
// commit index) is unsynced. Wrapped, such writes ride along with the next
// synced one.
//
// Invariants:
//   - Readers see a write once its Apply returns, synced or not: Get and
//     NewIter consult the buffer before the store below. They never wait
//     for the store below to finish a write.
//   - Writes reach the store below in Apply order: one flusher at a time
//     writes everything queued (buffered writes, then the synced batches,
//     in arrival order) as one batch; synced Applies that arrive meanwhile
//     wait for the next flush and share it (group commit). Unsynced writes
//     that arrive meanwhile wait for a synced Apply, as any others do.
//   - A buffered entry leaves memory only once a flush that holds it (or a
//     later write of the key) is in the store below.
//   - Unsynced writes are lost if the process dies before the next flush
//     (the tiers.Store contract allows it). They never cost a write below
//     of their own while synced writes keep coming: only once they have
//     waited flushAfter (DefaultFlushAfter, 10 s) with no synced Apply to
//     carry them, or once they hold MaxPendingBytes, does the store flush
//     them alone.
//
// Why so long a wait: on an object store every flush is an object Put.
// With a short wait (it was 100 ms), a write arriving alone cost a raft
// node two Puts: its log entry's and, a moment later, that of the cycle
// that applied it. Losing such writes costs nothing but a replay: they
// were written after the last synced Apply, and record the applying of
// entries that the raft log, synced before, holds.
package buffered

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/soullabs/brainy/tiers"
)

// DefaultFlushAfter is how long unsynced writes wait for a synced Apply
// to carry them before they are flushed on their own.
const DefaultFlushAfter = 10 * time.Second

// MaxPendingBytes bounds the unsynced writes held: once they reach it they
// are flushed (in the background) without waiting for a synced Apply.
const MaxPendingBytes = 4 << 20

// Store is a tiers.Store buffering unsynced writes over another.
type Store struct {
	inner      tiers.Store
	flushAfter time.Duration // <= 0: never by age
	maxPending int           // bytes; MaxPendingBytes but for tests
	kick       chan struct{} // asks flushLoop for a flush of pending (size bound)

	mu       sync.Mutex
	mem      *btree.BTreeG[entry] // buffered writes not yet flushed; guarded by mu
	seq      uint64               // numbers buffered writes; guarded by mu
	pending  tiers.Batch          // buffered writes, in order, not yet taken by a flush; guarded by mu
	syncs    []*syncReq           // synced Applies waiting for a flush; guarded by mu
	flushing bool                 // a flusher is writing; guarded by mu
	since    time.Time            // when pending got its first write; guarded by mu
	closed   bool                 // guarded by mu

	stop chan struct{}
	done chan struct{}
}

type entry struct {
	key, val []byte
	del      bool
	seq      uint64 // the write's number: a flush removes entries up to its own
}

type syncReq struct {
	b    tiers.Batch
	done chan error
}

func less(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// New wraps inner. Unsynced writes are flushed by the next synced Apply,
// or on their own flushAfter after the first of them (0:
// DefaultFlushAfter; negative: never by age), or once they hold
// MaxPendingBytes.
func New(inner tiers.Store, flushAfter time.Duration) *Store {
	if flushAfter == 0 {
		flushAfter = DefaultFlushAfter
	}
	s := &Store{inner: inner, flushAfter: flushAfter, maxPending: MaxPendingBytes, kick: make(chan struct{}, 1),
		mem: btree.NewG(16, less), stop: make(chan struct{}), done: make(chan struct{})}
	go s.flushLoop()
	return s
}

// Inner returns the store below.
func (s *Store) Inner() tiers.Store { return s.inner }

// Apply implements tiers.Store.
func (s *Store) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return tiers.ErrClosed
	}
	if !sync {
		if s.pending.Len() == 0 {
			s.since = time.Now()
		}
		_ = b.Each(func(del bool, key, value []byte) error {
			appendOp(&s.pending, del, key, value)
			s.seq++
			e := entry{key: bytes.Clone(key), val: bytes.Clone(value), del: del, seq: s.seq}
			if e.val == nil && !del {
				e.val = []byte{}
			}
			s.mem.ReplaceOrInsert(e)
			return nil
		})
		full := s.pending.Size() >= s.maxPending
		s.mu.Unlock()
		if full {
			select {
			case s.kick <- struct{}{}:
			default: // a kick is pending already
			}
		}
		return nil
	}
	r := &syncReq{done: make(chan error, 1)}
	appendBatch(&r.b, b)
	s.syncs = append(s.syncs, r)
	if !s.flushing {
		s.flushLocked(ctx) // returns with mu unlocked
	} else {
		s.mu.Unlock()
	}
	return <-r.done
}

// flushLocked is called with mu held and returns with it released. It
// writes what is queued, then, while synced Applies queued meanwhile, those
// and the unsynced writes queued before them. Unsynced writes queued
// during the last write stay for the next synced Apply (or flushLoop).
func (s *Store) flushLocked(ctx context.Context) {
	s.flushing = true
	for first := true; len(s.syncs) > 0 || (first && s.pending.Len() > 0) || s.pending.Size() >= s.maxPending; first = false {
		var all tiers.Batch
		appendBatch(&all, &s.pending)
		taken, upTo := s.pending, s.seq
		s.pending = tiers.Batch{}
		syncs := s.syncs
		s.syncs = nil
		for _, r := range syncs {
			appendBatch(&all, &r.b)
		}
		s.mu.Unlock()

		err := s.inner.Apply(ctx, &all, true)

		s.mu.Lock()
		if err != nil {
			// The buffered writes stay buffered, ahead of newer ones.
			appendBatch(&taken, &s.pending)
			s.pending = taken
		} else {
			// Drop the flushed entries, unless rewritten since.
			var drop []entry
			s.mem.Ascend(func(e entry) bool {
				if e.seq <= upTo {
					drop = append(drop, e)
				}
				return true
			})
			for _, e := range drop {
				s.mem.Delete(e)
			}
		}
		for _, r := range syncs {
			r.done <- err
		}
		if err != nil {
			break
		}
	}
	s.flushing = false
	s.mu.Unlock()
}

func appendOp(dst *tiers.Batch, del bool, key, value []byte) {
	if del {
		dst.Delete(key)
	} else {
		dst.Set(key, value)
	}
}

func appendBatch(dst, src *tiers.Batch) {
	_ = src.Each(func(del bool, key, value []byte) error {
		appendOp(dst, del, key, value)
		return nil
	})
}

// flushLoop flushes unsynced writes that waited flushAfter for a synced
// Apply, and those that reached maxPending (on a kick from Apply).
func (s *Store) flushLoop() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.flushAfter > 0 {
		t := time.NewTicker(s.flushAfter / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-tick:
		case <-s.kick:
		}
		s.mu.Lock()
		due := s.pending.Len() > 0 &&
			((s.flushAfter > 0 && time.Since(s.since) >= s.flushAfter) || s.pending.Size() >= s.maxPending)
		if !s.closed && !s.flushing && due {
			s.flushLocked(context.Background()) // a failure retries next tick or kick
		} else {
			s.mu.Unlock()
		}
	}
}

// Get implements tiers.Store.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, tiers.ErrClosed
	}
	e, ok := s.mem.Get(entry{key: key})
	s.mu.Unlock()
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
	it, err := s.newIter(ctx, lower, upper)
	if err != nil {
		return nil, err
	}
	// The first step may read the store below (an object store: a
	// network round trip): not under mu, which every write takes.
	it.innerOK = it.inner.Next()
	return it, nil
}

// newIter takes the two snapshots, the buffer's and the store's below.
func (s *Store) newIter(ctx context.Context, lower, upper []byte) (*iter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, tiers.ErrClosed
	}
	// Under mu, no flush can complete between the two snapshots, so an
	// entry is either still buffered or already below.
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
	return &iter{inner: inner, mem: mem}, nil
}

// Stats implements tiers.Store: the store below, plus the buffered bytes.
func (s *Store) Stats() tiers.Stats {
	st := s.inner.Stats()
	s.mu.Lock()
	st.LiveBytes += int64(s.pending.Size())
	s.mu.Unlock()
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
	for s.flushing { // let a running flush finish
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	if s.pending.Len() > 0 {
		r := &syncReq{done: make(chan error, 1)}
		s.syncs = append(s.syncs, r)
		s.flushLocked(context.Background())
		err = <-r.done
		s.mu.Lock()
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
