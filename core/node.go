package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers"
)

// Config configures a Node. The zero value of every field but Store is a
// working default.
type Config struct {
	// Store holds the node's data. Required. The node does not close it;
	// whoever opened it does, after Node.Close.
	Store tiers.Store
	// StorageLocation is reported in metrics (for example the data
	// directory). Optional.
	StorageLocation string
	// NodeID names the node. Default: the id stored in Store, or on first
	// start a new random id that is then stored.
	NodeID string
	// Partitions is the number of partitions items are hashed into. Default
	// 64. It is fixed when the store is created: opening a store with a
	// different non-zero value is an error, since it would move every item.
	// More partitions spread a cluster more evenly, at a small fixed cost
	// per partition (a raft group each, in a cluster).
	Partitions int
	// Limits bound every input. Zero fields take item.DefaultLimits.
	Limits item.Limits
	// CacheBytes bounds the in-memory cache of item records that reads and
	// writes consult before the store. Default 64 MiB; negative disables
	// it. It holds recently written and read items; the store's own block
	// cache sits below it.
	CacheBytes int64
	// VectorIndex tunes the vector index finds by near use (vectors.go):
	// its memory bound and its HNSW settings. Zero fields take defaults.
	VectorIndex VectorIndexConfig
	// MaxBatch bounds the writes committed together in one sync. Default
	// 1024. Larger batches amortise a sync over more writes; the bound keeps
	// one batch's memory and latency in check under a flood.
	MaxBatch int
	// Logger receives the node's events. Nil discards them.
	Logger *slog.Logger
	// Now is the wall clock under the node's hybrid clock (Clock), which
	// stamps createdAt/updatedAt and makes versions. Default time.Now.
	Now func() time.Time
	// Region names the region this node belongs to: the origin of the
	// writes it makes, part of their versions. Default "" (no region).
	Region string
	// Federated: the node's cluster replicates to other regions (package
	// federation), so deletes leave tombstones (see Command.Federated).
	Federated bool
	// MaxClockSkew is how far ahead of this node's clock a timestamp from
	// another region may be (Clock.Observe). Default DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// StorageStats, when set, adds what the store's opener knows (tiers,
	// object-store requests) to the storage section of Metrics.
	StorageStats func(*nodestats.Storage)
	// Raft, when set, makes the node a replica in a cluster: see
	// RaftConfig. Nil: a single node committing locally.
	Raft *RaftConfig
	// RaftLogDir, for a node with Raft, is the directory of its raft log
	// (package raftlog), on a local disk: the node opens it, and closes it
	// on Close. A raft log an earlier version kept in Store moves there at
	// the first start. Empty: the raft log is kept in Store, as a node on
	// an object store does.
	RaftLogDir string
}

