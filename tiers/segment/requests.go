package segment

import (
	"context"
	"sync/atomic"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Requests counts the object-store calls a Store has issued since Open,
// including those of Open itself. Each field counts calls, not retries
// inside the adapter.
type Requests struct {
	// Puts counts object writes: segments (with their retries), checkpoints
	// and MANIFEST updates.
	Puts int64 `json:"puts"`
	// Gets counts whole-object reads: recovery, compaction, retry checks.
	Gets int64 `json:"gets"`
	// RangeGets counts range reads of values (Get and iterators).
	RangeGets int64 `json:"range_gets"`
	// Deletes counts collected segments and checkpoints.
	Deletes int64 `json:"deletes"`
	// Lists counts listings (recovery and checkpoint collection).
	Lists int64 `json:"lists"`
}

// counting wraps the configured objstore.Store to count calls.
type counting struct {
	objstore.Store
	puts, gets, ranges, deletes, lists atomic.Int64
}

func (c *counting) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, key, body, cond)
}

func (c *counting) Get(ctx context.Context, key string) ([]byte, string, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *counting) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	c.ranges.Add(1)
	return c.Store.GetRange(ctx, key, off, n)
}

func (c *counting) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	c.lists.Add(1)
	return c.Store.List(ctx, prefix, fn)
}

func (c *counting) snapshot() Requests {
	return Requests{
		Puts: c.puts.Load(), Gets: c.gets.Load(), RangeGets: c.ranges.Load(),
		Deletes: c.deletes.Load(), Lists: c.lists.Load(),
	}
}
