package cluster

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/cespare/xxhash/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
)

// Member is a node as placement sees it.
type Member struct {
	ID   string           // node id
	Raft multiraft.NodeID // core.RaftID(ID)
	Zone string           // may be empty
	// Reader: the member holds a learner of every partition and is never
	// placed as a voter (Peer.Reader).
	Reader bool
}

// Readers returns the raft ids of the readers among members, sorted.
func Readers(members []Member) []multiraft.NodeID {
	var out []multiraft.NodeID
	for _, m := range members {
		if m.Reader {
			out = append(out, m.Raft)
		}
	}
	slices.Sort(out)
	return out
}

// Place returns the replicas partition part should have among members,
// preferred leader first. It is a pure function of its arguments, so every
// node computes the same answer from the same membership.
//
// Rendezvous hashing: each member scores hash(part, member) and the
// highest scores win. A member joining or leaving moves only the
// partitions it wins or held (about 1/N of them), and the first choice —
// the preferred leader — is spread evenly over the members. Zones: the
// winners are taken best score first but at most one per zone until every
// zone has one, so replicas spread over zones when members report them.
// Readers are never placed: they hold learners of every partition
// besides (NextStep).
func Place(part int, members []Member, rf int) []multiraft.NodeID {
	type scored struct {
		m     Member
		score uint64
	}
	s := make([]scored, 0, len(members))
	var buf [8]byte
	for _, m := range members {
		if m.Reader {
			continue
		}
		var d xxhash.Digest
		d.Reset()
		binary.BigEndian.PutUint64(buf[:], uint64(part))
		_, _ = d.Write(buf[:])
		_, _ = d.WriteString(m.ID)
		s = append(s, scored{m, d.Sum64()})
	}
	slices.SortFunc(s, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.m.ID, b.m.ID)
	})
	rf = min(rf, len(s))
	out := make([]multiraft.NodeID, 0, rf)
	taken := make([]bool, len(s))
	zones := map[string]bool{}
	for _, s := range s {
		zones[s.m.Zone] = false
	}
	// First pass: one per zone; second: the best of the rest.
	for pass := 0; pass < 2 && len(out) < rf; pass++ {
		for i, c := range s {
			if len(out) == rf {
				break
			}
			if taken[i] || (pass == 0 && zones[c.m.Zone]) {
				continue
			}
			taken[i], zones[c.m.Zone] = true, true
			out = append(out, c.m.Raft)
		}
	}
	// The preferred leader is the best-scoring member chosen, which the
	// zone pass may have moved: restore score order among the chosen.
	rank := map[multiraft.NodeID]int{}
	for i, c := range s {
		rank[c.m.Raft] = i
	}
	slices.SortFunc(out, func(a, b multiraft.NodeID) int { return cmp.Compare(rank[a], rank[b]) })
	return out
}

// Step is one action that moves a group toward its placement.
type Step struct {
	// Change is a membership change to propose, or nil.
	Change *pb.ConfChangeV2
	// TransferTo, when not 0, asks the leader to hand leadership over.
	TransferTo multiraft.NodeID
	// Why says what the step does, for logs.
	Why string
}

// caughtUpEntries is how far behind the leader's commit index a learner
// may be and still be promoted: promotion of a far-behind learner would
// make it a voter that cannot vote usefully for a while.
const caughtUpEntries = 64

// NextStep returns the one step that moves group st (as its leader sees
// it) toward the voters want and a learner on each of readers, or a zero
// Step when it is there. Steps change one replica at a time, in an order
// that never lowers the number of up-to-date voters below what it was:
//
//  1. add a wanted node as a learner (it catches up without voting), the
//     voters-to-be first, then the readers;
//  2. promote a caught-up wanted learner to voter (never a reader);
//  3. drop learners that are neither wanted nor readers;
//  4. remove a voter that is not wanted — only once every wanted node is a
//     voter, and never the leader itself: it first hands leadership to a
//     wanted voter. An unwanted voter that does not answer goes at once,
//     even while a wanted node is still catching up: it adds nothing to
//     the quorum but a vote that never comes, and waiting for a newcomer
//     that never catches up would leave the group one failure from
//     unavailability for good;
//  5. hand leadership to the preferred leader (want[0]) when it is a
//     caught-up voter, which balances leaders over the nodes.
//
// A reader that is a voter (a node restarted in the reader role) is a
// voter not wanted: step 4 removes it and step 1 adds it back as a
// learner.
func NextStep(st multiraft.GroupStatus, self multiraft.NodeID, want, readers []multiraft.NodeID) Step {
	isVoter := func(id multiraft.NodeID) bool { return slices.Contains(st.Voters, id) }
	isLearner := func(id multiraft.NodeID) bool { return slices.Contains(st.Learners, id) }
	caughtUp := func(id multiraft.NodeID) bool {
		// A replica that never acknowledged an entry (Match 0) or has not
		// answered lately is not caught up, however short the log: making
		// an unreachable node a voter could cost the group its quorum.
		m, ok := st.Match[id]
		return ok && m > 0 && (id == self || st.Active[id]) && m+caughtUpEntries >= st.Commit
	}
	for _, id := range want {
		if !isVoter(id) && !isLearner(id) {
			return Step{Change: change(pb.ConfChangeType_ConfChangeAddLearnerNode, id), Why: "add learner"}
		}
	}
	for _, id := range readers {
		if !isVoter(id) && !isLearner(id) {
			return Step{Change: change(pb.ConfChangeType_ConfChangeAddLearnerNode, id), Why: "add reader"}
		}
	}
	for _, id := range want {
		if isLearner(id) && caughtUp(id) {
			return Step{Change: change(pb.ConfChangeType_ConfChangeAddNode, id), Why: "promote learner"}
		}
	}
	for _, id := range st.Learners {
		if !slices.Contains(want, id) && !slices.Contains(readers, id) {
			return Step{Change: change(pb.ConfChangeType_ConfChangeRemoveNode, id), Why: "remove learner"}
		}
	}
	allVoters := true
	for _, id := range want {
		allVoters = allVoters && isVoter(id)
	}
	if !allVoters {
		for _, id := range st.Voters {
			if id != self && !slices.Contains(want, id) && !st.Active[id] {
				return Step{Change: change(pb.ConfChangeType_ConfChangeRemoveNode, id), Why: "remove unresponsive voter"}
			}
		}
		return Step{}
	}
	for _, id := range st.Voters {
		if slices.Contains(want, id) {
			continue
		}
		if id == self {
			for _, to := range want {
				if caughtUp(to) {
					return Step{TransferTo: to, Why: "hand over leadership before leaving the group"}
				}
			}
			return Step{}
		}
		return Step{Change: change(pb.ConfChangeType_ConfChangeRemoveNode, id), Why: "remove voter"}
	}
	if len(want) > 0 && want[0] != self && caughtUp(want[0]) {
		return Step{TransferTo: want[0], Why: whyBalance}
	}
	return Step{}
}

// whyBalance is the Why of a leadership transfer to placement's preferred
// leader.
const whyBalance = "balance leaders"

func change(t pb.ConfChangeType, id multiraft.NodeID) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: t.Enum(), NodeId: proto.Uint64(uint64(id))}}}
}
