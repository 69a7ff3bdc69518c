package core

import (
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers"
)

// Add creates an item. An empty it.ID gets a new, time-ordered id; an id
// that exists already is item.ErrConflict.
func (n *Node) Add(ctx context.Context, tenant string, it *item.Item) (*item.Item, error) {
	cmd, err := n.newValueCommand(OpCreate, tenant, it, item.Cond{})
	if err != nil {
		return nil, err
	}
	res := n.propose(ctx, cmd)
	n.count(&n.ops.adds, res.err)
	return res.item, res.err
}

// Put creates or replaces the item it.ID, subject to cond. created reports
// whether the item was new.
func (n *Node) Put(ctx context.Context, tenant string, it *item.Item, cond item.Cond) (_ *item.Item, created bool, _ error) {
	if it.ID == "" {
		return nil, false, item.Invalid("invalid_id", "id must not be empty")
	}
	cmd, err := n.newValueCommand(OpPut, tenant, it, cond)
	if err != nil {
		return nil, false, err
	}
	res := n.propose(ctx, cmd)
	n.count(&n.ops.updates, res.err)
	return res.item, res.created, res.err
}

func (n *Node) newValueCommand(op Op, tenant string, it *item.Item, cond item.Cond) (*Command, error) {
	lim := &n.cfg.Limits
	id := it.ID
	if id == "" {
		id = ulid.Make().String()
	}
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id), lim.CheckType(it.Type), lim.CheckVector(it.Vector)); err != nil {
		return nil, firstInvalid(err)
	}
	data, err := n.validJSON("data", it.Data, false)
	if err != nil {
		return nil, err
	}
	meta, err := n.validJSON("metadata", it.Metadata, true)
	if err != nil {
		return nil, err
	}
	// apply would refuse it too, but only after its raft entry, which may
	// then be too large for a transport frame, stalled the partition's log.
	if err := checkItemSize(data, meta, it.Vector); err != nil {
		return nil, err
	}
	cmd := n.newCommand(op, tenant, id, cond)
	cmd.Type, cmd.Data, cmd.Metadata, cmd.Vector = it.Type, data, meta, it.Vector
	return cmd, nil
}

// newCommand starts a write made here: stamped by this node's clock, from
// its region.
func (n *Node) newCommand(op Op, tenant, id string, cond item.Cond) *Command {
	return &Command{Op: op, Now: n.clock.Now(), Origin: n.cfg.Region, Federated: n.cfg.Federated,
		Tenant: tenant, ID: id, Cond: cond}
}

// Patch merges p into the existing item id (item.ErrNotFound if missing),
// subject to cond.
func (n *Node) Patch(ctx context.Context, tenant, id string, p *item.Patch, cond item.Cond) (*item.Item, error) {
	lim := &n.cfg.Limits
	cmd := n.newCommand(OpPatch, tenant, id, cond)
	cmd.Vector, cmd.HasVector = p.Vector, p.HasVector
	if p.Type != nil {
		cmd.Type, cmd.HasType = *p.Type, true
	}
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id), lim.CheckType(cmd.Type), lim.CheckVector(p.Vector)); err != nil {
		return nil, firstInvalid(err)
	}
	jl := jsontext.Limits{MaxDepth: lim.MaxDepth, MaxFields: lim.MaxFields}
	var err error
	// A merge patch keeps its nulls: {"data": null} removes the data.
	if p.Data != nil {
		if cmd.Data, err = jsontext.Compact(nil, p.Data, jl); err != nil {
			return nil, invalidJSON("data", err)
		}
	}
	if p.Metadata != nil {
		if cmd.Metadata, err = jsontext.Compact(nil, p.Metadata, jl); err != nil {
			return nil, invalidJSON("metadata", err)
		}
		if cmd.Metadata[0] != '{' && string(cmd.Metadata) != "null" {
			return nil, item.Invalid("invalid_metadata", "metadata must be a JSON object")
		}
	}
	// No patch carries more than an item may hold: its raft entry must fit
	// a transport frame.
	if err := checkItemSize(cmd.Data, cmd.Metadata, cmd.Vector); err != nil {
		return nil, err
	}
	res := n.propose(ctx, cmd)
	n.count(&n.ops.updates, res.err)
	return res.item, res.err
}

// Delete removes the item id (item.ErrNotFound if missing), subject to cond.
func (n *Node) Delete(ctx context.Context, tenant, id string, cond item.Cond) error {
	lim := &n.cfg.Limits
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id)); err != nil {
		return firstInvalid(err)
	}
	res := n.propose(ctx, n.newCommand(OpDelete, tenant, id, cond))
	n.count(&n.ops.deletes, res.err)
	return res.err
}

