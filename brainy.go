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
//
// This package keeps data in memory or in a local directory and links no
// cloud SDK. Object stores (s3://, r2://, gs://, azure://, cloud://) and
// tiered storage come with the package
// [github.com/soullabs/brainy/brainycloud], so only a program that imports
// it pays for the AWS, Google Cloud and Azure SDKs:
//
//	brain, err := brainy.New(ctx, brainycloud.WithStorage("s3://bucket/prefix"))
//
// [WithStore] keeps the data in any other [tiers.Store].
package brainy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
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

// FindResult is what Find answers: the items (Hits, each with its Score
// when the query ranks by vector) and a Cursor to continue with.
type FindResult = query.Result

// Hit is an item a find returned, with its score.
type Hit = query.Hit

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
	open       func(context.Context, StoreConfig) (tiers.Store, error)
	tenant     string
	partitions int
	limits     item.Limits
	logger     *slog.Logger
}

// WithStorage sets where data lives: "memory" (the default), or a
// directory ("./data", "/abs/dir", "file:///abs/dir"), which makes the store
// durable. A "{{nodeId}}" in a directory becomes the host name.
//
// An object-store URL (s3://, r2://, gs://, azure://, cloud://) makes New
// fail with an error that names the package to use instead:
// brainycloud.WithStorage of [github.com/soullabs/brainy/brainycloud] takes
// every setting this one takes, and those.
func WithStorage(setting string) Option {
	return func(o *options) {
		o.open = func(context.Context, StoreConfig) (tiers.Store, error) { return openLocal(setting, o.logger) }
	}
}

// StoreConfig is what New passes to the opener of [WithStore].
type StoreConfig struct {
	// Logger is the logger of WithLogger; nil when none is set.
	Logger *slog.Logger
}

// WithStore makes New keep the data in the store that open returns, instead
// of a WithStorage setting (the last of the two options wins). New calls
// open with its own context, after checking the other options; the Brain
// then owns the store: Close closes it, and so does New when it fails after
// open. If the store has a method Location() string, Metrics reports it as
// where the data lives (otherwise the store's Stats().Location).
//
// This is how [github.com/soullabs/brainy/brainycloud] adds object stores;
// it also takes any other tiers.Store.
func WithStore(open func(ctx context.Context, cfg StoreConfig) (tiers.Store, error)) Option {
	return func(o *options) {
		if open == nil {
			open = func(context.Context, StoreConfig) (tiers.Store, error) {
				return nil, errors.New("brainy: WithStore(nil): no store opener")
			}
		}
		o.open = open
	}
}

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
	limits Limits
}

// New opens a store. With no options it is a single node in memory.
func New(ctx context.Context, opts ...Option) (*Brain, error) {
	o := options{tenant: "default"}
	o.open = func(context.Context, StoreConfig) (tiers.Store, error) { return openLocal("memory", o.logger) }
	for _, opt := range opts {
		opt(&o)
	}
	o.limits.EnsureDefaults()
	if err := o.limits.CheckTenant(o.tenant); err != nil {
		return nil, err
	}
	store, err := o.open(ctx, StoreConfig{Logger: o.logger})
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("brainy: the store opener of WithStore returned no store")
	}
	cfg := core.Config{Store: store, Partitions: o.partitions, Limits: o.limits, Logger: o.logger}
	if l, ok := store.(interface{ Location() string }); ok {
		cfg.StorageLocation = l.Location()
	} else {
		cfg.StorageLocation = store.Stats().Location
	}
	// Stores that brainycloud opens also report their tiers and
	// object-store requests.
	if f, ok := store.(interface{ FillStats(*nodestats.Storage) }); ok {
		cfg.StorageStats = f.FillStats
	}
	node, err := core.Open(ctx, cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &Brain{node: node, store: store, tenant: o.tenant, limits: o.limits}, nil
}

// cloudPackage is the package that opens object stores for an embedded
// Brain.
const cloudPackage = "github.com/soullabs/brainy/brainycloud"