// EnsureDefaults fills zero fields with their defaults. Partitions stays 0
// here: Open takes it from the store when the store already has one.
func (c *Config) EnsureDefaults() {
	c.Limits.EnsureDefaults()
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	c.VectorIndex.EnsureDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.Partitions < 0 || c.Partitions > 1<<16 {
		errs = append(errs, fmt.Errorf("Partitions (%d) must be between 1 and 65536", c.Partitions))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("MaxBatch (%d) must be >= 1", c.MaxBatch))
	}
	if len(errs) > 0 {
		return fmt.Errorf("core: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// DefaultPartitions is the partition count of a new store when
// Config.Partitions is 0.
const DefaultPartitions = 64

// Node is a single Brainy node: it owns the partitions of its store and
// serves reads and writes on them. All methods are safe for concurrent use.
//
// Writes take this path:
//
//	caller: prefetch the stored item ──Command──▶ propC
//	driver: apply the cycle's commands to one batch ──▶ commitC
//	committer: one synced Apply per cycle, then ack every proposal in it
//
// The driver applies the commands of cycle N+1 while the committer syncs
// cycle N, so the disk is always busy and every sync carries every write
// that arrived during the previous one (group commit). The driver is the
// one serial step, so the store read each write needs (the item's current
// value) is done beforehand by the caller's goroutine, in parallel; the
// driver checks it against its record of recent writes (recentWrites).
// Reads go to the record cache or the store, both of which the committer
// updates only after the sync: nothing is visible before it can be
// acknowledged.
type Node struct {
	cfg    Config
	store  tiers.Store
	nodeID string
	nparts int
	clock  *Clock
	// stored: per partition, the applied index whose writes are stored
	// (a clustered node's; see federation.go).
	stored committedIndex

	// mu guards closed; writers hold it shared while they send on propC
	// so that Close can close propC only after the last send.
	mu     sync.RWMutex
	closed bool

	propC   chan *proposal
	commitC chan *cycle
	freeC   chan *cycle
	done    chan struct{} // closed when the committer exits

	sm     stateMachine // owned by the driver
	seq    uint64       // cycle number, owned by the driver
	recent recentWrites // owned by the driver
	cache  *recordCache
	// vectors is the nearest-neighbour index of the items held here
	// (vectors.go), fed after each commit as the cache is.
	vectors *vectorIndex
	feed    changeFeed

	// committed is the seq of the last cycle whose batch is in the store.
	// A proposer loads it before prefetching; see recentWrites.
	committed atomic.Uint64

	// failed is set when a commit failed; from then on the node refuses
	// writes, because its in-memory state ran ahead of the store.
	failed atomic.Pointer[error]

	ops opCounters

	// In a cluster (Config.Raft set) the raft groups replace the driver and
	// committer above; see replicated.go.
	raft    *multiraft.Node
	raftLog *raftlog.Log // Config.RaftLogDir's log, nil without one
	rsm     *raftSM
}

// opCounters are the Operations of nodestats, updated atomically.
type opCounters struct {
	adds, gets, updates, deletes, lists, errors, commits, writes atomic.Uint64
	cacheHits, cacheMisses                                       atomic.Uint64
	snapshots                                                    atomic.Uint64
	indexedLists                                                 atomic.Uint64 // partitions listed through the metadata index
	// Federation: values from other regions that replaced this region's,
	// that were concurrent with them, and batches refused for clock skew.
	replicated, conflicts, skewRefused atomic.Uint64
}

// proposal is one write waiting for its cycle to commit.
type proposal struct {
	part int
	enc  []byte // the encoded command; the buffer is reused via proposalPool
	key  []byte // the item key; the buffer is reused too

	// The stored value of key as read by the proposer, after it saw cycle
	// preSeq committed. Valid only if prefetched.
	pre        []byte
	preOK      bool
	preSeq     uint64
	prefetched bool

	res  result
	done chan struct{} // buffered(1); signalled once the result is final
}

var proposalPool = sync.Pool{New: func() any { return &proposal{done: make(chan struct{}, 1)} }}

// cycle is one group commit: the batch of writes and the proposals it acks.
type cycle struct {
	seq   uint64
	batch tiers.Batch
	props []*proposal

	items []itemWrite // item records written, for the cache once committed

	touched []bool      // by partition: written in this cycle; all false between cycles
	parts   []int       // the partitions touched, in order
	states  []partState // by partition: its state after the cycle's last command
}

// pipelineDepth is how many cycles may exist at once: one committing, one
// open in the driver, one on its way back to freeC.
const pipelineDepth = 3

// Open starts a node on cfg.Store, creating the node's metadata on first use.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		store:   cfg.Store,
		propC:   make(chan *proposal, cfg.MaxBatch),
		commitC: make(chan *cycle),
		freeC:   make(chan *cycle, pipelineDepth),
		done:    make(chan struct{}),
		recent:  newRecentWrites(),
		cache:   newRecordCache(max(cfg.CacheBytes, 0)),
		clock:   NewClock(cfg.Now, cfg.MaxClockSkew),
	}
	if err := n.loadMeta(ctx); err != nil {
		return nil, err
	}
	n.vectors = newVectorIndex(n.store, n.nparts, cfg.VectorIndex, cfg.Logger)
	opened := false
	defer func() {
		if !opened {
			n.vectors.close()
		}
	}()
	n.sm = stateMachine{limits: cfg.Limits, parts: make([]partState, n.nparts)}
	var items uint64
	for p := range n.nparts {
		v, err := n.store.Get(ctx, stateKey(p))
		if errors.Is(err, tiers.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("core: reading partition %d state: %w", p, err)
		}
		if err := n.sm.parts[p].decode(v); err != nil {
			return nil, fmt.Errorf("core: partition %d state: %w", p, err)
		}
		items += n.sm.parts[p].items
	}
	if cfg.Raft != nil {
		if err := n.openRaft(ctx); err != nil {
			return nil, err
		}
		close(n.done)
		cfg.Logger.Info("node open", "component", "core", "node", n.nodeID,
			"partitions", n.nparts, "items", items, "raft_id", uint64(cfg.Raft.ID))
		opened = true
		return n, nil
	}
	for range pipelineDepth {
		n.freeC <- &cycle{touched: make([]bool, n.nparts), states: make([]partState, n.nparts)}
	}
	go n.drive()
	go n.commit()
	opened = true
	cfg.Logger.Info("node open", "component", "core", "node", n.nodeID,
		"partitions", n.nparts, "items", items)
	return n, nil
}