// Get returns the item id of tenant, or item.ErrNotFound. It sees every
// acknowledged write.
func (n *Node) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	lim := &n.cfg.Limits
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id)); err != nil {
		return nil, firstInvalid(err)
	}
	if n.isClosed() {
		return nil, item.ErrClosed
	}
	part := PartitionOf(tenant, id, n.nparts)
	if n.raft != nil && !isStale(ctx) {
		if err := n.readBarrier(ctx, part); err != nil {
			n.count(&n.ops.gets, err)
			return nil, err
		}
	}
	var kb [96]byte
	v, found, ok := n.readRecord(ctx, itemKey(kb[:0], part, tenant, id))
	if !ok {
		n.ops.errors.Add(1)
		return nil, fmt.Errorf("%w: reading %q", item.ErrUnavailable, id)
	}
	n.ops.gets.Add(1)
	if !found {
		return nil, item.ErrNotFound
	}
	var r record
	if err := r.decode(v); err != nil {
		n.ops.errors.Add(1)
		return nil, fmt.Errorf("core: item %q: %w", id, err)
	}
	// v may be shared with the cache: the item gets its own copy.
	return r.toItem(tenant, id, false), nil
}

func (n *Node) isClosed() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.closed
}

// List returns a page of tenant's items ordered by id, optionally only
// those of one type: up to opts.Limit items and item.MaxPageBytes (see
// PageBudget). It merges the partitions' key ranges, so a page costs one
// seek per partition plus one step per item returned.
func (n *Node) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	return n.ListPartitions(ctx, tenant, opts, nil)
}

// partitionsOf checks that parts name partitions of this node; nil names
// them all.
func (n *Node) partitionsOf(parts []int) ([]int, error) {
	if parts == nil {
		parts = make([]int, n.nparts)
		for p := range parts {
			parts[p] = p
		}
	}
	for _, p := range parts {
		if p < 0 || p >= n.nparts {
			return nil, item.Invalid("invalid_partition", "partition %d does not exist", p)
		}
	}
	return parts, nil
}

// ListCursor is the cursor of a page whose last item is lastID: a list
// that merges pages of several nodes hands it out.
func ListCursor(lastID string) string { return encodeCursor(lastID) }

// ListPartitions is List over the given partitions only (nil: all). A
// cluster lists each node's share and merges the pages: ids are one total
// order across partitions, and so are cursors.
func (n *Node) ListPartitions(ctx context.Context, tenant string, opts item.ListOptions, parts []int) (*item.Page, error) {
	return n.listPartitions(ctx, tenant, opts, parts, nil)
}

// ListWhere implements query.WhereLister: List narrowed, in partitions
// whose metadata index can answer one of where's lookups, to the items
// that index lists (metaindex.go).
func (n *Node) ListWhere(ctx context.Context, tenant string, opts item.ListOptions, where *query.Filter) (*item.Page, error) {
	return n.listPartitions(ctx, tenant, opts, nil, where)
}

// ListWhereIn is ListWhere over the given partitions only (nil: all).
func (n *Node) ListWhereIn(ctx context.Context, tenant string, opts item.ListOptions, parts []int, where *query.Filter) (*item.Page, error) {
	return n.listPartitions(ctx, tenant, opts, parts, where)
}

