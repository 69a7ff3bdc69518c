package core

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// recordCache keeps recently written and read item records in memory, so
// that reads and the write path's prefetch skip the store. Values are
// immutable once cached: every writer stores a fresh slice, and readers
// must copy before handing bytes to anyone who might modify them.
//
// Coherence. The committer is the only source of truth. Before a cycle's
// store write it takes every item the cycle writes out of the cache and
// marks it pending (begin); after the write, and before the cycle counts
// as committed or is acknowledged, it sets or deletes each of them, which
// also clears the mark (write-through). Readers that missed may fill the
// cache with what they read from the store, but only if the key is not
// pending and no committer write touched the key's shard since they looked
// (fill checks the shard's generation). Together:
//
// Invariant: a cached record is the store's record, except that between a
// committer's store write and its set (an instant readers of the store
// may already observe) the key is not cached at all.
//
// Each part closes a stale read. While a store write is in flight, some
// readers may see the newer value in the store; a cached older value
// served after that would go back in time (hence the removal), and so
// would a fill of an older value read before the write (hence the pending
// mark and, for fills that looked before the write and fill after the set,
// the generation).
//
// Eviction is random (the first key of a map iteration), bounded by bytes
// per shard: cheap, and good enough for a cache in front of an LSM whose
// own block cache sits below.
type recordCache struct {
	shards [cacheShards]cacheShard
	// maxBytes is the bound per shard; 0 disables the cache for good
	// (resize keeps it so). Atomic: self-tuning resizes a live cache.
	maxBytes atomic.Int64
}

const cacheShards = 16

type cacheShard struct {
	mu    sync.Mutex
	m     map[string][]byte // guarded by mu
	bytes int64             // guarded by mu
	gen   uint64            // guarded by mu; bumped by every committer write
	// pending counts, per key, the committer's store writes in flight
	// (normally at most one); guarded by mu.
	pending map[string]int
}

// entryOverhead approximates a map entry's bookkeeping, so that many tiny
// records still count against the bound.
const entryOverhead = 64

func newRecordCache(totalBytes int64) *recordCache {
	c := &recordCache{}
	c.maxBytes.Store(totalBytes / cacheShards)
	for i := range c.shards {
		c.shards[i].m = make(map[string][]byte)
		c.shards[i].pending = make(map[string]int)
	}
	return c
}

func (c *recordCache) shard(key []byte) *cacheShard {
	return &c.shards[xxhash.Sum64(key)%cacheShards]
}

// get returns the cached record of key. The slice must not be modified.
func (c *recordCache) get(key []byte) ([]byte, bool) {
	if c.maxBytes.Load() == 0 {
		return nil, false
	}
	s := c.shard(key)
	s.mu.Lock()
	v, ok := s.m[string(key)]
	s.mu.Unlock()
	return v, ok
}

// generation returns the generation of key's shard, to pass to fill after
// reading the store.
func (c *recordCache) generation(key []byte) uint64 {
	if c.maxBytes.Load() == 0 {
		return 0
	}
	s := c.shard(key)
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	return g
}

// fill caches val, read from the store after generation returned gen,
// unless a committer write reached the shard since (val may be stale) or
// the key is cached already. val must not be modified afterwards.
func (c *recordCache) fill(key, val []byte, gen uint64) {
	if c.maxBytes.Load() == 0 {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if s.gen == gen && s.pending[string(key)] == 0 {
		if _, ok := s.m[string(key)]; !ok {
			s.insert(string(key), val, c.maxBytes.Load())
		}
	}
	s.mu.Unlock()
}

// begin takes the keys of writes about to reach the store out of the cache
// and marks them pending: no reader fills them until set (or abort)
// records that the write is done.
func (c *recordCache) begin(writes []itemWrite) {
	if c.maxBytes.Load() == 0 {
		return
	}
	for _, w := range writes {
		s := c.shard([]byte(w.key))
		s.mu.Lock()
		s.pending[w.key]++
		s.remove(w.key)
		s.mu.Unlock()
	}
}

// remove drops key's entry, if cached.
func (s *cacheShard) remove(key string) {
	if old, ok := s.m[key]; ok {
		s.bytes -= int64(len(key) + len(old) + entryOverhead)
		delete(s.m, key)
	}
}

// abort ends begin's marks of writes that did not reach the store. Since
// begin took the keys out and nothing could fill them since, that is set
// to "not cached" for each.
func (c *recordCache) abort(writes []itemWrite) {
	for _, w := range writes {
		c.set(w.key, nil)
	}
}

// done ends one pending mark of key, if any.
func (s *cacheShard) done(key string) {
	switch n := s.pending[key]; n {
	case 0:
	case 1:
		delete(s.pending, key)
	default:
		s.pending[key] = n - 1
	}
}

// set records a committed write of key (val nil: a delete), ending the
// mark begin made, if any.
func (c *recordCache) set(key string, val []byte) {
	if c.maxBytes.Load() == 0 {
		return
	}
	s := c.shard([]byte(key))
	s.mu.Lock()
	s.gen++
	s.done(key)
	s.remove(key)
	if val != nil {
		s.insert(key, val, c.maxBytes.Load())
	}
	s.mu.Unlock()
}

// insert adds an absent key, evicting others to stay within max bytes.
func (s *cacheShard) insert(key string, val []byte, max int64) {
	size := int64(len(key) + len(val) + entryOverhead)
	if size > max/2 {
		return // one record must not flush the shard
	}
	for s.bytes+size > max {
		for k, v := range s.m {
			s.bytes -= int64(len(k) + len(v) + entryOverhead)
			delete(s.m, k)
			break
		}
	}
	s.m[key] = val
	s.bytes += size
}

// resize bounds the cache to totalBytes (a disabled cache stays so, and
// the bound never falls to 0, which would disable it), evicting at once
// what a smaller bound leaves over.
func (c *recordCache) resize(totalBytes int64) {
	if c.maxBytes.Load() == 0 {
		return
	}
	max := max(totalBytes/cacheShards, 1)
	c.maxBytes.Store(max)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if s.bytes <= max {
				break
			}
			s.bytes -= int64(len(k) + len(v) + entryOverhead)
			delete(s.m, k)
		}
		s.mu.Unlock()
	}
}

// capacity returns the cache's bound in bytes (0: disabled).
func (c *recordCache) capacity() int64 { return c.maxBytes.Load() * cacheShards }

// size returns the cached bytes and entries.
func (c *recordCache) size() (bytes int64, entries int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		bytes += s.bytes
		entries += len(s.m)
		s.mu.Unlock()
	}
	return bytes, entries
}

// SetCacheBytes bounds the record cache to bytes (at least one record per
// shard); a node opened without a cache keeps none. Self-tuning calls it.
func (n *Node) SetCacheBytes(bytes int64) { n.cache.resize(bytes) }

// CacheBytes returns the record cache's bound in bytes (0: none).
func (n *Node) CacheBytes() int64 { return n.cache.capacity() }
