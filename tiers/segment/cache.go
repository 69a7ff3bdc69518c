package segment

import (
	"container/list"
	"sync"
)

// loc names a record: segments are immutable, so a loc's value never
// changes and cached values never need invalidating.
type loc struct {
	seq uint64
	off int64
}

// valueCache is an LRU of values bounded by their total bytes. It is safe
// for concurrent use; a nil *valueCache caches nothing.
type valueCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64                 // guarded by mu
	lru   *list.List            // of *cached, most recent first; guarded by mu
	items map[loc]*list.Element // guarded by mu
}

// cachedOverhead approximates the memory of one cached item beyond its
// value (list element, map slot), so many small values stay bounded too.
const cachedOverhead = 96

type cached struct {
	loc   loc
	value []byte
}

func newValueCache(max int64) *valueCache {
	if max <= 0 {
		return nil
	}
	return &valueCache{max: max, lru: list.New(), items: make(map[loc]*list.Element)}
}

// get returns the cached value; callers must not modify it.
func (c *valueCache) get(l loc) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[l]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cached).value, true
}

// add caches value, which the cache keeps: callers must not modify it
// afterwards. Values larger than 1/8 of the cache are not kept, so one big
// value cannot flush everything else.
func (c *valueCache) add(l loc, value []byte) {
	if c == nil || int64(len(value)) > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[l]; ok {
		return
	}
	c.items[l] = c.lru.PushFront(&cached{loc: l, value: value})
	c.bytes += int64(len(value)) + cachedOverhead
	for c.bytes > c.max {
		el := c.lru.Back()
		e := el.Value.(*cached)
		c.lru.Remove(el)
		delete(c.items, e.loc)
		c.bytes -= int64(len(e.value)) + cachedOverhead
	}
}
