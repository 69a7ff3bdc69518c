// Handling the groups' Readies: persist, send, apply, advance.

package multiraft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// handleReady applies, persists, sends and advances every group that has
// a Ready (see the package doc for the order and why it is safe). A group
// whose snapshot could not be installed does nothing more with its Ready;
// it restarts from the store at the end. It
// reports whether a group has a Ready again right after (see wait).
func (n *Node) handleReady() (bool, error) {
	type ready struct {
		g  *group
		rd raft.Ready
	}
	// 1. Collect the Readies. One that brings a snapshot waits while the
	// state machine copies the snapshot's state on another goroutine;
	// once that is done, the group's held Ready is taken up, its state
	// adopted and its log cut (into b) before anything after it applies.
	b := &n.batch
	b.Reset()
	mustSync := false
	var unavailable []*group // their snapshot could not be installed
	var rds []ready
	for _, g := range n.groups {
		switch {
		case g.installed != nil:
			rd, err := n.finishInstall(g, b)
			if errors.Is(err, ErrSnapshotUnavailable) {
				n.log.Warn("dropping a snapshot that could not be installed", "group", uint32(g.id), "err", err)
				unavailable = append(unavailable, g)
				continue
			} else if err != nil {
				return false, err
			}
			mustSync = true
			rds = append(rds, ready{g, rd})
		case g.installing:
		case g.rn.HasReady():
			rd := g.rn.Ready()
			if !raft.IsEmptySnap(rd.Snapshot) {
				n.startInstall(g, rd)
				continue
			}
			rds = append(rds, ready{g, rd})
		}
	}
	if len(rds) == 0 && len(unavailable) == 0 {
		return false, nil
	}
	// 2. Apply the committed entries. Their effects stay in the state
	// machine's batch and in memory until the store write below, and no
	// caller hears of them before it.
	for _, r := range rds {
		if r.rd.SoftState != nil {
			lead := NodeID(r.rd.SoftState.Lead)
			n.mu.Lock()
			if lead == n.cfg.ID && n.leaders[r.g.id] != lead {
				n.elections++
			}
			n.leaders[r.g.id] = lead
			n.mu.Unlock()
		}
		for _, e := range r.rd.CommittedEntries {
			n.apply(r.g, e)
		}
		for _, rs := range r.rd.ReadStates {
			n.readState(r.g, rs)
		}
	}
	// 3. Persist: every group's entries and hard state, and the state
	// machine's writes, in one store write, synced only if raft needs it
	// (new entries, term or vote: a commit index alone may be lost).
	for _, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			prev, _, _ := r.g.storage.InitialState()
			mustSync = mustSync || raft.MustSync(r.rd.HardState, prev, len(r.rd.Entries))
			data, err := proto.Marshal(r.rd.HardState)
			if err != nil {
				return false, err
			}
			b.Set(hardStateKey(r.g.id), data)
		} else {
			mustSync = mustSync || len(r.rd.Entries) > 0
		}
		last, err := appendToBatch(b, r.g.id, r.rd.Entries, r.g.persistedLast)
		if err != nil {
			return false, err
		}
		r.g.persistedLast = last
	}
	n.cfg.StateMachine.Flush(b)
	if b.Len() > 0 {
		if err := n.cfg.Store.Apply(context.Background(), b, mustSync); err != nil {
			return false, err
		}
		n.syncs++
		n.readies += uint64(len(rds))
		if mustSync {
			// A synced write makes every earlier unsynced one durable too,
			// and carried this cycle's applies: all applied state is.
			for _, g := range n.groups {
				g.durable = g.applied
			}
		}
	}
	for _, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			if err := r.g.storage.SetHardState(r.rd.HardState); err != nil {
				return false, err
			}
		}
		if len(r.rd.Entries) > 0 {
			if err := r.g.storage.Append(r.rd.Entries); err != nil {
				return false, err
			}
		}
	}
	// 4. Send, one batch per peer.
	out := map[NodeID][]Message{}
	for _, r := range rds {
		for _, m := range r.rd.Messages {
			to := NodeID(m.GetTo())
			out[to] = append(out[to], Message{Group: r.g.id, Msg: m})
		}
	}
	for to, msgs := range out {
		n.cfg.Transport.Send(to, msgs)
	}
	// A snapshot message carries only metadata (the receiver fetches the
	// state itself), so it is as good as delivered once sent; if it is
	// lost, the follower stays behind and raft sends another.
	for _, r := range rds {
		for _, m := range r.rd.Messages {
			if m.GetType() == pb.MessageType_MsgSnap {
				r.g.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
				n.snapshotsSent++
			}
		}
	}
	// 5. Make the applies visible, answer, advance, compact.
	if err := n.cfg.StateMachine.Commit(); err != nil {
		return false, err
	}
	for _, r := range rds {
		n.finishReads(r.g)
		r.g.rn.Advance(r.rd)
	}
	for _, r := range rds {
		if err := n.maybeCompact(r.g); err != nil {
			return false, err
		}
	}
	for i, rp := range n.replies {
		rp.p.done <- rp.r
		n.replies[i] = reply{}
	}
	n.replies = n.replies[:0]
	for _, g := range unavailable {
		if err := n.reopen(g); err != nil {
			return false, err
		}
	}
	for _, r := range rds {
		if r.g.rn.HasReady() {
			return true, nil
		}
	}
	return false, nil
}

