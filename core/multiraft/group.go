// A group's replica on this node: its state, opening and removing it,
// and changes to its membership and leadership.

package multiraft

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

type group struct {
	id      GroupID
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	// persistedLast is the last entry index in the log (kept by storeLog
	// only, which deletes an overwritten tail itself).
	persistedLast uint64
	applied       uint64
	quiet         int // ticks since an append, heartbeat or snapshot from the leader arrived
	// durable is the applied index whose state machine writes are known
	// durable: those of cycles up to the last synced store write (see
	// handleReady). The log is never compacted past it, so a crash cannot
	// lose both.
	durable  uint64
	first    uint64 // first entry index persisted (entries before it are compacted)
	snapFrom NodeID // sender of the last snapshot message stepped
	// readCtx is the request context of the read-index request made in
	// driver cycle readCycle, which later reads of that cycle share.
	readCtx   []byte
	readCycle uint64
	reads     []*proposal // ReadIndex requests that know their index, waiting for applied to reach it
	// proposed: commands proposed here whose place in the log (index,
	// term) is known, not yet answered (see placed and dropLost).
	proposed []*proposal
	// While the state machine copies a snapshot (installing), the group's
	// Ready waits in held, not yet advanced; raft still steps and ticks
	// it. installed is set once the copy has finished.
	installing bool
	held       raft.Ready
	installed  *installResult
	// parked: its Ready waits for its log write (see handleReady).
	parked bool
	// lone: this node is the group's only voter.
	lone bool
	// campaign: no leader has been known since the group was opened, and
	// a lone voter has not campaigned yet (see campaignAlone).
	campaign bool
	// quiesced: the group does not tick (quiesce.go); idle counts the
	// ticks since something other than heartbeats happened to it.
	quiesced bool
	idle     int
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
	p, err := n.rlog.load(ctx, g)
	if err != nil {
		return err
	}
	found := p.found
	ms, first, last, err := p.memoryStorage(g, applied, cs)
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
		// See ErrNotLeader.
		DisableProposalForwarding: true,
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
	vs := rn.Status().Config.Voters
	n.setVoters(gr, vs[0].Slice(), vs[1].Slice())
	gr.campaign = true
	n.campaignAlone(gr)
	return nil
}

// setVoters records g's voters after its configuration changed.
func (n *Node) setVoters(g *group, voters, outgoing []uint64) {
	g.lone = len(voters) == 1 && len(outgoing) == 0 && voters[0] == uint64(n.cfg.ID)
	n.mu.Lock()
	n.voters[g.id] = len(voters) + len(outgoing)
	n.mu.Unlock()
}

// campaignAlone makes a lone voter opened by this node campaign, once:
// nobody else can vote, so it need not wait out an election timeout.
// Without it every group of a freshly started single node answers "no
// leader" for 200–400 ms (longer on a starved machine), which a caller
// with a short timeout sees as a failed request.
//
// Raft ignores a campaign while configuration changes wait to be applied
// — a new group's bootstrap entries do until its first cycle — and a
// replica reopened on a store-kept log learns its voters only as it
// applies the log again, so the driver calls this after each Advance
// until a leader is known.
func (n *Node) campaignAlone(g *group) {
	if !g.campaign {
		return
	}
	st := g.rn.BasicStatus()
	if st.Lead != 0 {
		g.campaign = false // someone leads: nothing to hurry
		return
	}
	// Raft refuses (and logs) a campaign while committed entries, which
	// may be configuration changes, wait to be applied.
	if g.lone && st.RaftState == raft.StateFollower && st.Applied >= st.GetCommit() {
		if err := g.rn.Campaign(); err != nil {
			n.log.Warn("a lone voter's campaign failed", "group", uint32(g.id), "err", err)
		}
		if g.rn.BasicStatus().RaftState == raft.StateFollower {
			return // not yet: try after the next Advance
		}
		g.campaign = false
	}
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

// RemoveGroup destroys this node's replica of g: the group stops, destroy
// (if not nil) runs on the driver goroutine, for the state machine to
// drop the group's data — nothing else touches the group then — and the
// log forgets the group in a synced write (with a dedicated log, after a
// synced store write, so that destroy's writes are durable before the
// log no longer has the group). Pending proposals of g fail
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
		n.setLeader(g, Lead{})
		delete(n.voters, g)
		delete(n.sole, g)
		n.mu.Unlock()
		for _, p := range gr.reads {
			p.done <- result{err: fmt.Errorf("%w: %d", ErrUnknownGroup, g)}
		}
		if destroy != nil {
			if err = destroy(); err != nil {
				return
			}
		}
		n.rlog.remove(gr)
		err = n.writeLog(ctx, true)
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
			n.wake(gr)
			gr.rn.TransferLeader(uint64(to))
		}
	})
}
