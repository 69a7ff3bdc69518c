package multiraft

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/tiers"
	pb "go.etcd.io/raft/v3/raftpb"
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
//
// Each driver cycle calls Apply and ApplyConfState for the entries it
// commits, then Flush, whose writes the node stores in one atomic store
// write once the cycle's log entries are written, then Commit.
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
	// reports that index through Applied afterwards.
	//
	// Unlike the other methods it runs on a goroutine of its own (at most
	// MaxInstalls at once), for copying a partition takes long: the driver
	// goes on with every other group meanwhile, ticking and heartbeating,
	// and this group does nothing until it returns. So it may write the
	// group's keys to the store, and nothing the other methods touch; what
	// must change on the driver goroutine it returns as adopt, which the
	// driver calls before the group goes on. The written state must be
	// durable when it returns. ctx ends when the node closes.
	//
	// An error wrapping ErrSnapshotUnavailable says the state could not be
	// had and nothing changed: the node then drops the snapshot, as if its
	// message had been lost, and the leader sends another. Any other error
	// stops the node.
	ApplySnapshot(ctx context.Context, group GroupID, from NodeID, snap *pb.Snapshot) (adopt func(), err error)
	// Flush adds the writes of this cycle's applies to b, which the node
	// stores atomically, after the cycle's raft log entries and hard states
	// are written (with them, when the log is kept in the store) — mostly
	// unsynced: the entries are durable in the log already, so after a
	// crash they are applied again.
	Flush(b *tiers.Batch)
	// Commit is called once b is stored: it makes the applies of this
	// cycle visible. Proposers hear their results only after it returns.
	// An error stops the node.
	Commit() error
}

// Errors.
var (
	// ErrNoLeader: the group knows no leader now; retry after an election.
	// A command that fails with it was certainly not applied.
	ErrNoLeader = errors.New("multiraft: no leader")
	// ErrNotLeader: another node leads the group (Leader names it). A
	// follower never hands a proposal to its leader itself: raft would drop
	// it silently whenever the leader could not take it (it is handing
	// over its leadership, or was deposed meanwhile), and the proposer
	// could only wait for its deadline and never learn whether it applied.
	// The caller sends the request to the leader instead. A command that
	// fails with it was certainly not applied.
	ErrNotLeader = errors.New("multiraft: not the leader")
	// ErrStopped: the node is closed.
	ErrStopped = errors.New("multiraft: stopped")
	// ErrUnknownGroup: the group is not open on this node.
	ErrUnknownGroup = errors.New("multiraft: unknown group")
	// ErrSnapshotUnavailable: see StateMachine.ApplySnapshot.
	ErrSnapshotUnavailable = errors.New("multiraft: snapshot unavailable")
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
	rlog    logStore   // where the raft log lives: Config.Log or Store
	writer  *logWriter // writes a separate rlog (nil for the store-kept log)
	logSeq  uint64     // log writes submitted to writer
	parked  []ready    // Readies waiting for their log write (see handleReady)
	park    []bool     // handleReady's, reused
	groups  map[GroupID]*group
	waiters map[uint64]*proposal
	rng     *rand.Rand
	replies []reply     // results to deliver after the state machine's Commit
	batch   tiers.Batch // the cycle's store write, reused
	ticks   uint64
	cycle   uint64 // driver cycles, for batching reads
	// idleTick: wait's event was a tick that ticked no group (all
	// quiesced).
	idleTick bool

	mu      sync.Mutex
	leaders map[GroupID]Lead // guarded by mu; updated by the driver
	// leadSince is, for each group this node leads, when it learned so
	// (LeadingSince); guarded by mu.
	leadSince map[GroupID]time.Time
	leadersCh chan struct{}    // guarded by mu; closed and replaced when leaders changes
	voters    map[GroupID]int  // guarded by mu: voters in each group's config, updated by the driver
	sole      map[GroupID]bool // guarded by mu: groups SoleVoterLeader holds for, updated by the driver
	elections uint64           // guarded by mu: times this node became a leader

	syncs, readies  uint64    // owned by the driver; read through Stats
	quiesced, woken uint64    // times groups quiesced and woke; owned by the driver
	snapshotsSent   uint64    // owned by the driver
	snapshotsTaken  uint64    // owned by the driver
	rejected        uint64    // messages dropped by check, and conf changes skipped by canApply; owned by the driver
	warned          time.Time // when a dropped message was last logged as a warning; owned by the driver

	failure atomic.Pointer[error] // what stopped the driver, if a store write failed

	// Snapshot installs in flight (see StateMachine.ApplySnapshot).
	installedC  chan installResult // finished installs, to the driver
	installSem  chan struct{}      // at most MaxInstalls copy at once
	installs    sync.WaitGroup
	installCtx  context.Context // ends when the node closes
	stopInstall context.CancelFunc
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
		leaders: map[GroupID]Lead{}, leadersCh: make(chan struct{}), leadSince: map[GroupID]time.Time{},
		voters: map[GroupID]int{},
		sole:   map[GroupID]bool{},

		installedC: make(chan installResult),
		installSem: make(chan struct{}, maxInstalls),
	}
	if cfg.Log != nil {
		if err := migrate(context.Background(), cfg.Store, cfg.Log, n.log); err != nil {
			return nil, err
		}
		n.rlog = newDedicatedLog(cfg.Log, cfg.Store)
	} else {
		n.rlog = &storeLog{store: cfg.Store}
	}
	if cfg.wrapLog != nil {
		n.rlog = cfg.wrapLog(n.rlog)
	}
	if n.rlog.separate() {
		n.writer = newLogWriter(n.rlog)
	}
	n.installCtx, n.stopInstall = context.WithCancel(context.Background())
	go n.run()
	return n, nil
}

