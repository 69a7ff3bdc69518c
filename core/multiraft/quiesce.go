// Quiescing idle groups: a group with nothing to do stops ticking on
// every replica, so it sends no heartbeats.

package multiraft

import (
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// A leader sends a heartbeat to every follower every tick, whether or not
// anything happens: 64 partitions on three nodes cost a third of a core
// doing nothing. As CockroachDB does, a leader whose group has been idle
// for quiesceTicks — every replica has every entry (a voter silent for an
// election timeout aside), nothing is proposed, read or pending — sends
// each replica a last heartbeat marked
// quiesceIndex and stops ticking the group; a follower that gets it, and
// holds everything it commits, stops ticking too. A quiesced group costs
// nothing until something happens to it, and anything does wake it:
//
//   - a proposal, read, conf change or transfer on any replica (a leader's
//     next heartbeat or append wakes its followers);
//   - any message for the group but the marked heartbeat and its answer —
//     a follower that did not quiesce campaigns once its election timer
//     runs out, and its vote requests wake the others;
//   - Wake, and WakeForMembers, with which the cluster wakes the groups
//     whose leader left the live members (gossip's failure detection):
//     their followers then elect a new leader as after any failure, one
//     election timeout after waking — and those led here that lost their
//     quorum, whose leader then steps down.
//
// Safety does not depend on quiescing: the marked heartbeat is what raft
// would send (commit = min(match, commit), which is the last index), raft
// steps it as any heartbeat, and a replica that does not tick only holds
// its election timer — its lease on the leader (see check) lasts longer,
// never shorter. A quiesced leader cut off from its followers does not
// step down until woken; it can serve nothing meanwhile, for writes need a
// quorum, and reads a ReadIndex round, which wakes it first.
//
// The cost: a quiesced group whose leader dies elects a new one only once
// its followers learn it (WakeForMembers, or a request made to them), not
// within an election timeout.

// quiesceIndex, in the Index field of a heartbeat, marks a leader's last
// heartbeat before its group quiesces. raft reads nothing of a heartbeat
// but its term, commit and context (a read-index sequence number, which a
// marker there would corrupt), so the field is free.
const quiesceIndex = ^uint64(0)

// quiescing reports whether m is a marked heartbeat.
func quiescing(m *pb.Message) bool {
	return m.GetType() == pb.MessageType_MsgHeartbeat && m.GetIndex() == quiesceIndex
}

// quiesceTicks is how long a group stays idle before its leader quiesces
// it, in ticks: two election timeouts' worth by default.
func (n *Node) quiesceTicks() int { return 2 * n.cfg.ElectionTicks }

// tickAll ticks every group that is not quiesced, and quiesces the led
// groups idle long enough — before their tick, which would have them
// heartbeat again. It returns how many groups it ticked.
func (n *Node) tickAll() (ticked int) {
	var out outbox // made when a group is due to quiesce: most ticks none is
	for _, g := range n.groups {
		if g.quiesced {
			continue
		}
		if g.idle >= n.quiesceTicks() && !n.cfg.NoQuiesce {
			// If it cannot quiesce now, look again in about quiesceTicks,
			// at another phase of its heartbeats and quorum checks.
			g.idle = -n.rng.IntN(n.cfg.ElectionTicks)
			if out == nil {
				out = outbox{}
			}
			if n.quiesce(g, out) {
				continue
			}
		}
		g.rn.Tick()
		g.quiet++
		g.idle++
		ticked++
	}
	n.post(out)
	return ticked
}

// quiesce quiesces g if this node leads it and it is idle, adding the
// marked heartbeats for its other replicas to out; false if g cannot
// quiesce now.
func (n *Node) quiesce(g *group, out outbox) bool {
	if g.rn.BasicStatus().RaftState != raft.StateLeader {
		return false // followers quiesce when their leader says so
	}
	if g.installing || g.parked || len(g.reads) > 0 || len(g.proposed) > 0 || g.rn.HasReady() {
		return false
	}
	st := g.rn.Status()
	last, err := g.storage.LastIndex()
	if err != nil || st.LeadTransferee != 0 || len(st.Config.Voters[1]) > 0 || st.GetCommit() != last || g.applied != last {
		return false
	}
	// Every replica must hold every entry, but a voter that has not
	// answered for an election timeout (down, cut off) does not hold the
	// others up: it gets no marked heartbeat, so should it be alive, its
	// election timer runs out and its vote requests wake the group. A
	// learner never campaigns: one that lags keeps the group awake. And a
	// quorum must have answered lately: a leader cut off from it must stay
	// awake, for CheckQuorum to step it down — quiesced, it would claim
	// the lead for good.
	self := uint64(n.cfg.ID)
	marks := make([]*pb.Message, 0, len(st.Progress))
	term := st.GetTerm()
	active := 0
	for id, pr := range st.Progress {
		if id == self {
			active++
			continue
		}
		if !pr.IsLearner && pr.RecentActive {
			active++
		}
		if pr.Match != last || pr.State != tracker.StateReplicate {
			if pr.IsLearner || pr.RecentActive {
				return false
			}
			continue
		}
		to, from, commit, index := id, self, last, quiesceIndex
		marks = append(marks, &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(),
			To: &to, From: &from, Term: &term, Commit: &commit, Index: &index})
	}
	if active <= len(st.Config.Voters[0])/2 {
		return false
	}
	for _, m := range marks {
		out.add(g.id, m)
	}
	n.setQuiesced(g)
	return true
}