// objectSchemes are the storage URL schemes that cloudPackage opens.
var objectSchemes = []string{"s3", "r2", "gs", "azure", "cloud"}

// nodeIDTemplate in a directory is replaced by the host name, as
// brainy-core replaces it by the node id.
const nodeIDTemplate = "{{nodeId}}"

// localStore is an open memory or disk store and the setting's location.
type localStore struct {
	tiers.Store
	location string
}

func (s localStore) Location() string { return s.location }

// openLocal opens the store of a WithStorage setting: memory or a
// directory. It reads settings as tiers/backend does (brainycloud uses
// that) and gives the same store, without linking the object stores.
func openLocal(setting string, log *slog.Logger) (tiers.Store, error) {
	kind, dir, err := parseLocal(setting)
	if err != nil {
		return nil, err
	}
	if kind == "memory" {
		return localStore{memory.New(), "memory"}, nil
	}
	st, err := disk.Open(disk.Config{Dir: dir, Logger: log})
	if err != nil {
		return nil, err
	}
	return localStore{st, dir}, nil
}

// parseLocal parses a WithStorage setting into "memory", or "disk" and an
// absolute directory with {{nodeId}} replaced by the host name.
func parseLocal(setting string) (kind, dir string, err error) {
	s := strings.TrimSpace(setting)
	if s == "" {
		return "", "", fmt.Errorf("brainy: empty storage setting; use \"memory\" or a directory (object stores: %s)", cloudPackage)
	}
	// Parse with the template replaced by a placeholder that is valid in a
	// path, then put the host name there.
	probe := strings.ReplaceAll(s, nodeIDTemplate, templatePlaceholder)
	if strings.Contains(probe, "{{") || strings.Contains(probe, "}}") {
		return "", "", fmt.Errorf("brainy: storage %q: unknown template; the only one is %s", setting, nodeIDTemplate)
	}
	switch {
	case s == "memory":
		return "memory", "", nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(probe)
		if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return "", "", fmt.Errorf("brainy: storage %q: want file:///absolute/dir", setting)
		}
		dir = filepath.Clean(u.Path)
	case strings.Index(s, "://") > 0:
		scheme, _, _ := strings.Cut(s, "://")
		for _, o := range objectSchemes {
			if scheme == o {
				return "", "", fmt.Errorf("brainy: storage %q is an object store; brainy.WithStorage opens only memory and directories: "+
					"import %q and use brainycloud.WithStorage(%q)", setting, cloudPackage, setting)
			}
		}
		return "", "", fmt.Errorf("brainy: storage %q: unknown scheme %q; use \"memory\", a directory or file:///dir "+
			"(object stores %s:// are in %s)", setting, scheme, strings.Join(objectSchemes, "://, "), cloudPackage)
	default:
		abs, err := filepath.Abs(probe)
		if err != nil {
			return "", "", fmt.Errorf("brainy: storage %q: %w", setting, err)
		}
		dir = abs
	}
	if strings.Contains(dir, templatePlaceholder) {
		host, err := os.Hostname()
		if err != nil {
			return "", "", fmt.Errorf("brainy: storage %s: {{nodeId}} needs a host name: %w", setting, err)
		}
		dir = strings.ReplaceAll(dir, templatePlaceholder, host)
	}
	return "disk", dir, nil
}

// templatePlaceholder stands for {{nodeId}} while a setting is parsed.
const templatePlaceholder = "brainy0node0id0placeholder"

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

// Find runs a query, the JSON of POST /v1/find: {"type", "where",
// "near", "limit", "cursor"} — e.g. {"where": {"metadata.lang": "en",
// "metadata.n": {"gte": 10}}, "limit": 20} or {"near": {"vector": [...],
// "k": 10}}. A malformed query is ErrInvalid, its message naming the path. Pass
// FindResult.Cursor back as "cursor" for the next page.
func (b *Brain) Find(ctx context.Context, q string) (*FindResult, error) {
	parsed, err := query.Parse([]byte(q), b.limits)
	if err != nil {
		return nil, err
	}
	return query.Find(ctx, b.node, b.tenant, parsed)
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
