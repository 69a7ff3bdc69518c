package multiraft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

// network is an in-memory network between nodes. Each message is marshaled
// and unmarshaled, as on a wire, and delivered in order per destination by
// a goroutine; a node that is down neither sends nor receives.
type network struct {
	sent  atomic.Int64 // messages sent between running nodes
	mu    sync.Mutex
	nodes map[NodeID]*Node
	down  map[NodeID]bool
	queue map[NodeID]chan []Message
}

func newNetwork() *network {
	return &network{nodes: map[NodeID]*Node{}, down: map[NodeID]bool{}, queue: map[NodeID]chan []Message{}}
}

func (nw *network) attach(id NodeID, n *Node) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.nodes[id] = n
	nw.down[id] = false
	if nw.queue[id] == nil {
		q := make(chan []Message, 4096)
		nw.queue[id] = q
		go func() {
			for msgs := range q {
				nw.mu.Lock()
				dst, isDown := nw.nodes[id], nw.down[id]
				nw.mu.Unlock()
				if !isDown && dst != nil {
					dst.Step(msgs)
				}
			}
		}()
	}
}

func (nw *network) setDown(id NodeID, down bool) {
	nw.mu.Lock()
	nw.down[id] = down
	nw.mu.Unlock()
}

type endpoint struct {
	nw   *network
	from NodeID
}

func (e endpoint) Send(to NodeID, msgs []Message) {
	e.nw.mu.Lock()
	q, drop := e.nw.queue[to], e.nw.down[e.from] || e.nw.down[to]
	e.nw.mu.Unlock()
	if drop || q == nil {
		return
	}
	e.nw.sent.Add(int64(len(msgs)))
	wire := make([]Message, len(msgs))
	for i, m := range msgs {
		b, err := proto.Marshal(m.Msg)
		if err != nil {
			panic(err)
		}
		var back pb.Message
		if err := proto.Unmarshal(b, &back); err != nil {
			panic(err)
		}
		wire[i] = Message{Group: m.Group, Msg: &back}
	}
	select {
	case q <- wire:
	default: // a full queue drops, like a congested link
	}
}

// recorder is a state machine that remembers every command per group.
type recorder struct {
	mu        sync.Mutex
	applied   map[GroupID][]string
	last      map[GroupID]uint64
	cs        map[GroupID]*pb.ConfState
	peers     func(NodeID) *recorder // the other nodes' recorders, for snapshots
	snapshots int
}

func newRecorder() *recorder {
	return &recorder{applied: map[GroupID][]string{}, last: map[GroupID]uint64{}, cs: map[GroupID]*pb.ConfState{}}
}

func (r *recorder) Apply(g GroupID, index uint64, data []byte) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if index <= r.last[g] {
		return nil // in the snapshot this recorder copied
	}
	if index != r.last[g]+1 {
		panic(fmt.Sprintf("group %d: index %d after %d", g, index, r.last[g]))
	}
	r.last[g] = index
	if data != nil {
		r.applied[g] = append(r.applied[g], string(data))
	}
	return index
}

func (r *recorder) ApplyConfState(g GroupID, index uint64, cs *pb.ConfState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if index <= r.last[g] {
		return
	}
	if index != r.last[g]+1 {
		panic(fmt.Sprintf("group %d: conf change %d after %d", g, index, r.last[g]))
	}
	r.last[g] = index
	r.cs[g] = cs
}

func (r *recorder) Applied(g GroupID) (uint64, *pb.ConfState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[g], r.cs[g]
}

func (r *recorder) Flush(*tiers.Batch) {}

func (r *recorder) Commit() error { return nil }

// ApplySnapshot copies the state of the recorder of node from; the copy
// becomes this recorder's when the driver adopts it.
func (r *recorder) ApplySnapshot(_ context.Context, g GroupID, from NodeID, snap *pb.Snapshot) (func(), error) {
	var src *recorder
	if r.peers != nil {
		src = r.peers(from)
	}
	if src == nil {
		return nil, fmt.Errorf("no recorder for node %d", from)
	}
	src.mu.Lock()
	cmds, last, cs := slices.Clone(src.applied[g]), src.last[g], src.cs[g]
	src.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.applied[g], r.last[g], r.cs[g] = cmds, last, cs
		r.snapshots++
	}, nil
}

