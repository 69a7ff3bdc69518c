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
// it restarts from the log at the end. It reports whether a group has a
// Ready again right after (see wait).
func (n *Node) handleReady() (bool, error) {
	type ready struct {
		g  *group
		rd raft.Ready
	}
	ctx := context.Background()
	// 1. Collect the Readies. One that brings a snapshot waits while the
	// state machine copies the snapshot's state on another goroutine;
	// once that is done, the group's held Ready is taken up, its state
	// adopted and its log cut (in the cycle's log write) before anything
	// after it applies.
	mustSync := false
	var unavailable []*group // their snapshot could not be installed
	var rds []ready
	for _, g := range n.groups {
		switch {
		case g.installed != nil:
			rd, err := n.finishInstall(g)
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
	compact := false // some group's log is due for compaction: see 4
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
		compact = compact || n.compactionDue(r.g)
	}
	// 3. Write the log: every group's entries and hard state, synced only
	// if raft needs it (new entries, term or vote: a commit index alone
	// may be lost). The store-backed log adds them to the store write
	// below instead.
	b := &n.batch
	b.Reset()
	wrote := false
	for _, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			prev, _, _ := r.g.storage.InitialState()
			mustSync = mustSync || raft.MustSync(r.rd.HardState, prev, len(r.rd.Entries))
			if err := n.rlog.setHardState(r.g.id, r.rd.HardState); err != nil {
				return false, err
			}
			wrote = true
		} else {
			mustSync = mustSync || len(r.rd.Entries) > 0
		}
		if len(r.rd.Entries) > 0 {
			if err := n.rlog.append(r.g, r.rd.Entries); err != nil {
				return false, err
			}
			wrote = true
		}
	}
	storeSync, err := n.rlog.write(ctx, b, mustSync)
	if err != nil {
		return false, err
	}
	// 4. Only once the log write has returned, the state machine's writes:
	// they record its applied index, which must never be durable before
	// the entries it names (raft hands a replica committed entries its
	// log stores in this very cycle). With a dedicated log the store write
	// is unsynced — the entries are durable in the log, and after a crash
	// they are applied again — except in a cycle where some group's log is
	// due for compaction: the log may be cut only behind state machine
	// writes that a synced store write made durable (g.durable).
	n.cfg.StateMachine.Flush(b)
	storeSync = storeSync || compact
	if storeSync && b.Len() == 0 {
		// A store may skip an empty batch, and its sync with it (pebble
		// does): give it something to write.
		b.Delete(syncKey)
	}
	if b.Len() > 0 {
		if err := n.cfg.Store.Apply(ctx, b, storeSync); err != nil {
			return false, err
		}
		wrote = true
		if storeSync {
			// A synced write makes every earlier unsynced one durable too,
			// and carried this cycle's applies: all applied state is.
			for _, g := range n.groups {
				g.durable = g.applied
			}
		}
	}
	if wrote {
		n.syncs++
		n.readies += uint64(len(rds))
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
	// 5. Send, one batch per peer.
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
	// 6. Make the applies visible, answer, advance, compact.
	if err := n.cfg.StateMachine.Commit(); err != nil {
		return false, err
	}
	for _, r := range rds {
		n.finishReads(r.g)
		r.g.rn.Advance(r.rd)
		n.updateSole(r.g)
		n.campaignAlone(r.g)
	}
	for _, r := range rds {
		if err := n.maybeCompact(r.g); err != nil {
			return false, err
		}
	}
	if _, err := n.rlog.write(ctx, nil, false); err != nil { // the compactions
		return false, err
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
	delete(n.sole, g.id)
	n.mu.Unlock()
	if err := n.openGroup(context.Background(), g.id, nil); err != nil {
		return err
	}
	// The state machine's applied index may be ahead of what a synced
	// store write made durable.
	gr := n.groups[g.id]
	gr.durable = min(gr.durable, g.durable)
	return nil
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
		n.setVoters(g, cs.GetVoters(), cs.GetVotersOutgoing())
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
