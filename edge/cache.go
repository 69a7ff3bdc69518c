package edge

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"

	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/wire"
)

// Defaults of the CacheConfig fields.
const (
	DefaultCacheTTL    = 60 * time.Second
	DefaultNegativeTTL = 2 * time.Second
)

// CacheConfig configures the RAM cache of GET answers.
type CacheConfig struct {
	// MaxBytes bounds the cached answers' bytes. Required (> 0).
	MaxBytes int64
	// TTL is how long an answer is served without asking a core. Default
	// 60 s. It is only a backstop: the cores push every change, and a
	// change drops the cached answer at once.
	TTL time.Duration
	// NegativeTTL is how long a 404 is cached. Default 2 s: short, so a
	// key created elsewhere is not hidden for long if its push is lost.
	NegativeTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Cache is the edge's RAM cache of rendered GET answers (an httpapi.Cache),
// keyed by tenant and id, on Ristretto (cost = bytes). It is safe for
// concurrent use.
//
// Freshness (see docs/design/20261127_edge_cache_freshness.md): an entry
// carries its item's version, and no mutation may replace a newer version
// with an older one. Ristretto stores new keys asynchronously, so every
// mutation goes through a stripe lock holding the latest version recently
// set or invalidated per key; a miss-fill records the stripe's generation
// before asking the core and is dropped if any write or invalidation
// reached the stripe meanwhile. A reset (changes may have been missed)
// bumps the epoch: entries of older epochs are stale, served only while
// no core answers.
type Cache struct {
	cfg     CacheConfig
	rc      *ristretto.Cache[[]byte, *cacheEntry]
	stripes [cacheStripes]stripe
	epoch   atomic.Uint64
	flight  singleflight.Group

	hits, misses, stale, invalidations, resets atomic.Uint64
}

const cacheStripes = 256

// latestTTL is how long a stripe remembers a key's latest version: long
// enough for Ristretto to have applied the set it guards.
const latestTTL = time.Second

type stripe struct {
	mu     sync.Mutex
	gen    uint64                 // guarded by mu; bumped by every write-through and invalidation
	latest map[string]latestEntry // guarded by mu
	ops    int                    // guarded by mu; pruning cadence
}

type latestEntry struct {
	version uint64
	at      int64
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	httpapi.Answer        // what the handler writes; Body nil for a cached 404
	version        uint64 // the item's version (0 for a 404)
	expires        int64  // Unix nanoseconds
	epoch          uint64
}

// NewCache returns a cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBytes <= 0 {
		return nil, errCacheSize
	}
	rc, err := ristretto.NewCache(&ristretto.Config[[]byte, *cacheEntry]{
		NumCounters: max(cfg.MaxBytes/100, 1000), // ~10 counters per item of ~1 KB
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		Metrics:     true,
	})
	if err != nil {
		return nil, err
	}
	c := &Cache{cfg: cfg, rc: rc}
	for i := range c.stripes {
		c.stripes[i].latest = map[string]latestEntry{}
	}
	return c, nil
}

var errCacheSize = errors.New("edge: CacheConfig.MaxBytes must be > 0")

var _ httpapi.Cache = (*Cache)(nil)

// Close releases the cache.
func (c *Cache) Close() { c.rc.Close() }

func (c *Cache) stripe(key []byte) *stripe {
	return &c.stripes[xxhash.Sum64(key)%cacheStripes]
}

// keyPool holds the hit path's key buffers: the key escapes into
// Ristretto's generic code, so it cannot live on the stack.
var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 320); return &b }}

// Lookup implements httpapi.Cache. It does not allocate.
func (c *Cache) Lookup(tenant string, id []byte) (*httpapi.Answer, bool) {
	kb := keyPool.Get().(*[]byte)
	*kb = cacheKey((*kb)[:0], tenant, id)
	e, fresh := c.get(*kb)
	keyPool.Put(kb)
	if !fresh {
		return nil, false
	}
	c.hits.Add(1)
	return &e.Answer, true
}

// Load implements httpapi.Cache.
func (c *Cache) Load(tenant, id string, fetch func() (*item.Item, error)) (*httpapi.Answer, bool, error) {
	key := cacheKey(nil, tenant, []byte(id))
	c.misses.Add(1)
	gen, epoch := c.generation(key), c.epoch.Load()
	v, err, _ := c.flight.Do(string(key), func() (any, error) {
		// A flight that ended between our miss and this call may have
		// filled the entry: then there is nothing to fetch.
		if e, fresh := c.get(key); fresh {
			return e, nil
		}
		it, err := fetch()
		if err != nil {
			return nil, err
		}
		e := c.newEntry(it, epoch) // it is nil on a 404: a negative entry
		c.fill(key, e, gen)
		return e, nil
	})
	if err != nil {
		if e, _ := c.get(key); e != nil && errors.Is(err, item.ErrUnavailable) {
			c.stale.Add(1)
			return &e.Answer, true, nil
		}
		return nil, false, err
	}
	return &v.(*cacheEntry).Answer, false, nil
}

// Wrote implements httpapi.Cache.
func (c *Cache) Wrote(it *item.Item) {
	c.writeThrough(cacheKey(nil, it.Tenant, []byte(it.ID)), it)
}

// Deleted implements httpapi.Cache.
func (c *Cache) Deleted(tenant, id string) {
	var kb [512]byte
	c.invalidate(cacheKey(kb[:0], tenant, []byte(id)), math.MaxUint64)
}