// loadMeta reads or creates the node id and partition count.
func (n *Node) loadMeta(ctx context.Context) error {
	var b tiers.Batch
	id, err := n.store.Get(ctx, metaKey("node-id"))
	switch {
	case err == nil:
		n.nodeID = string(id)
		if n.cfg.NodeID != "" && n.cfg.NodeID != n.nodeID {
			return fmt.Errorf("core: the store belongs to node %q, not %q", n.nodeID, n.cfg.NodeID)
		}
	case errors.Is(err, tiers.ErrNotFound):
		n.nodeID = n.cfg.NodeID
		if n.nodeID == "" {
			n.nodeID = ulid.Make().String()
		}
		b.Set(metaKey("node-id"), []byte(n.nodeID))
	default:
		return fmt.Errorf("core: reading node id: %w", err)
	}
	// A store keeps its region: its items' versions name it, and another
	// region's writes merged in were counted as foreign.
	region, err := n.store.Get(ctx, metaKey("region"))
	switch {
	case err == nil:
		if n.cfg.Region != string(region) {
			return fmt.Errorf("core: the store belongs to region %q, not %q", region, n.cfg.Region)
		}
	case errors.Is(err, tiers.ErrNotFound):
		if n.cfg.Region != "" {
			b.Set(metaKey("region"), []byte(n.cfg.Region))
		}
	default:
		return fmt.Errorf("core: reading region: %w", err)
	}
	parts, err := n.store.Get(ctx, metaKey("partitions"))
	switch {
	case err == nil:
		d := codec.Decoder{B: parts, Fail: errCorrupt}
		n.nparts = int(d.Uvarint())
		if d.Err != nil || n.nparts < 1 {
			return fmt.Errorf("core: corrupt partition count")
		}
		if n.cfg.Partitions != 0 && n.cfg.Partitions != n.nparts {
			return fmt.Errorf("core: the store was created with %d partitions; it cannot be opened with %d", n.nparts, n.cfg.Partitions)
		}
	case errors.Is(err, tiers.ErrNotFound):
		n.nparts = n.cfg.Partitions
		if n.nparts == 0 {
			n.nparts = DefaultPartitions
		}
		b.Set(metaKey("partitions"), appendUvarint(nil, uint64(n.nparts)))
	default:
		return fmt.Errorf("core: reading partition count: %w", err)
	}
	if b.Len() > 0 {
		if err := n.store.Apply(ctx, &b, true); err != nil {
			return fmt.Errorf("core: writing node metadata: %w", err)
		}
	}
	return nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.nodeID }