func (n *Node) listPartitions(ctx context.Context, tenant string, opts item.ListOptions, parts []int, where *query.Filter) (*item.Page, error) {
	parts, err := n.partitionsOf(parts)
	if err != nil {
		return nil, err
	}
	lim := &n.cfg.Limits
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckType(opts.Type)); err != nil {
		return nil, firstInvalid(err)
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = item.DefaultListLimit
	case limit < 0 || limit > item.MaxListLimit:
		return nil, item.Invalid("invalid_limit", "limit must be between 1 and %d", item.MaxListLimit)
	}
	after, err := decodeCursor(opts.Cursor)
	if err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, item.ErrClosed
	}
	n.ops.lists.Add(1)
	if err := n.readable(ctx, parts); err != nil {
		return nil, err
	}

	h := &mergeHeap{}
	defer func() {
		for _, s := range h.srcs {
			s.it.Close()
		}
	}()
	var lookups []query.Lookup
	if opts.Type != "" {
		lookups = metaLookups(where)
	}
	for _, p := range parts {
		if len(lookups) > 0 {
			srcs, ok, err := n.metaSources(ctx, p, tenant, opts.Type, lookups, after)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
			}
			if ok {
				for i, s := range srcs {
					if err := h.add(s); err != nil {
						closeSources(srcs[i+1:])
						return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
					}
				}
				n.ops.indexedLists.Add(1)
				continue
			}
		}
		var prefix []byte
		if opts.Type != "" {
			prefix = typePrefix(nil, p, tenant, opts.Type)
		} else {
			prefix = itemPrefix(nil, p, tenant)
		}
		s, err := n.openSource(ctx, p, prefix, after)
		if err == nil {
			err = h.add(s)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		}
	}
	heap.Init(h)
	page := &item.Page{Items: []*item.Item{}}
	var budget PageBudget
	last := ""
	for h.Len() > 0 {
		s := h.srcs[0]
		id := s.id
		if id == last {
			// An item an index lists under two values (an array's, or
			// an in's): it was read already.
			if err := h.advance(); err != nil {
				return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
			}
			continue
		}
		last = id
		if len(page.Items) == limit {
			// There is at least one more item: hand out a cursor.
			page.Cursor = encodeCursor(page.Items[limit-1].ID)
			break
		}
		var it *item.Item
		if opts.Type != "" {
			it, err = n.Get(ctx, tenant, id)
			if errors.Is(err, item.ErrNotFound) {
				err = nil // deleted between the index read and now
			}
		} else {
			var r record
			if err = r.decode(s.it.Value()); err == nil {
				it = r.toItem(tenant, id, false)
			}
		}
		if err != nil {
			return nil, err
		}
		if it != nil {
			if !budget.Add(it) {
				// The page is full by bytes: the next one starts at it.
				page.Cursor = encodeCursor(page.Items[len(page.Items)-1].ID)
				break
			}
			page.Items = append(page.Items, it)
		}
		if err := h.advance(); err != nil {
			return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		}
	}
	return page, nil
}

type mergeSource struct {
	it   tiers.Iterator
	part int
	plen int
	id   string
}

func (s *mergeSource) next() bool {
	if !s.it.Next() {
		return false
	}
	s.id = string(s.it.Key()[s.plen:])
	return true
}

// mergeHeap orders the partitions' iterators by their current id.
type mergeHeap struct{ srcs []*mergeSource }

// openSource iterates over the keys of part under prefix whose rest (an
// id) is past after.
func (n *Node) openSource(ctx context.Context, part int, prefix []byte, after string) (*mergeSource, error) {
	lower := prefix
	if after != "" {
		lower = append(append(slices.Clip(prefix), after...), 0)
	}
	it, err := n.store.NewIter(ctx, lower, prefixEnd(prefix))
	if err != nil {
		return nil, err
	}
	return &mergeSource{it: it, part: part, plen: len(prefix)}, nil
}

// add takes s in at its first key, or closes it when it has none,
// returning what closing it reports.
func (h *mergeHeap) add(s *mergeSource) error {
	if s.next() {
		h.srcs = append(h.srcs, s)
		return nil
	}
	return s.it.Close()
}

// advance moves the first source on, or, when it has no more, closes it
// and drops it, returning its iterator's error.
func (h *mergeHeap) advance() error {
	s := h.srcs[0]
	if s.next() {
		heap.Fix(h, 0)
		return nil
	}
	err := s.it.Err()
	heap.Pop(h)
	s.it.Close()
	return err
}

func (h *mergeHeap) Len() int           { return len(h.srcs) }
func (h *mergeHeap) Less(i, j int) bool { return h.srcs[i].id < h.srcs[j].id }
func (h *mergeHeap) Swap(i, j int)      { h.srcs[i], h.srcs[j] = h.srcs[j], h.srcs[i] }
func (h *mergeHeap) Push(x any)         { h.srcs = append(h.srcs, x.(*mergeSource)) }
func (h *mergeHeap) Pop() any {
	s := h.srcs[len(h.srcs)-1]
	h.srcs = h.srcs[:len(h.srcs)-1]
	return s
}

// PageBudget cuts a list page at item.MaxPageBytes of its wire encoding
// (wire.AppendPage). Items are offered in page order; Add reports whether
// one still fits, counting the page's own bytes and the cursor the page
// would end with, and takes it into account if so. The first item always
// fits: a page holds at least one. A cluster cuts the page it merges from
// several nodes' pages with it too.
type PageBudget struct{ used int }

