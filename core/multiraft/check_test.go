package multiraft

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
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
	c := newCluster(t, 3, 1)
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
func TestSnapshotUnavailable(t *testing.T) {
	c := &cluster{t: t, nw: newNetwork(), nodes: map[NodeID]*Node{}, sms: map[NodeID]*recorder{}, stores: map[NodeID]tiers.Store{}, groups: []GroupID{7}, logKeep: 3}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	c.ids = []NodeID{1}
	c.stores[1] = memory.New()
	c.start(1)
	for i := range 10 {
		c.propose(7, fmt.Sprint("alone-", i))
	}
	sm := &flakySnapshots{recorder: c.newRecorder(), fail: 2}
	n, err := New(Config{ID: 2, Store: memory.New(), Transport: endpoint{c.nw, 2}, StateMachine: sm,
		TickInterval: 5 * time.Millisecond, AcceptGroup: func(GroupID) bool { return true }, LogKeep: c.logKeep})
	if err != nil {
		t.Fatal(err)
	}
	c.smMu.Lock()
	c.sms[2] = sm.recorder
	c.smMu.Unlock()
	c.nodes[2] = n
	c.nw.attach(2, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[1].ChangeReplicas(ctx, 7, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(2)}}}); err != nil {
		t.Fatal(err)
	}
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
	c := &cluster{t: t, nw: newNetwork(), nodes: map[NodeID]*Node{}, sms: map[NodeID]*recorder{}, stores: map[NodeID]tiers.Store{}, groups: []GroupID{7, 8}, logKeep: 3}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	c.ids = []NodeID{1}
	c.stores[1] = memory.New()
	c.start(1)
	for i := range 10 {
		c.propose(7, fmt.Sprint("big-", i)) // compacted: a new replica needs a snapshot
	}
	c.propose(8, "small-0")
	sm := &gatedSnapshots{recorder: c.newRecorder(), started: make(chan struct{}), gate: make(chan struct{})}
	n, err := New(Config{ID: 2, Store: memory.New(), Transport: endpoint{c.nw, 2}, StateMachine: sm,
		TickInterval: 5 * time.Millisecond, AcceptGroup: func(GroupID) bool { return true }, LogKeep: c.logKeep})
	if err != nil {
		t.Fatal(err)
	}
	c.smMu.Lock()
	c.sms[2] = sm.recorder
	c.smMu.Unlock()
	c.nodes[2] = n
	c.nw.attach(2, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addLearner := func(g GroupID) {
		cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(2)}}}
		if err := c.nodes[1].ChangeReplicas(ctx, g, cc); err != nil {
			t.Fatal(err)
		}
	}
	addLearner(8)
	c.waitSame(8, 1)
	addLearner(7)
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
