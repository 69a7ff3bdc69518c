package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// Replica GC. A leader that removes a replica from its group stops
// talking to it, so the removed node rarely applies its own removal: it
// just stops hearing from the leader (a voter then campaigns in vain —
// PreVote keeps it from disturbing the group — and knows no leader). A
// node whose replica knows no leader, has not heard from it for 50 ticks,
// or does not list itself asks the members who leads the group now; only
// that leader's word counts, and if it no longer lists this node the
// local replica is destroyed. A leader is authoritative: raft has one per
// term, and a removal it committed is never undone.

var errMalformedGroupInfo = errors.New("cluster: malformed group info")

// groupInfo is one node's view of a group.
type groupInfo struct {
	leader   bool
	term     uint64
	replicas []multiraft.NodeID
}

func (n *Node) handleGroupInfo(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
	d := codec.Decoder{B: req, Fail: errMalformedGroupInfo}
	g := d.Uvarint()
	if d.Err != nil || len(d.B) != 0 || g >= uint64(n.core.Partitions()) {
		return nil, errMalformedGroupInfo
	}
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return nil, err
	}
	out := []byte{0}
	for _, s := range st {
		if uint64(s.Group) != g {
			continue
		}
		if s.Leader == n.self {
			out[0] = 1
		}
		out = binary.AppendUvarint(out, s.Term)
		ids := append(slices.Clone(s.Voters), s.Learners...)
		out = binary.AppendUvarint(out, uint64(len(ids)))
		for _, id := range ids {
			out = binary.AppendUvarint(out, uint64(id))
		}
		return out, nil
	}
	return out, nil // no replica here: not the leader, no term
}

func decodeGroupInfo(b []byte) (groupInfo, error) {
	d := codec.Decoder{B: b, Fail: errMalformedGroupInfo}
	gi := groupInfo{leader: d.Byte() == 1}
	if len(d.B) == 0 && d.Err == nil {
		return gi, nil
	}
	gi.term = d.Uvarint()
	count := d.Uvarint()
	if d.Err != nil || count > 64 {
		return groupInfo{}, errMalformedGroupInfo
	}
	for range count {
		gi.replicas = append(gi.replicas, multiraft.NodeID(d.Uvarint()))
	}
	if d.Err != nil || len(d.B) != 0 {
		return groupInfo{}, errMalformedGroupInfo
	}
	return gi, nil
}

// collectGarbage destroys local replicas their groups no longer count.
func (n *Node) collectGarbage(ctx context.Context) {
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return
	}
	for _, g := range st {
		member := slices.Contains(g.Voters, n.self) || slices.Contains(g.Learners, n.self)
		if g.Leader == n.self || (g.Leader != 0 && member && g.Quiet < 50) {
			continue // a leader, or a replica its leader talks to
		}
		req := binary.AppendUvarint(nil, uint64(g.Group))
		for _, p := range n.cfg.Directory.Members() {
			if p.ID == n.cfg.Core.NodeID {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			out, err := n.cfg.Client.Call(cctx, p.QUICAddr, wire.MethodGroupInfo, req)
			cancel()
			if err != nil {
				continue
			}
			gi, err := decodeGroupInfo(out)
			if err != nil || !gi.leader {
				continue
			}
			if gi.term >= g.Term && !slices.Contains(gi.replicas, n.self) {
				if err := n.core.RemoveReplica(ctx, int(g.Group)); err != nil {
					n.log.Warn("removing a replica the group dropped", "partition", g.Group, "err", err)
				} else {
					n.log.Info("removed a replica the group dropped", "partition", g.Group, "leader", p.ID)
				}
			}
			break
		}
	}
}