// cacheKey appends the cache key of tenant and id.
func cacheKey(dst []byte, tenant string, id []byte) []byte {
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, id...)
}

func parseVersion(v string) uint64 {
	// A version is a clock time in base 36, then "." and its origin region
	// when the core that wrote it has a region (core.FormatVersion): versions
	// of one item grow with the time.
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.ParseUint(v, 36, 64)
	if err != nil {
		return 0
	}
	return n
}

// get returns the entry for key and whether it is fresh.
func (c *Cache) get(key []byte) (e *cacheEntry, fresh bool) {
	e, ok := c.rc.Get(key)
	if !ok {
		return nil, false
	}
	return e, e.epoch == c.epoch.Load() && c.cfg.Now().UnixNano() < e.expires
}

// newEntry renders it (nil: a 404) as a cache entry.
func (c *Cache) newEntry(it *item.Item, epoch uint64) *cacheEntry {
	now := c.cfg.Now().UnixNano()
	if it == nil {
		return &cacheEntry{Answer: httpapi.NewAnswer(nil, now), expires: now + int64(c.cfg.NegativeTTL), epoch: epoch}
	}
	return &cacheEntry{Answer: httpapi.NewAnswer(it, now), version: parseVersion(it.Version),
		expires: now + int64(c.cfg.TTL), epoch: epoch}
}

func (e *cacheEntry) cost() int64 { return int64(len(e.Body) + len(e.ETag) + 96) }

// fill caches what a miss read from a core, unless the stripe changed
// since gen was taken or a newer version is known.
func (c *Cache) fill(key []byte, e *cacheEntry, gen uint64) {
	s := c.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || c.newerKnown(s, key, e.version) {
		return
	}
	c.rc.Set(key, e, e.cost())
	// Make the entry visible before the miss's flight ends, so requests
	// arriving after it hit instead of starting another flight.
	c.rc.Wait()
}

// newerKnown reports whether the stripe remembers a version of key newer
// than version; the caller holds s.mu. Memories older than latestTTL are
// forgotten here, so a key is never kept out of the cache for long.
func (c *Cache) newerKnown(s *stripe, key []byte, version uint64) bool {
	l, ok := s.latest[string(key)]
	if !ok {
		return false
	}
	if c.cfg.Now().UnixNano()-l.at > int64(latestTTL) {
		delete(s.latest, string(key))
		return false
	}
	return l.version > version
}

// generation returns key's stripe generation, for fill.
func (c *Cache) generation(key []byte) uint64 {
	s := c.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// writeThrough caches the answer of a write this edge made, so its own
// clients read it back at once (read-your-writes).
func (c *Cache) writeThrough(key []byte, it *item.Item) {
	e := c.newEntry(it, c.epoch.Load())
	s := c.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if c.newerKnown(s, key, e.version) {
		return
	}
	if cur, ok := c.rc.Get(key); ok && cur.Body != nil && cur.version > e.version {
		return
	}
	c.remember(s, key, e.version)
	c.rc.Set(key, e, e.cost())
}

// invalidate drops key's answer if it is older than version; a delete
// (version math.MaxUint64) always drops it.
func (c *Cache) invalidate(key []byte, version uint64) {
	s := c.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	c.invalidations.Add(1)
	if cur, ok := c.rc.Get(key); ok && cur.Body != nil && cur.version >= version && version != math.MaxUint64 {
		return // already as new as the change
	}
	c.rc.Del(key)
	c.remember(s, key, version)
}

// remember records key's latest version in its stripe; the caller holds
// s.mu. It prunes old entries as it goes.
func (c *Cache) remember(s *stripe, key []byte, version uint64) {
	now := c.cfg.Now().UnixNano()
	if l, ok := s.latest[string(key)]; !ok || version > l.version {
		s.latest[string(key)] = latestEntry{version: version, at: now}
	}
	if s.ops++; s.ops%256 == 0 {
		for k, l := range s.latest {
			if now-l.at > int64(latestTTL) {
				delete(s.latest, k)
			}
		}
	}
}

// Apply takes the changes a core pushed (upstream.Config.OnChanges):
// each drops the cached answer it makes stale; reset makes every cached
// answer stale.
func (c *Cache) Apply(changes []wire.Change, reset bool) {
	if reset {
		c.epoch.Add(1)
		c.resets.Add(1)
	}
	var kb [512]byte
	for _, ch := range changes {
		v := uint64(math.MaxUint64)
		if !ch.Deleted {
			v = parseVersion(ch.Version)
		}
		c.invalidate(cacheKey(kb[:0], ch.Tenant, []byte(ch.ID)), v)
	}
}

// CacheStats are the cache's counters.
type CacheStats struct {
	Hits, Misses, Stale, Invalidations, Resets, Evictions uint64
	Bytes                                                 int64
}

// Stats implements httpapi.Cache: the summary /v1/metrics shows.
func (c *Cache) Stats() nodestats.Cache {
	st := c.Counters()
	out := nodestats.Cache{Enabled: true, Hits: st.Hits, Misses: st.Misses, Bytes: st.Bytes}
	if st.Hits+st.Misses > 0 {
		out.Ratio = float64(st.Hits) / float64(st.Hits+st.Misses)
	}
	return out
}

// Counters returns the cache's counters.
func (c *Cache) Counters() CacheStats {
	m := c.rc.Metrics
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load(),
		Invalidations: c.invalidations.Load(), Resets: c.resets.Load(),
		Evictions: m.KeysEvicted(), Bytes: int64(m.CostAdded() - m.CostEvicted())}
}
