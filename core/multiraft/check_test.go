package multiraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// testReplica is replica 1 of a group whose voters are 1, 2 and 3 and
// whose learner is 4, with entries 2 to 10 of term 5 (8 committed), as
// the follower of 2 at term 5, or, with lead, as the leader at term 6
// (its log then ends at 11), which heard from 2 since.
func testReplica(t *testing.T, lead bool) (*Node, *group) {
	t.Helper()
	ms := raft.NewMemoryStorage()
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(1), Term: proto.Uint64(1),
		ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}}}
	if err := ms.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(2); i <= 10; i++ {
		ents = append(ents, &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(5)})
	}
	if err := ms.Append(ents); err != nil {
		t.Fatal(err)
	}
	if err := ms.SetHardState(&pb.HardState{Term: proto.Uint64(5), Commit: proto.Uint64(8)}); err != nil {
		t.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: ms, Applied: 1,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, CheckQuorum: true, PreVote: true, Logger: raftLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	steps := []*pb.Message{{Type: pb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(5), Commit: proto.Uint64(8)}}
	// What handleReady does, so that raft counts its own votes.
	advance := func() {
		for rn.HasReady() {
			rd := rn.Ready()
			if err := ms.Append(rd.Entries); err != nil {
				t.Fatal(err)
			}
			if !raft.IsEmptyHardState(rd.HardState) {
				if err := ms.SetHardState(rd.HardState); err != nil {
					t.Fatal(err)
				}
			}
			rn.Advance(rd)
		}
	}
	if lead {
		if err := rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		advance()
		steps = []*pb.Message{
			{Type: pb.MessageType_MsgPreVoteResp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(6)},
			{Type: pb.MessageType_MsgVoteResp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(6)},
			{Type: pb.MessageType_MsgHeartbeatResp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(6)},
		}
	}
	for _, m := range steps {
		if err := rn.Step(m); err != nil {
			t.Fatal(err)
		}
		advance()
	}
	if st := rn.BasicStatus(); (st.RaftState == raft.StateLeader) != lead || st.GetTerm() != map[bool]uint64{false: 5, true: 6}[lead] {
		t.Fatalf("test replica: %+v", st)
	}
	return &Node{cfg: Config{ID: 1, ElectionTicks: 10}}, &group{rn: rn, storage: ms}
}

func msg(typ pb.MessageType, from, term uint64) *pb.Message {
	return &pb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(1), Term: proto.Uint64(term)}
}

func with(m *pb.Message, f func(*pb.Message)) *pb.Message { f(m); return m }

func app(from, term, index, logTerm uint64, terms ...uint64) *pb.Message {
	m := msg(pb.MessageType_MsgApp, from, term)
	m.Index, m.LogTerm = proto.Uint64(index), proto.Uint64(logTerm)
	for i, t := range terms {
		m.Entries = append(m.Entries, &pb.Entry{Index: proto.Uint64(index + 1 + uint64(i)), Term: proto.Uint64(t)})
	}
	return m
}

func snapMsg(from, term, index, snapTerm uint64, cs *pb.ConfState) *pb.Message {
	m := msg(pb.MessageType_MsgSnap, from, term)
	m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(snapTerm), ConfState: cs}}
	return m
}

