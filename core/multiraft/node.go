package multiraft

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/tiers"
)

// GroupID names a raft group: a partition.
type GroupID uint32

// NodeID names a node; it is the raft replica id in every group. Not 0.
type NodeID uint64

// Message is one raft message of one group, as it travels between nodes.
type Message struct {
	Group GroupID
	Msg   *pb.Message
}

// Transport carries messages to peers. Send is called from the driver
// goroutine and must not block for long: it may queue or drop (raft
// retransmits). The messages belong to the transport after the call.
type Transport interface {
	Send(to NodeID, msgs []Message)
}

// StateMachine receives committed commands. Its methods are called on the
// driver goroutine only, for each group in index order, once for every
// index above the applied index Applied reported when the group was opened.
//
// Invariant: whatever the state machine persists for index i of a group —
// the command's writes, the new membership — it persists atomically with
// "applied = i", so after a crash Applied names exactly the state on disk
// and raft re-delivers everything after it.
type StateMachine interface {
	// Apply applies a command. data is nil for raft's own empty entries
	// (a new leader's), which still consume their index. The returned
	// value reaches the proposer, after the next Commit.
	Apply(group GroupID, index uint64, data []byte) any
	// ApplyConfState records the group's membership after the conf change
	// at index, which consumes that index.
	ApplyConfState(group GroupID, index uint64, cs *pb.ConfState)
	// Applied returns the last index of group the state machine has
	// applied and persisted (0 if none), and the membership as of that
	// index (nil if it never recorded one).
	Applied(group GroupID) (uint64, *pb.ConfState)
	// ApplySnapshot replaces the group's state with a copy of the state of
	// node from, which sent snap: the group's log before snap's index is
	// gone, so the state cannot be rebuilt by applying entries. The copy
	// may be newer than snap (its applied index higher); entries up to the
	// state's applied index are then skipped by the state machine, which
	// reports that index through Applied afterwards. The state must be
	// durable when ApplySnapshot returns.
	ApplySnapshot(group GroupID, from NodeID, snap *pb.Snapshot) error
	// Commit makes the applies of this cycle visible and durable enough
	// (see the invariant: the log is already synced, so the state machine
	// need not sync). Proposers hear their results only after it returns.
	// An error stops the node.
	Commit() error
}

