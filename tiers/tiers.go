// Package tiers defines the storage interface every Brainy backend
// implements — memory and local disk today, object stores and the
// hot/warm/cold policy later — and the batch type writes travel in.
//
// A Store is an ordered key/value map. Keys are compared bytewise. All
// methods are safe for concurrent use, but writers must not call Apply
// concurrently when the order of their batches matters: core serialises
// Apply through one committer goroutine, which is what gives batches their
// order.
package tiers

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("tiers: not found")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("tiers: store closed")

// Store is an ordered, durable key/value store.
type Store interface {
	// Get returns a copy of the value stored under key, or ErrNotFound.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// Apply writes the batch atomically: after it returns, readers see all
	// of it or, if it failed, none of it. With sync, Apply returns only
	// once the batch is durable (survives a crash of the process and of the
	// machine), and concurrent synced Applies may share one sync. The store
	// keeps nothing of b once Apply returns: callers reuse it.
	Apply(ctx context.Context, b *Batch, sync bool) error
	// NewIter returns an iterator over keys in [lower, upper); a nil upper
	// means no upper bound. The iterator sees a consistent snapshot.
	NewIter(ctx context.Context, lower, upper []byte) (Iterator, error)
	// Stats reports the store's size.
	Stats() Stats
	// Close releases the store. Applies that returned before Close are
	// durable if they were synced.
	Close() error
}

// Iterator walks keys in ascending order. It is not safe for concurrent use.
type Iterator interface {
	// Next advances to the next key; it reports false at the end or on error.
	Next() bool
	// Key and Value are valid until the next call to Next or Close.
	Key() []byte
	Value() []byte
	// Err reports the error that ended the iteration, if any.
	Err() error
	Close() error
}

// Stats describes a store's footprint.
type Stats struct {
	// Backend names the implementation ("memory", "disk").
	Backend string `json:"backend"`
	// Location is where the data lives (a directory, or empty in memory).
	Location string `json:"location,omitempty"`
	// LiveBytes approximates the bytes of keys and values stored.
	LiveBytes int64 `json:"bytes"`
}

// Batch is an ordered list of writes applied atomically. The zero value is
// empty and ready; Reset lets a batch be reused without allocating.
type Batch struct {
	ops []op
	buf []byte
}

type op struct {
	del        bool
	key, value [2]int // offsets into buf
}

// Set records a write of value under key. The batch copies both.
func (b *Batch) Set(key, value []byte) {
	o := op{key: b.add(key)}
	o.value = b.add(value)
	b.ops = append(b.ops, o)
}

// Delete records the removal of key.
func (b *Batch) Delete(key []byte) {
	b.ops = append(b.ops, op{del: true, key: b.add(key)})
}

func (b *Batch) add(p []byte) [2]int {
	start := len(b.buf)
	b.buf = append(b.buf, p...)
	return [2]int{start, len(b.buf)}
}

// Append adds o's writes after b's, in order. o is unchanged.
func (b *Batch) Append(o *Batch) {
	base := len(b.buf)
	b.buf = append(b.buf, o.buf...)
	for _, op := range o.ops {
		op.key[0] += base
		op.key[1] += base
		if !op.del {
			op.value[0] += base
			op.value[1] += base
		}
		b.ops = append(b.ops, op)
	}
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Size returns the bytes of keys and values in the batch.
func (b *Batch) Size() int { return len(b.buf) }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.ops = b.ops[:0]
	b.buf = b.buf[:0]
}

// Each calls fn for every write in order; value is nil for a delete. The
// slices alias the batch's memory and are valid until Reset.
func (b *Batch) Each(fn func(del bool, key, value []byte) error) error {
	for _, o := range b.ops {
		var v []byte
		if !o.del {
			v = b.buf[o.value[0]:o.value[1]:o.value[1]]
		}
		if err := fn(o.del, b.buf[o.key[0]:o.key[1]:o.key[1]], v); err != nil {
			return err
		}
	}
	return nil
}
