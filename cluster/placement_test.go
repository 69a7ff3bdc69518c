package cluster

import (
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/core/multiraft"
)

func members(n int, zones ...string) []Member {
	var out []Member
	for i := range n {
		m := Member{ID: fmt.Sprint("node-", i), Raft: multiraft.NodeID(i + 1)}
		if len(zones) > 0 {
			m.Zone = zones[i%len(zones)]
		}
		out = append(out, m)
	}
	return out
}

func TestPlace(t *testing.T) {
	ms := members(5)
	leaders := map[multiraft.NodeID]int{}
	for p := range 64 {
		got := Place(p, ms, 3)
		if len(got) != 3 || len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
			t.Fatalf("partition %d placed on %v: want 3 distinct nodes", p, got)
		}
		// The same answer whatever the order of the member list.
		rev := slices.Clone(ms)
		slices.Reverse(rev)
		if !slices.Equal(Place(p, rev, 3), got) {
			t.Fatalf("partition %d: placement depends on member order", p)
		}
		leaders[got[0]]++
	}
	for id, n := range leaders {
		if n < 64/5/2 || n > 64/5*2 {
			t.Errorf("node %d is preferred leader of %d of 64 partitions: unbalanced %v", id, n, leaders)
		}
	}
	if got := Place(0, members(2), 3); len(got) != 2 {
		t.Errorf("two members, factor 3: %v", got)
	}
}

// TestPlaceMovesLittle: a sixth member takes some partitions' replicas;
// the others keep theirs.
func TestPlaceMovesLittle(t *testing.T) {
	before, after := members(5), members(6)
	moved := 0
	for p := range 64 {
		a, b := Place(p, before, 3), Place(p, after, 3)
		for _, id := range b {
			if !slices.Contains(a, id) {
				moved++
				if id != 6 {
					t.Fatalf("partition %d: node %d gained a replica although only node 6 joined", p, id)
				}
			}
		}
	}
	if moved == 0 || moved > 64*3/6*2 {
		t.Errorf("%d of 192 replicas moved to the new node; want about a sixth", moved)
	}
}

func TestPlaceSpreadsZones(t *testing.T) {
	ms := members(6, "a", "a", "b", "b", "c", "c")
	for p := range 64 {
		zones := map[string]bool{}
		for _, id := range Place(p, ms, 3) {
			zones[ms[id-1].Zone] = true
		}
		if len(zones) != 3 {
			t.Fatalf("partition %d: replicas in zones %v, want 3 zones", p, zones)
		}
	}
}

func changeOf(s Step) (pb.ConfChangeType, multiraft.NodeID) {
	if s.Change == nil {
		return -1, 0
	}
	c := s.Change.GetChanges()[0]
	return c.GetType(), multiraft.NodeID(c.GetNodeId())
}