// TestCheck: the messages check lets raft see, and those it keeps from it
// (see check for the rule behind each).
func TestCheck(t *testing.T) {
	voters := &pb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	for _, tt := range []struct {
		name  string
		lead  bool // the replica leads at term 6; else follows 2 at term 5
		quiet int  // ticks since the leader was heard
		m     *pb.Message
		ok    bool
	}{
		{name: "the leader's heartbeat", m: with(msg(pb.MessageType_MsgHeartbeat, 2, 5), func(m *pb.Message) { m.Commit = proto.Uint64(10) }), ok: true},
		{name: "a heartbeat committing past the log", m: with(msg(pb.MessageType_MsgHeartbeat, 2, 5), func(m *pb.Message) { m.Commit = proto.Uint64(11) })},
		{name: "a heartbeat context raft cannot decode", m: with(msg(pb.MessageType_MsgHeartbeat, 2, 5), func(m *pb.Message) { m.Context = []byte{1, 2, 3} })},
		{name: "a local message", m: msg(pb.MessageType_MsgHup, 2, 5)},
		{name: "a storage message", m: msg(pb.MessageType_MsgStorageAppendResp, 2, 5)},
		{name: "a leadership transfer request", m: msg(pb.MessageType_MsgTransferLeader, 2, 5)},
		{name: "an unknown type", m: msg(pb.MessageType(99), 2, 5)},
		{name: "addressed to another node", m: with(msg(pb.MessageType_MsgHeartbeat, 2, 5), func(m *pb.Message) { m.To = proto.Uint64(3) })},
		{name: "from this node", m: msg(pb.MessageType_MsgHeartbeat, 1, 5)},
		{name: "without a term", m: msg(pb.MessageType_MsgVote, 3, 0)},
		{name: "a second leader in the term", m: msg(pb.MessageType_MsgHeartbeat, 3, 5)},
		{name: "a new leader inside the lease", m: msg(pb.MessageType_MsgHeartbeat, 3, 6)},
		{name: "a new leader after the lease", quiet: 10, m: msg(pb.MessageType_MsgHeartbeat, 3, 6), ok: true},
		{name: "a response raising the term inside the lease", m: msg(pb.MessageType_MsgAppResp, 3, 6)},
		{name: "a voter's vote request for the next term", m: msg(pb.MessageType_MsgVote, 3, 6), ok: true},
		{name: "a vote request two terms on", m: msg(pb.MessageType_MsgVote, 3, 7)},
		{name: "a learner's vote request", m: msg(pb.MessageType_MsgVote, 4, 6)},
		{name: "a stranger's vote request after the lease", quiet: 10, m: msg(pb.MessageType_MsgVote, 9, 7), ok: true},
		{name: "a term past the ceiling, from far below", quiet: 10, m: msg(pb.MessageType_MsgVote, 3, termCeiling+termStep+6)},
		{name: "a term below the ceiling", quiet: 10, m: msg(pb.MessageType_MsgVote, 3, termCeiling), ok: true},
		{name: "an append", m: app(2, 5, 10, 5, 5, 5), ok: true},
		{name: "an append with a gap", m: with(app(2, 5, 10, 5, 5, 5), func(m *pb.Message) { m.Entries[1].Index = proto.Uint64(13) })},
		{name: "an append of a later term than its own", m: app(2, 5, 10, 5, 5, 6)},
		{name: "an append whose terms go back", m: app(2, 5, 10, 5, 4)},
		{name: "an append past index 2^64", m: app(2, 5, 1<<64-1, 5, 5)},
		{name: "an entry of an unknown type", m: with(app(2, 5, 10, 5, 5), func(m *pb.Message) { m.Entries[0].Type = pb.EntryType(7).Enum() })},
		{name: "a proposal to a follower", m: with(msg(pb.MessageType_MsgProp, 3, 0), func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("x")}} })},
		{name: "a proposal to the leader", lead: true, m: with(msg(pb.MessageType_MsgProp, 3, 0), func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("x")}} }), ok: true},
		{name: "a proposal with a term", lead: true, m: with(msg(pb.MessageType_MsgProp, 3, 6), func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("x")}} })},
		{name: "a proposal without entries", lead: true, m: msg(pb.MessageType_MsgProp, 3, 0)},
		{name: "a proposed conf change", lead: true, m: with(msg(pb.MessageType_MsgProp, 3, 0), func(m *pb.Message) {
			m.Entries = []*pb.Entry{{Type: pb.EntryType_EntryConfChangeV2.Enum()}}
		})},
		{name: "a read-index request without its context", lead: true, m: msg(pb.MessageType_MsgReadIndex, 3, 0)},
		{name: "the leader's snapshot", m: snapMsg(2, 5, 20, 5, voters), ok: true},
		{name: "a snapshot from another than the leader", m: snapMsg(3, 5, 20, 5, voters)},
		{name: "a snapshot of a later term than its message", m: snapMsg(2, 5, 20, 6, voters)},
		{name: "a snapshot whose membership lacks its sender", m: snapMsg(2, 5, 20, 5, &pb.ConfState{Voters: []uint64{1, 3}})},
		{name: "a snapshot whose membership raft cannot restore", m: snapMsg(2, 5, 20, 5, &pb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{2}})},
		{name: "a snapshot listing a voter twice", m: snapMsg(2, 5, 20, 5, &pb.ConfState{Voters: []uint64{1, 2, 2}})},
		{name: "the leader's transfer", m: msg(pb.MessageType_MsgTimeoutNow, 2, 5), ok: true},
		{name: "a transfer from another than the leader", m: msg(pb.MessageType_MsgTimeoutNow, 3, 5)},
		{name: "a read-index answer from another than the leader", m: with(msg(pb.MessageType_MsgReadIndexResp, 3, 5), func(m *pb.Message) { m.Entries = []*pb.Entry{{}} })},
		{name: "an acknowledgement", lead: true, m: with(msg(pb.MessageType_MsgAppResp, 2, 6), func(m *pb.Message) { m.Index = proto.Uint64(10) }), ok: true},
		{name: "an acknowledgement past the log", lead: true, m: with(msg(pb.MessageType_MsgAppResp, 2, 6), func(m *pb.Message) { m.Index = proto.Uint64(12) })},
		{name: "a reject hint past the log", lead: true, m: with(msg(pb.MessageType_MsgAppResp, 2, 6), func(m *pb.Message) { m.RejectHint = proto.Uint64(1 << 40) })},
		{name: "a voter's vote request for the leader's next term", lead: true, m: msg(pb.MessageType_MsgVote, 2, 7), ok: true},
		{name: "a vote request two terms past the leader's", lead: true, m: msg(pb.MessageType_MsgVote, 2, 8)},
		{name: "a higher term from a voter that answers", lead: true, m: msg(pb.MessageType_MsgAppResp, 2, 9)},
		{name: "a higher term from a voter that went quiet", lead: true, m: msg(pb.MessageType_MsgAppResp, 3, 9), ok: true},
		{name: "a heartbeat answer raft cannot decode", lead: true, m: with(msg(pb.MessageType_MsgHeartbeatResp, 2, 6), func(m *pb.Message) { m.Context = []byte{1} })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, g := testReplica(t, tt.lead)
			g.quiet = tt.quiet
			if err := n.check(g, tt.m); (err == nil) != tt.ok {
				t.Fatalf("check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestCanApply: committed conf changes raft would panic on are found.
func TestCanApply(t *testing.T) {
	_, g := testReplica(t, false)
	v2 := func(tr pb.ConfChangeTransition, changes ...*pb.ConfChangeSingle) *pb.ConfChangeV2 {
		return &pb.ConfChangeV2{Transition: tr.Enum(), Changes: changes}
	}
	single := func(typ pb.ConfChangeType, id uint64) *pb.ConfChangeSingle {
		return &pb.ConfChangeSingle{Type: typ.Enum(), NodeId: proto.Uint64(id)}
	}
	for _, tt := range []struct {
		name string
		cc   pb.ConfChangeI
		ok   bool
	}{
		{"promote the learner", v2(0, single(pb.ConfChangeType_ConfChangeAddNode, 4)), true},
		{"remove a voter", &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(3)}, true},
		{"remove every voter", v2(1, single(pb.ConfChangeType_ConfChangeRemoveNode, 1), single(pb.ConfChangeType_ConfChangeRemoveNode, 2), single(pb.ConfChangeType_ConfChangeRemoveNode, 3)), false},
		{"leave a joint state it is not in", v2(0), false},
		{"an unknown transition", v2(9, single(pb.ConfChangeType_ConfChangeAddNode, 5)), false},
		{"an unknown change", v2(0, single(pb.ConfChangeType(9), 5)), false},
		{"node 0", v2(0, single(pb.ConfChangeType_ConfChangeAddNode, 0)), false},
	} {
		if err := g.canApply(tt.cc); (err == nil) != tt.ok {
			t.Errorf("%s: canApply = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestImpossibleConfChangeIsSkipped: a conf change raft cannot apply
// (here, removing every voter) is committed, skipped alike by every
// replica, and reported to its proposer; the group goes on.
func TestImpossibleConfChangeIsSkipped(t *testing.T) {
	forEachLog(t, testImpossibleConfChangeIsSkipped)
}

func testImpossibleConfChangeIsSkipped(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 1)
	leader := c.nodes[c.leader(0)]
	cc := &pb.ConfChangeV2{Transition: pb.ConfChangeTransition_ConfChangeTransitionJointExplicit.Enum()}
	for _, id := range c.ids {
		cc.Changes = append(cc.Changes, &pb.ConfChangeSingle{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(uint64(id))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.ChangeReplicas(ctx, 0, cc); err == nil {
		t.Fatal("removing every voter succeeded")
	}
	c.propose(0, "after")
	c.waitSame(0, 1)
	c.waitVoters(0, 3)
	for id, n := range c.nodes {
		if n.Stats().Rejected == 0 {
			t.Errorf("node %d did not count the skipped conf change", id)
		}
	}
}

// flakySnapshots fails a recorder's first snapshots as unavailable.
type flakySnapshots struct {
	*recorder
	fail int
}

func (f *flakySnapshots) ApplySnapshot(ctx context.Context, g GroupID, from NodeID, snap *pb.Snapshot) (func(), error) {
	if f.fail > 0 {
		f.fail--
		return nil, fmt.Errorf("%w: the sender is not answering", ErrSnapshotUnavailable)
	}
	return f.recorder.ApplySnapshot(ctx, g, from, snap)
}

// TestSnapshotUnavailable: a snapshot the state machine could not get
// (ErrSnapshotUnavailable) is dropped, not fatal; the leader sends another
// and the replica catches up.
func TestSnapshotUnavailable(t *testing.T) { forEachLog(t, testSnapshotUnavailable) }

func testSnapshotUnavailable(t *testing.T, dedicated bool) {
	c := emptyCluster(t, dedicated, []GroupID{7}, 3)
	c.ids = []NodeID{1}
	c.start(1)
	for i := range 10 {
		c.propose(7, fmt.Sprint("alone-", i))
	}
	sm := &flakySnapshots{recorder: c.newRecorder(), fail: 2}
	n := c.joinEmpty(2, sm, sm.recorder)
	c.addLearner(7, 2)
	c.waitSame(7, 10)
	if st := n.Stats(); st.SnapshotsInstalled != 1 {
		t.Errorf("node 2 installed %d snapshots, want 1 after two unavailable", st.SnapshotsInstalled)
	}
}

// TestLeaseHeardOnlyFromLeaderMessages: a replica's lease runs from the
// last append, heartbeat or snapshot of its leader. A deposed leader
// still sends vote requests and answers; were they to renew the lease,
// its followers would refuse every election after it (seen as a group
// that lost its leader for good while the others waited on it).
func TestLeaseHeardOnlyFromLeaderMessages(t *testing.T) {
	n, g := testReplica(t, false)
	n.log, n.groups = slog.New(slog.DiscardHandler), map[GroupID]*group{0: g}
	g.quiet = 5
	n.step([]Message{{Msg: msg(pb.MessageType_MsgAppResp, 2, 5)}, {Msg: msg(pb.MessageType_MsgPreVote, 2, 6)}})
	if g.quiet != 5 {
		t.Fatalf("the leader's answers and vote requests renewed the lease (quiet %d)", g.quiet)
	}
	n.step([]Message{{Msg: msg(pb.MessageType_MsgHeartbeat, 2, 5)}})
	if g.quiet != 0 {
		t.Fatalf("the leader's heartbeat did not renew the lease (quiet %d)", g.quiet)
	}
}

// gatedSnapshots holds every snapshot copy until gate is closed.
type gatedSnapshots struct {
	*recorder
	started chan struct{} // closed when the first copy begins
	once    sync.Once
	gate    chan struct{}
}

func (s *gatedSnapshots) ApplySnapshot(ctx context.Context, g GroupID, from NodeID, snap *pb.Snapshot) (func(), error) {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.recorder.ApplySnapshot(ctx, g, from, snap)
}

// TestSnapshotCopyDoesNotStallOtherGroups: while a replica copies one
// group's snapshot, which takes as long as the partition is large, the
// node's other groups go on — they apply what their leaders commit — and
// the copied group catches up once the copy is done.
func TestSnapshotCopyDoesNotStallOtherGroups(t *testing.T) {
	forEachLog(t, testSnapshotCopyDoesNotStallOtherGroups)
}

func testSnapshotCopyDoesNotStallOtherGroups(t *testing.T, dedicated bool) {
	c := emptyCluster(t, dedicated, []GroupID{7, 8}, 3)
	c.ids = []NodeID{1}
	c.start(1)
	for i := range 10 {
		c.propose(7, fmt.Sprint("big-", i)) // compacted: a new replica needs a snapshot
	}
	c.propose(8, "small-0")
	sm := &gatedSnapshots{recorder: c.newRecorder(), started: make(chan struct{}), gate: make(chan struct{})}
	n := c.joinEmpty(2, sm, sm.recorder)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.addLearner(8, 2)
	c.waitSame(8, 1)
	c.addLearner(7, 2)
	select {
	case <-sm.started:
	case <-ctx.Done():
		t.Fatal("node 2 never began to copy group 7's snapshot")
	}
	for i := 1; i <= 5; i++ {
		c.propose(8, fmt.Sprint("small-", i))
	}
	c.waitSame(8, 6) // node 2 applies group 8 while group 7's copy waits
	if got := sm.recorder.commands(7); len(got) != 0 {
		t.Fatalf("group 7 on node 2 holds %d commands before its snapshot was copied", len(got))
	}
	close(sm.gate)
	c.waitSame(7, 10)
	if st := n.Stats(); st.SnapshotsInstalled != 1 {
		t.Errorf("node 2 installed %d snapshots, want 1", st.SnapshotsInstalled)
	}
}

// gatedApply holds the apply of one command until gate is closed.
type gatedApply struct {
	*recorder
	data string
	gate chan struct{}
}

func (g *gatedApply) Apply(group GroupID, index uint64, data []byte) any {
	if string(data) == g.data {
		<-g.gate
	}
	return g.recorder.Apply(group, index, data)
}

// TestSoleVoterReadsWaitForItsTerm: a lone voter restarts with a commit
// index that lags its log (a crash lost the last, unsynced, hard state).
// Until it has committed and applied an entry of its new term — and with
// it the old entries it acknowledged before — SoleVoterLeader must not
// hold: a read of local state would miss acknowledged writes. The apply
// of the first such entry is held to widen that window.
func TestSoleVoterReadsWaitForItsTerm(t *testing.T) { forEachLog(t, testSoleVoterReadsWaitForItsTerm) }

func testSoleVoterReadsWaitForItsTerm(t *testing.T, dedicated bool) {
	c := emptyCluster(t, dedicated, []GroupID{7}, 0)
	c.ids = []NodeID{1}
	c.start(1)
	const writes = 20
	for i := range writes {
		c.propose(7, fmt.Sprint("acked-", i))
	}
	c.stop(1)
	// The crash: the hard state on disk still has the commit index of
	// before the writes.
	ctx := context.Background()
	if dedicated {
		l, err := raftlog.Open(raftlog.Config{Dir: c.logDirs[1]})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := l.State(7)
		hs := st.HardState
		hs.Commit = proto.Uint64(hs.GetCommit() - writes)
		var b raftlog.Batch
		b.SetHardState(7, hs)
		if err := errors.Join(l.Write(&b, true), l.Close()); err != nil {
			t.Fatal(err)
		}
	} else {
		raw, err := c.stores[1].Get(ctx, hardStateKey(7))
		if err != nil {
			t.Fatal(err)
		}
		var hs pb.HardState
		if err := proto.Unmarshal(raw, &hs); err != nil {
			t.Fatal(err)
		}
		hs.Commit = proto.Uint64(hs.GetCommit() - writes)
		raw, _ = proto.Marshal(&hs)
		var b tiers.Batch
		b.Set(hardStateKey(7), raw)
		if err := c.stores[1].Apply(ctx, &b, true); err != nil {
			t.Fatal(err)
		}
	}
	sm := &gatedApply{recorder: c.newRecorder(), data: "acked-0", gate: make(chan struct{})}
	var once sync.Once
	open := func() { once.Do(func() { close(sm.gate) }) }
	t.Cleanup(open) // before the node closes: its driver may wait at the gate
	n, err := New(c.config(1, sm))
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[1] = n
	if err := n.OpenGroup(ctx, 7, nil); err != nil {
		t.Fatal(err)
	}
	// The node elects itself within a few ticks; the old entries are
	// committed again then, and their apply waits at the gate.
	for start := time.Now(); time.Since(start) < 500*time.Millisecond; {
		if n.SoleVoterLeader(7) {
			t.Fatalf("SoleVoterLeader held with %d of the %d acknowledged commands applied", len(sm.commands(7)), writes)
		}
		time.Sleep(time.Millisecond)
	}
	if n.Leader(7) != 1 {
		t.Fatalf("the restarted lone voter is not its group's leader (leader %d)", n.Leader(7))
	}
	open()
	for deadline := time.Now().Add(10 * time.Second); !n.SoleVoterLeader(7); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SoleVoterLeader never held once the old entries were applied")
		}
	}
	if got := sm.commands(7); len(got) != writes {
		t.Fatalf("SoleVoterLeader held with %d of the %d acknowledged commands applied", len(got), writes)
	}
}

// joinEmpty starts node id with state machine sm (whose recorder is rec)
// and no groups: its leaders open them by adding it.
func (c *cluster) joinEmpty(id NodeID, sm StateMachine, rec *recorder) *Node {
	c.t.Helper()
	cfg := c.config(id, sm)
	cfg.AcceptGroup = func(GroupID) bool { return true }
	n, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.add(id, n, rec)
	return n
}

// addLearner has node 1, g's leader, add node id to g as a learner.
func (c *cluster) addLearner(g GroupID, id NodeID) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(uint64(id))}}}
	if err := c.nodes[1].ChangeReplicas(ctx, g, cc); err != nil {
		c.t.Fatal(err)
	}
}
