package cluster

import (
	"slices"
	"time"

	"github.com/soullabs/brainy/internal/shrink"
)

// Forgetting departed members. placementMembers records every member it
// sees alive in lastSeen and peers, raftNet starts a sender for every node
// raft talks to, the client pools a connection per address it called, and
// forwarder caches a client per address it forwarded to. Members that
// come and go for good would make all of them grow for the life of the
// process; prune, run after every reconcile, forgets:
//
//   - a member's peers entry, raft sender and QUIC connection once it has
//     been gone for longer than DeadAfter: placement no longer counts it,
//     so no group keeps a replica there for long;
//   - its lastSeen entry, which Metrics reports as "down since", after
//     downForDeadAfters times DeadAfter, and beyond the maxDownMembers
//     seen last;
//   - forwarders to addresses no live member has (a forwarder holds no
//     connection of its own: the client's pool does).

// maxDownMembers bounds the departed members Metrics reports as down.
const maxDownMembers = 64

// downForDeadAfters is how long, in multiples of DeadAfter, Metrics keeps
// reporting a departed member as down.
const downForDeadAfters = 10

// prune forgets the members gone for good (see above) as of now.
func (n *Node) prune(now time.Time) {
	liveAddrs := map[string]bool{}
	for _, p := range *n.alive.Load() {
		liveAddrs[p.QUICAddr] = true
	}
	var gone []Peer
	var down []string
	n.mu.Lock()
	for id, seen := range n.lastSeen {
		away := now.Sub(seen)
		if away <= n.cfg.DeadAfter {
			continue
		}
		if p, ok := n.peers[id]; ok {
			delete(n.peers, id)
			gone = append(gone, p)
		}
		if away > downForDeadAfters*n.cfg.DeadAfter {
			delete(n.lastSeen, id)
		} else {
			down = append(down, id)
		}
	}
	if len(down) > maxDownMembers {
		slices.SortFunc(down, func(a, b string) int { return n.lastSeen[b].Compare(n.lastSeen[a]) })
		for _, id := range down[maxDownMembers:] {
			delete(n.lastSeen, id)
		}
	}
	for addr := range n.forward {
		if !liveAddrs[addr] {
			delete(n.forward, addr)
		}
	}
	n.lastSeen = shrink.Map(n.lastSeen, &n.peaks[0])
	n.peers = shrink.Map(n.peers, &n.peaks[1])
	n.forward = shrink.Map(n.forward, &n.peaks[2])
	// A counted member may have taken over a departed one's address (a
	// node restarted under a new id): its connection stays.
	inUse := map[string]bool{}
	for _, p := range n.peers {
		inUse[p.QUICAddr] = true
	}
	n.mu.Unlock()
	for _, p := range gone {
		if !inUse[p.QUICAddr] {
			n.cfg.Client.Disconnect(p.QUICAddr)
		}
		n.log.Debug("forgot a departed member", "node", p.ID)
	}
	n.net.forgetUnknown()
}