func TestNextStep(t *testing.T) {
	const self = 1
	want := []multiraft.NodeID{1, 2, 3}
	st := multiraft.GroupStatus{Leader: self, Commit: 10, Voters: []multiraft.NodeID{1},
		Match: map[multiraft.NodeID]uint64{1: 10}, Active: map[multiraft.NodeID]bool{1: true}}
	if typ, id := changeOf(NextStep(st, self, want, nil)); typ != pb.ConfChangeType_ConfChangeAddLearnerNode || id != 2 {
		t.Fatalf("a group of one: %v %d, want to add node 2 as learner", typ, id)
	}
	st.Learners = []multiraft.NodeID{2, 3}
	st.Match[2], st.Match[3] = 0, 0
	if s := NextStep(st, self, want, nil); s.Change != nil || s.TransferTo != 0 {
		t.Fatalf("learners that never acknowledged anything were acted on: %+v", s)
	}
	st.Match[2] = 9
	if s := NextStep(st, self, want, nil); s.Change != nil {
		t.Fatalf("a learner that is not answering was promoted: %+v", s)
	}
	st.Active[2] = true
	if typ, id := changeOf(NextStep(st, self, want, nil)); typ != pb.ConfChangeType_ConfChangeAddNode || id != 2 {
		t.Fatalf("a caught-up, answering learner: %v %d, want its promotion", typ, id)
	}
	// Leaving: node 1 is no longer wanted; it hands leadership over first.
	st = multiraft.GroupStatus{Leader: self, Commit: 10, Voters: []multiraft.NodeID{1, 2, 3, 4},
		Match: map[multiraft.NodeID]uint64{1: 10, 2: 10, 3: 10, 4: 10}, Active: map[multiraft.NodeID]bool{1: true, 2: true, 3: true, 4: true}}
	if s := NextStep(st, self, []multiraft.NodeID{4, 2, 3}, nil); s.TransferTo == 0 || s.Change != nil {
		t.Fatalf("the leader leaving its group: %+v, want a leadership transfer", s)
	}
	// Another node's voter that is not wanted is removed.
	if typ, id := changeOf(NextStep(st, self, []multiraft.NodeID{1, 2, 3}, nil)); typ != pb.ConfChangeType_ConfChangeRemoveNode || id != 4 {
		t.Fatalf("an unwanted voter: %v %d, want its removal", typ, id)
	}
	// Repair stalled by a newcomer that never catches up (node 5, wanted
	// in place of the dead node 3): the dead voter goes anyway, an answering
	// unwanted voter waits until every wanted node votes.
	st = multiraft.GroupStatus{Leader: self, Commit: 10, Voters: []multiraft.NodeID{1, 2, 3, 4}, Learners: []multiraft.NodeID{5},
		Match:  map[multiraft.NodeID]uint64{1: 10, 2: 10, 3: 4, 4: 10, 5: 0},
		Active: map[multiraft.NodeID]bool{1: true, 2: true, 3: false, 4: true, 5: true}}
	if typ, id := changeOf(NextStep(st, self, []multiraft.NodeID{1, 2, 5}, nil)); typ != pb.ConfChangeType_ConfChangeRemoveNode || id != 3 {
		t.Fatalf("an unresponsive unwanted voter while a newcomer catches up: %v %d, want node 3 removed", typ, id)
	}
	st.Voters = []multiraft.NodeID{1, 2, 4}
	if s := NextStep(st, self, []multiraft.NodeID{1, 2, 5}, nil); s.Change != nil || s.TransferTo != 0 {
		t.Fatalf("an answering unwanted voter was acted on before the newcomer votes: %+v", s)
	}
	// In place: only leadership balancing remains.
	st.Voters, st.Learners = []multiraft.NodeID{1, 2, 3}, nil
	st.Active[3], st.Match[3] = true, 10
	if s := NextStep(st, self, []multiraft.NodeID{2, 1, 3}, nil); s.TransferTo != 2 {
		t.Fatalf("preferred leader 2: %+v", s)
	}
	if s := NextStep(st, self, want, nil); s.Change != nil || s.TransferTo != 0 {
		t.Fatalf("a group where it should be: %+v, want nothing", s)
	}
}

