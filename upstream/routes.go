package upstream

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
)

// Routing by partition. The cores push their view of who leads each
// partition (wire.MethodTopology) over the change subscription; a request
// about an item then goes straight to its partition's leader — one hop —
// instead of to whichever core answered last, which would forward it.
//
// Views from several cores merge partition by partition: the entry with
// the higher raft term wins, so a late push from a core that has not yet
// heard of an election cannot undo it. A view may still be stale (the
// leader moved and no push has arrived yet): the core then forwards the
// request (one extra hop), and the new leader's push follows.

// routes is an immutable merged view; a push replaces it whole.
type routes struct {
	partitions int
	nodes      []routeNode
	leaders    []routeLead // one per partition
}

type routeNode struct {
	addr string
	// down is the core's skip-until time, shared with the Backend's
	// configured address of the same core, if any, and kept across
	// merges.
	down *atomic.Int64
}

type routeLead struct {
	node     int // index in nodes; -1 when unknown
	term     uint64
	replicas []int // indexes in nodes: where stale reads may go
}

// leaderOf returns the address of the leader of to's partition and its
// skip-until time, or "" when the topology does not say (no push yet, a
// list, or an unknown leader).
func (b *Backend) leaderOf(to itemrpc.Target) (string, *atomic.Int64) {
	r := b.routes.Load()
	if r == nil || to.ID == "" {
		return "", nil
	}
	l := r.leaders[wire.PartitionOf(to.Tenant, to.ID, r.partitions)]
	if l.node < 0 {
		return "", nil
	}
	n := r.nodes[l.node]
	return n.addr, n.down
}

// learn merges a topology pushed by the core at from into its region's
// routes.
//
// A core behind a NAT or relay names, beside each node's address inside
// the region, the one outside clients reach it at (TopologyNode.Public).
// The Backend uses the outside ones unless it reached the pushing core at
// an inside address: then it is inside the region's network too.
func (b *Backend) learn(t *wire.Topology, from string) {
	inside := slices.ContainsFunc(t.Nodes, func(n wire.TopologyNode) bool { return n.Addr == from })
	addrOf := func(n wire.TopologyNode) string {
		if n.Public != "" && !inside {
			return n.Public
		}
		return n.Addr
	}
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	b.learnOthers(t)
	old := b.regions[t.Region]
	next := &routes{partitions: t.Partitions, leaders: make([]routeLead, t.Partitions)}
	index := map[string]int{}
	node := func(addr string) int {
		if i, ok := index[addr]; ok {
			return i
		}
		n := routeNode{addr: addr, down: b.downOf(old, addr)}
		index[addr] = len(next.nodes)
		next.nodes = append(next.nodes, n)
		return len(next.nodes) - 1
	}
	for p, l := range t.Leaders {
		cur := routeLead{node: -1}
		if old != nil && old.partitions == t.Partitions {
			ol := old.leaders[p]
			if ol.node >= 0 {
				cur = routeLead{node: node(old.nodes[ol.node].addr), term: ol.term}
			}
			for _, r := range ol.replicas {
				cur.replicas = append(cur.replicas, node(old.nodes[r].addr))
			}
		}
		if l.Node >= 0 && (cur.node < 0 || l.Term >= cur.term) {
			cur.node, cur.term = node(addrOf(t.Nodes[l.Node])), l.Term
		}
		// Replicas come from whoever holds the partition: a view that names
		// some replaces an older list.
		if len(l.Replicas) > 0 && (l.Node < 0 || l.Term >= cur.term) {
			cur.replicas = cur.replicas[:0]
			for _, r := range l.Replicas {
				cur.replicas = append(cur.replicas, node(addrOf(t.Nodes[r])))
			}
		}
		next.leaders[p] = cur
	}
	// Nodes no leader names any more are dropped: the view stays as small
	// as the partition count, whatever the cores push over time.
	next = compact(next)
	b.regions[t.Region] = next
	b.regionCount.Store(int32(len(b.regions)))
	if cur := b.region.Load(); cur == nil {
		// The first region heard of serves until probes find a nearer one.
		b.region.Store(&t.Region)
		b.routes.Store(next)
	} else if *cur == t.Region {
		b.routes.Store(next)
	}
}

// compact drops the nodes no leader refers to.
func compact(r *routes) *routes {
	used := make([]bool, len(r.nodes))
	for _, l := range r.leaders {
		if l.node >= 0 {
			used[l.node] = true
		}
		for _, x := range l.replicas {
			used[x] = true
		}
	}
	if !slices.Contains(used, false) {
		return r
	}
	remap := make([]int, len(r.nodes))
	var nodes []routeNode
	for i, n := range r.nodes {
		remap[i] = -1
		if used[i] {
			remap[i] = len(nodes)
			nodes = append(nodes, n)
		}
	}
	for i, l := range r.leaders {
		if l.node >= 0 {
			r.leaders[i].node = remap[l.node]
		}
		for j, x := range l.replicas {
			r.leaders[i].replicas[j] = remap[x]
		}
	}
	r.nodes = nodes
	return r
}

// downOf returns the skip-until time of the core at addr: the configured
// address's, the previous view's, or a new one.
func (b *Backend) downOf(old *routes, addr string) *atomic.Int64 {
	if i := slices.Index(b.cfg.Addrs, addr); i >= 0 {
		return &b.downUntil[i]
	}
	for _, r := range append([]*routes{old}, slices.Collect(maps.Values(b.regions))...) {
		if r == nil {
			continue
		}
		for _, n := range r.nodes {
			if n.addr == addr {
				return n.down
			}
		}
	}
	return new(atomic.Int64)
}

// markDown skips the core at addr for retryDown, wherever it is known.
func (b *Backend) markDown(addr string, until int64) {
	if i := slices.Index(b.cfg.Addrs, addr); i >= 0 {
		b.downUntil[i].Store(until)
	}
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	for _, r := range b.regions {
		for _, n := range r.nodes {
			if n.addr == addr {
				n.down.Store(until)
			}
		}
	}
}

// replicasOf returns the replicas of to's partition the topology names,
// nearest first by probed round trip (unknown ones last), skipping those
// down.
func (b *Backend) replicasOf(to itemrpc.Target, now int64) []routeNode {
	r := b.routes.Load()
	if r == nil || to.ID == "" {
		return nil
	}
	l := r.leaders[wire.PartitionOf(to.Tenant, to.ID, r.partitions)]
	out := make([]routeNode, 0, len(l.replicas))
	for _, x := range l.replicas {
		if n := r.nodes[x]; n.down.Load() <= now {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, c routeNode) int {
		ra, rc := b.rttOf(a.addr), b.rttOf(c.addr)
		switch {
		case ra == rc:
			return 0
		case ra == 0:
			return 1
		case rc == 0:
			return -1
		case ra < rc:
			return -1
		}
		return 1
	})
	return out
}