// Config configures a Node. Zero fields take the defaults given.
type Config struct {
	// ID is this node's replica id in every group. Required, not 0.
	ID NodeID
	// Store persists the raft logs and hard states. Required.
	Store tiers.Store
	// Transport sends messages to peers. Required.
	Transport Transport
	// StateMachine applies committed commands. Required.
	StateMachine StateMachine
	// TickInterval is raft's clock. Default 20 ms. With the default ticks,
	// a follower that hears nothing from its leader campaigns after 200 to
	// 400 ms (raft randomises within [ElectionTicks, 2×ElectionTicks)), so
	// a dead leader is replaced well within a second.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat period in ticks. Default 1.
	HeartbeatTicks int
	// MaxSizePerMsg bounds the entries' bytes in one append message.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds unacknowledged append messages per follower.
	// Default 256.
	MaxInflightMsgs int
	// LogKeep is how many applied entries a group keeps in its log behind
	// the state machine, so that a briefly lagging replica catches up from
	// the log; one further behind gets a snapshot. The log is compacted
	// when it holds twice as many. Default 10,000.
	LogKeep int
	// AcceptGroup decides whether a message for a group that is not open
	// here creates it, empty, to be filled by its leader (how a node gains
	// a replica that another node's leader added). Nil: never.
	AcceptGroup func(GroupID) bool
	// Logger receives the node's and raft's events. Nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 20 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.LogKeep == 0 {
		c.LogKeep = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("ID must not be 0"))
	}
	if c.Store == nil || c.Transport == nil || c.StateMachine == nil {
		errs = append(errs, errors.New("Store, Transport and StateMachine are required"))
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks))
	}
	if len(errs) > 0 {
		return fmt.Errorf("multiraft: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Errors.
var (
	// ErrNoLeader: the group knows no leader now; retry after an election.
	ErrNoLeader = errors.New("multiraft: no leader")
	// ErrStopped: the node is closed.
	ErrStopped = errors.New("multiraft: stopped")
	// ErrUnknownGroup: the group is not open on this node.
	ErrUnknownGroup = errors.New("multiraft: unknown group")
)

// Node runs the raft groups of one node.
type Node struct {
	cfg Config
	log *slog.Logger

	recvC chan []Message
	propC chan *proposal
	ctlC  chan func()
	stopC chan struct{}
	doneC chan struct{}

	// Owned by the driver goroutine.
	groups  map[GroupID]*group
	waiters map[uint64]*proposal
	rng     *rand.Rand
	replies []reply // results to deliver after the state machine's Commit
	ticks   uint64
	cycle   uint64 // driver cycles, for batching reads

	mu        sync.Mutex
	leaders   map[GroupID]NodeID // guarded by mu; updated by the driver
	voters    map[GroupID]int    // guarded by mu: voters in each group's config, updated by the driver
	elections uint64             // guarded by mu: times this node became a leader

	syncs, readies uint64 // owned by the driver; read through Stats
	snapshotsSent  uint64 // owned by the driver
	snapshotsTaken uint64 // owned by the driver
}

type group struct {
	id            GroupID
	rn            *raft.RawNode
	storage       *raft.MemoryStorage
	persistedLast uint64
	applied       uint64
	quiet         int // ticks since a message from the leader arrived
	// durable is the applied index whose state machine writes are known
	// durable: those of cycles before the last synced persist. The log is
	// never compacted past it, so a crash cannot lose both.
	durable  uint64
	first    uint64 // first entry index persisted (entries before it are compacted)
	snapFrom NodeID // sender of the last snapshot message stepped
	// readCtx is the request context of the read-index request made in
	// driver cycle readCycle, which later reads of that cycle share.
	readCtx   []byte
	readCycle uint64
	reads     []*proposal // ReadIndex requests that know their index, waiting for applied to reach it
}

// proposal is a command, a conf change or a read waiting for the driver.
type proposal struct {
	ctx   context.Context
	group GroupID
	kind  proposalKind
	data  []byte // 8-byte proposal id, then the command
	cc    *pb.ConfChangeV2
	index uint64 // for a read: the index it waits for, once known
	done  chan result
}

type proposalKind uint8

const (
	kindCommand proposalKind = iota
	kindConfChange
	kindRead
)

type reply struct {
	p *proposal
	r result
}

type result struct {
	value any
	err   error
}

// New starts a node with no groups; open them with OpenGroup.
func New(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "multiraft", "node", uint64(cfg.ID)),
		recvC:   make(chan []Message, 1024),
		propC:   make(chan *proposal, 1024),
		ctlC:    make(chan func()),
		stopC:   make(chan struct{}),
		doneC:   make(chan struct{}),
		groups:  map[GroupID]*group{},
		waiters: map[uint64]*proposal{},
		rng:     rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
		leaders: map[GroupID]NodeID{},
		voters:  map[GroupID]int{},
	}
	go n.run()
	return n, nil
}

// OpenGroup opens group g: from its persisted log if this node has one,
// otherwise as a new group of peers (which must include this node, and be
// the same on every peer).
//
// With no peers, a group this node has no state for is opened empty (an
// uninitialised replica), to be filled by its leader.
func (n *Node) OpenGroup(ctx context.Context, g GroupID, peers []NodeID) error {
	var err error
	derr := n.do(ctx, func() {
		if n.groups[g] == nil {
			err = n.openGroup(ctx, g, peers)
		}
	})
	if derr != nil {
		return derr
	}
	return err
}