// TestPlanBoundsCatchingUp: a fourth node joins; its leader starts copying
// partitions to it only while fewer than maxCatchingUp of its groups have
// an answering learner, and a learner that does not answer holds nothing
// back.
func TestPlanBoundsCatchingUp(t *testing.T) {
	const self = multiraft.NodeID(1)
	four := []Member{{ID: "a", Raft: 1}, {ID: "b", Raft: 2}, {ID: "c", Raft: 3}, {ID: "d", Raft: 4}}
	var st []multiraft.GroupStatus
	for g := range 64 {
		st = append(st, multiraft.GroupStatus{Group: multiraft.GroupID(g), Leader: self, Commit: 1000,
			Voters: []multiraft.NodeID{1, 2, 3},
			Match:  map[multiraft.NodeID]uint64{1: 1000, 2: 1000, 3: 1000}, Active: map[multiraft.NodeID]bool{1: true, 2: true, 3: true}})
	}
	adds := func(steps []PlannedStep) int {
		n := 0
		for _, s := range steps {
			if isAddLearner(s.Step) {
				n++
			}
		}
		return n
	}
	if got := adds(Plan(st, self, four, 3, 100, 2)); got != 2 {
		t.Fatalf("nothing catching up: %d new learners planned, want 2", got)
	}
	// Group 0 now has node 4 catching up.
	for i := range st {
		if want := Place(i, four, 3); slices.Contains(want, 4) {
			st[i].Learners = []multiraft.NodeID{4}
			st[i].Match[4], st[i].Active[4] = 300, true
			break
		}
	}
	if got := adds(Plan(st, self, four, 3, 100, 2)); got != 1 {
		t.Fatalf("one catching up: %d new learners planned, want 1", got)
	}
	if got := adds(Plan(st, self, four, 3, 100, 1)); got != 0 {
		t.Fatalf("one catching up, at most one: %d new learners planned, want 0", got)
	}
	for i := range st {
		if len(st[i].Learners) > 0 {
			st[i].Active[4] = false
		}
	}
	if got := adds(Plan(st, self, four, 3, 100, 1)); got != 1 {
		t.Fatalf("a learner that does not answer: %d new learners planned, want 1", got)
	}
	// A group already catching up takes its next learner anyway (as
	// when a cluster forms: one voter, every other node wanted): its
	// promotions come only after it, so holding it back would stall.
	for g := range 64 {
		want := Place(g, four, 3)
		if want[0] != self {
			continue
		}
		one := []multiraft.GroupStatus{{Group: multiraft.GroupID(g), Leader: self, Commit: 1000,
			Voters: []multiraft.NodeID{self}, Learners: want[1:2],
			Match: map[multiraft.NodeID]uint64{self: 1000, want[1]: 900}, Active: map[multiraft.NodeID]bool{self: true, want[1]: true}}}
		steps := Plan(one, self, four, 3, 100, 1)
		if len(steps) != 1 || !isAddLearner(steps[0].Step) {
			t.Fatalf("a forming group with one learner: %+v, want its second learner added", steps)
		}
		break
	}
	// No leadership goes to a node still learning a group held here,
	// even one another node leads.
	settled := slices.Clone(st)
	for i := range settled {
		settled[i].Learners, settled[i].Voters = nil, Place(i, four, 3)
		for _, v := range settled[i].Voters {
			settled[i].Match[v], settled[i].Active[v] = 1000, true
		}
	}
	transfersTo4 := func(steps []PlannedStep) int {
		n := 0
		for _, s := range steps {
			if s.Step.TransferTo == 4 {
				n++
			}
		}
		return n
	}
	if transfersTo4(Plan(settled, self, four, 3, 100, 2)) == 0 {
		t.Fatal("placement settled: no leadership handed to its preferred node 4")
	}
	settled = append(settled, multiraft.GroupStatus{Group: 64, Leader: 2, Voters: []multiraft.NodeID{1, 2, 3}, Learners: []multiraft.NodeID{4}, Commit: 1000})
	if n := transfersTo4(Plan(settled, self, four, 3, 100, 2)); n != 0 {
		t.Fatalf("node 4 still learning a group led by node 2: %d leaderships handed to it", n)
	}
	// Small groups (a new cluster's) are not held back.
	small := slices.Clone(st)
	for i := range small {
		small[i].Commit = 3
	}
	if got := adds(Plan(small, self, four, 3, 100, 1)); got < 2 {
		t.Fatalf("small groups: %d new learners planned, want every group placement extends", got)
	}
	// Steps of other kinds are not held back (leadership transfers toward
	// placement's preferred leaders), and maxSteps bounds them all.
	if steps := Plan(st, self, four, 3, 100, 0); adds(steps) != 0 || len(steps) == 0 {
		t.Fatalf("no new learners allowed: %d steps planned, %d of them new learners", len(steps), adds(steps))
	}
	if got := len(Plan(st, self, four, 3, 1, 64)); got != 1 {
		t.Fatalf("maxSteps 1: %d steps planned", got)
	}
}

