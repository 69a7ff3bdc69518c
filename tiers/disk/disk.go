// Package disk is the local-disk tiers.Store, on cockroachdb/pebble.
//
// Durability comes from pebble's write-ahead log: a synced Apply returns
// after the WAL is fsync'd, and pebble's commit pipeline lets concurrent
// synced Applies share one fsync. Core additionally batches all writes of
// one driver cycle into one Apply, so a node does one fsync per cycle, not
// per write.
package disk

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/soullabs/brainy/tiers"
)

// Config configures a disk store.
type Config struct {
	// Dir is the data directory; created if missing. Required.
	Dir string
	// CacheBytes is the block cache size. Default 64 MiB. More cache means
	// fewer disk reads for a working set larger than the memtables.
	CacheBytes int64
	// MemTableBytes is the size of one memtable. Default 32 MiB. Larger
	// memtables absorb more writes before a flush, at the cost of RAM and a
	// longer WAL replay after a crash.
	MemTableBytes uint64
	// Logger receives pebble's own log lines at debug level (errors at
	// error level). Nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 32 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is a pebble-backed tiers.Store.
type Store struct {
	db     *pebble.DB
	dir    string
	closed atomic.Bool // pebble panics on use after Close; we answer ErrClosed
}

var _ tiers.Store = (*Store)(nil)

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if cfg.Dir == "" {
		return nil, fmt.Errorf("disk: Config.Dir is required")
	}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:              cache,
		MemTableSize:       cfg.MemTableBytes,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             logger{cfg.Logger},
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("disk: open %s: %w", cfg.Dir, err)
	}
	return &Store{db: db, dir: cfg.Dir}, nil
}

// Get implements tiers.Store.
func (s *Store) Get(_ context.Context, key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	v, closer, err := s.db.Get(key)
	if err == pebble.ErrNotFound {
		return nil, tiers.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("disk: get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	closer.Close()
	return out, nil
}

// Apply implements tiers.Store.
func (s *Store) Apply(_ context.Context, b *tiers.Batch, sync bool) error {
	if s.closed.Load() {
		return tiers.ErrClosed
	}
	pb := s.db.NewBatchWithSize(b.Size() + 16*b.Len())
	defer pb.Close()
	_ = b.Each(func(del bool, key, value []byte) error {
		if del {
			return pb.Delete(key, nil)
		}
		return pb.Set(key, value, nil)
	})
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := s.db.Apply(pb, wo); err != nil {
		return fmt.Errorf("disk: apply: %w", err)
	}
	return nil
}

// NewIter implements tiers.Store.
func (s *Store) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	if s.closed.Load() {
		return nil, tiers.ErrClosed
	}
	if len(lower) == 0 {
		lower = nil // pebble treats an empty, non-nil bound differently (and trips on it under -race)
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("disk: iter: %w", err)
	}
	return &iter{it: it}, nil
}

type iter struct {
	it      *pebble.Iterator
	started bool
}

func (i *iter) Next() bool {
	if !i.started {
		i.started = true
		return i.it.First()
	}
	return i.it.Next()
}
func (i *iter) Key() []byte   { return i.it.Key() }
func (i *iter) Value() []byte { return i.it.Value() }
func (i *iter) Err() error    { return i.it.Error() }
func (i *iter) Close() error  { return i.it.Close() }

// Stats implements tiers.Store.
func (s *Store) Stats() tiers.Stats {
	if s.closed.Load() {
		return tiers.Stats{Backend: "disk", Location: s.dir}
	}
	m := s.db.Metrics()
	// The tables on disk plus the live part of the WAL (the writes not yet
	// flushed to tables, which DiskSpaceUsage leaves out): an estimate of
	// the footprint that moves as soon as writes land.
	return tiers.Stats{Backend: "disk", Location: s.dir, LiveBytes: int64(m.DiskSpaceUsage()) + int64(m.WAL.Size)}
}

// Close implements tiers.Store. It flushes nothing extra: everything
// applied with sync is already in the WAL. Closing twice is a no-op.
// Callers must not race Close with other calls (core closes the store
// only after its node has stopped).
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("disk: close: %w", err)
	}
	return nil
}

// logger adapts pebble's printf-style logger to slog.
type logger struct{ l *slog.Logger }

func (l logger) Infof(format string, args ...any) {
	l.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (l logger) Errorf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (l logger) Fatalf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf(format, args...))
}