// openGroup runs on the driver goroutine.
func (n *Node) openGroup(ctx context.Context, g GroupID, peers []NodeID) error {
	applied, cs := n.cfg.StateMachine.Applied(g)
	ms, first, last, found, err := loadGroup(ctx, n.cfg.Store, g, cs)
	if err != nil {
		return err
	}
	if applied > last && found && last > 0 {
		return fmt.Errorf("multiraft: group %d: state machine applied %d but the log ends at %d", g, applied, last)
	}
	st := &storage{MemoryStorage: ms}
	if cs != nil {
		st.cs = cs
	}
	rc := &raft.Config{
		ID:              uint64(n.cfg.ID),
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         applied,
		MaxSizePerMsg:   n.cfg.MaxSizePerMsg,
		MaxInflightMsgs: n.cfg.MaxInflightMsgs,
		CheckQuorum:     true,
		PreVote:         true,
		// Reads are confirmed by a heartbeat round with a quorum
		// (ReadOnlySafe), not by a leader lease: a lease is only as good
		// as the nodes' clocks and schedulers, and a starved leader that
		// missed its ticks would serve stale reads past a new election.
		// Reads of one cycle share one round (see propose).
		ReadOnlyOption: raft.ReadOnlySafe,
		Logger:         raftLogger{n.log.With("group", uint32(g))},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("multiraft: group %d: %w", g, err)
	}
	if !found && len(peers) > 0 {
		rp := make([]raft.Peer, len(peers))
		for i, p := range peers {
			rp[i] = raft.Peer{ID: uint64(p)}
		}
		if err := rn.Bootstrap(rp); err != nil {
			return fmt.Errorf("multiraft: group %d: %w", g, err)
		}
	}
	gr := &group{id: g, rn: rn, storage: ms, persistedLast: last, applied: applied, durable: applied, first: first}
	st.snapshot = func() (*pb.Snapshot, error) {
		index := gr.applied
		term, err := ms.Term(index)
		if err != nil {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
		_, cs := n.cfg.StateMachine.Applied(g)
		if cs == nil {
			return nil, raft.ErrSnapshotTemporarilyUnavailable
		}
		return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: &index, Term: &term, ConfState: cs}}, nil
	}
	n.groups[g] = gr
	n.mu.Lock()
	n.voters[g] = len(rn.Status().Config.Voters.IDs())
	n.mu.Unlock()
	return nil
}

// storage is the raft log in memory (a copy of the persisted one) with the
// membership the state machine persisted: raft reads it at start, and
// entries after the applied index replay the changes since.
type storage struct {
	*raft.MemoryStorage
	cs       *pb.ConfState
	snapshot func() (*pb.Snapshot, error) // set once the group exists
}

// Snapshot is what raft sends a follower that needs compacted entries. It
// is made when asked, at the state machine's applied index with its
// membership, and carries no data: the follower fetches the state from
// this node (StateMachine.ApplySnapshot), then as new as it is by then.
func (s *storage) Snapshot() (*pb.Snapshot, error) {
	if s.snapshot == nil {
		return s.MemoryStorage.Snapshot()
	}
	return s.snapshot()
}

func (s *storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs, cs, err := s.MemoryStorage.InitialState()
	if err == nil && s.cs != nil {
		cs = s.cs
	}
	return hs, cs, err
}

// do runs f on the driver goroutine.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.ctlC <- func() { f(); close(done) }:
	case <-n.stopC:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// Propose replicates data in group g and returns what the local state
// machine's Apply returned for it, once this replica has applied it. If
// ctx ends first the command may still be applied later.
//
// ErrNoLeader means raft dropped the command, which was then certainly not
// applied. A ctx that ends first leaves the outcome unknown.
func (n *Node) Propose(ctx context.Context, g GroupID, data []byte) (any, error) {
	p := &proposal{ctx: ctx, group: g, data: make([]byte, 8+len(data)), done: make(chan result, 1)}
	copy(p.data[8:], data)
	return n.submit(p)
}

