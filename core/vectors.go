package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/soullabs/brainy/internal/hnsw"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/tiers"
)

// vectorIndex is the node's nearest-neighbour index: an HNSW graph
// (internal/hnsw) per tenant, type and dimension over the vectors of the
// items this node holds, by cosine distance, each vector kept with the
// item's filterable fields (type, timestamps, metadata, decoded once) so
// that a find's where is applied during the walk. It answers "which ids
// are probably nearest and match"; find reads those items and ranks them
// exactly, so the index only has to be close, and may lag.
//
// It follows the node's committed writes: the committer (single node) or
// raftSM.Commit hands it every cycle's item writes after the store holds
// them, as it does the record cache, and snapshot installs and replica
// drops hand it theirs. It is built from the store in the background when
// the first find by vector asks for it: until then, and after it fell
// behind, finds scan.
//
// Writes reach the graphs on a goroutine of their own: an insert costs
// tens of times a write's own work, and the committer must never wait for
// it. The queue between them is bounded; a batch that does not fit is
// dropped and the index rebuilt from the store, which by then holds it.
//
// Invariant, whenever ready: every item of the store with a vector of
// non-zero norm committed before the last batch indexed is in exactly the
// graph of its tenant, type and dimension, under its id, with its current
// vector and fields.
type vectorIndex struct {
	store  tiers.Store
	parts  int
	cfg    VectorIndexConfig
	budget int64 // cfg.Bytes; < 0: no index
	log    *slog.Logger

	mu     sync.RWMutex
	graphs graphSet            // guarded by mu
	where  map[string]graphKey // item key → the graph holding it; guarded by mu

	// wanted: a find asked for the index. Until then it is not built and
	// writes cost it nothing: a node whose users never search by vector
	// never reads its store for it.
	wanted atomic.Bool
	ready  atomic.Bool // built, and no batch lost since
	reload atomic.Bool // build (again) from the store
	// over: the index outgrew its budget and was dropped, for good.
	over   atomic.Bool
	bytes  atomic.Int64 // the graphs' estimated memory; written by run
	count  atomic.Int64 // vectors in the graphs; written by run
	builds atomic.Uint64
	lagged atomic.Uint64 // finds that scanned because the index was behind
	// beforeBatch, when set (tests only), runs before each batch is
	// indexed.
	beforeBatch func()
	wake        chan struct{}
	queue       chan []itemWrite
	stop        chan struct{}
	done        chan struct{}

	seqMu    sync.Mutex
	seqCond  *sync.Cond
	enqueued uint64 // batches queued; guarded by seqMu
	indexed  uint64 // batches in the graphs (or dropped); guarded by seqMu
}

type graphKey struct {
	tenant, typ string
	dims        int
}

// graphSet holds the graphs by tenant: a find looks at its own tenant's
// only, however many graphs other tenants made.
type graphSet map[string]map[graphKey]*hnsw.Graph[*query.Doc]

func (gs graphSet) get(k graphKey) *hnsw.Graph[*query.Doc] { return gs[k.tenant][k] }

func (gs graphSet) put(k graphKey, g *hnsw.Graph[*query.Doc]) {
	m := gs[k.tenant]
	if m == nil {
		m = map[graphKey]*hnsw.Graph[*query.Doc]{}
		gs[k.tenant] = m
	}
	m[k] = g
}

func (gs graphSet) remove(k graphKey) {
	if m := gs[k.tenant]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(gs, k.tenant)
		}
	}
}

func (gs graphSet) len() int {
	n := 0
	for _, m := range gs {
		n += len(m)
	}
	return n
}

// VectorIndexConfig tunes a node's vector index. Zero fields take the
// defaults, chosen with make bench-find (docs/BENCHMARKS.md, "Finds by
// vector").
type VectorIndexConfig struct {
	// Bytes bounds the index's estimated memory; past it the index is
	// dropped and finds by vector scan. Default DefaultVectorIndexBytes
	// (1 GiB); negative: no index.
	Bytes int64
	// M is the neighbours a node keeps per layer (2M at the bottom).
	// Default 16, hnswlib's.
	M int
	// EfConstruction is the beam of an insert's search. Default 100: half
	// hnswlib's usual 200 costs a write's indexing half as much for the
	// same recall on the benchmark's data at 64 dimensions (0.999 at
	// EfSearch 64) and a little less at 128 (see the benchmark).
	EfConstruction int
	// EfSearch is the least beam of a find's search (raised to k when k is
	// larger). Default 64.
	EfSearch int
}

// EnsureDefaults fills zero fields with their defaults.
func (c *VectorIndexConfig) EnsureDefaults() {
	if c.Bytes == 0 {
		c.Bytes = DefaultVectorIndexBytes
	}
	if c.M <= 0 {
		c.M = 16
	}
	if c.EfConstruction <= 0 {
		c.EfConstruction = 100
	}
	if c.EfSearch <= 0 {
		c.EfSearch = 64
	}
}

