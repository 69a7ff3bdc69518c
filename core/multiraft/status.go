package multiraft

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/core/raftlog"
)

// Leader returns the leader of group g as last known here (0 if none).
func (n *Node) Leader(g GroupID) NodeID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaders[g].Node
}

// LeadingSince returns when this node learned it leads group g, in the
// term it leads it now (with the monotonic clock reading); false when it
// does not lead g. Whatever a previous leader did, it did before then.
func (n *Node) LeadingSince(g GroupID) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.leadSince[g]
	return t, ok
}

// Lead is a group's leader as last known here (Node 0 if none) and the
// raft term it was known in: of two views of one group, the higher term's
// is the newer.
type Lead struct {
	Node NodeID
	Term uint64
}

// Leaders returns the leader of every group that has one as last known
// here, and a channel closed at the next change: for routers that follow
// leaderships without polling.
func (n *Node) Leaders() (map[GroupID]Lead, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[GroupID]Lead, len(n.leaders))
	for g, l := range n.leaders {
		out[g] = l
	}
	return out, n.leadersCh
}

// setLeader records g's leader (a zero Lead forgets it) and wakes the
// watchers of Leaders if that changes anything. mu must be held.
func (n *Node) setLeader(g GroupID, l Lead) {
	old, had := n.leaders[g]
	if l.Node == n.cfg.ID && (old.Node != l.Node || old.Term != l.Term) {
		n.leadSince[g] = time.Now()
	} else if l.Node != n.cfg.ID {
		delete(n.leadSince, g)
	}
	if l.Node == 0 {
		delete(n.leaders, g)
	} else {
		n.leaders[g] = l
	}
	if had != (l.Node != 0) || old != l {
		close(n.leadersCh)
		n.leadersCh = make(chan struct{})
	}
}

// Stats counts the driver's cycles that wrote (Syncs, though not every
// one syncs) and the group Readies they carried (Readies / Syncs is how
// many groups share a write), and the elections this node won.
type Stats struct {
	Syncs, Readies, Elections, SnapshotsSent, SnapshotsInstalled uint64
	// Rejected counts messages from peers dropped before raft saw them, and
	// committed conf changes skipped, because raft would have panicked on
	// them or a correct peer never sends them (see check and canApply).
	Rejected uint64
	// Log is the dedicated raft log's (Config.Log), zero without one.
	Log raftlog.Stats
	// Quiesced is how many groups are quiesced here now (quiesce.go);
	// Quiesces and Wakes count the times groups quiesced and woke.
	Quiesced        int
	Quiesces, Wakes uint64
}

// Stats returns the driver's counters.
func (n *Node) Stats() Stats {
	var s Stats
	_ = n.do(context.Background(), func() {
		s = Stats{Syncs: n.syncs, Readies: n.readies, SnapshotsSent: n.snapshotsSent, SnapshotsInstalled: n.snapshotsTaken, Rejected: n.rejected,
			Quiesces: n.quiesced, Wakes: n.woken}
		for _, g := range n.groups {
			if g.quiesced {
				s.Quiesced++
			}
		}
		if n.cfg.Log != nil {
			s.Log = n.rlog.stats()
		}
	})
	n.mu.Lock()
	s.Elections = n.elections
	n.mu.Unlock()
	return s
}

// GroupStatus is one replica's view of its group.
type GroupStatus struct {
	Group    GroupID
	Leader   NodeID
	Term     uint64
	Applied  uint64
	Commit   uint64
	Voters   []NodeID
	Learners []NodeID
	// Quiet counts the ticks since this replica last heard from the leader
	// (0 on the leader): a replica its group dropped stops hearing. It
	// does not grow while the group is quiesced.
	Quiet int
	// Quiesced: the group is quiesced here (quiesce.go).
	Quiesced bool
	// Match is, on the leader only, how far each replica's log is known to
	// match the leader's; Commit - Match is the replica's lag in entries.
	Match map[NodeID]uint64
	// Active is, on the leader only, whether each replica answered within
	// the last election timeout.
	Active map[NodeID]bool
}

// Status returns the status of every group open here, by group id.
func (n *Node) Status(ctx context.Context) ([]GroupStatus, error) {
	var out []GroupStatus
	err := n.do(ctx, func() {
		for _, g := range n.groups {
			st := g.rn.Status()
			gs := GroupStatus{Group: g.id, Leader: NodeID(st.Lead), Term: st.GetTerm(), Applied: g.applied, Commit: st.GetCommit(), Quiet: g.quiet,
				Quiesced: g.quiesced}
			if st.RaftState == raft.StateLeader {
				gs.Quiet = 0
			}
			for id := range st.Config.Voters.IDs() {
				gs.Voters = append(gs.Voters, NodeID(id))
			}
			for id := range st.Config.Learners {
				gs.Learners = append(gs.Learners, NodeID(id))
			}
			if len(gs.Voters) == 0 && len(gs.Learners) == 0 {
				continue // opened for a leader that has not filled it yet
			}
			slices.Sort(gs.Voters)
			slices.Sort(gs.Learners)
			if st.RaftState == raft.StateLeader {
				gs.Match = map[NodeID]uint64{}
				gs.Active = map[NodeID]bool{}
				for id, pr := range st.Progress {
					gs.Match[NodeID(id)] = pr.Match
					gs.Active[NodeID(id)] = pr.RecentActive
				}
			}
			out = append(out, gs)
		}
	})
	slices.SortFunc(out, func(a, b GroupStatus) int { return cmp.Compare(a.Group, b.Group) })
	return out, err
}

// ErrCompacted: the log no longer holds the entries asked for (see
// Entries); the state they made must be copied instead.
var ErrCompacted = raft.ErrCompacted

// Entry is a log entry as the state machine sees it: Data is the command
// a proposer submitted, nil for raft's own entries (elections, membership).
type Entry struct {
	Index uint64
	Data  []byte
}

// Entries returns group g's log entries in [lo, hi), at most maxBytes of
// them but at least one: for readers of the log besides raft (a federation
// streams a partition's changes to other regions from it). hi must not
// pass the last applied index + 1. The data is shared with the log:
// read-only. ErrCompacted when lo is before the log's first entry.
func (n *Node) Entries(ctx context.Context, g GroupID, lo, hi, maxBytes uint64) ([]Entry, error) {
	var ents []*pb.Entry
	var err error
	if derr := n.do(ctx, func() {
		grp := n.groups[g]
		switch {
		case grp == nil:
			err = ErrUnknownGroup
		case hi > grp.applied+1:
			err = fmt.Errorf("multiraft: group %d: entries through %d asked, %d applied", g, hi-1, grp.applied)
		case lo >= hi:
		default:
			ents, err = grp.storage.Entries(lo, hi, maxBytes)
		}
	}); derr != nil {
		return nil, derr
	}
	out := make([]Entry, len(ents))
	for i, e := range ents {
		out[i].Index = e.GetIndex()
		// As apply hands them to the state machine: a command after its
		// proposal id; nothing for conf changes and leaders' empty entries.
		if d := e.GetData(); e.GetType() == pb.EntryType_EntryNormal && len(d) >= 8 {
			out[i].Data = d[8:]
		}
	}
	return out, err
}

// ElectionTimeout is the election timeout in force (TickInterval ×
// ElectionTicks, after defaults): no replica that heard from its leader
// votes for another within it (CheckQuorum), which leases rest on.
func (n *Node) ElectionTimeout() time.Duration {
	return n.cfg.TickInterval * time.Duration(n.cfg.ElectionTicks)
}