func (r *recorder) commands(g GroupID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied[g])
}

type cluster struct {
	smMu    sync.Mutex // guards sms against the drivers' snapshot lookups
	logKeep int
	// dedicated: the nodes keep their raft logs in raftlog.Logs
	// (Config.Log), not in their stores.
	dedicated bool
	t         *testing.T
	nw        *network
	ids       []NodeID
	nodes     map[NodeID]*Node
	sms       map[NodeID]*recorder
	stores    map[NodeID]tiers.Store
	logDirs   map[NodeID]string
	logs      map[NodeID]*raftlog.Log
	groups    []GroupID
}

// forEachLog runs f once with the raft logs kept in the nodes' stores and
// once with dedicated raftlog.Logs.
func forEachLog(t *testing.T, f func(t *testing.T, dedicated bool)) {
	t.Run("store", func(t *testing.T) { f(t, false) })
	t.Run("raftlog", func(t *testing.T) { f(t, true) })
}

// emptyCluster is a cluster of no nodes yet, of the given groups.
func emptyCluster(t *testing.T, dedicated bool, groups []GroupID, logKeep int) *cluster {
	c := &cluster{t: t, nw: newNetwork(), nodes: map[NodeID]*Node{}, sms: map[NodeID]*recorder{}, stores: map[NodeID]tiers.Store{},
		logDirs: map[NodeID]string{}, logs: map[NodeID]*raftlog.Log{}, groups: groups, logKeep: logKeep, dedicated: dedicated}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
		for _, l := range c.logs {
			l.Close()
		}
	})
	return c
}

func newCluster(t *testing.T, dedicated bool, nodes, groups int) *cluster {
	var gs []GroupID
	for g := range groups {
		gs = append(gs, GroupID(g))
	}
	c := emptyCluster(t, dedicated, gs, 0)
	for i := range nodes {
		c.ids = append(c.ids, NodeID(i+1))
	}
	for _, id := range c.ids {
		c.start(id)
	}
	return c
}

// config is node id's configuration: its store (a new memory store the
// first time), its raft log (opened again in its directory, when the
// cluster's logs are dedicated), the cluster's network and settings.
func (c *cluster) config(id NodeID, sm StateMachine) Config {
	if c.stores[id] == nil {
		c.stores[id] = memory.New()
	}
	cfg := Config{ID: id, Store: c.stores[id], Transport: endpoint{c.nw, id}, StateMachine: sm, TickInterval: 5 * time.Millisecond, LogKeep: c.logKeep}
	if c.dedicated {
		if c.logDirs[id] == "" {
			c.logDirs[id] = c.t.TempDir()
		}
		// Small segments: the log moves on, rewrites and deletes segments.
		l, err := raftlog.Open(raftlog.Config{Dir: c.logDirs[id], SegmentBytes: 16 << 10})
		if err != nil {
			c.t.Fatal(err)
		}
		c.logs[id] = l
		cfg.Log = l
	}
	return cfg
}

// add makes n node id of the cluster.
func (c *cluster) add(id NodeID, n *Node, sm *recorder) {
	c.smMu.Lock()
	c.sms[id] = sm
	c.smMu.Unlock()
	c.nodes[id] = n
	c.nw.attach(id, n)
}

// start opens node id on its store, with a fresh state machine (which
// replays the log from the start).
func (c *cluster) start(id NodeID) { c.startWith(id, nil) }

// startWith is start with the node's configuration changed by tweak
// (when not nil) first.
func (c *cluster) startWith(id NodeID, tweak func(*Config)) *Node {
	sm := c.newRecorder()
	cfg := c.config(id, sm)
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, g := range c.groups {
		if err := n.OpenGroup(context.Background(), g, c.ids); err != nil {
			c.t.Fatal(err)
		}
	}
	c.add(id, n, sm)
	return n
}