const (
	// vectorExactBelow: graphs this small are searched exactly (2,048
	// comparisons of 64 dimensions take tens of microseconds).
	vectorExactBelow = 2048
	// vectorQueue bounds the batches waiting for the index (memory: a
	// batch is one commit cycle's writes, shared with the cache).
	vectorQueue = 4096
)

// DefaultVectorIndexBytes is VectorIndexConfig.Bytes's default.
const DefaultVectorIndexBytes = 1 << 30

func newVectorIndex(store tiers.Store, parts int, cfg VectorIndexConfig, log *slog.Logger) *vectorIndex {
	x := &vectorIndex{store: store, parts: parts, cfg: cfg, budget: cfg.Bytes, log: log, graphs: graphSet{}, where: map[string]graphKey{},
		wake: make(chan struct{}, 1), queue: make(chan []itemWrite, vectorQueue), stop: make(chan struct{}), done: make(chan struct{})}
	x.seqCond = sync.NewCond(&x.seqMu)
	go x.run()
	return x
}

// apply hands committed item writes (val nil: deleted) to the index. It
// never blocks.
func (x *vectorIndex) apply(writes []itemWrite) {
	if x == nil || len(writes) == 0 || !x.wanted.Load() || x.over.Load() {
		return
	}
	// The slice is copied (the committer reuses it), the keys and values
	// are shared (immutable); they are sorted out on the index's
	// goroutine, so the committer takes no lock an insert holds.
	batch := slices.Clone(writes)
	x.seqMu.Lock()
	defer x.seqMu.Unlock()
	select {
	case x.queue <- batch:
		x.enqueued++
	default:
		// The store holds the batch already: a rebuild reads it. reload
		// before ready, which run reads the other way round.
		x.reload.Store(true)
		x.ready.Store(false)
	}
}

// run puts queued writes into the graphs, rebuilding first when asked,
// until close.
func (x *vectorIndex) run() {
	defer close(x.done)
	for {
		if x.reload.Swap(false) {
			x.ready.Store(false)
			// Batches queued now are in the store: the rebuild reads them.
			// Those queued after the drain follow it, in order.
			x.drain()
			if err := x.rebuild(); errors.Is(err, errOverBudget) {
				x.drop()
				continue
			} else if err != nil {
				x.log.Warn("building the vector index", "component", "core", "err", err)
				select {
				case <-x.stop:
					return
				case <-time.After(time.Second):
				}
				x.reload.Store(true)
				continue
			}
			// ready, then reload (apply writes them the other way round): a
			// batch dropped meanwhile never leaves the index marked ready.
			x.ready.Store(true)
			if x.reload.Load() {
				x.ready.Store(false)
			}
		}
		select {
		case <-x.stop:
			return
		case <-x.wake:
		case batch := <-x.queue:
			if x.beforeBatch != nil {
				x.beforeBatch()
			}
			for _, w := range batch {
				if x.over.Load() {
					break
				}
				// Lock per write: a find waits for one insert at most.
				x.mu.Lock()
				d, n := x.set(x.graphs, x.where, w.key, w.val)
				x.mu.Unlock()
				x.count.Add(int64(n))
				if x.bytes.Add(d) > x.budget {
					x.drop()
				}
			}
			x.done1()
		}
	}
}

// done1 counts one batch indexed (or dropped).
func (x *vectorIndex) done1() {
	x.seqMu.Lock()
	x.indexed++
	x.seqCond.Broadcast()
	x.seqMu.Unlock()
}

// drain drops the queued batches.
func (x *vectorIndex) drain() {
	for {
		select {
		case <-x.queue:
			x.done1()
		default:
			return
		}
	}
}

var errOverBudget = errors.New("core: the vector index outgrew its budget")

// drop empties the index for good: it outgrew its budget.
func (x *vectorIndex) drop() {
	if x.over.Swap(true) {
		return
	}
	x.ready.Store(false)
	x.mu.Lock()
	x.graphs, x.where = graphSet{}, map[string]graphKey{}
	x.mu.Unlock()
	x.log.Warn("the vector index outgrew its budget and was dropped: finds by vector scan; raise --vector-index-bytes and restart",
		"component", "core", "budget", x.budget, "vectors", x.count.Load())
	x.bytes.Store(0)
	x.count.Store(0)
}

