package multiraft

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// StateMachine receives committed commands. Apply is called on the driver
// goroutine, for each group in index order, once for every index above
// Applied(group) as it was when the group was opened — data is nil for
// raft's own entries (elections' empty entries, membership changes), which
// still consume their index. The returned value reaches the proposer.
type StateMachine interface {
	Apply(group GroupID, index uint64, data []byte) any
	// Applied returns the last index of group the state machine has
	// durably applied (0 if none): raft will not deliver it again.
	Applied(group GroupID) uint64
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

	mu      sync.Mutex
	leaders map[GroupID]NodeID // guarded by mu; updated by the driver

	syncs, readies uint64 // owned by the driver; read through Stats
}

type group struct {
	id            GroupID
	rn            *raft.RawNode
	storage       *raft.MemoryStorage
	persistedLast uint64
}

type proposal struct {
	group GroupID
	data  []byte // 8-byte proposal id, then the command
	done  chan result
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
	}
	go n.run()
	return n, nil
}

// OpenGroup opens group g: from its persisted log if this node has one,
// otherwise as a new group of peers (which must include this node, and be
// the same on every peer).
func (n *Node) OpenGroup(ctx context.Context, g GroupID, peers []NodeID) error {
	ms, last, found, err := loadGroup(ctx, n.cfg.Store, g)
	if err != nil {
		return err
	}
	rc := &raft.Config{
		ID:              uint64(n.cfg.ID),
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         ms,
		Applied:         n.cfg.StateMachine.Applied(g),
		MaxSizePerMsg:   n.cfg.MaxSizePerMsg,
		MaxInflightMsgs: n.cfg.MaxInflightMsgs,
		CheckQuorum:     true,
		PreVote:         true,
		Logger:          raftLogger{n.log.With("group", uint32(g))},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("multiraft: group %d: %w", g, err)
	}
	if !found {
		rp := make([]raft.Peer, len(peers))
		for i, p := range peers {
			rp[i] = raft.Peer{ID: uint64(p)}
		}
		if err := rn.Bootstrap(rp); err != nil {
			return fmt.Errorf("multiraft: group %d: %w", g, err)
		}
	}
	return n.do(ctx, func() {
		n.groups[g] = &group{id: g, rn: rn, storage: ms, persistedLast: last}
	})
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
func (n *Node) Propose(ctx context.Context, g GroupID, data []byte) (any, error) {
	p := &proposal{group: g, data: make([]byte, 8+len(data)), done: make(chan result, 1)}
	copy(p.data[8:], data)
	select {
	case n.propC <- p:
	case <-n.stopC:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-p.done:
		return r.value, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Step delivers messages from a peer. It may be called from any goroutine.
func (n *Node) Step(msgs []Message) {
	select {
	case n.recvC <- msgs:
	case <-n.stopC:
	}
}

// Leader returns the leader of group g as last known here (0 if none).
func (n *Node) Leader(g GroupID) NodeID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaders[g]
}

// Stats counts the driver's synced batches and the group Readies they
// carried; Readies / Syncs is how many groups share a sync.
type Stats struct{ Syncs, Readies uint64 }

// Stats returns the driver's counters.
func (n *Node) Stats() Stats {
	var s Stats
	_ = n.do(context.Background(), func() { s = Stats{Syncs: n.syncs, Readies: n.readies} })
	return s
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
	}()
	for {
		select {
		case <-n.stopC:
			return
		case <-ticker.C:
			for _, g := range n.groups {
				g.rn.Tick()
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
		if err := n.handleReady(); err != nil {
			n.log.Error("persisting raft state failed; stopping", "err", err)
			go n.Close()
			return
		}
	}
}

func (n *Node) step(msgs []Message) {
	for _, m := range msgs {
		g := n.groups[m.Group]
		if g == nil {
			continue // not open here (yet)
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
	binary.BigEndian.PutUint64(p.data, id)
	if err := g.rn.Propose(p.data); err != nil {
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
	// 1. Persist, all groups in one synced batch.
	var b tiers.Batch
	for _, r := range rds {
		if !raft.IsEmptySnap(r.rd.Snapshot) {
			return fmt.Errorf("multiraft: group %d: snapshots are not supported yet", r.g.id)
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
		if err := n.cfg.Store.Apply(context.Background(), &b, true); err != nil {
			return err
		}
		n.syncs++
		n.readies += uint64(len(rds))
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
	// 3. Apply, 4. advance.
	for _, r := range rds {
		if r.rd.SoftState != nil {
			n.mu.Lock()
			n.leaders[r.g.id] = NodeID(r.rd.SoftState.Lead)
			n.mu.Unlock()
		}
		for _, e := range r.rd.CommittedEntries {
			n.apply(r.g, e)
		}
		r.g.rn.Advance(r.rd)
	}
	return nil
}

func (n *Node) apply(g *group, e *pb.Entry) {
	switch e.GetType() {
	case pb.EntryType_EntryConfChange:
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
			g.rn.ApplyConfChange(&cc)
		}
		n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil)
	case pb.EntryType_EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
			g.rn.ApplyConfChange(&cc)
		}
		n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil)
	default:
		data := e.GetData()
		if len(data) < 8 {
			n.cfg.StateMachine.Apply(g.id, e.GetIndex(), nil) // a leader's empty entry
			return
		}
		v := n.cfg.StateMachine.Apply(g.id, e.GetIndex(), data[8:])
		id := binary.BigEndian.Uint64(data)
		if p, ok := n.waiters[id]; ok {
			delete(n.waiters, id)
			p.done <- result{value: v}
		}
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
