// Log compaction, and installing the snapshots raft sends a replica the
// compacted log cannot catch up.

package multiraft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"

	"github.com/soullabs/brainy/tiers"
)

// maxInstalls bounds the snapshots a node copies at once: each streams a
// whole partition from a peer, and a node that joins a cluster is sent one
// for every partition placed on it.
const maxInstalls = 2

// installResult is a finished copy of a snapshot's state.
type installResult struct {
	g     *group
	adopt func()
	err   error
}

// startInstall holds g's Ready rd, whose snapshot the state machine now
// copies on a goroutine of its own (see StateMachine.ApplySnapshot);
// handleReady takes the Ready up again once the copy has finished.
func (n *Node) startInstall(g *group, rd raft.Ready) {
	g.installing, g.held = true, rd
	from := g.snapFrom
	if from == 0 {
		from = NodeID(g.rn.BasicStatus().Lead)
	}
	n.installs.Add(1)
	go func() {
		defer n.installs.Done()
		select {
		case n.installSem <- struct{}{}:
		case <-n.installCtx.Done():
			return
		}
		adopt, err := n.cfg.StateMachine.ApplySnapshot(n.installCtx, g.id, from, rd.Snapshot)
		<-n.installSem
		if err != nil {
			md := rd.Snapshot.GetMetadata()
			err = fmt.Errorf("multiraft: group %d: installing a snapshot at %d from %d: %w", g.id, md.GetIndex(), from, err)
		}
		select {
		case n.installedC <- installResult{g: g, adopt: adopt, err: err}:
		case <-n.installCtx.Done():
		}
	}()
}

// finishInstall takes up g's held Ready once its snapshot's state is
// copied: the state machine adopts it, the in-memory log restarts at the
// snapshot, and b gets the persisted log's replacement (the truncation
// point, no entries).
func (n *Node) finishInstall(g *group, b *tiers.Batch) (raft.Ready, error) {
	res, rd := g.installed, g.held
	g.installing, g.held, g.installed = false, raft.Ready{}, nil
	if res.err != nil {
		return rd, res.err
	}
	if res.adopt != nil {
		res.adopt()
	}
	snap := rd.Snapshot
	md := snap.GetMetadata()
	if err := g.storage.ApplySnapshot(snap); err != nil {
		return rd, fmt.Errorf("multiraft: group %d: %w", g.id, err)
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
	n.log.Info("installed a snapshot", "group", uint32(g.id), "index", md.GetIndex(), "applied", applied)
	return rd, nil
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
