// Package cluster turns brainy-core processes into one regional cluster:
// it decides whether a node founds a cluster or joins one, carries raft
// messages over QUIC, places every partition's replicas on the members,
// forwards requests a node cannot answer, and reports the cluster in
// metrics.
//
// The pieces and where they live:
//
//	membership (cluster/membership)  who is alive: memberlist gossip + discovery
//	Node (this file)                 start-up, forwarding, metrics
//	raftNet (raftnet.go)             raft messages over QUIC, batched per peer
//	Place / NextStep (placement.go)  where replicas go, and the next step there
//	Plan / reconcile (reconcile.go)  each leader's steps per interval, bounded, applied
//	core.Node (Config.Raft)          partitions as raft groups, the state machine
//
// Placement is a pure function of the live membership (rendezvous hashing
// with zone spreading), computed by the leader of each partition's group,
// which applies it one raft membership change at a time. Two leaders never
// act on one group (raft has one leader per term, and a change proposed by
// a deposed leader is dropped), so the steps never conflict; a member list
// seen differently by two nodes only delays convergence.
//
// Moves are gentle on the foreground: a leader takes few steps per
// interval, catches up at most MaxCatchingUp partitions on new replicas at
// once, hands leaderships to their preferred nodes only once none of its
// partitions is catching up, and hands over its own leadership before its
// replica leaves. A write that finds its partition between leaders is
// routed to the next one (Node.write) rather than failing.
//
// Founding: a node whose store has never been part of a cluster waits for
// discovery (Config.BootstrapWait), asks every member it found whether it
// belongs to a cluster, and joins that cluster if one does; otherwise the
// member with the smallest id founds it (every partition a group of one)
// and the others join it. A node that was a replica before restarts into
// its groups and never founds.
package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/tuning"
	"github.com/soullabs/brainy/upstream"
)

// Peer is a member as the directory reports it.
type Peer struct {
	ID       string // node id
	QUICAddr string // where its QUIC server listens
	Zone     string // failure domain; may be empty
	// Reader marks a node of the reader role: it holds a non-voting
	// replica (a raft learner) of every partition, never a vote, and never
	// founds a cluster or leads a partition.
	Reader bool
}

// Directory lists the members that are alive now, this node included. In
// brainy-core it is cluster/membership; tests use a fixed list.
type Directory interface {
	Members() []Peer
}

// Defaults of the Config fields.
const (
	DefaultReplicationFactor   = 3
	DefaultDeadAfter           = time.Minute
	DefaultBootstrapWait       = 3 * time.Second
	DefaultReconcileInterval   = 200 * time.Millisecond
	DefaultMaxStepsPerInterval = 4
	DefaultMaxCatchingUp       = 2
	// DefaultSnapshotBytesPerSecond: see Config.SnapshotBytesPerSecond.
	DefaultSnapshotBytesPerSecond = 64 << 20
)

// MaxReplicationFactor bounds Config.ReplicationFactor: a raft group of
// more voters than this commits more slowly and gains nothing.
const MaxReplicationFactor = 7

// CheckReplicationFactor reports whether rf replicas per partition is a
// valid setting (1 to MaxReplicationFactor).
func CheckReplicationFactor(rf int) error {
	if rf < 1 || rf > MaxReplicationFactor {
		return fmt.Errorf("replication factor %d: want 1 to %d", rf, MaxReplicationFactor)
	}
	return nil
}

