package httpapi

import (
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
)

// Cache is a RAM cache of rendered GET answers in front of the Backend:
// an edge's (package edge), which keeps it fresh from the changes the
// cores push. The handler asks it first for every GET, lets it coalesce
// misses, and tells it about the writes it makes. Every method is called
// concurrently from request goroutines.
type Cache interface {
	// Lookup returns the answer cached for tenant's item id (the id's raw
	// bytes from the path, which hold no escapes) and whether it is fresh;
	// a fresh answer counts as a hit. It is the hit path: it must not
	// allocate.
	Lookup(tenant string, id []byte) (a *Answer, fresh bool)
	// Load answers a miss. It calls fetch at most once per key at a time
	// (concurrent misses share the call), caches the answer fetch returns
	// (a nil item: a 404), and returns it. When fetch fails with
	// item.ErrUnavailable and an answer is cached, fresh or not, it
	// returns that answer with stale set instead of the error.
	Load(tenant, id string, fetch func() (*item.Item, error)) (a *Answer, stale bool, err error)
	// Wrote caches the item a write through this handler returned, so the
	// writer reads it back at once (read-your-writes).
	Wrote(it *item.Item)
	// Deleted drops the answer of an item deleted through this handler.
	Deleted(tenant, id string)
	// Stats summarises the cache for /v1/metrics.
	Stats() nodestats.Cache
}

// Answer is a cached GET answer: rendered once, immutable, and written to
// every response that serves it as is.
type Answer struct {
	// Body is the item's JSON with a trailing newline; nil for a 404.
	Body []byte
	// ETag is the item's version as a quoted entity tag.
	ETag []byte
	// Stored is when the answer was made (Unix nanoseconds): its Age.
	Stored int64
}

// NewAnswer renders it (nil: a 404) as an Answer made at now (Unix
// nanoseconds).
func NewAnswer(it *item.Item, now int64) Answer {
	if it == nil {
		return Answer{Stored: now}
	}
	body := append(appendItem(make([]byte, 0, 256+len(it.Data)+len(it.Metadata)), it), '\n')
	return Answer{Body: body, ETag: appendETag(nil, it.Version), Stored: now}
}
