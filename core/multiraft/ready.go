// Handling the groups' Readies: persist, send, apply, advance.

package multiraft

import (
	"context"
	"errors"
	"fmt"

	"github.com/soullabs/brainy/tiers"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ready is a group's Ready, from the cycle that took it until the cycle
// that advances it.
type ready struct {
	g  *group
	rd raft.Ready
	// deferred: its committed entries are applied only once its own log
	// write is done (see committedFromLog).
	deferred bool
	// seq is the log write it waits for, while parked.
	seq uint64
}

// handleReady applies, persists, sends and advances every group that has
// a Ready (see the package doc for the order and why it is safe). A group
// whose snapshot could not be installed does nothing more with its Ready;
// it restarts from the log at the end. It reports whether a group has a
// Ready again right after (see wait).
func (n *Node) handleReady() (bool, error) {
	ctx := context.Background()
	separate := n.writer != nil
	if separate {
		if err := n.writer.err.Load(); err != nil {
			return false, *err
		}
	}
	// 0. Finish the parked Readies whose log write is done: apply what
	// they deferred, advance them. A lone voter's Advance commits the
	// entries just written, so the Readies collected next apply them and
	// answer their proposers in this same cycle. (Replies, reads' too,
	// are only queued until the Commit below.)
	var fin []ready // Readies to finish (send, advance)
	if len(n.parked) > 0 {
		done := n.writer.done.Load()
		kept := n.parked[:0]
		for _, r := range n.parked {
			switch {
			case n.groups[r.g.id] != r.g: // removed meanwhile
			case r.seq <= done:
				fin = append(fin, r) // still parked: collect skips it
			default:
				kept = append(kept, r)
			}
		}
		clear(n.parked[len(kept):])
		n.parked = kept
	}
	compact := false // some group's log is due for compaction: see storeApplies
	for _, r := range fin {
		if r.deferred {
			n.applyAll(r.g, r.rd.CommittedEntries)
		}
		compact = compact || n.compactionDue(r.g)
	}
	if err := n.finish(ctx, fin); err != nil {
		return false, err
	}
	finished := len(fin) > 0
	fin = fin[:0]
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
		case g.parked:
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
			rds = append(rds, ready{g: g, rd: rd, deferred: separate})
		case g.installing:
		case g.rn.HasReady():
			rd := g.rn.Ready()
			if !raft.IsEmptySnap(rd.Snapshot) {
				n.startInstall(g, rd)
				continue
			}
			n.placed(g, rd.Entries)
			rds = append(rds, ready{g: g, rd: rd, deferred: separate && !committedFromLog(g, rd)})
		}
	}
	if len(rds) == 0 && !finished && len(unavailable) == 0 {
		return false, nil
	}
	// 2. The log: every group's entries and hard state, synced only if
	// raft needs it (new entries, term or vote: a commit index alone may
	// be lost). A separate log's write goes to the writer at once, so its
	// sync runs while the driver applies and answers; the Readies that
	// need it synced park until it is. The store-kept log's operations go
	// into the cycle's store batch, ahead of the state machine's writes.
	b := &n.batch
	b.Reset()
	wrote := false
	park := n.park[:0]
	for range rds {
		park = append(park, false)
	}
	n.park = park
	for i, r := range rds {
		if !raft.IsEmptyHardState(r.rd.HardState) {
			prev, _, _ := r.g.storage.InitialState()
			sync := raft.MustSync(r.rd.HardState, prev, len(r.rd.Entries))
			mustSync = mustSync || sync
			park[i] = sync
			if err := n.rlog.setHardState(r.g.id, r.rd.HardState); err != nil {
				return false, err
			}
			wrote = true
		}
		if len(r.rd.Entries) > 0 {
			mustSync, park[i] = true, true
			if err := n.rlog.append(r.g, r.rd.Entries); err != nil {
				return false, err
			}
			wrote = true
		}
		park[i] = park[i] || r.deferred
	}
	storeSync := false
	if separate {
		if ops := n.rlog.detach(); ops != nil || mustSync {
			n.logSeq++
			n.writer.submit(n.logSeq, ops, mustSync)
		}
		for i, r := range rds {
			if park[i] && mustSync {
				r.seq, r.g.parked = n.logSeq, true
				n.parked = append(n.parked, r)
			} else {
				fin = append(fin, r)
			}
		}
	} else {
		var err error
		if storeSync, err = n.rlog.write(ctx, b, mustSync); err != nil {
			return false, err
		}
		fin = append(fin, rds...)
	}
	// 3. Apply the committed entries whose log is durable (with a
	// separate log; with the store-kept one all of them: they are stored
	// together with the log). Their effects stay in the state machine's
	// batch and in memory until the store write below.
	for _, r := range rds {
		if r.rd.SoftState != nil {
			lead := Lead{Node: NodeID(r.rd.SoftState.Lead), Term: r.g.rn.BasicStatus().GetTerm()}
			n.mu.Lock()
			if lead.Node == n.cfg.ID && n.leaders[r.g.id].Node != lead.Node {
				n.elections++
			}
			n.setLeader(r.g.id, lead)
			n.mu.Unlock()
			n.dropUnplacedReads(r.g)
		}
		if !r.deferred {
			n.applyAll(r.g, r.rd.CommittedEntries)
		}
		for _, rs := range r.rd.ReadStates {
			n.readState(r.g, rs)
		}
		compact = compact || n.compactionDue(r.g)
	}
	// 4. Store the applies, make them visible, answer their proposers.
	if err := n.storeApplies(ctx, b, storeSync, compact); err != nil {
		return false, err
	}
	wrote = wrote || b.Len() > 0
	if err := n.cfg.StateMachine.Commit(); err != nil {
		return false, err
	}
	n.answer()
	if wrote {
		n.syncs++
		n.readies += uint64(len(rds))
	}
	// 5. Finish the Readies whose log is written: raft's own storage
	// learns what the log holds, messages go out (one batch per peer),
	// raft advances, logs due for it are compacted.
	if err := n.finish(ctx, fin); err != nil {
		return false, err
	}
	n.answer() // reads that finished
	for _, g := range unavailable {
		if err := n.reopen(g); err != nil {
			return false, err
		}
	}
	for _, r := range fin {
		if r.g.rn.HasReady() {
			return true, nil
		}
	}
	return false, nil
}