// Partitions returns the number of partitions.
func (n *Node) Partitions() int { return n.nparts }

// propose submits cmd and waits for its result. If ctx ends first the
// write may still happen; the caller only stops waiting.
func (n *Node) propose(ctx context.Context, cmd *Command) result {
	if n.raft != nil {
		return n.proposeRaft(ctx, cmd)
	}
	if errp := n.failed.Load(); errp != nil {
		return result{err: fmt.Errorf("%w: %v", item.ErrUnavailable, *errp)}
	}
	p := proposalPool.Get().(*proposal)
	p.part = PartitionOf(cmd.Tenant, cmd.ID, n.nparts)
	p.enc = cmd.AppendEncode(p.enc[:0])
	p.res = result{}
	p.key = itemKey(p.key[:0], p.part, cmd.Tenant, cmd.ID)
	// Load committed before reading: the value read then reflects at least
	// every cycle up to preSeq.
	p.preSeq = n.committed.Load()
	p.pre, p.preOK, p.prefetched = n.readRecord(ctx, p.key)

	n.mu.RLock()
	if n.closed {
		n.mu.RUnlock()
		proposalPool.Put(p)
		return result{err: item.ErrClosed}
	}
	select {
	case n.propC <- p:
	case <-ctx.Done():
		n.mu.RUnlock()
		proposalPool.Put(p)
		return result{err: ctx.Err()}
	}
	n.mu.RUnlock()

	select {
	case <-p.done:
		res := p.res
		p.res, p.pre = result{}, nil
		proposalPool.Put(p)
		return res
	case <-ctx.Done():
		// p still belongs to the driver; leave it to the garbage collector.
		return result{err: ctx.Err()}
	}
}

// drive is the driver loop. It applies each proposal as it arrives to the
// open cycle, and hands the cycle to the committer as soon as the
// committer is free: while one sync is in flight, everything that arrives
// joins the next one, so batches grow with load and the disk never waits
// for the CPU. It exits once propC is closed and drained.
func (n *Node) drive() {
	defer close(n.commitC)
	var open *cycle
	propC := n.propC
	for {
		in, out := propC, n.commitC
		if open == nil || len(open.props) == 0 {
			out = nil
		}
		if open != nil && len(open.props) >= n.cfg.MaxBatch {
			in = nil // full: wait for the committer
		}
		if in == nil && out == nil {
			return // closed and drained
		}
		select {
		case p, ok := <-in:
			if !ok {
				propC = nil
				continue
			}
			if open == nil {
				open = <-n.freeC
				n.seq++
				open.seq = n.seq
				open.batch.Reset()
				n.recent.prune(n.seq)
			}
			n.applyOne(open, p)
		case out <- open:
			open = nil
		}
	}
}

// applyOne runs the state machine on one proposal, recording its writes in
// c.batch and n.recent, and the partition's new state in c.
func (n *Node) applyOne(c *cycle, p *proposal) {
	c.props = append(c.props, p)
	// Commands reach apply in their encoded form, as log entries will:
	// nothing may depend on state that is not in the log.
	var cmd Command
	if err := cmd.decode(p.enc); err != nil {
		p.res = result{err: err}
		return
	}
	index := n.sm.parts[p.part].applied + 1
	p.res = n.sm.apply(proposalView{n: n, p: p}, cycleWriter{n: n, c: c}, p.part, index, &cmd)
	if !c.touched[p.part] {
		c.touched[p.part] = true
		c.parts = append(c.parts, p.part)
	}
	c.states[p.part] = n.sm.parts[p.part]
}

