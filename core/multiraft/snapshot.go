// Log compaction, and installing the snapshots raft sends a replica the
// compacted log cannot catch up.

package multiraft

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
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
// snapshot, and the cycle's log write gets the persisted log's
// replacement (the snapshot's index and term, no entries).
func (n *Node) finishInstall(g *group) (raft.Ready, error) {
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
	n.rlog.snapshot(g, md.GetIndex(), md.GetTerm())
	g.first = md.GetIndex() + 1
	g.proposed = nil // outcome unknown: see dropLost
	applied, _ := n.cfg.StateMachine.Applied(g.id)
	g.applied, g.durable = max(applied, md.GetIndex()), max(applied, md.GetIndex())
	cs := md.GetConfState()
	n.setVoters(g, cs.GetVoters(), cs.GetVotersOutgoing())
	n.snapshotsTaken++
	n.log.Info("installed a snapshot", "group", uint32(g.id), "index", md.GetIndex(), "applied", applied)
	return rd, nil
}

// compactionDue reports whether g's log will be compacted once the state
// machine's writes up to g.applied are durable: handleReady then syncs
// its store write.
func (n *Node) compactionDue(g *group) bool {
	keep := uint64(n.cfg.LogKeep)
	return g.durable < g.first+2*keep && g.applied >= g.first+2*keep
}

// maybeCompact drops the log of g up to LogKeep entries behind what the
// state machine holds durably, once the log is twice that long; the
// caller writes the compaction (unsynced: losing it only keeps entries
// longer). A follower that needs a dropped entry gets a snapshot (see
// snapshot).
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
	n.rlog.compact(g, to, term)
	g.first = to + 1
	return nil
}
