// Package brainy is the embedded Go API of Brainy: a data store that starts
// as one process with zero configuration.
//
//	brain, err := brainy.New(ctx)                                  // in memory
//	brain, err := brainy.New(ctx, brainy.WithStorage("./data"))    // durable
//	defer brain.Close()
//	it, err := brain.Add(ctx, brainy.Item{Type: "person", Data: json.RawMessage(`{"name":"John"}`)})
//
// A Brain is safe for concurrent use. A write returns only once it is
// durable (with disk storage: in the synced write-ahead log); concurrent
// writes share syncs, so durability does not cap throughput at one fsync
// per write.
package brainy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/backend"
)

// Item is one stored record; see the field docs for what the server sets.
type Item = item.Item

// Patch is a merge update of an item (RFC 7386 for data and metadata).
type Patch = item.Patch

// ListOptions selects a page of items.
type ListOptions = item.ListOptions

// Page is one page of a listing.
type Page = item.Page

// Metrics is a snapshot of the store (nodes, shards, replication,
// operations, storage).
type Metrics = nodestats.Snapshot

// Limits bound every input.
type Limits = item.Limits

// Errors, for errors.Is.
var (
	ErrNotFound           = item.ErrNotFound
	ErrConflict           = item.ErrConflict
	ErrPreconditionFailed = item.ErrPreconditionFailed
	ErrInvalid            = item.ErrInvalid
	ErrUnavailable        = item.ErrUnavailable
	ErrClosed             = item.ErrClosed
)

// Option configures New.
type Option func(*options)

type options struct {
	storage    string
	tenant     string
	partitions int
	limits     item.Limits
	logger     *slog.Logger
}

// WithStorage sets where data lives: "memory" (the default) or a
// directory, which makes the store durable.
func WithStorage(setting string) Option { return func(o *options) { o.storage = setting } }

// WithTenant sets the tenant this Brain reads and writes. Default "default".
func WithTenant(tenant string) Option { return func(o *options) { o.tenant = tenant } }

// WithPartitions sets the partition count of a new store. Default 64; an
// existing store keeps the count it was created with.
func WithPartitions(n int) Option { return func(o *options) { o.partitions = n } }

// WithLimits overrides input limits; zero fields keep their defaults.
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithLogger sets the logger. Default: none.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Brain is an open store.
type Brain struct {
	node   *core.Node
	store  tiers.Store
	tenant string
}

// New opens a store. With no options it is a single node in memory.
func New(ctx context.Context, opts ...Option) (*Brain, error) {
	o := options{storage: "memory", tenant: "default"}
	for _, opt := range opts {
		opt(&o)
	}
	o.limits.EnsureDefaults()
	if err := o.limits.CheckTenant(o.tenant); err != nil {
		return nil, err
	}
	spec, err := backend.Parse(o.storage)
	if err != nil {
		return nil, err
	}
	if spec.HasTemplate() {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("brainy: storage %s: {{nodeId}} needs a host name: %w", spec, err)
		}
		spec = spec.Expand(host)
	}
	store, err := backend.Open(ctx, spec, backend.Options{Logger: o.logger, Demotable: core.Demotable})
	if err != nil {
		return nil, err
	}
	node, err := core.Open(ctx, core.Config{Store: store, StorageLocation: spec.Location(), StorageStats: store.FillStats,
		Partitions: o.partitions, Limits: o.limits, Logger: o.logger})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &Brain{node: node, store: store, tenant: o.tenant}, nil
}

// Add stores a new item and returns it as stored. An empty ID gets a
// generated, time-ordered one; an existing ID is ErrConflict.
func (b *Brain) Add(ctx context.Context, it Item) (*Item, error) {
	return b.node.Add(ctx, b.tenant, &it)
}

// Get returns the item with id, or ErrNotFound.
func (b *Brain) Get(ctx context.Context, id string) (*Item, error) {
	return b.node.Get(ctx, b.tenant, id)
}

// Update replaces an existing item (ErrNotFound if there is none). If
// it.Version is set, the update happens only if the stored item still has
// that version (ErrPreconditionFailed otherwise): optimistic concurrency.
func (b *Brain) Update(ctx context.Context, it Item) (*Item, error) {
	cond := item.Cond{IfMatch: it.Version}
	if cond.IfMatch == "" {
		cond.IfMatch = "*"
	}
	out, _, err := b.node.Put(ctx, b.tenant, &it, cond)
	if cond.IfMatch == "*" && errors.Is(err, ErrPreconditionFailed) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, it.ID)
	}
	return out, err
}

// Merge applies p to the item id: data and metadata are merged as JSON
// merge patches (a null member deletes), type and vector replace when set.
func (b *Brain) Merge(ctx context.Context, id string, p Patch) (*Item, error) {
	return b.node.Patch(ctx, b.tenant, id, &p, item.Cond{})
}

// Delete removes the item id, or returns ErrNotFound.
func (b *Brain) Delete(ctx context.Context, id string) error {
	return b.node.Delete(ctx, b.tenant, id, item.Cond{})
}

// List returns a page of items ordered by id; pass Page.Cursor back in
// ListOptions.Cursor for the next page.
func (b *Brain) List(ctx context.Context, opts ListOptions) (*Page, error) {
	return b.node.List(ctx, b.tenant, opts)
}

// Metrics returns a snapshot of the store.
func (b *Brain) Metrics() Metrics { return b.node.Metrics() }

// Close waits for in-flight writes, then closes the storage.
func (b *Brain) Close() error {
	err := b.node.Close()
	if cerr := b.store.Close(); err == nil {
		err = cerr
	}
	return err
}
