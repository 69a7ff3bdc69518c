// Log compaction, and installing the snapshots raft sends a replica the
// compacted log cannot catch up.

package multiraft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/tiers"
)

// installSnapshot handles a snapshot raft received for g: the state
// machine copies the sender's state, the in-memory log restarts at the
// snapshot, and b gets the persisted log's replacement (the truncation
// point, no entries).
func (n *Node) installSnapshot(g *group, snap *pb.Snapshot, b *tiers.Batch) error {
	md := snap.GetMetadata()
	from := g.snapFrom
	if from == 0 {
		from = NodeID(g.rn.BasicStatus().Lead)
	}
	if err := n.cfg.StateMachine.ApplySnapshot(g.id, from, snap); err != nil {
		return fmt.Errorf("multiraft: group %d: installing a snapshot at %d from %d: %w", g.id, md.GetIndex(), from, err)
	}
	if err := g.storage.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("multiraft: group %d: %w", g.id, err)
	}
	for i := max(g.first, 1); i <= g.persistedLast; i++ {
		b.Delete(entryKey(g.id, i))
	}
	b.Set(truncatedKey(g.id), encodeTruncated(md.GetIndex(), md.GetTerm()))
	g.first, g.persistedLast = md.GetIndex()+1, md.GetIndex()
	applied, _ := n.cfg.StateMachine.Applied(g.id)
	g.applied, g.durable = max(applied, md.GetIndex()), max(applied, md.GetIndex())
	n.mu.Lock()
	n.voters[g.id] = len(md.GetConfState().GetVoters()) + len(md.GetConfState().GetVotersOutgoing())
	n.mu.Unlock()
	n.snapshotsTaken++
	n.log.Info("installed a snapshot", "group", uint32(g.id), "index", md.GetIndex(), "from", uint64(from), "applied", applied)
	return nil
}

// maybeCompact drops the log of g up to LogKeep entries behind what the
// state machine holds durably, once the log is twice that long. A
// follower that needs a dropped entry gets a snapshot (see snapshot).
func (n *Node) maybeCompact(g *group) error {
	keep := uint64(n.cfg.LogKeep)
	if g.durable < g.first+2*keep {
		return nil
	}
	to := g.durable - keep
	term, err := g.storage.Term(to)
	if err != nil {
		return nil // already compacted past it
	}
	if err := g.storage.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("multiraft: group %d: compacting to %d: %w", g.id, to, err)
	}
	var b tiers.Batch
	for i := max(g.first, 1); i <= to; i++ {
		b.Delete(entryKey(g.id, i))
	}
	b.Set(truncatedKey(g.id), encodeTruncated(to, term))
	if err := n.cfg.Store.Apply(context.Background(), &b, false); err != nil {
		return err
	}
	g.first = to + 1
	return nil
}
