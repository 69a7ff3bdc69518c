package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/wire"
)

// Change relay. A node publishes the changes its own replicas commit; once
// the cluster has more nodes than the replication factor, a node holds
// only some partitions, and an edge subscribed to it would miss the
// others' changes (and serve stale answers until its TTL). So every node
// subscribes to every other node's changes, and relays to its own
// subscribers those of partitions it does not hold. A lost connection or a
// dropped batch is relayed as "changes lost", which makes edges distrust
// their cache, as for their own connection.

// subscribePeer subscribes to the changes of the node at addr, on every
// (re)connection, when addr is a member's: the client also connects to
// cores of other regions (a federation), whose changes are not this
// cluster's, and each subscription marks changes lost for edges.
func (n *Node) subscribePeer(addr string) {
	if !n.isMemberAddr(addr) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := n.cfg.Client.Call(ctx, addr, wire.MethodSubscribe, nil); err != nil {
			n.log.Debug("subscribing to a peer's changes", "addr", addr, "err", err)
		}
		// Whatever changed before the subscription took effect is unknown.
		n.core.Relay(nil, true)
	}()
}

// isMemberAddr reports whether a member of this cluster (as the gossip
// lists it) serves QUIC at addr.
func (n *Node) isMemberAddr(addr string) bool {
	for _, p := range n.cfg.Directory.Members() {
		if p.QUICAddr == addr {
			return true
		}
	}
	return false
}

// relayPush receives a peer's pushed changes.
func (n *Node) relayPush(_ context.Context, addr string, method uint16, msg []byte) error {
	if method == wire.MethodTopology {
		return nil // for edges: this node knows its own leaders
	}
	if method != wire.MethodInvalidate {
		return fmt.Errorf("cluster: unexpected push method %d from %s", method, addr)
	}
	changes, lost, err := wire.DecodeChanges(msg)
	if err != nil {
		n.core.Relay(nil, true)
		return err
	}
	held := n.held.Load()
	out := changes[:0:0]
	for _, c := range changes {
		p := core.PartitionOf(c.Tenant, c.ID, n.core.Partitions())
		if held == nil || !(*held)[p] {
			out = append(out, c)
		}
	}
	n.core.Relay(out, lost)
	return nil
}

// refreshHeld records which partitions this node holds, for relayPush.
func (n *Node) refreshHeld(ctx context.Context) {
	parts, err := n.heldPartitions(ctx)
	if err != nil {
		return
	}
	held := make([]bool, n.core.Partitions())
	for _, p := range parts {
		held[p] = true
	}
	n.held.Store(&held)
}

// PeerDisconnected tells the node its connection to addr dropped: changes
// pushed meanwhile are lost, so its subscribers hear that they may have
// missed some.
func (n *Node) PeerDisconnected(addr string) { n.core.Relay(nil, true) }