// TestReadersArePlacedAsLearnersOnly: a reader is never placed as a voter
// nor promoted, is added as a learner of every group after the voters,
// is kept, and a reader that was a voter is removed as one first.
func TestReadersArePlacedAsLearnersOnly(t *testing.T) {
	ms := append(members(3), Member{ID: "reader", Raft: 9, Reader: true})
	for p := range 64 {
		if slices.Contains(Place(p, ms, 3), 9) {
			t.Fatalf("partition %d places the reader as a voter", p)
		}
	}
	if got := Readers(ms); !slices.Equal(got, []multiraft.NodeID{9}) {
		t.Fatalf("Readers = %v", got)
	}
	const self = 1
	want, readers := []multiraft.NodeID{1, 2, 3}, []multiraft.NodeID{9}
	st := multiraft.GroupStatus{Leader: self, Commit: 100, Voters: []multiraft.NodeID{1, 2},
		Match: map[multiraft.NodeID]uint64{1: 100, 2: 100}, Active: map[multiraft.NodeID]bool{1: true, 2: true}}
	if typ, id := changeOf(NextStep(st, self, want, readers)); typ != pb.ConfChangeType_ConfChangeAddLearnerNode || id != 3 {
		t.Fatalf("a voter missing and a reader: %v %d, want the voter-to-be added first", typ, id)
	}
	st.Voters = want
	st.Match[3], st.Active[3] = 100, true
	if typ, id := changeOf(NextStep(st, self, want, readers)); typ != pb.ConfChangeType_ConfChangeAddLearnerNode || id != 9 {
		t.Fatalf("voters in place: %v %d, want the reader added as a learner", typ, id)
	}
	st.Learners = []multiraft.NodeID{9}
	st.Match[9], st.Active[9] = 100, true // caught up: still never promoted
	if s := NextStep(st, self, want, readers); s.Change != nil || s.TransferTo != 0 {
		t.Fatalf("a caught-up reader: %+v, want nothing (never promoted, never removed)", s)
	}
	if typ, id := changeOf(NextStep(st, self, want, nil)); typ != pb.ConfChangeType_ConfChangeRemoveNode || id != 9 {
		t.Fatalf("a reader gone: %v %d, want its learner removed", typ, id)
	}
	// A node restarted as a reader while a voter: removed as a voter,
	// then added back as a learner.
	st.Voters, st.Learners = []multiraft.NodeID{1, 2, 3, 9}, nil
	if typ, id := changeOf(NextStep(st, self, want, readers)); typ != pb.ConfChangeType_ConfChangeRemoveNode || id != 9 {
		t.Fatalf("a reader among the voters: %v %d, want it removed", typ, id)
	}
}

// TestCaughtUpReadersDoNotHoldPlanBack: a reader's learner, once caught
// up, counts as no partition catching up, so it blocks neither other
// copies nor leadership balancing; one still copying does, as any
// learner would.
func TestCaughtUpReadersDoNotHoldPlanBack(t *testing.T) {
	const self = multiraft.NodeID(1)
	three := []Member{{ID: "a", Raft: 1}, {ID: "b", Raft: 2}, {ID: "c", Raft: 3}, {ID: "r", Raft: 9, Reader: true}}
	four := append(slices.Clone(three), Member{ID: "d", Raft: 4})
	var st []multiraft.GroupStatus
	for g := range 64 {
		st = append(st, multiraft.GroupStatus{Group: multiraft.GroupID(g), Leader: self, Commit: 1000,
			Voters: []multiraft.NodeID{1, 2, 3}, Learners: []multiraft.NodeID{9},
			Match:  map[multiraft.NodeID]uint64{1: 1000, 2: 1000, 3: 1000, 9: 1000},
			Active: map[multiraft.NodeID]bool{1: true, 2: true, 3: true, 9: true}})
	}
	count := func(steps []PlannedStep) (adds, balances int) {
		for _, s := range steps {
			if isAddLearner(s.Step) {
				adds++
			}
			if s.Step.Why == whyBalance {
				balances++
			}
		}
		return adds, balances
	}
	if adds, _ := count(Plan(st, self, four, 3, 100, 2)); adds != 2 {
		t.Fatalf("readers caught up everywhere: %d new learners planned, want 2", adds)
	}
	if _, balances := count(Plan(st, self, three, 3, 100, 2)); balances == 0 {
		t.Fatal("readers caught up everywhere: no leadership balanced")
	}
	for i := range st {
		st[i].Match[9] = 10 // copying
	}
	if _, balances := count(Plan(st, self, three, 3, 100, 2)); balances != 0 {
		t.Fatalf("readers copying: %d leaderships balanced, want none until they are done", balances)
	}
}
