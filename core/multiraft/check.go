// What raft is given from peers: messages are checked before Step, and
// committed conf changes before they apply.

package multiraft

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Terms from peers are bounded. raft adopts any higher term a message
// carries, and at 2^64-1 the next election's term wraps to 0 (raft reads a
// message without a term as a local one, and panics sending a vote
// request without one). Below termCeiling any term goes, as raft would
// have it: no group gets near it by elections, one a term. Above it, a
// message may raise a replica's term by termStep at most, so a group
// pushed there by a lying peer still elects leaders, while wrapping would
// take 2^53 pushes.
const (
	termCeiling = 1 << 63
	termStep    = 1 << 10
)

// check reports why raft must not step m, a message another node sent to
// group g; nil if it may.
//
// raft trusts its peers. It panics on messages no correct peer sends (a
// heartbeat committing past the log, a proposal without entries, a
// snapshot whose membership it cannot rebuild, a heartbeat response whose
// context is not the 8 bytes it decodes, a forwarded proposal carrying a
// term), and it takes a term, a leader or log entries from any message
// that offers one. Recovering from its panics is no defense: raft panics
// midway through changing its state, which is then corrupt. So every
// message from a peer is checked here first, and what fails is dropped
// and counted (Stats.Rejected). The rules, with the invariant of a
// correct peer each rests on:
//
//   - Types: only those peers exchange. raft's local types (MsgHup,
//     MsgBeat, MsgUnreachable, MsgSnapStatus, MsgCheckQuorum,
//     MsgStorage*) and MsgForgetLeader are this node's own calls.
//     MsgTransferLeader never crosses the network here: TransferLeadership
//     acts on a leader only.
//   - Addresses: To is this node; From is another node, not 0.
//   - Terms: every message carries one except MsgProp and MsgReadIndex,
//     which raft sends without (raft reads term 0 as a local message's
//     and skips its term checks; it answers a vote request with the
//     request's term and panics on 0; it panics forwarding a proposal that
//     carries one). Bounded above (see termCeiling).
//   - Terms, inside a lease. A replica that leads, or heard from its
//     leader (an append, heartbeat or snapshot, as raft's election timer
//     counts) within an election timeout, moves to no higher term: raft's
//     CheckQuorum already ignores vote requests there (Raft thesis
//     §4.2.3), and no correct node sends it any other message of a higher
//     term, since the quorum that elects a new leader has left the old
//     one's lease. The exception is raft's: a vote request with the
//     leadership-transfer context, which raft grants inside the lease; it
//     must come from a voter, for the next term (the transferee is caught
//     up with the leader, so in its term). A leader also takes a higher
//     term from a replica that has not answered it within the last
//     election timeout: a replica whose term moved past the leader's
//     answers no more, and ending the leader's term is how raft lets it
//     back. Outside a lease, raft's rules apply.
//   - One leader per term: MsgApp and MsgHeartbeat at this replica's term
//     come from the leader it follows, or from anyone if it knows none
//     (raft then follows the sender). MsgSnap, MsgTimeoutNow and
//     MsgReadIndexResp come only from the leader it already follows, at
//     its term: a leader sends a snapshot only after an append was
//     refused, never first, and only a leader sends the other two.
//   - Requests: MsgProp and MsgReadIndex go to a leader only (a follower
//     would forward them with the peer's From, and its leader's node
//     refuses the whole batch as forged). A proposal has entries (raft
//     panics on none), all normal ones: conf changes are proposed on the
//     leader itself (ChangeReplicas). A read-index request has exactly one
//     entry, its context.
//   - Appends: entries follow the previous entry index by index, their
//     terms never decrease, start at or above the previous entry's and end
//     at or below the message's (a log's terms only grow; a leader writes
//     its own term), and their types are known. raft truncates and
//     appends by those indexes and panics when they disagree.
//   - Commits: a heartbeat commits no further than this replica's log
//     (raft panics in commitTo); a leader never sends more than it knows
//     the follower holds.
//   - Answers: MsgAppResp's index and reject hint lie within this
//     replica's log (a follower acknowledges or refuses only what was
//     sent to it); heartbeat contexts are empty or the 8 bytes raft
//     decodes.
//   - Snapshots: index and term set, the term no later than the
//     message's, a membership raft can restore that names the sender a
//     voter (a leader votes in its own group) and this replica.
//
// What check cannot stop: a voter can still run an election and, if it
// wins or while a replica is outside any lease, lead — raft gives every
// voter that — and a leader that lies about its log or snapshots can
// mislead its followers, as can any peer a replica opened for a message
// (Config.AcceptGroup) and not yet filled; raft assumes honest members.
// Committed conf changes raft cannot apply are skipped (see canApply).
func (n *Node) check(g *group, m *pb.Message) error {
	t := m.GetType()
	switch t {
	case pb.MessageType_MsgProp, pb.MessageType_MsgApp, pb.MessageType_MsgAppResp,
		pb.MessageType_MsgVote, pb.MessageType_MsgVoteResp, pb.MessageType_MsgPreVote, pb.MessageType_MsgPreVoteResp,
		pb.MessageType_MsgSnap, pb.MessageType_MsgHeartbeat, pb.MessageType_MsgHeartbeatResp,
		pb.MessageType_MsgTimeoutNow, pb.MessageType_MsgReadIndex, pb.MessageType_MsgReadIndexResp:
	default:
		return fmt.Errorf("%s is not a message peers exchange", t)
	}
	if m.GetTo() != uint64(n.cfg.ID) {
		return fmt.Errorf("addressed to %x", m.GetTo())
	}
	from := m.GetFrom()
	if from == 0 || from == uint64(n.cfg.ID) || raft.IsLocalMsgTarget(from) {
		return fmt.Errorf("sender %x", from)
	}
	st := g.rn.BasicStatus()
	term, lead := st.GetTerm(), st.Lead
	request := t == pb.MessageType_MsgProp || t == pb.MessageType_MsgReadIndex
	switch {
	case request && m.GetTerm() != 0:
		return errors.New("a request with a term")
	case !request && m.GetTerm() == 0:
		return errors.New("no term")
	case m.GetTerm() > termCeiling && m.GetTerm() > term && m.GetTerm()-term > termStep:
		return fmt.Errorf("term %d, %d here", m.GetTerm(), term)
	case m.GetTerm() > term && !n.mayRaiseTerm(g, st, m):
		return fmt.Errorf("term %d inside the lease of term %d", m.GetTerm(), term)
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return err
	}
	switch t {
	case pb.MessageType_MsgProp, pb.MessageType_MsgReadIndex:
		if st.RaftState != raft.StateLeader {
			return errors.New("a request to a replica that does not lead")
		}
		if t == pb.MessageType_MsgReadIndex && len(m.GetEntries()) != 1 {
			return fmt.Errorf("a read-index request with %d entries", len(m.GetEntries()))
		}
		if len(m.GetEntries()) == 0 {
			return errors.New("a proposal without entries")
		}
		for _, e := range m.GetEntries() {
			if e.GetType() != pb.EntryType_EntryNormal {
				return fmt.Errorf("a proposal of a %s", e.GetType())
			}
		}
	case pb.MessageType_MsgApp, pb.MessageType_MsgHeartbeat:
		if m.GetTerm() == term && lead != 0 && lead != from {
			return fmt.Errorf("a leader's message in term %d, led by %x", term, lead)
		}
		if t == pb.MessageType_MsgHeartbeat {
			if m.GetCommit() > last {
				return fmt.Errorf("commit %d past the log's end %d", m.GetCommit(), last)
			}
			return checkContext(m)
		}
		return checkEntries(m)
	case pb.MessageType_MsgSnap, pb.MessageType_MsgTimeoutNow, pb.MessageType_MsgReadIndexResp:
		if m.GetTerm() != term || lead != from || st.RaftState != raft.StateFollower {
			return fmt.Errorf("a leader's message from %x in term %d, led by %x in term %d", from, m.GetTerm(), lead, term)
		}
		if t == pb.MessageType_MsgSnap {
			return checkSnapshot(m)
		}
		if t == pb.MessageType_MsgReadIndexResp && len(m.GetEntries()) != 1 {
			return fmt.Errorf("a read-index answer with %d entries", len(m.GetEntries()))
		}
	case pb.MessageType_MsgAppResp:
		if m.GetIndex() > last || m.GetRejectHint() > last {
			return fmt.Errorf("an answer about index %d (hint %d) past the log's end %d", m.GetIndex(), m.GetRejectHint(), last)
		}
	case pb.MessageType_MsgHeartbeatResp:
		return checkContext(m)
	}
	return nil
}