// rebuild builds the graphs from every item record in the store and puts
// them in place.
func (x *vectorIndex) rebuild() error {
	x.builds.Add(1)
	graphs, where := graphSet{}, map[string]graphKey{}
	var bytes, count int64
	start := time.Now()
	ctx := context.Background()
	for p := range x.parts {
		it, err := x.store.NewIter(ctx, appendPartition(nil, p, kindItem), appendPartition(nil, p, kindItem+1))
		if err != nil {
			return err
		}
		for it.Next() {
			d, n := x.set(graphs, where, string(it.Key()), it.Value())
			bytes += d
			count += int64(n)
			if bytes > x.budget {
				_ = it.Close()
				return errOverBudget
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("core: building the vector index: %w", err)
		}
		select {
		case <-x.stop:
			return fmt.Errorf("core: closed")
		default:
		}
	}
	x.mu.Lock()
	x.graphs, x.where = graphs, where
	x.mu.Unlock()
	x.bytes.Store(bytes)
	x.count.Store(count)
	x.log.Info("vector index built", "component", "core", "vectors", count, "graphs", graphs.len(), "bytes", bytes, "took", time.Since(start))
	return nil
}

// stats returns the index's figures for Metrics, nil until a find asked
// for it.
func (x *vectorIndex) stats() *nodestats.Vectors {
	if x == nil || !x.wanted.Load() {
		return nil
	}
	v := &nodestats.Vectors{State: "building", Vectors: int(x.count.Load()), Bytes: x.bytes.Load(), Budget: x.budget, Builds: x.builds.Load(), Lagged: x.lagged.Load()}
	switch {
	case x.over.Load():
		v.State = "over_budget"
	case x.ready.Load():
		v.State = "ready"
	}
	x.mu.RLock()
	v.Graphs = x.graphs.len()
	x.mu.RUnlock()
	return v
}

// graphCost estimates a graph's own memory (its maps, pool and key): a
// tenant writing one vector each into many types or dimensions makes many
// graphs, and the budget counts them.
const graphCost = 2 << 10

// vectorCost estimates what one indexed vector holds in memory: the
// vector, its links (2M at the bottom layer, a few above), the fields a
// filter sees and the maps' entries.
func vectorCost(dims, id, tenant, meta int) int64 {
	return int64(4*dims + 2*id + tenant + meta + 4*40 + 400)
}

// caughtUp waits until the batches queued before the call are in the
// graphs, or wait passes, and reports which: a find that goes on from the
// index sees every write this node committed before the find.
func (x *vectorIndex) caughtUp(wait time.Duration) bool {
	x.seqMu.Lock()
	defer x.seqMu.Unlock()
	target := x.enqueued
	if x.indexed >= target {
		return true
	}
	t := time.AfterFunc(wait, func() {
		x.seqMu.Lock()
		x.seqCond.Broadcast()
		x.seqMu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(wait)
	for x.indexed < target && time.Now().Before(deadline) {
		x.seqCond.Wait()
	}
	return x.indexed >= target
}

// vectorCatchUp is how long a find waits for the index to take in the
// writes committed before it. An index further behind (a node writing
// faster than it indexes) does not answer: the find scans, slower but
// with every acknowledged write.
const vectorCatchUp = 500 * time.Millisecond

// close stops the index's goroutine.
func (x *vectorIndex) close() {
	if x == nil {
		return
	}
	close(x.stop)
	<-x.done
}

// set makes key's entry in graphs match val, the item's new record (nil:
// gone); it returns the change in estimated bytes and in vectors held.
// val is not kept.
func (x *vectorIndex) set(graphs graphSet, where map[string]graphKey, key string, val []byte) (bytes int64, count int) {
	tenant, id, ok := splitItemKey(key)
	if !ok {
		return 0, 0
	}
	var next graphKey
	var r record
	indexed := val != nil && r.decode(val) == nil && len(r.vector) > 0
	if _, had := where[key]; !had && !indexed {
		return 0, 0 // the common write: no vector, none before
	}
	if indexed {
		next = graphKey{tenant: tenant, typ: r.typ, dims: len(r.vector)}
	}
	if old, had := where[key]; had {
		g := graphs.get(old)
		if _, doc, ok := g.Lookup(id); ok {
			bytes -= vectorCost(old.dims, len(id), len(tenant), len(doc.Item().Metadata))
			count--
		}
		g.Delete(id)
		delete(where, key)
		if g.Len() == 0 {
			graphs.remove(old)
			bytes -= graphCost
		}
	}
	if !indexed {
		return bytes, count
	}
	g := graphs.get(next)
	if g == nil {
		g = hnsw.New[*query.Doc](hnsw.Config{Metric: hnsw.Cosine, M: x.cfg.M, EfConstruction: x.cfg.EfConstruction})
		graphs.put(next, g)
		bytes += graphCost
	}
	// The fields a filter looks at, without data or vector.
	doc := &item.Item{ID: id, Type: r.typ, CreatedAt: time.Unix(0, r.created).UTC(), UpdatedAt: time.Unix(0, r.updated).UTC()}
	if len(r.metadata) > 0 {
		doc.Metadata = slices.Clone(r.metadata)
	}
	if g.Add(id, r.vector, query.PreparedDoc(doc)) != nil {
		// A zero vector has no direction: no cosine neighbour.
		if g.Len() == 0 {
			graphs.remove(next)
			bytes -= graphCost
		}
		return bytes, count
	}
	where[key] = next
	return bytes + vectorCost(next.dims, len(id), len(tenant), len(doc.Metadata)), count + 1
}

// nearest returns the ids of up to n items of tenant (of type typ, or of
// any type when typ is empty) that where matches and whose vectors of
// vec's dimension are probably nearest to vec by cosine, among the items
// of the partitions parts marks (nil: all); ok is false while the index
// is not ready.
func (x *vectorIndex) nearest(tenant, typ string, vec []float32, n int, where *query.Filter, parts []bool) (ids []string, ok bool) {
	if x.budget < 0 || x.over.Load() {
		return nil, false
	}
	if !x.wanted.Swap(true) {
		x.reload.Store(true)
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
	if !x.ready.Load() {
		return nil, false
	}
	if !x.caughtUp(vectorCatchUp) {
		x.lagged.Add(1)
		return nil, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	type cand struct {
		id   string
		dist float32
	}
	var cands []cand
	var accept func(string, *query.Doc) bool
	switch {
	case parts != nil:
		accept = func(id string, d *query.Doc) bool {
			return parts[PartitionOf(tenant, id, x.parts)] && (where == nil || where.Match(d))
		}
	case where != nil:
		accept = func(_ string, d *query.Doc) bool { return where.Match(d) }
	}
	for k, g := range x.graphs[tenant] {
		if k.dims != len(vec) || (typ != "" && k.typ != typ) {
			continue
		}
		ef := max(n, x.cfg.EfSearch)
		if g.Len() <= vectorExactBelow {
			ef = g.Len() // a scan of the graph: exact, and as quick
		}
		for _, r := range g.Search(vec, n, ef, accept) {
			cands = append(cands, cand{r.Key, r.Distance})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.dist != b.dist {
			if a.dist < b.dist {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	ids = make([]string, 0, min(n, len(cands)))
	for _, c := range cands[:min(n, len(cands))] {
		ids = append(ids, c.id)
	}
	return ids, true
}

// splitItemKey returns the tenant and id of an item key.
func splitItemKey(key string) (tenant, id string, ok bool) {
	if !isItemKey([]byte(key)) {
		return "", "", false
	}
	tenant, id, ok = strings.Cut(key[4:], "\x00")
	return tenant, id, ok
}

// Nearest returns the ids of up to max items of tenant (of type typ, or
// any type when empty) that where matches and whose vectors are probably
// nearest to vec by cosine, from this node's index (query.Indexed). ok is
// false when the index cannot answer for the whole tenant: it is being
// built, or this cluster member does not hold every partition.
//
// Unless ctx asks for stale reads, the answer covers every write
// acknowledged before the call: in a cluster each partition's replica
// here first applies what its leader committed (a read-index round per
// partition, as a follower read does), and the index takes it in; reads
// of the local replicas are then as fresh (query.Indexed).
func (n *Node) Nearest(ctx context.Context, tenant, typ string, vec []float32, max int, where *query.Filter) (ids []string, ok bool) {
	if n.raft != nil {
		st, err := n.raft.Status(ctx)
		if err != nil || len(st) < n.nparts {
			return nil, false
		}
		if !item.StaleReads(ctx) && n.vectors.ready.Load() && n.barrierAll(ctx) != nil {
			return nil, false
		}
	}
	return n.vectors.nearest(tenant, typ, vec, max, where, nil)
}

// NearestIn is Nearest over the items of partitions parts only, which
// this node holds replicas of, as fresh as they are: no read-index round
// (a cluster's find runs them itself, per partition, to tell which
// partitions answered).
func (n *Node) NearestIn(tenant, typ string, vec []float32, max int, where *query.Filter, parts []int) (ids []string, ok bool) {
	var in []bool // nil: every partition
	if len(parts) < n.nparts {
		in = make([]bool, n.nparts)
		for _, p := range parts {
			in[p] = true
		}
	}
	return n.vectors.nearest(tenant, typ, vec, max, where, in)
}

// barrierAll runs readBarrier on every partition, 64 at a time: raft
// batches the read-index rounds of one driver cycle.
func (n *Node) barrierAll(ctx context.Context) error {
	var g errgroup.Group
	g.SetLimit(64)
	for p := range n.nparts {
		g.Go(func() error { return n.readBarrier(ctx, p) })
	}
	return g.Wait()
}