// commit is the committer loop: one synced Apply per cycle, in cycle
// order, then the acks.
func (n *Node) commit() {
	defer close(n.done)
	for c := range n.commitC {
		// The partition states as of the cycle's last command, written
		// once per cycle rather than once per command.
		for _, part := range c.parts {
			c.batch.Set(stateKey(part), c.states[part].encode())
			c.touched[part] = false
		}
		c.parts = c.parts[:0]
		var err error
		if errp := n.failed.Load(); errp != nil {
			err = *errp
		} else {
			n.cache.begin(c.items)
			if err = n.store.Apply(context.Background(), &c.batch, true); err != nil {
				n.cache.abort(c.items)
				n.failed.Store(&err)
				n.cfg.Logger.Error("commit failed; refusing further writes", "component", "core", "err", err)
			} else {
				n.ops.commits.Add(1)
				n.ops.writes.Add(uint64(len(c.props)))
			}
		}
		if err == nil {
			// The cache must hold the cycle's writes before the cycle
			// counts as committed: prefetches rely on that order.
			for _, w := range c.items {
				n.cache.set(w.key, w.val)
			}
			n.vectors.apply(c.items)
			n.committed.Store(c.seq)
			n.publish(c.items)
		}
		clear(c.items)
		c.items = c.items[:0]
		for _, p := range c.props {
			if err != nil {
				p.res = result{err: fmt.Errorf("%w: commit: %v", item.ErrUnavailable, err)}
			}
			p.done <- struct{}{}
		}
		clear(c.props)
		c.props = c.props[:0]
		n.freeC <- c
	}
}

// Close stops accepting writes, finishes those in flight (each is
// acknowledged or failed), and returns once the last batch is committed.
// It does not close the store.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.done
		return nil
	}
	n.closed = true
	close(n.propC)
	n.mu.Unlock()
	if n.raft != nil {
		n.raft.Close()
	}
	if n.raftLog != nil {
		// After the raft node: its driver is the log's only user.
		if err := n.raftLog.Close(); err != nil {
			n.cfg.Logger.Error("closing the raft log", "component", "core", "err", err)
		}
	}
	<-n.done
	n.vectors.close() // after the last commit handed it writes
	n.cfg.Logger.Info("node closed", "component", "core", "node", n.nodeID)
	return nil
}

// recentWrites is the driver's record of the values it wrote in the last
// recentCycles cycles, committed or not. It is what makes the proposers'
// prefetched reads safe to use.
//
// Invariant: for every key written by a cycle with seq > prunedThrough,
// byKey holds the value of the latest such write and its seq.
//
// A proposal's prefetched value reflects every cycle up to its preSeq. If
// byKey has the key with a seq above preSeq, that entry is newer and wins;
// otherwise no cycle after preSeq wrote the key — provided preSeq >=
// prunedThrough, so no such write can have been pruned — and the
// prefetched value is current. A proposal older than that (its goroutine
// stalled for recentCycles cycles) is read again by the driver.
type recentWrites struct {
	byKey         map[string]recentEntry
	ring          [recentCycles][]string // keys written, by seq % recentCycles
	prunedThrough uint64
}

type recentEntry struct {
	val  []byte // nil for a delete
	seq  uint64
	item int // 1 + the write's index in its cycle's items; 0 if not an item
}

// recentCycles must exceed pipelineDepth, so that only committed cycles
// are ever pruned: uncommitted writes are visible to nobody but the driver.
const recentCycles = 64

func newRecentWrites() recentWrites {
	return recentWrites{byKey: make(map[string]recentEntry)}
}

// put records a write of cycle seq. If cycle seq wrote the item key
// before, put replaces that write in items and returns items unchanged in
// length; otherwise it appends an item key's write to items.
func (r *recentWrites) put(key []byte, val []byte, seq uint64, items []itemWrite) []itemWrite {
	e, ok := r.byKey[string(key)]
	if ok && e.seq == seq {
		e.val = val
		if e.item > 0 {
			items[e.item-1].val = val
			r.byKey[items[e.item-1].key] = e
		} else {
			r.byKey[string(key)] = e
		}
		return items
	}
	k := string(key)
	e = recentEntry{val: val, seq: seq}
	if isItemKey(key) {
		items = append(items, itemWrite{key: k, val: val})
		e.item = len(items)
	}
	r.byKey[k] = e
	slot := &r.ring[seq%recentCycles]
	*slot = append(*slot, k)
	return items
}