// Config configures a Node. Zero fields take the defaults given.
type Config struct {
	// Core configures the local node; Core.Raft is filled in by Start.
	// Core.NodeID is required: it names this node in the cluster.
	Core core.Config
	// Server serves this node's QUIC methods; Client calls other nodes.
	// Both required; Start registers its handlers on Server.
	Server *transport.Server
	Client *transport.Client
	// Directory lists the live members. Required.
	Directory Directory
	// GossipAddr is the host:port the regional gossip listens at, told to
	// cores that ask (Info.GossipAddr). Optional.
	GossipAddr string
	// ReplicationFactor is how many replicas each partition gets (fewer
	// while the cluster has fewer nodes). Default 3.
	ReplicationFactor int
	// DeadAfter is how long a member may be gone before its replicas are
	// re-created elsewhere. A shorter outage only costs the partitions it
	// led a new election. Default 1 minute.
	DeadAfter time.Duration
	// BootstrapWait is how long a node that never belonged to a cluster
	// looks for one before the smallest id among those found founds one.
	// Default 3 s; negative: found at once (a node with nothing to
	// discover).
	BootstrapWait time.Duration
	// ReconcileInterval is how often leaders move their groups toward
	// placement. Default 200 ms.
	ReconcileInterval time.Duration
	// MaxStepsPerInterval bounds membership changes and leadership
	// transfers per interval, so rebalancing never crowds out foreground
	// traffic. Default 4.
	MaxStepsPerInterval int
	// MaxCatchingUp bounds the partitions a leader has catching up a new
	// replica (a learner copying the log or a snapshot) at once: a node
	// joining a loaded cluster fills in a few partitions at a time, and
	// the copying never takes all the machines' time from foreground
	// requests. Default 2.
	MaxCatchingUp int
	// Profile is the node's tuning profile: tuning.Auto, Balanced,
	// ReadHeavy or WriteHeavy (package tuning). Default tuning.Auto.
	Profile string
	// TuneWindow is how often an auto node samples its traffic, and how
	// long a window of hot-item counts lasts. Default DefaultTuneWindow.
	TuneWindow time.Duration
	// NoHotReads keeps hot reads (leases.go) off whatever the profile: a
	// federated or following cluster's partitions take writes that do not
	// go through their leaders' client path.
	NoHotReads bool
	// Reader makes this node a reader: it holds a learner replica of every
	// partition, serves stale reads from it, never votes, never leads and
	// never founds a cluster (the directory must report it as Peer.Reader,
	// which is what other nodes place by). Default false: a voter.
	Reader bool
	// SnapshotBytesPerSecond bounds the bytes per second this node sends to
	// replicas installing snapshots, all of them together, so that copying
	// partitions to a new or recovering node never takes the network and
	// disk from foreground requests. Default 64 MiB/s; negative: no bound.
	SnapshotBytesPerSecond int
	// FindTimeout is a find's time budget: past it, partitions that have
	// not answered are named in the answer's Missing (find.go). Default
	// DefaultFindTimeout.
	FindTimeout time.Duration
	// TickInterval, ElectionTicks and LogKeep tune raft (see
	// core.RaftConfig).
	TickInterval  time.Duration
	ElectionTicks int
	LogKeep       int
	// Logger receives the cluster's events. Nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Profile == "" {
		c.Profile = tuning.Auto
	}
	if c.TuneWindow == 0 {
		c.TuneWindow = DefaultTuneWindow
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	if c.BootstrapWait == 0 {
		c.BootstrapWait = DefaultBootstrapWait
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.MaxStepsPerInterval == 0 {
		c.MaxStepsPerInterval = DefaultMaxStepsPerInterval
	}
	if c.MaxCatchingUp == 0 {
		c.MaxCatchingUp = DefaultMaxCatchingUp
	}
	if c.SnapshotBytesPerSecond == 0 {
		c.SnapshotBytesPerSecond = DefaultSnapshotBytesPerSecond
	}
	if c.FindTimeout == 0 {
		c.FindTimeout = DefaultFindTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Core.NodeID == "" {
		errs = append(errs, errors.New("Core.NodeID is required"))
	}
	if c.Server == nil || c.Client == nil || c.Directory == nil {
		errs = append(errs, errors.New("Server, Client and Directory are required"))
	}
	if err := CheckReplicationFactor(c.ReplicationFactor); err != nil {
		errs = append(errs, err)
	}
	if _, err := tuning.Lookup(c.Profile); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Node is a clustered brainy-core node. It serves the item API (it
// implements httpapi.Backend) for every partition, forwarding what it
// holds no replica of.
type Node struct {
	cfg  Config
	log  *slog.Logger
	core *core.Node
	net  *raftNet
	self multiraft.NodeID
	// verify proves members' identities (verify.go): only proven members
	// are placed, take part in raft, or are sent raft messages.
	verify *verifier

	mu       sync.Mutex
	ready    bool                         // core open; guarded by mu
	lastSeen map[string]time.Time         // member id → last time alive; guarded by mu
	peers    map[string]Peer              // member id → last known peer; guarded by mu
	forward  map[string]*upstream.Backend // QUIC address → client; guarded by mu
	peaks    [3]int                       // the most lastSeen, peers and forward held (shrink.Map); guarded by mu

	held          atomic.Pointer[[]bool]                    // partitions held here, refreshed by the reconciler
	alive         atomic.Pointer[map[multiraft.NodeID]Peer] // live members by raft id, refreshed by the reconciler
	forwarded     atomic.Uint64                             // requests sent to another node's leader (nodestats.Operations.Forwarded)
	snapshots     snapshotSessions
	snapshotPace  *rate.Limiter // nil: unbounded (Config.SnapshotBytesPerSecond)
	snapshotBytes atomic.Uint64 // received while installing snapshots
	rejectedRaft  atomic.Uint64 // raft batches refused: sender not who it claims (handleRaft)

	outside atomic.Pointer[Outside] // set by the federation (topology.go)
	// global runs finds of scope global; set by the federation (find.go).
	global atomic.Pointer[GlobalFind]
	topoMu sync.Mutex
	topoCh chan struct{} // closed when the pushed topology changes; guarded by topoMu

	// hot is the node's part in hot reads and self-tuning (tune.go);
	// hotReads whether hot reads are on.
	hot      *hotState
	hotReads atomic.Bool
	// followerReads: linearizable reads use a local replica that does not
	// lead, through a read-index round (tuning.Profile.FollowerReads).
	followerReads atomic.Bool
	followerRead  atomic.Uint64 // reads so answered
	// asked counts the item reads and writes asked of this node (by its
	// HTTP clients and edges; not those other cores forward): the mix
	// self-tuning judges.
	asked struct{ reads, writes atomic.Uint64 }

	stop chan struct{}
	wg   sync.WaitGroup
}

// Info is what a node answers to MethodClusterInfo.
type Info struct {
	ID         string `json:"id"`
	Clustered  bool   `json:"clustered"`      // belongs to a cluster (founded or joined)
	Partitions int    `json:"partitions"`     // the cluster's partition count, when clustered
	Held       []int  `json:"held,omitempty"` // the partitions this node holds a replica of
	// GossipAddr is where the node's regional gossip listens (Config.GossipAddr):
	// how a core placed in this region by latency joins it.
	GossipAddr string `json:"gossipAddr,omitempty"`
}

// Start opens the local node as a member of the cluster: founding it,
// joining it or rejoining it (see the package doc), then serves.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("component", "cluster"), self: core.RaftID(cfg.Core.NodeID),
		lastSeen: map[string]time.Time{}, peers: map[string]Peer{}, forward: map[string]*upstream.Backend{},
		stop: make(chan struct{}), topoCh: make(chan struct{}),
	}
	if bps := cfg.SnapshotBytesPerSecond; bps > 0 {
		// The burst holds any one chunk: a chunk fits a frame.
		n.snapshotPace = rate.NewLimiter(rate.Limit(bps), max(bps, transport.DefaultMaxFrameBytes))
	}
	cfg.Server.Handle(wire.MethodClusterInfo, coresOnly(func(context.Context, *transport.Peer, []byte) ([]byte, error) {
		return json.Marshal(n.info())
	}))
	clustered, err := core.IsClustered(ctx, cfg.Core.Store)
	if err != nil {
		return nil, err
	}
	bootstrap := false
	if !clustered {
		if bootstrap, cfg.Core.Partitions, err = n.findCluster(ctx); err != nil {
			return nil, err
		}
	}
	n.verify = newVerifier(cfg.Client, cfg.Core.NodeID, n.log)
	n.refreshAlive(n.verify.settle(cfg.Directory.Members()))
	n.net = newRaftNet(raftSenders(cfg.Client), n.addrOf, n.log)
	cc := cfg.Core
	cc.Raft = &core.RaftConfig{ID: n.self, Transport: n.net, Bootstrap: bootstrap,
		TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks, LogKeep: cfg.LogKeep, FetchPartition: n.fetchPartition}
	c, err := core.Open(ctx, cc)
	if err != nil {
		n.net.close()
		n.verify.close()
		return nil, err
	}
	n.core = c
	if err := n.startTuning(); err != nil {
		c.Close()
		n.net.close()
		n.verify.close()
		return nil, err
	}
	// Cluster methods answer cores only: an edge's certificate may ask for
	// items and changes, never speak raft, copy partitions or map the cluster.
	cfg.Server.Handle(wire.MethodRaft, coresOnly(n.handleRaft))
	// Edges' requests may belong to partitions held elsewhere: route them
	// through the cluster, which forwards (one hop) what is not here.
	itemrpc.Register(cfg.Server, leaderWrites{c, n}, n)
	cfg.Server.Handle(wire.MethodHotGet, coresOnly(n.handleHotGet))
	cfg.Server.Handle(wire.MethodHotInvalidate, coresOnly(n.handleHotInvalidate))
	itemrpc.RegisterSubscribe(cfg.Server, func() itemrpc.Subscription { return routedFeed{c.SubscribeChanges(1024), n} })
	// Finds: edges send their clients' here, where the indexes are, and
	// members their shares of a scattered find (find.go).
	itemrpc.RegisterFind(cfg.Server, cfg.Core.Limits, n)
	cfg.Server.Handle(wire.MethodListPartitions, coresOnly(itemrpc.ListPartitionsHandler(c.Partitions, c.ListPartitions)))
	cfg.Server.Handle(wire.MethodConflicts, coresOnly(itemrpc.ConflictsHandler(c.Partitions, c.Conflicts)))
	cfg.Server.Handle(wire.MethodGroupInfo, coresOnly(n.handleGroupInfo))
	cfg.Server.Handle(wire.MethodSnapshot, coresOnly(n.handleSnapshot))
	n.refreshHeld(ctx)
	cfg.Client.OnPush(n.relayPush)
	cfg.Client.OnConnect(n.subscribePeer)
	// Proving members' identities already connected to them, before there
	// was a core to relay to: subscribe on those connections now.
	for _, p := range *n.alive.Load() {
		if p.ID != cfg.Core.NodeID {
			n.subscribePeer(p.QUICAddr)
		}
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.wg.Add(3)
	go n.reconcileLoop()
	go n.watchLeaders()
	go n.tuneLoop()
	n.log.Info("member of the cluster", "node", cfg.Core.NodeID, "raft_id", uint64(n.self),
		"founded", bootstrap, "rejoined", clustered, "partitions", c.Partitions())
	return n, nil
}

// errNotCore refuses a cluster method to a caller whose certificate is
// not a core's.
var errNotCore = errors.New("cluster: this method answers cores only")

// coresOnly lets h answer only callers holding a core certificate.
func coresOnly(h transport.HandlerFunc) transport.HandlerFunc {
	return func(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
		if peer.Role() != pki.RoleCore {
			return nil, &transport.RemoteError{Code: wire.CodeForbidden,
				Message: fmt.Sprintf("%v: %q holds a %s certificate", errNotCore, peer.ID(), peer.Role())}
		}
		return h(ctx, peer, req)
	}
}

// errRaftSender refuses a raft batch whose sender is not who it claims.
var errRaftSender = errors.New("cluster: raft messages must come from the member they name")

// handleRaft steps a batch of raft messages from peer, only if every
// message names the caller as its sender and the caller is a live member:
// the identity in the caller's certificate (its node id) decides its raft
// id, so no certificate holder can speak for another node, depose a
// leader with an invented term, or open partitions here by naming them.
// What a member says as itself is checked message by message before raft
// sees it (multiraft's check).
func (n *Node) handleRaft(_ context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	msgs, err := decodeRaft(req)
	if err != nil {
		return nil, err
	}
	from := core.RaftID(peer.ID())
	if _, member := (*n.alive.Load())[from]; !member || from == n.self {
		n.rejectedRaft.Add(1)
		return nil, fmt.Errorf("%w: %q is not a live member", errRaftSender, peer.ID())
	}
	for _, m := range msgs {
		if multiraft.NodeID(m.Msg.GetFrom()) != from {
			n.rejectedRaft.Add(1)
			return nil, fmt.Errorf("%w: %q sent a message from raft id %x", errRaftSender, peer.ID(), m.Msg.GetFrom())
		}
	}
	n.core.Step(msgs)
	return nil, nil
}

func (n *Node) info() Info {
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	in := Info{ID: n.cfg.Core.NodeID, GossipAddr: n.cfg.GossipAddr}
	if ready {
		in.Clustered, in.Partitions = true, n.core.Partitions()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		in.Held, _ = n.heldPartitions(ctx)
		cancel()
	}
	return in
}

// findCluster decides between founding and joining (see the package doc).
// It returns the partition count to open the store with (0: the default).
func (n *Node) findCluster(ctx context.Context) (found bool, partitions int, err error) {
	deadline := time.Now().Add(max(n.cfg.BootstrapWait, 0))
	logged := false
	for {
		members := n.cfg.Directory.Members()
		// The voter with the smallest id seen founds. Never a reader: the
		// partitions it founded would have it as their only voter.
		smallest := ""
		if !n.cfg.Reader {
			smallest = n.cfg.Core.NodeID
		}
		for _, p := range members {
			if p.ID == n.cfg.Core.NodeID {
				continue
			}
			if !p.Reader && (smallest == "" || p.ID < smallest) {
				smallest = p.ID
			}
			in, err := n.askInfo(ctx, p)
			if err != nil {
				continue
			}
			if in.Clustered {
				n.log.Info("joining the cluster", "via", p.ID, "partitions", in.Partitions)
				return false, in.Partitions, nil
			}
		}
		if time.Now().After(deadline) {
			if smallest == n.cfg.Core.NodeID {
				n.log.Info("founding a cluster", "members_seen", len(members))
				return true, n.cfg.Core.Partitions, nil
			}
			if !logged {
				n.log.Info("waiting for the voter with the smallest id to found the cluster", "node", cmp.Or(smallest, "(none seen yet)"))
				logged = true
			}
		}
		select {
		case <-ctx.Done():
			return false, 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Node) askInfo(ctx context.Context, p Peer) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out, err := n.cfg.Client.Call(ctx, p.QUICAddr, wire.MethodClusterInfo, nil)
	if err != nil {
		return Info{}, err
	}
	var in Info
	if err := json.Unmarshal(out, &in); err != nil {
		return Info{}, fmt.Errorf("cluster: info from %s: %w", p.ID, err)
	}
	return in, nil
}

// addrOf maps a raft id to the member's QUIC address.
func (n *Node) addrOf(id multiraft.NodeID) (string, bool) {
	if p, ok := (*n.alive.Load())[id]; ok {
		return p.QUICAddr, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		if core.RaftID(p.ID) == id {
			return p.QUICAddr, true // gone from the directory, but try
		}
	}
	return "", false
}

// refreshAlive rebuilds the raft id → member map that every raft message
// and forwarded request looks up, from the proven members: once per
// reconcile interval rather than once per lookup.
//
// Quiesced partitions whose leader is no longer among them wake here, so
// that their followers elect another, and those led here whose voters
// among them are no quorum, so that the leader steps down (multiraft's
// quiesce.go).
func (n *Node) refreshAlive(members []Peer) {
	m := make(map[multiraft.NodeID]Peer, len(members))
	live := make(map[multiraft.NodeID]bool, len(members))
	for _, p := range members {
		m[core.RaftID(p.ID)] = p
		live[core.RaftID(p.ID)] = true
	}
	n.alive.Store(&m)
	if n.core != nil { // nil at the first refresh, before the node opens
		n.core.WakeForMembers(live)
	}
}

// LeaderAddr returns the QUIC address of partition part's leader as last
// known here; here is true when this node leads it, ok false when the
// leader is unknown or not a live member.
func (n *Node) LeaderAddr(part int) (addr string, here, ok bool) {
	lead := n.core.Leader(part)
	switch {
	case lead == 0:
		return "", false, false
	case lead == n.self:
		return "", true, true
	}
	p, ok := (*n.alive.Load())[lead]
	return p.QUICAddr, false, ok
}

// IsMember reports whether the node named id is a live member of this
// cluster, one whose certificate proved the id it announces
// (cluster/verify.go): a core of another cluster sharing the CA is not.
func (n *Node) IsMember(id string) bool {
	_, ok := (*n.alive.Load())[core.RaftID(id)]
	return ok
}

// Core returns the local node.
func (n *Node) Core() *core.Node { return n.core }

// Leave hands every leadership this node holds to another voter, so that
// the partitions it led do not wait out an election timeout when it stops.
func (n *Node) Leave(ctx context.Context) {
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return
	}
	moved := 0
	for _, g := range st {
		if g.Leader != n.self {
			continue
		}
		for _, v := range g.Voters {
			if v != n.self {
				n.beforeTransfer(ctx, int(g.Group))
				_ = n.core.TransferLeadership(ctx, int(g.Group), v)
				moved++
				break
			}
		}
	}
	// Give the transfers a moment to complete (bounded by ctx).
	deadline := time.Now().Add(2 * time.Second)
	for moved > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		still := 0
		st, _ := n.core.GroupStatus(ctx)
		for _, g := range st {
			if g.Leader == n.self && len(g.Voters) > 1 {
				still++
			}
		}
		if still == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.log.Info("handed over leaderships", "partitions", moved)
}

// Close stops the node (the caller closes the store afterwards).
func (n *Node) Close() error {
	close(n.stop)
	n.wg.Wait()
	n.verify.close()
	err := n.core.Close()
	n.net.close()
	return err
}

// viaPeers runs op against other members until one answers something
// other than "wrong node" or "not the leader" (a write reaches a
// partition's leader that way). It is how a node answers for a partition it
// holds no replica of; the request goes marked as forwarded, so the
// receiving node answers from its own replicas and never forwards it
// again: a request crosses at most one hop and cannot loop.
func (n *Node) viaPeers(ctx context.Context, op func(b *upstream.Backend) error) error {
	members := n.cfg.Directory.Members()
	slices.SortFunc(members, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	var notLeader error
	for _, p := range members {
		if p.ID == n.cfg.Core.NodeID {
			continue
		}
		b, err := n.forwarder(p.QUICAddr)
		if err != nil {
			return err
		}
		// A replica that does not lead the partition refuses a write
		// (wire.ErrNotLeader): the leader is another member.
		switch err = op(b); {
		case errors.Is(err, wire.ErrNotLeader):
			notLeader = err
		case !errors.Is(err, wire.ErrWrongNode):
			return err
		}
	}
	if notLeader != nil {
		return notLeader // between leaders: see write
	}
	return fmt.Errorf("%w: no member holds the partition", item.ErrUnavailable)
}

func (n *Node) forwarder(addr string) (*upstream.Backend, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if b := n.forward[addr]; b != nil {
		return b, nil
	}
	b, err := upstream.New(upstream.Config{Addrs: []string{addr}, Client: n.cfg.Client, Logger: n.log, Forwarded: true, Coalesce: true})
	if err != nil {
		return nil, err
	}
	n.forward[addr] = b
	return b, nil
}

// leaderOf returns a forwarder to the leader of the partition of tenant
// and id, when another live member leads it; nil when this node leads it,
// or the leader is unknown or gone (then the local replica tries: see
// write).
//
// Writes must go to the leader: raft here never forwards a proposal (see
// multiraft.ErrNotLeader). Reads go there too: a follower would answer
// only once it applied the latest writes, and followers learn commit
// indexes with the leader's next message — up to a heartbeat later on a
// quiet partition. The leader applies as soon as a quorum has the entry.
func (n *Node) leaderOf(tenant, id string) *upstream.Backend {
	lead := n.core.Leader(core.PartitionOf(tenant, id, n.core.Partitions()))
	if lead == 0 || lead == n.self {
		return nil
	}
	p, ok := (*n.alive.Load())[lead]
	if !ok {
		return nil
	}
	b, err := n.forwarder(p.QUICAddr)
	if err != nil {
		return nil
	}
	return b
}

// Get implements httpapi.Backend.
func (n *Node) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	n.asked.reads.Add(1)
	if b := n.leaderOf(tenant, id); b != nil && !item.StaleReads(ctx) {
		if n.hotReads.Load() {
			if it, err := n.hotRead(ctx, tenant, id); !errors.Is(err, errNoLease) {
				return it, err
			}
		}
		if n.followerReads.Load() {
			// Raft's follower read: a read-index round through the leader,
			// then this replica's state. No replica here, or no leader to
			// confirm with: forward instead.
			it, err := n.core.Get(ctx, tenant, id)
			if err == nil || errors.Is(err, item.ErrNotFound) {
				n.followerRead.Add(1)
				return it, err
			}
		}
		n.forwarded.Add(1)
		it, err := b.Get(ctx, tenant, id)
		if !errors.Is(err, item.ErrUnavailable) {
			return it, err
		}
		// A read can always be tried again: locally, then.
	}
	it, err := n.core.Get(ctx, tenant, id)
	if errors.Is(err, wire.ErrWrongNode) {
		err = n.viaPeers(ctx, func(b *upstream.Backend) (err error) { it, err = b.Get(ctx, tenant, id); return err })
	}
	return it, err
}

// Add implements httpapi.Backend.
func (n *Node) Add(ctx context.Context, tenant string, in *item.Item) (it *item.Item, err error) {
	if in.ID == "" {
		// The id decides the partition, hence where the write goes.
		cp := *in
		cp.ID = ulid.Make().String()
		in = &cp
	}
	err = n.write(ctx, tenant, in.ID,
		func(b *upstream.Backend) (err error) { it, err = b.Add(ctx, tenant, in); return err },
		func() (err error) { it, err = n.core.Add(ctx, tenant, in); return err })
	return it, err
}

// Put implements httpapi.Backend.
func (n *Node) Put(ctx context.Context, tenant string, in *item.Item, cond item.Cond) (it *item.Item, created bool, err error) {
	err = n.write(ctx, tenant, in.ID,
		func(b *upstream.Backend) (err error) { it, created, err = b.Put(ctx, tenant, in, cond); return err },
		func() (err error) { it, created, err = n.core.Put(ctx, tenant, in, cond); return err })
	return it, created, err
}

// Patch implements httpapi.Backend.
func (n *Node) Patch(ctx context.Context, tenant, id string, p *item.Patch, cond item.Cond) (it *item.Item, err error) {
	err = n.write(ctx, tenant, id,
		func(b *upstream.Backend) (err error) { it, err = b.Patch(ctx, tenant, id, p, cond); return err },
		func() (err error) { it, err = n.core.Patch(ctx, tenant, id, p, cond); return err })
	return it, err
}

// Delete implements httpapi.Backend.
func (n *Node) Delete(ctx context.Context, tenant, id string, cond item.Cond) error {
	return n.write(ctx, tenant, id,
		func(b *upstream.Backend) error { return b.Delete(ctx, tenant, id, cond) },
		func() error { return n.core.Delete(ctx, tenant, id, cond) })
}

// write makes a write where its partition's leader is: at the leader's
// node (remote) when another live member leads the partition, else here
// (local), or, when this node holds no replica, at a member that does.
//
// A node that turns out not to lead the partition — leadership moved
// after the choice was made — refuses the write without making it
// (core.ErrNotLeader; raft never forwards proposals, see
// multiraft.ErrNotLeader), and the write is routed again, pausing
// briefly while an election settles, until ctx ends or the propose
// timeout passes. So a write that finds its partition between leaders
// waits for the next one instead of failing, and never has an unknown
// outcome for that reason.
func (n *Node) write(ctx context.Context, tenant, id string, remote func(*upstream.Backend) error, local func() error) error {
	n.asked.writes.Add(1)
	deadline := time.Now().Add(n.core.ProposeTimeout())
	pause := time.Millisecond
	for {
		var err error
		if b := n.leaderOf(tenant, id); b != nil && id != "" {
			n.forwarded.Add(1)
			if err = remote(b); errors.Is(err, item.ErrUnavailable) || errors.Is(err, item.ErrOutcomeUnknown) ||
				errors.Is(err, context.DeadlineExceeded) {
				// The leader did not answer. Should it be gone while gossip
				// still counts it, a quiesced replica here would never
				// elect another: wake it. (A read that fails over here
				// wakes it by its read-index round.)
				n.core.Wake(core.PartitionOf(tenant, id, n.core.Partitions()))
			}
		} else if err = n.leaderWrite(ctx, tenant, id, local); errors.Is(err, wire.ErrWrongNode) {
			err = n.viaPeers(ctx, remote)
		}
		if !errors.Is(err, wire.ErrNotLeader) || !time.Now().Add(pause).Before(deadline) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// List implements httpapi.Backend: from the local replicas when this node
// holds every partition, else merged with other members' (list.go).
func (n *Node) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	n.asked.reads.Add(1)
	p, err := n.core.List(ctx, tenant, opts)
	if errors.Is(err, wire.ErrWrongNode) {
		p, err = n.listAcross(ctx, tenant, opts)
	}
	return p, err
}

// Healthy implements httpapi.Backend.
func (n *Node) Healthy() bool { return n.core.Healthy() }

// Metrics implements httpapi.Backend: the local node's figures with the
// cluster's membership, partitions and replication filled in.
func (n *Node) Metrics() nodestats.Snapshot {
	s := n.core.Metrics()
	s.Operations.Forwarded = n.forwarded.Load()
	s.Tuning = n.tuningStats()
	members := n.cfg.Directory.Members()
	names := map[multiraft.NodeID]string{}
	for _, p := range members {
		names[core.RaftID(p.ID)] = p.ID
	}
	name := func(id multiraft.NodeID) string {
		if v, ok := names[id]; ok {
			return v
		}
		return fmt.Sprintf("raft-%x", uint64(id))
	}
	st, _ := n.core.GroupStatus(context.Background())
	leaders := map[string]int{}
	var lag uint64
	factor := 0
	s.Partitions = s.Partitions[:0]
	for _, g := range st {
		pi := nodestats.Partition{ID: int(g.Group), Leader: name(g.Leader), Applied: g.Applied}
		if g.Leader == 0 {
			pi.Leader = ""
		}
		for _, v := range g.Voters {
			pi.Voters = append(pi.Voters, name(v))
		}
		for _, v := range g.Learners {
			pi.Learners = append(pi.Learners, name(v))
		}
		s.Partitions = append(s.Partitions, pi)
		if g.Leader != 0 {
			leaders[name(g.Leader)]++
		}
		factor = max(factor, len(g.Voters))
		for _, m := range g.Match {
			if g.Commit > m {
				lag = max(lag, g.Commit-m)
			}
		}
	}
	nodes := nodestats.Nodes{Total: len(members), Healthy: len(members), Self: n.cfg.Core.NodeID}
	for _, p := range members {
		role := "follower"
		switch {
		case p.Reader:
			role = "reader"
		case leaders[p.ID] > 0:
			role = "leader"
		}
		nodes.List = append(nodes.List, nodestats.Node{ID: p.ID, Role: role, Address: p.QUICAddr, Healthy: true, Shards: leaders[p.ID]})
	}
	// The guide's single "leader" is the node leading the most partitions.
	best := 0
	for id, c := range leaders {
		if c > best || (c == best && id < nodes.Leader) {
			nodes.Leader, best = id, c
		}
	}
	n.mu.Lock()
	for id, seen := range n.lastSeen {
		if !slices.ContainsFunc(members, func(p Peer) bool { return p.ID == id }) {
			nodes.Total++
			nodes.List = append(nodes.List, nodestats.Node{ID: id, Role: "down since " + seen.UTC().Format(time.RFC3339), Healthy: false})
		}
	}
	n.mu.Unlock()
	s.Nodes = nodes
	s.Shards.Replicas, s.Shards.Local = len(st), len(st)
	s.Shards.Leaders = leaders[n.cfg.Core.NodeID]
	rs := n.core.RaftStats()
	s.Operations.HandlerPanics = n.cfg.Server.Metrics().HandlerPanics + n.cfg.Client.Metrics().HandlerPanics
	s.Replication = nodestats.Replication{Factor: factor, Mode: "raft", LagEntries: lag, Lag: lag,
		Elections: rs.Elections, SnapshotsSent: rs.SnapshotsSent, SnapshotsInstalled: rs.SnapshotsInstalled,
		SnapshotBytes: n.snapshotBytes.Load(), RejectedMessages: n.rejectedRaft.Load() + rs.Rejected, Quiesced: rs.Quiesced}
	return s
}
