package cluster

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/wire"
)

// The topology pushed to subscribers (wire.Topology): who leads each
// partition, the members' addresses, and — in a federation — how the
// region is reached from outside it and where the other regions are, so
// that an edge given one core's address finds every region.
//
// It is pushed when a subscriber subscribes and again whenever it changes:
// watchLeaders turns the raft groups' leadership changes, and SetOutside
// the federation's, into one channel (topoCh) that each subscription
// waits on. One goroutine per node, not per subscriber: a subscriber that
// connects and leaves leaves nothing behind.

// Outside is how clients outside the region see the cluster, as the
// federation's gossip knows it.
type Outside struct {
	// Public maps a member's id to the QUIC address it is reached at from
	// outside the region (--federation-quic-addr), when that is not its
	// own.
	Public map[string]string
	// Others are the federation's other regions and their cores' public
	// QUIC addresses, by region name, at most wire.MaxTopologyRegions
	// regions of wire.MaxTopologyRegionCores addresses each.
	Others []wire.RegionCores
}

// SetOutside replaces the view of the outside pushed with the topology;
// subscribers get a new push when it differs from the last.
func (n *Node) SetOutside(o Outside) {
	o.Others = slices.Clone(o.Others)
	slices.SortFunc(o.Others, func(a, b wire.RegionCores) int { return cmp.Compare(a.Region, b.Region) })
	if len(o.Others) > wire.MaxTopologyRegions {
		o.Others = o.Others[:wire.MaxTopologyRegions]
	}
	for i, r := range o.Others {
		r.Addrs = slices.Clone(r.Addrs)
		slices.Sort(r.Addrs)
		if len(r.Addrs) > wire.MaxTopologyRegionCores {
			r.Addrs = r.Addrs[:wire.MaxTopologyRegionCores]
		}
		o.Others[i] = r
	}
	if old := n.outside.Load(); old != nil && maps.Equal(old.Public, o.Public) &&
		slices.EqualFunc(old.Others, o.Others, func(a, b wire.RegionCores) bool {
			return a.Region == b.Region && slices.Equal(a.Addrs, b.Addrs)
		}) {
		return
	}
	n.outside.Store(&o)
	n.topologyChanged()
}

// topologyChanged wakes every subscription to push the topology again.
func (n *Node) topologyChanged() {
	n.topoMu.Lock()
	close(n.topoCh)
	n.topoCh = make(chan struct{})
	n.topoMu.Unlock()
}

// topologyWatch returns the channel closed at the next change.
func (n *Node) topologyWatch() <-chan struct{} {
	n.topoMu.Lock()
	defer n.topoMu.Unlock()
	return n.topoCh
}

// watchLeaders relays the raft groups' leadership changes to topoCh.
func (n *Node) watchLeaders() {
	defer n.wg.Done()
	for {
		_, changed := n.core.Leaders()
		select {
		case <-n.stop:
			return
		case <-changed:
			n.topologyChanged()
		}
	}
}

// routedFeed is the change feed this node serves to subscribers, with the
// cluster's routing table (itemrpc.Topologies): edges send each request
// to its partition's leader directly.
type routedFeed struct {
	*core.Subscription
	n *Node
}

// Topology implements itemrpc.Topologies: the leaders this node knows of,
// with their terms, the members' addresses, and the outside view.
func (f routedFeed) Topology() ([]byte, <-chan struct{}) {
	// The channel first: a change after it is taken is pushed again.
	changed := f.n.topologyWatch()
	leaders, _ := f.n.core.Leaders()
	var alive map[multiraft.NodeID]Peer
	if m := f.n.alive.Load(); m != nil {
		alive = *m
	}
	var outside Outside
	if o := f.n.outside.Load(); o != nil {
		outside = *o
	}
	t := &wire.Topology{Region: f.n.core.Region(), Partitions: f.n.core.Partitions(), Leaders: make([]wire.Lead, f.n.core.Partitions())}
	if t.Region != "" {
		t.Others = outside.Others
	}
	index := map[multiraft.NodeID]int{}
	nodeAt := func(id multiraft.NodeID) (int, bool) {
		at, ok := index[id]
		if !ok {
			p, alive := alive[id]
			if !alive {
				return 0, false
			}
			at = len(t.Nodes)
			index[id] = at
			node := wire.TopologyNode{ID: p.ID, Addr: p.QUICAddr}
			if pub := outside.Public[p.ID]; pub != p.QUICAddr && t.Region != "" {
				node.Public = pub
			}
			t.Nodes = append(t.Nodes, node)
		}
		return at, true
	}
	for i := range t.Leaders {
		t.Leaders[i].Node = -1
		if l, ok := leaders[multiraft.GroupID(i)]; ok {
			if at, ok := nodeAt(l.Node); ok {
				t.Leaders[i] = wire.Lead{Node: at, Term: l.Term}
			}
		}
	}
	// The voters of the partitions held here: where stale reads may go.
	// And, of the partitions led here, the readers caught up with the
	// leader (their lag known here only): a reader that is still copying
	// would answer stale reads from far behind.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if st, err := f.n.core.GroupStatus(ctx); err == nil {
		for _, g := range st {
			if int(g.Group) >= len(t.Leaders) {
				continue
			}
			l := &t.Leaders[g.Group]
			add := func(id multiraft.NodeID) {
				if at, ok := nodeAt(id); ok && len(l.Replicas) < wire.MaxTopologyReplicas {
					l.Replicas = append(l.Replicas, at)
				}
			}
			for _, v := range g.Voters {
				add(v)
			}
			for _, r := range g.Learners {
				if m, ok := g.Match[r]; ok && alive[r].Reader && g.Active[r] && m > 0 && m+caughtUpEntries >= g.Commit {
					add(r)
				}
			}
		}
	}
	return wire.AppendTopology(nil, t), changed
}