// applyAll applies committed entries of g in order.
func (n *Node) applyAll(g *group, ents []*pb.Entry) {
	for _, e := range ents {
		n.apply(g, e)
	}
	n.dropLost(g)
}

// finish ends the Readies in fin, whose log writes are done.
func (n *Node) finish(ctx context.Context, fin []ready) error {
	for _, r := range fin {
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
	out := outbox{}
	for _, r := range fin {
		for _, m := range r.rd.Messages {
			out.add(r.g.id, m)
		}
	}
	n.post(out)
	// A snapshot message carries only metadata (the receiver fetches the
	// state itself), so it is as good as delivered once sent; if it is
	// lost, the follower stays behind and raft sends another.
	for _, r := range fin {
		for _, m := range r.rd.Messages {
			if m.GetType() == pb.MessageType_MsgSnap {
				r.g.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
				n.snapshotsSent++
			}
		}
	}
	for _, r := range fin {
		r.g.parked = false
		n.finishReads(r.g)
		r.g.rn.Advance(r.rd)
		n.updateSole(r.g)
		n.campaignAlone(r.g)
	}
	for _, r := range fin {
		if err := n.maybeCompact(r.g); err != nil {
			return err
		}
	}
	// The compactions, unsynced: losing one only keeps entries longer.
	if n.writer != nil {
		if ops := n.rlog.detach(); ops != nil {
			n.logSeq++
			n.writer.submit(n.logSeq, ops, false)
		}
		return nil
	}
	_, err := n.rlog.write(ctx, nil, false)
	return err
}

// storeApplies writes the state machine's writes of this cycle's applies
// (StateMachine.Flush) to the store in one Store.Apply.
//
// They record the applied index, which must never be durable before the
// entries it names, so they normally follow the cycle's log write: raft
// hands a replica committed entries its log stores in this very cycle. A
// cycle whose applied entries were all in the log before it (early; a
// leader's always are — it counts its own append only once persisted —
// and a follower's mostly) stores them first, makes them visible and
// answers their proposers, and only then writes and syncs the new
// entries: a write is then answered one log sync after its own, not two.
// That needs a log apart from the store (Config.Log); the store-kept log
// rides in this same write.
//
// With a dedicated log the store write is unsynced — the entries are
// durable in the log, and after a crash they are applied again — except
// in a cycle where some group's log is due for compaction (compact): the
// log may be cut only behind state machine writes that a synced store
// write made durable (g.durable). sync is what the store-kept log needs.
func (n *Node) storeApplies(ctx context.Context, b *tiers.Batch, sync, compact bool) error {
	n.cfg.StateMachine.Flush(b)
	sync = sync || compact
	if sync && b.Len() == 0 {
		// A store may skip an empty batch, and its sync with it (pebble
		// does): give it something to write.
		b.Delete(syncKey)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := n.cfg.Store.Apply(ctx, b, sync); err != nil {
		return err
	}
	if sync {
		// A synced write makes every earlier unsynced one durable too,
		// and carried this cycle's applies: all applied state is.
		for _, g := range n.groups {
			g.durable = g.applied
		}
	}
	return nil
}

// committedFromLog reports whether every entry rd commits was in g's log
// before this cycle: none is among the entries rd appends (which may also
// replace an uncommitted tail), and none lies past what the log holds.
func committedFromLog(g *group, rd raft.Ready) bool {
	ce := rd.CommittedEntries
	if len(ce) == 0 {
		return true
	}
	last := ce[len(ce)-1].GetIndex()
	if len(rd.Entries) > 0 && rd.Entries[0].GetIndex() <= last {
		return false
	}
	li, err := g.storage.LastIndex()
	return err == nil && last <= li
}

// answer hands the replies collected by the applies to their proposers.
func (n *Node) answer() {
	for i, rp := range n.replies {
		rp.p.done <- rp.r
		n.replies[i] = reply{}
	}
	n.replies = n.replies[:0]
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
	n.setLeader(g.id, Lead{})
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

// outbox gathers messages by the peer they go to, so that each peer gets
// them in one Transport.Send.
type outbox map[NodeID][]Message

func (o outbox) add(g GroupID, m *pb.Message) {
	to := NodeID(m.GetTo())
	o[to] = append(o[to], Message{Group: g, Msg: m})
}

// post sends each peer its messages of out.
func (n *Node) post(out outbox) {
	for to, msgs := range out {
		n.cfg.Transport.Send(to, msgs)
	}
}