// prune forgets cycle seq-recentCycles+1's writes, once cycle seq is
// applied, unless a later cycle rewrote the key.
func (r *recentWrites) prune(seq uint64) {
	if seq < recentCycles {
		return
	}
	old := seq - recentCycles + 1
	slot := &r.ring[old%recentCycles]
	for _, k := range *slot {
		if e, ok := r.byKey[k]; ok && e.seq == old {
			delete(r.byKey, k)
		}
	}
	clear(*slot)
	*slot = (*slot)[:0]
	r.prunedThrough = old
}

// proposalView reads the item key of one proposal for the state machine,
// from recent writes, the prefetched value, or the store, in that order.
type proposalView struct {
	n *Node
	p *proposal
}

func (v proposalView) get(key []byte) ([]byte, bool, error) {
	r := &v.n.recent
	fresh := v.p.prefetched && v.p.preSeq >= r.prunedThrough && bytes.Equal(key, v.p.key)
	if e, ok := r.byKey[string(key)]; ok && (!fresh || e.seq > v.p.preSeq) {
		return e.val, e.val != nil, nil
	}
	if fresh {
		return v.p.pre, v.p.preOK, nil
	}
	// Not in recent writes and not prefetched: every write to key is
	// committed, so the store has the latest value.
	val, err := v.n.store.Get(context.Background(), key)
	if errors.Is(err, tiers.ErrNotFound) {
		return nil, false, nil
	}
	return val, err == nil, err
}

// cycleWriter sends the state machine's writes to the cycle's batch and to
// the record of recent writes.
type cycleWriter struct {
	n *Node
	c *cycle
}

func (w cycleWriter) set(key, val []byte) {
	w.c.batch.Set(key, val)
	v := append(make([]byte, 0, len(val)+1), val...)
	w.c.items = w.n.recent.put(key, v, w.c.seq, w.c.items)
}

func (w cycleWriter) del(key []byte) {
	w.c.batch.Delete(key)
	w.c.items = w.n.recent.put(key, nil, w.c.seq, w.c.items)
}

// itemWrite is the last write of an item record by a cycle; val nil means
// deleted.
//
// A cycle keeps one itemWrite per key: the committer sets the record cache
// from them one by one, after the store holds the whole cycle, and a
// reader between the sets of an older and a newer write of one key would
// read the older value from the cache after another read the newer one
// from the store.
type itemWrite struct {
	key string
	val []byte
}

// readRecord reads an item's stored record through the cache. found
// reports whether it exists; ok is false only on a storage error. The
// returned slice may be shared with the cache and must not be modified.
func (n *Node) readRecord(ctx context.Context, key []byte) (val []byte, found, ok bool) {
	if v, hit := n.cache.get(key); hit {
		n.ops.cacheHits.Add(1)
		return v, true, true
	}
	n.ops.cacheMisses.Add(1)
	gen := n.cache.generation(key)
	v, err := n.store.Get(ctx, key)
	switch {
	case err == nil:
		n.cache.fill(key, v, gen)
		return v, true, true
	case errors.Is(err, tiers.ErrNotFound):
		return nil, false, true
	}
	return nil, false, false
}

// validJSON compacts a caller's JSON within the limits. JSON null means
// "no value" and comes back nil; metadata must otherwise be an object.
func (n *Node) validJSON(field string, raw []byte, wantObject bool) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	out, err := jsontext.Compact(nil, raw, jsontext.Limits{MaxDepth: n.cfg.Limits.MaxDepth, MaxFields: n.cfg.Limits.MaxFields})
	if err != nil {
		return nil, invalidJSON(field, err)
	}
	if string(out) == "null" {
		return nil, nil
	}
	if wantObject && out[0] != '{' {
		return nil, item.Invalid("invalid_metadata", "%s must be a JSON object", field)
	}
	return out, nil
}
