// Handling the groups' Readies: persist, send, apply, advance.

package multiraft

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/tiers"
)

// handleReady persists, sends, applies and advances every group that has
// a Ready, in that order (see the package doc).
func (n *Node) handleReady() error {
	type ready struct {
		g  *group
		rd raft.Ready
	}
	var rds []ready
	for _, g := range n.groups {
		if g.rn.HasReady() {
			rds = append(rds, ready{g, g.rn.Ready()})
		}
	}
	if len(rds) == 0 {
		return nil
	}
	// 1. Persist, all groups in one batch, synced only if raft needs it
	// (new entries, term or vote: a commit index alone may be lost).
	var b tiers.Batch
	mustSync := false
	for _, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			prev, _, _ := r.g.storage.InitialState()
			mustSync = mustSync || raft.MustSync(r.rd.HardState, prev, len(r.rd.Entries))
		} else {
			mustSync = mustSync || len(r.rd.Entries) > 0
		}
		if !raft.IsEmptySnap(r.rd.Snapshot) {
			if err := n.installSnapshot(r.g, r.rd.Snapshot, &b); err != nil {
				return err
			}
			mustSync = true
		}
		if !raft.IsEmptyHardState(r.rd.HardState) {
			data, err := proto.Marshal(r.rd.HardState)
			if err != nil {
				return err
			}
			b.Set(hardStateKey(r.g.id), data)
		}
		last, err := appendToBatch(&b, r.g.id, r.rd.Entries, r.g.persistedLast)
		if err != nil {
			return err
		}
		r.g.persistedLast = last
	}
	if b.Len() > 0 {
		if err := n.cfg.Store.Apply(context.Background(), &b, mustSync); err != nil {
			return err
		}
		n.syncs++
		n.readies += uint64(len(rds))
		if mustSync {
			// A synced batch makes every earlier unsynced one durable
			// too: the state machine's writes of past cycles now are.
			for _, g := range n.groups {
				g.durable = g.applied
			}
		}
	}
	for _, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			if err := r.g.storage.SetHardState(r.rd.HardState); err != nil {
				return err
			}
		}
		if len(r.rd.Entries) > 0 {
			if err := r.g.storage.Append(r.rd.Entries); err != nil {
				return err
			}
		}
	}
	// 2. Send, one batch per peer.
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
	// 3. Apply, commit, reply; 4. advance.
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
	if err := n.cfg.StateMachine.Commit(); err != nil {
		return err
	}
	for _, r := range rds {
		n.finishReads(r.g)
		r.g.rn.Advance(r.rd)
	}
	for _, r := range rds {
		if err := n.maybeCompact(r.g); err != nil {
			return err
		}
	}
	for i, rp := range n.replies {
		rp.p.done <- rp.r
		n.replies[i] = reply{}
	}
	n.replies = n.replies[:0]
	return nil
}

func (n *Node) apply(g *group, e *pb.Entry) {
	g.applied = e.GetIndex()
	switch e.GetType() {
	case pb.EntryType_EntryConfChange, pb.EntryType_EntryConfChangeV2:
		var cc pb.ConfChangeI
		var ctx []byte
		if e.GetType() == pb.EntryType_EntryConfChange {
			var c pb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				panic(fmt.Sprintf("multiraft: group %d: committed conf change %d: %v", g.id, e.GetIndex(), err))
			}
			cc, ctx = &c, c.GetContext()
		} else {
			var c pb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				panic(fmt.Sprintf("multiraft: group %d: committed conf change %d: %v", g.id, e.GetIndex(), err))
			}
			cc, ctx = &c, c.GetContext()
		}
		cs := g.rn.ApplyConfChange(cc)
		n.mu.Lock()
		n.voters[g.id] = len(cs.GetVoters()) + len(cs.GetVotersOutgoing())
		n.mu.Unlock()
		n.cfg.StateMachine.ApplyConfState(g.id, e.GetIndex(), cs)
		n.reply(ctx, nil)
	default:
		data := e.GetData()
		if len(data) < 8 {
			n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil) // a leader's empty entry
			return
		}
		v := n.cfg.StateMachine.Apply(g.id, e.GetIndex(), data[8:])
		n.reply(data, v)
	}
}