func (c *cluster) newRecorder() *recorder {
	r := newRecorder()
	r.peers = func(id NodeID) *recorder {
		c.smMu.Lock()
		defer c.smMu.Unlock()
		return c.sms[id]
	}
	return r
}

func (c *cluster) stop(id NodeID) {
	c.nw.setDown(id, true)
	c.nodes[id].Close()
	delete(c.nodes, id)
	if l := c.logs[id]; l != nil {
		if err := l.Close(); err != nil {
			c.t.Fatal(err)
		}
		delete(c.logs, id)
	}
}

// leader waits for a leader of g among the running nodes.
func (c *cluster) leader(g GroupID) NodeID {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, n := range c.nodes {
			if n.Leader(g) == id {
				return id
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader for group %d", g)
	return 0
}

// propose retries through any running node until the command is applied.
func (c *cluster) propose(g GroupID, data string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := n.Propose(ctx, g, []byte(data))
			cancel()
			if err == nil {
				return
			}
			// A node just restarted knows its voters once it has applied
			// its log again (ErrUnknownGroup until then).
			if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) &&
				!errors.Is(err, ErrUnknownGroup) {
				c.t.Fatal(err)
			}
		}
	}
	c.t.Fatalf("group %d: %q never applied", g, data)
}

// waitSame waits until every running node applied the same commands in g.
func (c *cluster) waitSame(g GroupID, want int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ref []string
		same := true
		for id := range c.nodes {
			got := c.sms[id].commands(g)
			if ref == nil {
				ref = got
			}
			if len(got) != want || !slices.Equal(got, ref) {
				same = false
			}
		}
		if same {
			return ref
		}
		if time.Now().After(deadline) {
			for id := range c.nodes {
				c.t.Logf("node %d group %d: %d commands", id, g, len(c.sms[id].commands(g)))
			}
			c.t.Fatalf("group %d: replicas did not converge on %d commands", g, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplicatesEveryGroup(t *testing.T) { forEachLog(t, testReplicatesEveryGroup) }

func testReplicatesEveryGroup(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 4)
	for _, g := range c.groups {
		c.leader(g)
	}
	var wg sync.WaitGroup
	for _, g := range c.groups {
		wg.Go(func() {
			for i := range 20 {
				c.propose(g, fmt.Sprintf("g%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	for _, g := range c.groups {
		got := c.waitSame(g, 20)
		for i, cmd := range got {
			if cmd != fmt.Sprintf("g%d-%d", g, i) {
				t.Fatalf("group %d applied %q at %d: proposals from one goroutine must apply in order", g, cmd, i)
			}
		}
	}
	// All groups' log writes share syncs.
	for id, n := range c.nodes {
		s := n.Stats()
		if s.Readies <= s.Syncs {
			t.Errorf("node %d: %d readies in %d syncs; groups should share syncs", id, s.Readies, s.Syncs)
		}
		if dedicated && (s.Log.Groups != len(c.groups) || s.Log.Syncs == 0) {
			t.Errorf("node %d: the dedicated log: %+v", id, s.Log)
		}
		if _, keys, _ := storedRaftKeys(context.Background(), c.stores[id]); dedicated == (len(keys) > 0) {
			t.Errorf("node %d: %d raft keys in the store", id, len(keys))
		}
	}
}

// TestFailover stops the leader of a group: the others elect a new one and
// keep taking writes, and nothing committed before is lost.
func TestFailover(t *testing.T) { forEachLog(t, testFailover) }

func testFailover(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 2)
	g := GroupID(1)
	old := c.leader(g)
	for i := range 10 {
		c.propose(g, fmt.Sprint("before-", i))
	}
	c.waitSame(g, 10)
	c.stop(old)
	start := time.Now()
	newLeader := c.leader(g)
	t.Logf("new leader %d elected %v after the old one (%d) stopped", newLeader, time.Since(start), old)
	if newLeader == old {
		t.Fatal("the stopped node is still leader")
	}
	for i := range 10 {
		c.propose(g, fmt.Sprint("after-", i))
	}
	got := c.waitSame(g, 20)
	if got[0] != "before-0" || got[19] != "after-9" {
		t.Fatalf("log after failover: %v", got)
	}
	// The old leader comes back, replays its log and catches up.
	c.start(old)
	c.waitSame(g, 20)
}

// TestRestartReplaysPersistedLog restarts every node from its store.
func TestRestartReplaysPersistedLog(t *testing.T) { forEachLog(t, testRestartReplaysPersistedLog) }

func testRestartReplaysPersistedLog(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 1)
	for i := range 15 {
		c.propose(0, fmt.Sprint("cmd-", i))
	}
	want := c.waitSame(0, 15)
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	if got := c.waitSame(0, 15); !slices.Equal(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	c.propose(0, "after-restart")
	c.waitSame(0, 16)
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("an empty config was accepted")
	}
}

// TestGrowFromOneNode starts a group on one node, writes to it, then adds
// two nodes that have nothing (they open the group on the leader's first
// message) as learners and promotes them: they catch up on everything the
// first node held, and the group survives a restart from persisted
// membership.
func TestGrowFromOneNode(t *testing.T) { forEachLog(t, testGrowFromOneNode) }

func testGrowFromOneNode(t *testing.T, dedicated bool) {
	// A short log: the first node compacts it, so the others catch up by
	// snapshot rather than by replaying the log from its start.
	c := emptyCluster(t, dedicated, []GroupID{7}, 3)
	c.ids = []NodeID{1}
	c.start(1)
	for i := range 10 {
		c.propose(7, fmt.Sprint("alone-", i))
	}
	for _, id := range []NodeID{2, 3} {
		c.startEmpty(id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader := c.nodes[1]
	for _, id := range []NodeID{2, 3} {
		if err := leader.ChangeReplicas(ctx, 7, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(uint64(id))}}}); err != nil {
			t.Fatalf("adding learner %d: %v", id, err)
		}
	}
	c.waitSame(7, 10)
	for _, id := range []NodeID{2, 3} {
		if st := c.nodes[id].Stats(); st.SnapshotsInstalled == 0 {
			t.Errorf("node %d caught up without a snapshot although the log was compacted", id)
		}
	}
	for _, id := range []NodeID{2, 3} {
		if err := leader.ChangeReplicas(ctx, 7, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(uint64(id))}}}); err != nil {
			t.Fatalf("promoting %d: %v", id, err)
		}
	}
	st, err := c.nodes[2].Status(ctx)
	if err != nil || len(st) != 1 {
		t.Fatalf("status: %v %v", st, err)
	}
	c.waitVoters(7, 3)
	c.ids = []NodeID{1, 2, 3}
	// Reads through a follower see every write committed before them.
	c.propose(7, "before-read")
	follower := c.nodes[2]
	if c.leader(7) == 2 {
		follower = c.nodes[3]
	}
	if err := follower.ReadIndex(ctx, 7); err != nil {
		t.Fatalf("ReadIndex on a follower: %v", err)
	}
	// Membership persisted by the state machine survives a restart of all.
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.restartKeeping(id)
	}
	c.propose(7, "after-restart")
	c.waitSame(7, 12)
}