// quiesceOnHeartbeat quiesces follower g after it stepped m, a marked
// heartbeat, if m comes from the leader g knows, in its term, and g holds
// every entry the leader commits; otherwise g stays awake.
func (n *Node) quiesceOnHeartbeat(g *group, m *pb.Message) {
	st := g.rn.BasicStatus()
	last, err := g.storage.LastIndex()
	if err == nil && st.RaftState == raft.StateFollower && st.Lead == m.GetFrom() && st.GetTerm() == m.GetTerm() &&
		st.GetCommit() == m.GetCommit() && last == m.GetCommit() && !g.installing {
		n.setQuiesced(g)
	}
}

func (n *Node) setQuiesced(g *group) {
	g.quiesced = true
	n.quiesced++
}

// wakeOnMessage wakes g for m, a message that arrived for it. Heartbeats
// and their answers are not activity: they come every tick while the
// group is awake. A heartbeat answer never wakes a group; a heartbeat
// that is not marked does (its leader is awake, and may die without
// telling), without counting as activity.
func (n *Node) wakeOnMessage(g *group, m *pb.Message) {
	switch m.GetType() {
	case pb.MessageType_MsgHeartbeatResp:
		return
	case pb.MessageType_MsgHeartbeat:
		if !quiescing(m) {
			n.unquiesce(g)
		}
		return
	}
	n.wake(g)
}

// wake makes g tick again, and counts something happening to it.
func (n *Node) wake(g *group) {
	g.idle = 0
	n.unquiesce(g)
}

func (n *Node) unquiesce(g *group) {
	if g.quiesced {
		g.quiesced = false
		n.woken++
	}
}

// Wake wakes group g if it is quiesced here (see quiesce.go): the cluster
// calls it when a request for g could not reach g's leader.
func (n *Node) Wake(g GroupID) {
	_ = n.doAsync(func() {
		if gr := n.groups[g]; gr != nil {
			n.wake(gr)
		}
	})
}

// WakeForMembers wakes the quiesced groups that live — the nodes gossip
// counts as members — says cannot stay so: those whose leader, as this
// replica knows it, is not in live, so that their followers elect
// another; and those led here whose live voters are no quorum, so that
// CheckQuorum steps the leader down instead of it claiming the lead.
func (n *Node) WakeForMembers(live map[NodeID]bool) {
	_ = n.doAsync(func() {
		for _, g := range n.groups {
			if !g.quiesced {
				continue
			}
			lead := NodeID(g.rn.BasicStatus().Lead)
			if lead != n.cfg.ID {
				if !live[lead] {
					n.wake(g)
				}
				continue
			}
			voters := g.rn.Status().Config.Voters[0]
			up := 0
			for id := range voters {
				if NodeID(id) == n.cfg.ID || live[NodeID(id)] {
					up++
				}
			}
			if up <= len(voters)/2 {
				n.wake(g)
			}
		}
	})
}
