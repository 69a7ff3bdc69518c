// A group's replica on this node: its state, opening and removing it,
// and changes to its membership and leadership.

package multiraft

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/tiers"
)

type group struct {
	id            GroupID
	rn            *raft.RawNode
	storage       *raft.MemoryStorage
	persistedLast uint64
	applied       uint64
	quiet         int // ticks since an append, heartbeat or snapshot from the leader arrived
	// durable is the applied index whose state machine writes are known
	// durable: those of cycles before the last synced persist. The log is
	// never compacted past it, so a crash cannot lose both.
	durable  uint64
	first    uint64 // first entry index persisted (entries before it are compacted)
	snapFrom NodeID // sender of the last snapshot message stepped
	// readCtx is the request context of the read-index request made in
	// driver cycle readCycle, which later reads of that cycle share.
	readCtx   []byte
	readCycle uint64
	reads     []*proposal // ReadIndex requests that know their index, waiting for applied to reach it
	// While the state machine copies a snapshot (installing), the group's
	// Ready waits in held, not yet advanced; raft still steps and ticks
	// it. installed is set once the copy has finished.
	installing bool
	held       raft.Ready
	installed  *installResult
}

// OpenGroup opens group g: from its persisted log if this node has one,
// otherwise as a new group of peers (which must include this node, and be
// the same on every peer).
//
// With no peers, a group this node has no state for is opened empty (an
// uninitialised replica), to be filled by its leader.
func (n *Node) OpenGroup(ctx context.Context, g GroupID, peers []NodeID) error {
	var err error
	derr := n.do(ctx, func() {
		if n.groups[g] == nil {
			err = n.openGroup(ctx, g, peers)
		}
	})
	if derr != nil {
		return derr
	}
	return err
}

// openGroup runs on the driver goroutine.
func (n *Node) openGroup(ctx context.Context, g GroupID, peers []NodeID) error {
	applied, cs := n.cfg.StateMachine.Applied(g)
	ms, first, last, found, err := loadGroup(ctx, n.cfg.Store, g, cs)
	if err != nil {
		return err
	}
	if applied > last && found && last > 0 {
		return fmt.Errorf("multiraft: group %d: state machine applied %d but the log ends at %d", g, applied, last)
	}
	st := &storage{MemoryStorage: ms}
	if cs != nil {
		st.cs = cs
	}
	rc := &raft.Config{
		ID:              uint64(n.cfg.ID),
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         applied,
		MaxSizePerMsg:   n.cfg.MaxSizePerMsg,
		MaxInflightMsgs: n.cfg.MaxInflightMsgs,
		CheckQuorum:     true,
		PreVote:         true,
		// Reads are confirmed by a heartbeat round with a quorum
		// (ReadOnlySafe), not by a leader lease: a lease is only as good
		// as the nodes' clocks and schedulers, and a starved leader that
		// missed its ticks would serve stale reads past a new election.
		// Reads of one cycle share one round (see propose).
		ReadOnlyOption: raft.ReadOnlySafe,
		Logger:         raftLogger{n.log.With("group", uint32(g))},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("multiraft: group %d: %w", g, err)
	}
	if !found && len(peers) > 0 {
		rp := make([]raft.Peer, len(peers))
		for i, p := range peers {
			rp[i] = raft.Peer{ID: uint64(p)}
		}
		if err := rn.Bootstrap(rp); err != nil {
			return fmt.Errorf("multiraft: group %d: %w", g, err)
		}
	}
	gr := &group{id: g, rn: rn, storage: ms, persistedLast: last, applied: applied, durable: applied, first: first}
	st.snapshot = func() (*pb.Snapshot, error) {
		index := gr.applied
		term, err := ms.Term(index)
		if err != nil {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
		_, cs := n.cfg.StateMachine.Applied(g)
		if cs == nil {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
		return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: &index, Term: &term, ConfState: cs}}, nil
	}
	n.groups[g] = gr
	n.mu.Lock()
	n.voters[g] = len(rn.Status().Config.Voters.IDs())
	n.mu.Unlock()
	return nil
}

// ChangeReplicas proposes a membership change of group g (this node must
// hold a replica; raft forwards it to the leader) and returns once this
// replica applied it. raft allows one change in flight per group; a second
// is dropped and reported as ErrNoLeader, so callers retry.
func (n *Node) ChangeReplicas(ctx context.Context, g GroupID, cc *pb.ConfChangeV2) error {
	p := &proposal{ctx: ctx, group: g, kind: kindConfChange, cc: cc, done: make(chan result, 1)}
	_, err := n.submit(p)
	return err
}

// RemoveGroup destroys this node's replica of g: the group stops, its log
// and hard state are deleted, and destroy (if not nil) runs on the driver
// goroutine in between, for the state machine to drop the group's data —
// nothing else touches the group then. Pending proposals of g fail
// through their contexts. Call it only for a replica its group no longer
// counts (see cluster's replica GC): a voter destroyed while counted
// weakens its group's quorum.
func (n *Node) RemoveGroup(ctx context.Context, g GroupID, destroy func() error) error {
	var err error
	derr := n.do(ctx, func() {
		gr := n.groups[g]
		if gr == nil {
			return
		}
		if gr.installing {
			// The copy writes the group's keys; they would outlive it.
			err = fmt.Errorf("multiraft: group %d is installing a snapshot; remove it once that is done", g)
			return
		}
		delete(n.groups, g)
		n.mu.Lock()
		delete(n.leaders, g)
		delete(n.voters, g)
		n.mu.Unlock()
		for _, p := range gr.reads {
			p.done <- result{err: fmt.Errorf("%w: %d", ErrUnknownGroup, g)}
		}
		if destroy != nil {
			if err = destroy(); err != nil {
				return
			}
		}
		var b tiers.Batch
		b.Delete(hardStateKey(g))
		for i := max(gr.first, 1); i <= gr.persistedLast; i++ {
			b.Delete(entryKey(g, i))
		}
		b.Delete(truncatedKey(g))
		err = n.cfg.Store.Apply(ctx, &b, true)
	})
	if derr != nil {
		return derr
	}
	return err
}

// TransferLeadership asks the leader of g, if it is this node, to hand
// leadership to another replica, as a node does before it leaves. On a
// follower it does nothing: raft would forward the request to the leader
// with the transferee as its sender, which the leader's node refuses as
// forged (see check).
func (n *Node) TransferLeadership(ctx context.Context, g GroupID, to NodeID) error {
	return n.do(ctx, func() {
		if gr := n.groups[g]; gr != nil && gr.rn.BasicStatus().RaftState == raft.StateLeader {
			gr.rn.TransferLeader(uint64(to))
		}
	})
}