// startEmpty starts node id with no groups, accepting any group a leader
// sends it messages for.
func (c *cluster) startEmpty(id NodeID) {
	sm := c.newRecorder()
	cfg := c.config(id, sm)
	cfg.AcceptGroup = func(GroupID) bool { return true }
	n, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.add(id, n, sm)
}

// restartKeeping restarts node id with its state machine's applied state
// kept, as a durable state machine's would be.
func (c *cluster) restartKeeping(id NodeID) {
	sm := c.sms[id]
	n, err := New(c.config(id, sm))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, g := range c.groups {
		if err := n.OpenGroup(context.Background(), g, nil); err != nil {
			c.t.Fatal(err)
		}
	}
	c.nodes[id] = n
	c.nw.attach(id, n)
}

func (c *cluster) waitVoters(g GroupID, want int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range c.nodes {
			st, err := n.Status(context.Background())
			if err != nil || len(st) == 0 || len(st[0].Voters) != want {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("group %d never had %d voters on every node", g, want)
}

// TestRemoveGroup: a removed replica's log is gone — after a restart too —
// and destroy ran; the node's other groups keep theirs.
func TestRemoveGroup(t *testing.T) { forEachLog(t, testRemoveGroup) }

func testRemoveGroup(t *testing.T, dedicated bool) {
	ctx := context.Background()
	c := newCluster(t, dedicated, 1, 2)
	for _, g := range c.groups {
		c.propose(g, "x")
	}
	destroyed := false
	if err := c.nodes[1].RemoveGroup(ctx, 0, func() error { destroyed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !destroyed {
		t.Fatal("destroy did not run")
	}
	for _, restart := range []bool{false, true} {
		if restart {
			c.stop(1)
			n, err := New(c.config(1, c.newRecorder()))
			if err != nil {
				t.Fatal(err)
			}
			c.add(1, n, c.sms[1])
		}
		for g, want := range map[GroupID]bool{0: false, 1: true} {
			if has, err := c.nodes[1].HasLog(ctx, g); err != nil || has != want {
				t.Fatalf("restarted %v: group %d: HasLog = %v, %v; want %v", restart, g, has, err, want)
			}
		}
	}
	if !dedicated {
		groups, _, err := storedRaftKeys(ctx, c.stores[1])
		if err != nil || !slices.Equal(groups, []GroupID{1}) {
			t.Fatalf("the store holds the logs of groups %v (%v), want only 1's", groups, err)
		}
	}
}

// TestLoneVoterLeadsAtOnce: a group whose only voter is this node elects
// itself when opened, new or reopened, without waiting for its clock —
// here the clock never ticks within the test.
func TestLoneVoterLeadsAtOnce(t *testing.T) { forEachLog(t, testLoneVoterLeadsAtOnce) }

func testLoneVoterLeadsAtOnce(t *testing.T, dedicated bool) {
	c := emptyCluster(t, dedicated, []GroupID{3}, 0)
	c.ids = []NodeID{1}
	open := func() {
		n := c.startWith(1, func(cfg *Config) { cfg.TickInterval = time.Hour })
		// Raft drops a proposal made before the driver's cycle has
		// taken the election's Ready up (ErrNoLeader), and a new group
		// knows no voters until its bootstrap configuration is applied
		// (ErrUnknownGroup): try again.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			_, err := n.Propose(ctx, 3, []byte("x"))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrUnknownGroup) {
				t.Fatalf("a lone voter with a stopped clock: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	open()
	c.stop(1)
	open()
}

// TestFollowerRefusesProposal: a follower never hands a proposal to its
// leader (where raft could drop it unseen); it answers ErrNotLeader, and
// the command is never applied.
func TestFollowerRefusesProposal(t *testing.T) {
	c := newCluster(t, false, 3, 1)
	g := GroupID(0)
	lead := c.leader(g)
	c.propose(g, "first")
	for id, n := range c.nodes {
		if id == lead {
			continue
		}
		if _, err := n.Propose(context.Background(), g, []byte("via-follower")); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("node %d (leader %d): got %v, want ErrNotLeader", id, lead, err)
		}
	}
	c.propose(g, "last")
	if got := c.waitSame(g, 2); !slices.Equal(got, []string{"first", "last"}) {
		t.Fatalf("applied %q", got)
	}
}

// TestLostProposalAnswered: a leader cut off from its followers takes a
// command it can never commit; the others elect a leader that commits
// other entries at that index. Once the old leader hears from the new
// one and applies them, its proposer is told the command was dropped
// (ErrNoLeader: certainly not applied, safe to send again) instead of
// waiting for its deadline without knowing.
func TestLostProposalAnswered(t *testing.T) { forEachLog(t, testLostProposalAnswered) }

func testLostProposalAnswered(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 1)
	g := GroupID(0)
	c.propose(g, "before")
	want := 1 // commands applied
	c.waitSame(g, want)
	for attempt := 1; ; attempt++ {
		old := c.leader(g)
		c.nw.setDown(old, true)
		// The cut-off leader takes the command: raft's CheckQuorum deposes
		// it only after an election timeout.
		errC := inBackground(func(ctx context.Context) error {
			_, err := c.nodes[old].Propose(ctx, g, []byte("lost"))
			return err
		})
		// The others elect a leader and commit past the command's index.
		var lead NodeID
		for deadline := time.Now().Add(10 * time.Second); lead == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the others elected no leader")
			}
			for id, n := range c.nodes {
				if id != old && n.Leader(g) == id {
					lead = id
				}
			}
		}
		for i := range 3 {
			if _, err := c.nodes[lead].Propose(context.Background(), g, []byte(fmt.Sprint("after-", attempt, "-", i))); err != nil {
				t.Fatal(err)
			}
			want++
		}
		c.nw.setDown(old, false)
		err := await(t, errC, "the proposer of the lost command")
		got := c.waitSame(g, want)
		if slices.Contains(got, "lost") {
			t.Fatalf("the cut-off leader's command was applied: %q", got)
		}
		if err == errLost {
			t.Logf("attempt %d: %v", attempt, err)
			return
		}
		if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("the proposer of the lost command got %v, want ErrNoLeader", err)
		}
		// Refused at once: the leader was deposed before it took the
		// command (a starved test). Try again.
		if attempt == 10 {
			t.Fatalf("never proposed to a cut-off leader: %v", err)
		}
	}
}

// TestReadAnsweredWhenLeaderStepsDown: a linearizable read waits at a
// leader for a quorum's heartbeat answers; cut off, the leader steps down
// (CheckQuorum) and raft forgets the request. The reader hears
// ErrNoLeader then, and asks again elsewhere, instead of waiting for its
// deadline.
func TestReadAnsweredWhenLeaderStepsDown(t *testing.T) {
	c := newCluster(t, false, 3, 1)
	g := GroupID(0)
	c.propose(g, "x")
	old := c.leader(g)
	c.nw.setDown(old, true)
	errC := inBackground(func(ctx context.Context) error { return c.nodes[old].ReadIndex(ctx, g) })
	if err := await(t, errC, "the read at a leader that stepped down"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("read at a cut-off leader: got %v, want ErrNoLeader", err)
	}
}

// inBackground runs f with a minute's context on a goroutine of its own.
func inBackground(f func(ctx context.Context) error) <-chan error {
	errC := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errC <- f(ctx)
	}()
	return errC
}

// await returns what errC brings, failing the test if it brings nothing
// within 30 s: a call that should be answered when raft forgets it (not
// when its own deadline passes).
func await(t *testing.T, errC <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errC:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s was never answered", what)
		return nil
	}
}

// TestLeadersWatch: Leaders reports a group's leader with its term and
// wakes watchers when it changes: an election, and the group's removal.
func TestLeadersWatch(t *testing.T) {
	c := newCluster(t, false, 1, 1)
	n := c.nodes[1]
	leaders, changed := n.Leaders()
	for len(leaders) == 0 {
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no leader reported")
		}
		leaders, changed = n.Leaders()
	}
	if l := leaders[0]; l.Node != 1 || l.Term == 0 {
		t.Fatalf("group 0's leader: %+v", l)
	}
	if err := n.RemoveGroup(context.Background(), 0, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("removing the group did not wake the watcher")
	}
	if leaders, _ := n.Leaders(); len(leaders) != 0 {
		t.Fatalf("leaders after the removal: %+v", leaders)
	}
}