// reopen replaces replica g with one loaded from the store, forgetting
// what g's RawNode holds beyond it — a Ready that was not persisted,
// sent or applied, as if the messages behind it had been lost. That is
// how a snapshot that could not be installed is dropped: raft adopted it
// when it was stepped, and has no way back.
func (n *Node) reopen(g *group) error {
	for _, p := range g.reads {
		p.done <- result{err: ErrNoLeader}
	}
	delete(n.groups, g.id)
	n.mu.Lock()
	delete(n.leaders, g.id)
	n.mu.Unlock()
	return n.openGroup(context.Background(), g.id, nil)
}

func (n *Node) apply(g *group, e *pb.Entry) {
	g.applied = e.GetIndex()
	switch e.GetType() {
	case pb.EntryType_EntryConfChange, pb.EntryType_EntryConfChangeV2:
		cc, ctx, err := decodeConfChange(e)
		if err == nil {
			err = g.canApply(cc)
		}
		if err != nil {
			// A conf change raft would panic on (which only a lying peer
			// gets committed) changes nothing: every replica checks the same
			// change against the same membership and skips it alike, and
			// raft allows skipping one. Its index is consumed as an empty
			// entry's.
			n.rejected++
			n.log.Warn("skipping a committed conf change that cannot apply", "group", uint32(g.id), "index", e.GetIndex(), "err", err)
			n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil)
			n.reply(ctx, result{err: err})
			return
		}
		cs := g.rn.ApplyConfChange(cc)
		n.mu.Lock()
		n.voters[g.id] = len(cs.GetVoters()) + len(cs.GetVotersOutgoing())
		n.mu.Unlock()
		n.cfg.StateMachine.ApplyConfState(g.id, e.GetIndex(), cs)
		n.reply(ctx, result{})
	default:
		data := e.GetData()
		if len(data) < 8 {
			n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil) // a leader's empty entry
			return
		}
		v := n.cfg.StateMachine.Apply(g.id, e.GetIndex(), data[8:])
		n.reply(data, result{value: v})
	}
}

// decodeConfChange decodes a conf change entry, and returns its context
// (the proposal id).
func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, []byte, error) {
	if e.GetType() == pb.EntryType_EntryConfChange {
		var c pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &c); err != nil {
			return nil, nil, fmt.Errorf("multiraft: conf change %d: %w", e.GetIndex(), err)
		}
		return &c, c.GetContext(), nil
	}
	var c pb.ConfChangeV2
	if err := proto.Unmarshal(e.GetData(), &c); err != nil {
		return nil, nil, fmt.Errorf("multiraft: conf change %d: %w", e.GetIndex(), err)
	}
	return &c, c.GetContext(), nil
}