// ChangeReplicas proposes a membership change of group g (this node must
// hold a replica; raft forwards it to the leader) and returns once this
// replica applied it. raft allows one change in flight per group; a second
// is dropped and reported as ErrNoLeader, so callers retry.
func (n *Node) ChangeReplicas(ctx context.Context, g GroupID, cc *pb.ConfChangeV2) error {
	p := &proposal{ctx: ctx, group: g, kind: kindConfChange, cc: cc, done: make(chan result, 1)}
	_, err := n.submit(p)
	return err
}

// ReadIndex returns once this replica of g has applied every command
// committed before the call: reads of local state after it are
// linearizable. On a follower it costs a round trip to the leader.
func (n *Node) ReadIndex(ctx context.Context, g GroupID) error {
	p := &proposal{ctx: ctx, group: g, kind: kindRead, data: make([]byte, 8), done: make(chan result, 1)}
	_, err := n.submit(p)
	return err
}

func (n *Node) submit(p *proposal) (any, error) {
	select {
	case n.propC <- p:
	case <-n.stopC:
		return nil, ErrStopped
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
	select {
	case r := <-p.done:
		return r.value, r.err
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
}

// Step delivers messages from a peer. It may be called from any goroutine.
func (n *Node) Step(msgs []Message) {
	select {
	case n.recvC <- msgs:
	case <-n.stopC:
	}
}

// SoleVoterLeader reports whether this node leads g and is its only
// voter. No other node can lead g then (any other leader would need this
// node's vote), so reads of local state are linearizable without a
// read-index round: the fast path of a cluster of one.
func (n *Node) SoleVoterLeader(g GroupID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaders[g] == n.cfg.ID && n.voters[g] == 1
}

// Leader returns the leader of group g as last known here (0 if none).
func (n *Node) Leader(g GroupID) NodeID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaders[g]
}

// Stats counts the driver's synced batches and the group Readies they
// carried (Readies / Syncs is how many groups share a sync), and the
// elections this node won.
type Stats struct{ Syncs, Readies, Elections, SnapshotsSent, SnapshotsInstalled uint64 }

// Stats returns the driver's counters.
func (n *Node) Stats() Stats {
	var s Stats
	_ = n.do(context.Background(), func() {
		s = Stats{Syncs: n.syncs, Readies: n.readies, SnapshotsSent: n.snapshotsSent, SnapshotsInstalled: n.snapshotsTaken}
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
	// (0 on the leader): a replica its group dropped stops hearing.
	Quiet int
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
			gs := GroupStatus{Group: g.id, Leader: NodeID(st.Lead), Term: st.GetTerm(), Applied: g.applied, Commit: st.GetCommit(), Quiet: g.quiet}
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

// RemoveGroup destroys this node's replica of g: the group stops, its log
// and hard state are deleted, and destroy (if not nil) runs on the driver
// goroutine in between, for the state machine to drop the group's data —
// nothing else touches the group then. Pending proposals of g fail
// through their contexts. Call it only for a replica its group no longer
// counts (see cluster's replica GC): a voter destroyed while counted
// weakens its group's quorum.
func (n *Node) RemoveGroup(ctx context.Context, g GroupID, destroy func() error) error {
	var err error
	derr := n.do(ctx, func() {
		gr := n.groups[g]
		if gr == nil {
			return
		}
		delete(n.groups, g)
		n.mu.Lock()
		delete(n.leaders, g)
		delete(n.voters, g)
		n.mu.Unlock()
		for _, p := range gr.reads {
			p.done <- result{err: fmt.Errorf("%w: %d", ErrUnknownGroup, g)}
		}
		if destroy != nil {
			if err = destroy(); err != nil {
				return
			}
		}
		var b tiers.Batch
		b.Delete(hardStateKey(g))
		for i := max(gr.first, 1); i <= gr.persistedLast; i++ {
			b.Delete(entryKey(g, i))
		}
		b.Delete(truncatedKey(g))
		err = n.cfg.Store.Apply(ctx, &b, true)
	})
	if derr != nil {
		return derr
	}
	return err
}

// TransferLeadership asks the leader of g (if it is this node) to hand
// leadership to another replica, as a node does before it leaves.
func (n *Node) TransferLeadership(ctx context.Context, g GroupID, to NodeID) error {
	return n.do(ctx, func() {
		if gr := n.groups[g]; gr != nil {
			gr.rn.TransferLeader(uint64(to))
		}
	})
}

// Close stops the driver. Pending proposals fail with ErrStopped.
func (n *Node) Close() {
	select {
	case <-n.stopC:
	default:
		close(n.stopC)
	}
	<-n.doneC
}

func (n *Node) run() {
	defer close(n.doneC)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	defer func() {
		for id, p := range n.waiters {
			p.done <- result{err: ErrStopped}
			delete(n.waiters, id)
		}
		for _, g := range n.groups {
			for _, p := range g.reads {
				p.done <- result{err: ErrStopped}
			}
		}
	}()
	for {
		select {
		case <-n.stopC:
			return
		case <-ticker.C:
			for _, g := range n.groups {
				g.rn.Tick()
				g.quiet++
			}
			if n.ticks++; n.ticks%50 == 0 {
				n.sweep()
			}
		case msgs := <-n.recvC:
			n.step(msgs)
		case p := <-n.propC:
			n.propose(p)
		case f := <-n.ctlC:
			f()
		}
		// Take whatever else is waiting, so one sync covers it all.
	drain:
		for range 256 {
			select {
			case msgs := <-n.recvC:
				n.step(msgs)
			case p := <-n.propC:
				n.propose(p)
			default:
				break drain
			}
		}
		n.cycle++
		if err := n.handleReady(); err != nil {
			n.log.Error("persisting raft state failed; stopping", "err", err)
			go n.Close()
			return
		}
	}
}

// sweep forgets waiters whose callers gave up: a command forwarded to a
// leader that then lost it would otherwise be waited for forever.
func (n *Node) sweep() {
	for id, p := range n.waiters {
		if p.ctx.Err() != nil {
			delete(n.waiters, id)
		}
	}
	for _, g := range n.groups {
		g.reads = slices.DeleteFunc(g.reads, func(p *proposal) bool { return p.index == 0 && p.ctx.Err() != nil })
	}
}

func (n *Node) step(msgs []Message) {
	for _, m := range msgs {
		g := n.groups[m.Group]
		if g == nil && n.cfg.AcceptGroup != nil && n.cfg.AcceptGroup(m.Group) {
			if err := n.openGroup(context.Background(), m.Group, nil); err != nil {
				n.log.Error("opening a group for its leader", "group", uint32(m.Group), "err", err)
				continue
			}
			g = n.groups[m.Group]
		}
		if g == nil {
			continue // not open here (yet)
		}
		if m.Msg.GetFrom() == g.rn.BasicStatus().Lead {
			g.quiet = 0
		}
		if m.Msg.GetType() == pb.MessageType_MsgSnap {
			g.snapFrom = NodeID(m.Msg.GetFrom())
		}
		if err := g.rn.Step(m.Msg); err != nil {
			n.log.Debug("step", "group", uint32(m.Group), "err", err)
		}
	}
}

func (n *Node) propose(p *proposal) {
	g := n.groups[p.group]
	if g == nil {
		p.done <- result{err: fmt.Errorf("%w: %d", ErrUnknownGroup, p.group)}
		return
	}
	id := n.rng.Uint64()
	var err error
	switch p.kind {
	case kindCommand:
		binary.BigEndian.PutUint64(p.data, id)
		err = g.rn.Propose(p.data)
	case kindConfChange:
		p.cc.Context = binary.BigEndian.AppendUint64(nil, id)
		err = g.rn.ProposeConfChange(p.cc)
	case kindRead:
		// Reads that arrive in one driver cycle share one read-index
		// request: any index that covers the first covers them all, since
		// they all began before it was asked.
		if g.readCycle == n.cycle && g.readCtx != nil {
			p.data = g.readCtx
		} else {
			binary.BigEndian.PutUint64(p.data, id)
			g.rn.ReadIndex(p.data)
			g.readCtx, g.readCycle = p.data, n.cycle
		}
		g.reads = append(g.reads, p)
		return
	}
	if err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = ErrNoLeader
		}
		p.done <- result{err: err}
		return
	}
	n.waiters[id] = p
}

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

// readState gives a ReadIndex request its index.
func (n *Node) readState(g *group, rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	for _, p := range g.reads {
		if p.index == 0 && string(p.data) == string(rs.RequestCtx) {
			p.index = max(rs.Index, 1)
		}
	}
}

// finishReads answers the reads whose index this replica has applied.
func (n *Node) finishReads(g *group) {
	g.reads = slices.DeleteFunc(g.reads, func(p *proposal) bool {
		if p.index == 0 || p.index > g.applied {
			return false
		}
		n.replies = append(n.replies, reply{p: p})
		return true
	})
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

// reply queues the result for the proposal whose id starts idb, if it was
// proposed here.
func (n *Node) reply(idb []byte, v any) {
	if len(idb) < 8 {
		return
	}
	id := binary.BigEndian.Uint64(idb)
	if p, ok := n.waiters[id]; ok {
		delete(n.waiters, id)
		n.replies = append(n.replies, reply{p: p, r: result{value: v}})
	}
}

// raftLogger adapts raft's logger to slog; raft's chatter is debug level.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                 { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) {
	r.l.Error(fmt.Sprintf(format, v...))
	panic(fmt.Sprintf(format, v...))
}
func (r raftLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }

// installSnapshot handles a snapshot raft received for g: the state
// machine copies the sender's state, the in-memory log restarts at the
// snapshot, and b gets the persisted log's replacement (the truncation
// point, no entries).
func (n *Node) installSnapshot(g *group, snap *pb.Snapshot, b *tiers.Batch) error {
	md := snap.GetMetadata()
	from := g.snapFrom
	if from == 0 {
		from = NodeID(g.rn.BasicStatus().Lead)
	}
	if err := n.cfg.StateMachine.ApplySnapshot(g.id, from, snap); err != nil {
		return fmt.Errorf("multiraft: group %d: installing a snapshot at %d from %d: %w", g.id, md.GetIndex(), from, err)
	}
	if err := g.storage.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("multiraft: group %d: %w", g.id, err)
	}
	for i := max(g.first, 1); i <= g.persistedLast; i++ {
		b.Delete(entryKey(g.id, i))
	}
	b.Set(truncatedKey(g.id), encodeTruncated(md.GetIndex(), md.GetTerm()))
	g.first, g.persistedLast = md.GetIndex()+1, md.GetIndex()
	applied, _ := n.cfg.StateMachine.Applied(g.id)
	g.applied, g.durable = max(applied, md.GetIndex()), max(applied, md.GetIndex())
	n.snapshotsTaken++
	n.log.Info("installed a snapshot", "group", uint32(g.id), "index", md.GetIndex(), "from", uint64(from), "applied", applied)
	return nil
}

// maybeCompact drops the log of g up to LogKeep entries behind what the
// state machine holds durably, once the log is twice that long. A
// follower that needs a dropped entry gets a snapshot (see snapshot).
func (n *Node) maybeCompact(g *group) error {
	keep := uint64(n.cfg.LogKeep)
	if g.durable < g.first+2*keep {
		return nil
	}
	to := g.durable - keep
	term, err := g.storage.Term(to)
	if err != nil {
		return nil // already compacted past it
	}
	if err := g.storage.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("multiraft: group %d: compacting to %d: %w", g.id, to, err)
	}
	var b tiers.Batch
	for i := max(g.first, 1); i <= to; i++ {
		b.Delete(entryKey(g.id, i))
	}
	b.Set(truncatedKey(g.id), encodeTruncated(to, term))
	if err := n.cfg.Store.Apply(context.Background(), &b, false); err != nil {
		return err
	}
	g.first = to + 1
	return nil
}