// mayRaiseTerm reports whether m, from a term above replica g's, may
// take g to it (see check).
func (n *Node) mayRaiseTerm(g *group, st raft.BasicStatus, m *pb.Message) bool {
	leader := st.RaftState == raft.StateLeader
	if !leader && (st.RaftState != raft.StateFollower || st.Lead == 0 || g.quiet >= n.cfg.ElectionTicks) {
		return true // outside any lease
	}
	if m.GetType() == pb.MessageType_MsgVote && m.GetTerm() == st.GetTerm()+1 && g.isVoter(m.GetFrom()) {
		return true // raft grants it inside the lease only for a leadership transfer
	}
	if leader {
		pr, ok := g.rn.Status().Progress[m.GetFrom()]
		return ok && !pr.RecentActive
	}
	return false
}

// isVoter reports whether id votes in g's membership as this replica
// knows it (in either half of a joint one).
func (g *group) isVoter(id uint64) bool {
	v := g.rn.Status().Config.Voters
	_, in := v[0][id]
	_, out := v[1][id]
	return in || out
}

func checkEntries(m *pb.Message) error {
	ents := m.GetEntries()
	if m.GetLogTerm() > m.GetTerm() {
		return fmt.Errorf("previous entry of term %d in term %d", m.GetLogTerm(), m.GetTerm())
	}
	if m.GetIndex() > math.MaxUint64-uint64(len(ents)) {
		return fmt.Errorf("entries past index 2^64 after %d", m.GetIndex())
	}
	prev := max(m.GetLogTerm(), 1)
	for i, e := range ents {
		switch {
		case e.GetIndex() != m.GetIndex()+1+uint64(i):
			return fmt.Errorf("entry %d at index %d after %d", i, e.GetIndex(), m.GetIndex())
		case e.GetTerm() < prev || e.GetTerm() > m.GetTerm():
			return fmt.Errorf("entry %d of term %d after term %d in term %d", e.GetIndex(), e.GetTerm(), prev, m.GetTerm())
		case e.GetType() > pb.EntryType_EntryConfChangeV2:
			return fmt.Errorf("entry %d of type %d", e.GetIndex(), e.GetType())
		}
		prev = e.GetTerm()
	}
	return nil
}