// pageOverhead covers what a page encodes besides its items and cursor:
// a format byte and the uvarints of the item count and cursor length.
const pageOverhead = 1 + binary.MaxVarintLen64 + binary.MaxVarintLen32

// Add reports whether it fits the page, and counts it if so.
func (b *PageBudget) Add(it *item.Item) bool {
	n := wire.ItemSize(it)
	cursor := base64.RawURLEncoding.EncodedLen(1 + len(it.ID))
	if b.used > 0 && pageOverhead+b.used+n+cursor > item.MaxPageBytes {
		return false
	}
	b.used += n
	return true
}

// A cursor is "1" + the last id returned, base64url-encoded. The leading
// format byte lets the encoding change without misreading old cursors.
func encodeCursor(lastID string) string { return item.ListCursor(lastID) }

func decodeCursor(c string) (string, error) { return item.CursorID(c) }

// firstInvalid picks the first error out of an errors.Join, so the caller
// gets one clear code.
func firstInvalid(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()[0]
	}
	return err
}

// count records an operation; only failures that are not the caller's
// fault count as errors.
func (n *Node) count(c interface{ Add(uint64) uint64 }, err error) {
	c.Add(1)
	if err != nil && !errors.Is(err, item.ErrNotFound) && !errors.Is(err, item.ErrConflict) &&
		!errors.Is(err, item.ErrPreconditionFailed) && !errors.Is(err, item.ErrInvalid) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		n.ops.errors.Add(1)
	}
}

// Metrics returns a snapshot of the node in the shape of GET /v1/metrics.
func (n *Node) Metrics() nodestats.Snapshot {
	st := n.store.Stats()
	var items uint64
	// The partition states are owned by the driver; the item counts are
	// read racily-free from the store instead.
	for p := range n.nparts {
		v, err := n.store.Get(context.Background(), stateKey(p))
		if err != nil {
			continue
		}
		var ps partState
		if ps.decode(v) == nil {
			items += ps.items
		}
	}
	healthy := n.failure() == nil && !n.isClosed()
	storage := nodestats.Storage{Backend: st.Backend, Location: n.cfg.StorageLocation, Items: items, Bytes: st.LiveBytes}
	if n.cfg.StorageStats != nil {
		n.cfg.StorageStats(&storage)
	}
	storage.Used = storage.Bytes
	ops := nodestats.Operations{
		Adds: n.ops.adds.Load(), Gets: n.ops.gets.Load(), Updates: n.ops.updates.Load(),
		Deletes: n.ops.deletes.Load(), Lists: n.ops.lists.Load(), Errors: n.ops.errors.Load(),
		Commits: n.ops.commits.Load(), StoredWrites: n.ops.writes.Load(), IndexLookups: n.ops.indexedLists.Load(),
	}
	ops.Totals()
	return nodestats.Snapshot{
		Nodes: nodestats.Nodes{Total: 1, Healthy: btoi(healthy), Self: n.nodeID, Leader: n.nodeID,
			List: []nodestats.Node{{ID: n.nodeID, Role: "leader", Healthy: healthy, Shards: n.nparts}}},
		Shards:      nodestats.Shards{Total: n.nparts, Leaders: n.nparts, Replicas: n.nparts, Local: n.nparts},
		Replication: nodestats.Replication{Factor: 1, Mode: "none"},
		Operations:  ops,
		Storage:     storage,
		Cache:       n.cacheStats(),
		Vectors:     n.vectors.stats(),
	}
}

// Healthy reports whether the node can take writes.
func (n *Node) Healthy() bool { return n.failure() == nil && !n.isClosed() }

// failure returns what made the node fail — its committer's or its raft
// driver's store write — or nil.
func (n *Node) failure() error {
	if errp := n.failed.Load(); errp != nil {
		return *errp
	}
	if n.raft != nil {
		return n.raft.Err()
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CacheStats returns the record cache's figures, as Metrics has them.
func (n *Node) CacheStats() nodestats.Cache { return n.cacheStats() }

func (n *Node) cacheStats() nodestats.Cache {
	bytes, _ := n.cache.size()
	hits, misses := n.ops.cacheHits.Load(), n.ops.cacheMisses.Load()
	c := nodestats.Cache{Enabled: n.cache.capacity() > 0, Capacity: n.cache.capacity(), Hits: hits, Misses: misses, Bytes: bytes}
	if hits+misses > 0 {
		c.Ratio = float64(hits) / float64(hits+misses)
	}
	return c
}