// HasLog reports whether this node holds raft state of group g (whether
// or not the group is open).
func (n *Node) HasLog(ctx context.Context, g GroupID) (bool, error) {
	var has bool
	var err error
	if derr := n.do(ctx, func() { has, err = n.rlog.has(ctx, g) }); derr != nil {
		return false, derr
	}
	return has, err
}

// doAsync hands f to the driver goroutine without waiting for it to run.
func (n *Node) doAsync(f func()) error {
	select {
	case n.ctlC <- f:
		return nil
	case <-n.stopC:
		return ErrStopped
	}
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

// Step delivers messages from a peer. It may be called from any goroutine.
func (n *Node) Step(msgs []Message) {
	select {
	case n.recvC <- msgs:
	case <-n.stopC:
	}
}

// Err returns the error that stopped the driver — a store write that
// failed — or nil.
func (n *Node) Err() error {
	if errp := n.failure.Load(); errp != nil {
		return *errp
	}
	return nil
}

// Close stops the driver. Pending proposals fail with ErrStopped. It
// returns once snapshot installs in flight have stopped too.
func (n *Node) Close() {
	select {
	case <-n.stopC:
	default:
		close(n.stopC)
	}
	<-n.doneC
	n.stopInstall()
	n.installs.Wait()
}

func (n *Node) run() {
	defer close(n.doneC)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	defer func() {
		if n.writer != nil {
			n.writer.stop() // what is queued is written; Config.Log may be closed after
		}
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
	more := false // a group has a Ready already: do not wait for news
	for {
		if !n.wait(ticker.C, more) {
			return
		}
		// Take whatever else is waiting, so one sync covers it all.
		drained := 0
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
			drained++
		}
		if n.idleTick && !more && drained == 0 && len(n.parked) == 0 {
			// A tick of a node whose groups are all quiesced: nothing can
			// have a Ready. Skipping the cycle keeps an idle node idle.
			continue
		}
		n.cycle++
		var err error
		if more, err = n.handleReady(); err != nil {
			n.failure.Store(&err)
			n.log.Error("persisting raft state failed; stopping", "err", err)
			go n.Close()
			return
		}
	}
}

// wait handles one event — a tick, messages, a proposal, a control
// function — waiting for it unless poll is set, and reports false once
// the node is stopping.
//
// While a log write is being synced, news (proposals, messages, ticks)
// waits in its channels: taken once the write is done, it goes into the
// next write whole, as it did when the driver synced the log itself —
// but the driver meanwhile applies, answers and sends for the writes
// before.
//
// A cycle's Advance can leave a group with a Ready at once: a lone voter
// commits the entries it just persisted by acknowledging them to itself,
// in Advance. Waiting for the next event would hold their proposers until
// the next tick or proposal, so then the driver polls.
func (n *Node) wait(tick <-chan time.Time, poll bool) bool {
	var pollC, wroteC chan struct{}
	if poll {
		pollC = closedC
	}
	recvC, propC := n.recvC, n.propC
	if n.writer != nil {
		wroteC = n.writer.wakeC
		if n.writing() {
			recvC, propC, tick = nil, nil, nil
		}
	}
	n.idleTick = false
	select {
	case <-n.stopC:
		return false
	case <-tick:
		n.idleTick = n.tickAll() == 0
		if n.ticks++; n.ticks%50 == 0 {
			n.sweep()
		}
	case msgs := <-recvC:
		n.step(msgs)
	case p := <-propC:
		n.propose(p)
	case f := <-n.ctlC:
		f()
	case res := <-n.installedC:
		if n.groups[res.g.id] == res.g {
			res.g.installed = &res // handleReady finishes it
		}
	case <-wroteC: // a log write is done: its parked Readies go on
	case <-pollC:
	}
	return true
}

// closedC is a closed channel: a select case on it is always ready.
var closedC = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

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
		// Even a message check drops wakes the group: a vote request
		// refused inside a quiesced replica's lease must let that lease
		// run out, or the replica would refuse every vote for good.
		n.wakeOnMessage(g, m.Msg)
		if err := n.check(g, m.Msg); err != nil {
			n.rejected++
			// One warning a second at most: a hostile peer could otherwise
			// fill the log. The rest go to debug; Stats counts them all.
			level := slog.LevelDebug
			if now := time.Now(); now.Sub(n.warned) >= time.Second {
				level, n.warned = slog.LevelWarn, now
			}
			n.log.Log(context.Background(), level, "dropping a raft message", "group", uint32(m.Group),
				"type", m.Msg.GetType().String(), "from", m.Msg.GetFrom(), "term", m.Msg.GetTerm(), "err", err)
			continue
		}
		if m.Msg.GetType() == pb.MessageType_MsgSnap {
			g.snapFrom = NodeID(m.Msg.GetFrom())
		}
		if err := g.rn.Step(m.Msg); err != nil {
			n.log.Debug("step", "group", uint32(m.Group), "err", err)
		}
		if quiescing(m.Msg) {
			n.quiesceOnHeartbeat(g, m.Msg)
		}
		// The leader is heard through what only a leader sends, as raft's
		// own election timer is: a deposed leader's vote requests and
		// answers must not keep its followers in its lease (see check).
		switch m.Msg.GetType() {
		case pb.MessageType_MsgApp, pb.MessageType_MsgHeartbeat, pb.MessageType_MsgSnap:
			if m.Msg.GetFrom() == g.rn.BasicStatus().Lead {
				g.quiet = 0
			}
		}
	}
}