// checkContext: raft reads a heartbeat's context, which the response
// echoes, as 8 bytes.
func checkContext(m *pb.Message) error {
	if n := len(m.GetContext()); n != 0 && n != 8 {
		return fmt.Errorf("a heartbeat context of %d bytes", n)
	}
	return nil
}

func checkSnapshot(m *pb.Message) error {
	md := m.GetSnapshot().GetMetadata()
	if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetTerm() > m.GetTerm() {
		return fmt.Errorf("a snapshot at index %d of term %d in term %d", md.GetIndex(), md.GetTerm(), m.GetTerm())
	}
	cs := md.GetConfState()
	if err := restorable(cs); err != nil {
		return fmt.Errorf("a snapshot's membership: %w", err)
	}
	from, self := m.GetFrom(), m.GetTo()
	voter := func(id uint64) bool {
		return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetVotersOutgoing(), id)
	}
	if !voter(from) {
		return fmt.Errorf("a snapshot whose membership %v does not count its sender", cs)
	}
	if !voter(self) && !slices.Contains(cs.GetLearners(), self) {
		return fmt.Errorf("a snapshot whose membership %v does not count this replica", cs)
	}
	return nil
}

// emptyChanger is a confchange.Changer on an empty membership, to
// rebuild one on.
func emptyChanger() confchange.Changer {
	return confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
}

// restorable reports why raft cannot restore cs, a snapshot's membership:
// raft rebuilds it change by change and panics if that fails (a node both
// voter and learner, a learner-to-be that is no outgoing voter) or yields
// another membership (a node listed twice).
func restorable(cs *pb.ConfState) error {
	if cs == nil {
		return errors.New("none")
	}
	cfg, prs, err := confchange.Restore(emptyChanger(), cs)
	if err != nil {
		return err
	}
	return cs.Equivalent((&tracker.ProgressTracker{Config: cfg, Progress: prs}).ConfState())
}

// canApply reports why raft would panic applying the committed conf
// change cc to this replica's membership. raft checks a change when it is
// proposed, against the changes still pending, not against the
// membership it will meet, and panics in ApplyConfChange on one that
// cannot apply: removing every voter, leaving a joint state the group is
// not in, an unknown transition or change type. Only a lying leader gets
// such a change committed; canApply runs raft's applyConfChange on a copy
// of the membership first.
func (g *group) canApply(cc pb.ConfChangeI) error {
	cur := (&tracker.ProgressTracker{Config: g.rn.Status().Config}).ConfState()
	cfg, prs, err := confchange.Restore(emptyChanger(), cur)
	if err != nil {
		return err
	}
	chg := confchange.Changer{Tracker: tracker.ProgressTracker{Config: cfg, Progress: prs, MaxInflight: 1}, LastIndex: 1}
	c := cc.AsV2()
	for _, s := range c.GetChanges() {
		if s.GetNodeId() == 0 {
			return errors.New("a conf change of node 0, which raft reserves")
		}
	}
	if _, ok := pb.ConfChangeTransition_name[int32(c.GetTransition())]; !ok {
		return fmt.Errorf("a conf change of transition %d", c.GetTransition())
	}
	switch autoLeave, joint := c.EnterJoint(); {
	case c.LeaveJoint():
		_, _, err = chg.LeaveJoint()
	case joint:
		_, _, err = chg.EnterJoint(autoLeave, c.GetChanges()...)
	default:
		_, _, err = chg.Simple(c.GetChanges()...)
	}
	return err
}
