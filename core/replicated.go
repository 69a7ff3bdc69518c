package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers"
)

// RaftConfig turns a node into a replica of a cluster: every partition is
// a raft group (package multiraft), and writes are proposed to it instead
// of committed locally.
//
// The write path becomes
//
//	caller: encode the Command ──Propose──▶ raft (forwarded to the leader)
//	multiraft driver: log synced on a quorum ──▶ Apply on every replica
//	raftSM.Commit: one unsynced store batch per driver cycle ──▶ reply
//
// The state machine is the same stateMachine.apply as on a single node, so
// a command does the same thing on every replica, and an item's version —
// its partition's raft log index — is the same everywhere.
type RaftConfig struct {
	// ID is this node's replica id in every group; not 0. Derive it from
	// the node id (see RaftID) so that it is stable across restarts.
	ID multiraft.NodeID
	// Transport carries raft messages to the other nodes. Required.
	Transport multiraft.Transport
	// Bootstrap creates, for every partition this node holds no state of,
	// a group whose only voter is this node: the first node of a cluster.
	// Without it the node waits for leaders to add it to groups.
	Bootstrap bool
	// TickInterval and ElectionTicks tune failure detection; zero takes
	// multiraft's defaults (20 ms × 10: a new leader within ~0.5 s).
	TickInterval  time.Duration
	ElectionTicks int
	// LogKeep is how many applied entries each group keeps for lagging
	// replicas (multiraft.Config.LogKeep); zero takes multiraft's default.
	LogKeep int
	// NoQuiesce keeps idle partitions' groups heartbeating
	// (multiraft.Config.NoQuiesce). Default false: idle groups quiesce,
	// and the cluster wakes those whose leader left (Node.WakeForMembers).
	NoQuiesce bool
	// FetchPartition streams partition part's keys and values, as one
	// consistent snapshot, from node from (see Node.PartitionSnapshot on
	// its side), whose replica must have applied index or more: if it has
	// not, or holds none, FetchPartition fails before calling fn. A
	// replica whose group's log was compacted past what it holds installs
	// a snapshot this way. Required in a cluster of more than one node.
	FetchPartition func(ctx context.Context, from multiraft.NodeID, part int, index uint64, fn func(key, value []byte) error) error
	// ProposeTimeout bounds how long a write or a linearizable read waits
	// for its partition to have a leader before it fails with
	// item.ErrUnavailable. Default 3 s.
	ProposeTimeout time.Duration
}

// ErrNotHere is returned by a clustered node for a partition it holds no
// replica of: the request belongs to another node. It is
// wire.ErrWrongNode, so it crosses the wire as itself, and wraps
// item.ErrUnavailable, so a caller that cannot forward answers 503.
var ErrNotHere = wire.ErrWrongNode

// ErrNotLeader: a write reached a replica of its partition that does not
// lead it; it was not made. It is wire.ErrNotLeader, so a write forwarded
// to a node that has just lost the leadership goes back to its sender,
// which routes it again.
var ErrNotLeader = wire.ErrNotLeader

// RaftID derives a raft replica id from a node id: its FNV-1a hash, so
// that it is stable across restarts and the same on every node (0, which
// raft reserves, becomes 1).
func RaftID(nodeID string) multiraft.NodeID {
	h := fnv.New64a()
	h.Write([]byte(nodeID))
	if id := h.Sum64(); id != 0 {
		return multiraft.NodeID(id)
	}
	return 1
}

// openRaft starts the raft groups; called by Open instead of starting the
// single-node pipeline.
func (n *Node) openRaft(ctx context.Context) error {
	rc := n.cfg.Raft
	rc.ProposeTimeout = n.ProposeTimeout()
	n.rsm = &raftSM{n: n, overlay: map[string]overlayEntry{}, touched: make([]bool, n.nparts)}
	n.stored.init(n.nparts)
	for p := range n.nparts {
		n.stored.set(p, &n.sm.parts[p])
	}
	if n.cfg.RaftLogDir != "" {
		l, err := raftlog.Open(raftlog.Config{Dir: n.cfg.RaftLogDir, Logger: n.cfg.Logger.With("component", "raftlog")})
		if err != nil {
			return fmt.Errorf("core: opening the raft log: %w", err)
		}
		n.raftLog = l
	}
	err := n.startRaft(ctx, rc)
	if err != nil && n.raftLog != nil {
		_ = n.raftLog.Close()
		n.raftLog = nil
	}
	return err
}

func (n *Node) startRaft(ctx context.Context, rc *RaftConfig) error {
	mr, err := multiraft.New(multiraft.Config{
		ID: rc.ID, Store: n.store, Log: n.raftLog, Transport: rc.Transport, StateMachine: n.rsm,
		TickInterval: rc.TickInterval, ElectionTicks: rc.ElectionTicks, LogKeep: rc.LogKeep, NoQuiesce: rc.NoQuiesce,
		AcceptGroup: func(g multiraft.GroupID) bool { return int(g) < n.nparts },
		Logger:      n.cfg.Logger,
	})
	if err != nil {
		return err
	}
	n.raft = mr
	fail := func(err error) error {
		mr.Close()
		n.raft = nil
		return err
	}
	var b tiers.Batch
	b.Set(metaKey("raft"), []byte{1})
	if err := n.store.Apply(ctx, &b, true); err != nil {
		return fail(fmt.Errorf("core: writing node metadata: %w", err))
	}
	for p := range n.nparts {
		var peers []multiraft.NodeID
		if n.sm.parts[p].applied == 0 && rc.Bootstrap {
			peers = []multiraft.NodeID{rc.ID}
		}
		if n.sm.parts[p].applied == 0 && peers == nil {
			has, err := mr.HasLog(ctx, multiraft.GroupID(p))
			if err != nil {
				return fail(fmt.Errorf("core: partition %d: %w", p, err))
			}
			if !has {
				continue // not a replica (yet): a leader opens it by writing to it
			}
		}
		if err := mr.OpenGroup(ctx, multiraft.GroupID(p), peers); err != nil {
			return fail(err)
		}
	}
	return nil
}

// IsClustered reports whether store belongs to a node that has run as a
// cluster replica: such a node restarts into its cluster and never
// bootstraps a new one.
func IsClustered(ctx context.Context, store tiers.Store) (bool, error) {
	_, err := store.Get(ctx, metaKey("raft"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, tiers.ErrNotFound):
		return false, nil
	}
	return false, err
}

// Step delivers raft messages from another node (its transport's receive
// side). It is a no-op on a single node.
func (n *Node) Step(msgs []multiraft.Message) {
	if n.raft != nil {
		n.raft.Step(msgs)
	}
}

// RemoveReplica destroys this node's replica of partition part — its raft
// state and its items — once the partition's group no longer counts this
// node (it was moved elsewhere). The caller must have checked that with
// the group's leader.
func (n *Node) RemoveReplica(ctx context.Context, part int) error {
	if n.raft == nil || part < 0 || part >= n.nparts {
		return fmt.Errorf("core: no replica of partition %d to remove", part)
	}
	return n.raft.RemoveGroup(ctx, multiraft.GroupID(part), func() error {
		// On the driver goroutine: n.sm is ours.
		if err := n.dropPartition(ctx, part); err != nil {
			return err
		}
		n.sm.parts[part] = partState{}
		return nil
	})
}

// The replica control a cluster needs (docs/design/20261205_core_cluster_seam.md).
// The node owns its raft groups — it opens them, drives them and closes
// them — and package cluster steers them only through these methods,
// which name partitions, not raft groups. On a single node (no
// Config.Raft) there are no groups: they report none and refuse changes.

var errNoRaft = errors.New("core: not a cluster replica")

// GroupStatus reports every partition this node holds a replica of, as
// its raft group sees it.
func (n *Node) GroupStatus(ctx context.Context) ([]multiraft.GroupStatus, error) {
	if n.raft == nil {
		return nil, nil
	}
	return n.raft.Status(ctx)
}

// Leader returns the replica id of partition part's leader as this node
// last heard it, or 0 when unknown.
func (n *Node) Leader(part int) multiraft.NodeID {
	if n.raft == nil {
		return 0
	}
	return n.raft.Leader(multiraft.GroupID(part))
}

// Leaders returns each partition's leader as last known here, by
// partition, and a channel closed at the next change (see
// multiraft.Node.Leaders). A node without raft has none.
func (n *Node) Leaders() (map[multiraft.GroupID]multiraft.Lead, <-chan struct{}) {
	if n.raft == nil {
		return nil, nil
	}
	return n.raft.Leaders()
}

// ChangeReplicas proposes a membership change of partition part's group
// (this node must lead it) and waits until it is applied.
func (n *Node) ChangeReplicas(ctx context.Context, part int, cc *pb.ConfChangeV2) error {
	if n.raft == nil {
		return errNoRaft
	}
	return n.raft.ChangeReplicas(ctx, multiraft.GroupID(part), cc)
}

// TransferLeadership asks partition part's group, which this node leads,
// to hand its leadership to replica to.
func (n *Node) TransferLeadership(ctx context.Context, part int, to multiraft.NodeID) error {
	if n.raft == nil {
		return errNoRaft
	}
	return n.raft.TransferLeadership(ctx, multiraft.GroupID(part), to)
}

// Wake wakes partition part's group here if it is quiesced (see
// multiraft's quiesce.go): a request for it could not reach its leader.
func (n *Node) Wake(part int) {
	if n.raft != nil {
		n.raft.Wake(multiraft.GroupID(part))
	}
}

// WakeForMembers wakes the quiesced groups here that the live members
// say cannot stay so: led by a node not in live, or led here without a
// live quorum (multiraft.Node.WakeForMembers).
func (n *Node) WakeForMembers(live map[multiraft.NodeID]bool) {
	if n.raft != nil {
		n.raft.WakeForMembers(live)
	}
}

// RaftStats returns the raft groups' counters (zero on a single node).
func (n *Node) RaftStats() multiraft.Stats {
	if n.raft == nil {
		return multiraft.Stats{}
	}
	return n.raft.Stats()
}

// ProposeTimeout is RaftConfig.ProposeTimeout with its default applied:
// how long a write may wait for its partition to have a leader.
func (n *Node) ProposeTimeout() time.Duration {
	if t := n.cfg.Raft.ProposeTimeout; t > 0 {
		return t
	}
	return 3 * time.Second
}

// proposeRaft replicates cmd through its partition's group, retrying while
// the group has no leader, up to ProposeTimeout.
func (n *Node) proposeRaft(ctx context.Context, cmd *Command) result {
	return n.proposeRaftTo(ctx, PartitionOf(cmd.Tenant, cmd.ID, n.nparts), cmd)
}

// proposeRaftTo replicates cmd through partition part's group.
func (n *Node) proposeRaftTo(ctx context.Context, part int, cmd *Command) result {
	if n.isClosed() {
		return result{err: item.ErrClosed}
	}
	if err := n.failure(); err != nil {
		return result{err: fmt.Errorf("%w: %v", item.ErrUnavailable, err)}
	}
	enc := cmd.AppendEncode(nil)
	var v any
	err := n.retryNoLeader(ctx, part, false, func(ctx context.Context) (err error) {
		v, err = n.raft.Propose(ctx, multiraft.GroupID(part), enc)
		return err
	})
	if err != nil {
		return result{err: err}
	}
	return v.(result)
}

// CatchUp brings this node's replica of partition part up to date with
// its leader (a read-index round, as a follower read does): once it
// returns nil, reads of the partition made stale (item.WithStaleReads)
// see every write acknowledged before the call. ErrNotHere when this node
// holds no replica of part; nil at once on a node without raft.
func (n *Node) CatchUp(ctx context.Context, part int) error {
	if part < 0 || part >= n.nparts {
		return item.Invalid("invalid_partition", "partition %d does not exist", part)
	}
	if n.raft == nil {
		return nil
	}
	return n.readBarrier(ctx, part)
}

// readBarrier waits until this replica of part has applied every write
// acknowledged before the call.
func (n *Node) readBarrier(ctx context.Context, part int) error {
	if n.raft.SoleVoterLeader(multiraft.GroupID(part)) {
		return nil
	}
	return n.retryNoLeader(ctx, part, true, func(ctx context.Context) error {
		return n.raft.ReadIndex(ctx, multiraft.GroupID(part))
	})
}

// retryNoLeader runs op until it succeeds, fails for a reason other than
// a missing leader, or ProposeTimeout passes.
//
// ErrNoLeader means raft dropped the request before it entered any log,
// so trying again is always safe. A timeout is different: raft may have
// forwarded the request to a leader that lost it — or that committed it
// after all, late. An idempotent op (a read barrier) is tried again then,
// each attempt getting a slice of the time; a write is not, since a second
// proposal could apply it twice: its outcome is unknown, and the caller
// hears item.ErrUnavailable.
func (n *Node) retryNoLeader(ctx context.Context, part int, idempotent bool, op func(context.Context) error) error {
	timeout := n.ProposeTimeout()
	deadline := time.Now().Add(timeout)
	// Short pauses: a leadership transfer, the common case of a partition
	// between leaders, settles within a few milliseconds.
	backoff := time.Millisecond
	for {
		attempt := time.Until(deadline)
		if idempotent {
			attempt = min(attempt, time.Second)
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := op(actx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, multiraft.ErrUnknownGroup):
			return ErrNotHere
		case errors.Is(err, multiraft.ErrNotLeader):
			// The caller routes it to the leader (cluster does), or
			// answers 503 if it cannot.
			return fmt.Errorf("%w (partition %d)", ErrNotLeader, part)
		case errors.Is(err, multiraft.ErrStopped):
			return item.ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !idempotent:
			return fmt.Errorf("%w: partition %d: no answer within %v; the write may or may not have happened", item.ErrUnavailable, part, timeout)
		case !errors.Is(err, multiraft.ErrNoLeader) && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("%w: partition %d: %v", item.ErrUnavailable, part, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: partition %d has no leader", item.ErrUnavailable, part)
		}
		if errors.Is(err, multiraft.ErrNoLeader) {
			time.Sleep(backoff)
			backoff = min(2*backoff, 20*time.Millisecond)
		}
	}
}

// raftSM is the multiraft.StateMachine of a clustered node. Its methods
// run on the multiraft driver goroutine, which owns n.sm in cluster mode.
//
// Applies of one driver cycle accumulate in batch and overlay; Flush
// hands them to the driver's store write (mostly unsynced, and only once
// the cycle's raft log write has returned: the log is what makes them
// durable — after a crash the entries after the stored applied index are
// applied again); Commit then updates the record cache and feeds
// subscribers, and only then do proposers hear back.
type raftSM struct {
	n       *Node
	batch   tiers.Batch
	overlay map[string]overlayEntry // this cycle's writes, for later commands of the cycle
	items   []itemWrite
	touched []bool
	parts   []int
	flushed []int // the partitions of the cycle being stored, for Commit
}

type overlayEntry struct {
	val  []byte // nil: deleted
	item int    // 1 + the write's index in items; 0 if not an item
}

func (r *raftSM) touch(part int) {
	if !r.touched[part] {
		r.touched[part] = true
		r.parts = append(r.parts, part)
	}
}

// errSnapshotted answers a proposer whose write was applied as part of a
// snapshot this replica installed: it happened, but its result is gone.
var errSnapshotted = fmt.Errorf("%w: the write was applied, but by a snapshot; read the item to see it", item.ErrUnavailable)

func (r *raftSM) Apply(g multiraft.GroupID, index uint64, data []byte) any {
	part := int(g)
	if index <= r.n.sm.parts[part].applied {
		return result{err: errSnapshotted} // in the snapshot's state already
	}
	r.touch(part)
	if data == nil {
		r.n.sm.apply(r, r, part, index, nil)
		return nil
	}
	var cmd Command
	if err := cmd.decode(data); err != nil {
		// A command that does not decode still consumes its index on every
		// replica alike; its proposer hears why.
		r.n.sm.apply(r, r, part, index, nil)
		return result{err: err}
	}
	return r.n.sm.apply(r, r, part, index, &cmd)
}

func (r *raftSM) ApplyConfState(g multiraft.GroupID, index uint64, cs *pb.ConfState) {
	part := int(g)
	if index <= r.n.sm.parts[part].applied {
		return // the snapshot's state holds this membership or a later one
	}
	r.touch(part)
	r.n.sm.apply(r, r, part, index, nil)
	b, err := proto.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("core: marshaling a conf state: %v", err))
	}
	r.n.sm.parts[part].conf = b
}

func (r *raftSM) Applied(g multiraft.GroupID) (uint64, *pb.ConfState) {
	ps := &r.n.sm.parts[g]
	if ps.conf == nil {
		return ps.applied, nil
	}
	var cs pb.ConfState
	if err := proto.Unmarshal(ps.conf, &cs); err != nil {
		panic(fmt.Sprintf("core: partition %d: stored conf state: %v", g, err))
	}
	return ps.applied, &cs
}

// ApplySnapshot replaces partition g's keys with node from's. It runs off
// the driver goroutine (see multiraft.StateMachine): it touches only the
// partition's keys in the store and the record cache, and returns the
// partition's new state for the driver to adopt.
func (r *raftSM) ApplySnapshot(ctx context.Context, g multiraft.GroupID, from multiraft.NodeID, snap *pb.Snapshot) (func(), error) {
	n := r.n
	part := int(g)
	fetch := n.cfg.Raft.FetchPartition
	if fetch == nil {
		return nil, errors.New("core: no FetchPartition to install a snapshot with")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var b tiers.Batch
	var state []byte
	dropped := false
	// A reader may have cached a key's absence between the drop and the
	// copy's write: the written item keys leave the cache afterwards.
	forget := func() {
		var writes []itemWrite
		_ = b.Each(func(del bool, key, val []byte) error {
			if isItemKey(key) {
				n.cache.set(string(key), nil)
				w := itemWrite{key: string(key)}
				if !del {
					w.val = val
				}
				writes = append(writes, w)
			}
			return nil
		})
		n.vectors.apply(writes)
	}
	err := fetch(ctx, from, part, snap.GetMetadata().GetIndex(), func(key, value []byte) error {
		if !dropped {
			// The partition's keys go once the sender has begun to answer: a
			// sender that cannot serve the snapshot (it holds no replica, or
			// one behind the snapshot, as a lying peer's snapshot message
			// would have it) fails before, and this replica keeps its state.
			if err := n.dropPartition(ctx, part); err != nil {
				return err
			}
			dropped = true
		}
		if !bytes.HasPrefix(key, appendPartition(nil, part, 0)[:3]) {
			return fmt.Errorf("core: snapshot of partition %d holds key %q of another", part, key)
		}
		if bytes.Equal(key, stateKey(part)) {
			state = bytes.Clone(value)
		}
		b.Set(key, value)
		if b.Size() >= 1<<20 {
			if err := n.store.Apply(ctx, &b, false); err != nil {
				return err
			}
			forget()
			b.Reset()
		}
		return nil
	})
	if err != nil && !dropped {
		return nil, fmt.Errorf("%w: core: fetching partition %d from %x: %w", multiraft.ErrSnapshotUnavailable, part, uint64(from), err)
	}
	if err != nil {
		return nil, fmt.Errorf("core: fetching partition %d from %x: %w", part, uint64(from), err)
	}
	if !dropped {
		return nil, fmt.Errorf("%w: core: partition %d from %x is empty", multiraft.ErrSnapshotUnavailable, part, uint64(from))
	}
	var ps partState
	if state == nil {
		return nil, fmt.Errorf("core: the snapshot of partition %d from %x has no partition state", part, uint64(from))
	}
	if err := ps.decode(state); err != nil {
		return nil, fmt.Errorf("core: the snapshot of partition %d: %w", part, err)
	}
	if ps.applied < snap.GetMetadata().GetIndex() {
		return nil, fmt.Errorf("core: the snapshot of partition %d from %x is at %d, behind raft's %d", part, uint64(from), ps.applied, snap.GetMetadata().GetIndex())
	}
	if err := n.store.Apply(ctx, &b, true); err != nil {
		return nil, err
	}
	forget()
	return func() {
		n.sm.parts[part] = ps
		n.stored.set(part, &ps)
		n.ops.snapshots.Add(1)
	}, nil
}

// dropPartition deletes every key of partition part: on the driver
// goroutine, or off it for a partition whose group waits (a snapshot's
// copy).
func (n *Node) dropPartition(ctx context.Context, part int) error {
	it, err := n.store.NewIter(ctx, appendPartition(nil, part, 0), appendPartition(nil, part+1, 0))
	if err != nil {
		return err
	}
	var b tiers.Batch
	var gone []itemWrite
	for it.Next() {
		b.Delete(it.Key())
		if isItemKey(it.Key()) {
			n.cache.set(string(it.Key()), nil)
			gone = append(gone, itemWrite{key: string(it.Key())})
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := n.store.Apply(ctx, &b, false); err != nil {
		return err
	}
	n.vectors.apply(gone)
	return nil
}

// PartitionSnapshot returns an iterator over every key of partition part
// as one consistent snapshot: the items, their index and the partition's
// state (applied index, membership). Another node installs it to catch
// up when the log it needs was compacted (RaftConfig.FetchPartition).
func (n *Node) PartitionSnapshot(ctx context.Context, part int) (tiers.Iterator, error) {
	if part < 0 || part >= n.nparts {
		return nil, fmt.Errorf("core: no partition %d", part)
	}
	return n.store.NewIter(ctx, appendPartition(nil, part, 0), appendPartition(nil, part+1, 0))
}

// Flush hands this cycle's writes, with the state (applied index,
// membership) of every partition they touched, to the driver's store write.
func (r *raftSM) Flush(b *tiers.Batch) {
	n := r.n
	r.flushed = r.flushed[:0]
	for _, part := range r.parts {
		r.batch.Set(stateKey(part), n.sm.parts[part].encode())
		r.touched[part] = false
		r.flushed = append(r.flushed, part)
	}
	r.parts = r.parts[:0]
	// The store write follows; its items' cache fills wait for Commit.
	r.n.cache.begin(r.items)
	b.Append(&r.batch)
}

// Commit runs once the cycle's writes are stored: the record cache and
// the change feed learn them, and only then do proposers hear back.
func (r *raftSM) Commit() error {
	n := r.n
	if r.batch.Len() == 0 {
		return nil
	}
	n.ops.commits.Add(1)
	for _, w := range r.items {
		n.cache.set(w.key, w.val)
	}
	n.vectors.apply(r.items)
	n.publish(r.items)
	for _, part := range r.flushed {
		n.stored.set(part, &n.sm.parts[part])
	}
	n.stored.notify()
	r.batch.Reset()
	clear(r.overlay)
	clear(r.items)
	r.items = r.items[:0]
	return nil
}

// get implements view: this cycle's writes, then the cache, then the store.
func (r *raftSM) get(key []byte) ([]byte, bool, error) {
	if e, ok := r.overlay[string(key)]; ok {
		return e.val, e.val != nil, nil
	}
	if v, ok := r.n.cache.get(key); ok {
		return v, true, nil
	}
	v, err := r.n.store.Get(context.Background(), key)
	if errors.Is(err, tiers.ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// set and del implement writer.
func (r *raftSM) set(key, val []byte) {
	r.batch.Set(key, val)
	r.record(key, append(make([]byte, 0, len(val)+1), val...))
}

func (r *raftSM) del(key []byte) {
	r.batch.Delete(key)
	r.record(key, nil)
}

// record notes a write in the overlay and, for an item, in items: one
// entry per key, the last write (see itemWrite).
func (r *raftSM) record(key, val []byte) {
	e, ok := r.overlay[string(key)]
	if !ok && isItemKey(key) {
		r.items = append(r.items, itemWrite{key: string(key)})
		e.item = len(r.items)
	}
	e.val = val
	if e.item > 0 {
		r.items[e.item-1].val = val
		r.overlay[r.items[e.item-1].key] = e
		r.n.ops.writes.Add(1)
	} else {
		r.overlay[string(key)] = e
	}
}

// WithStaleReads marks ctx so that a clustered node's Get and List answer
// from the local replica without first confirming with the partition's
// leader (see item.WithStaleReads).
func WithStaleReads(ctx context.Context) context.Context { return item.WithStaleReads(ctx) }

func isStale(ctx context.Context) bool { return item.StaleReads(ctx) }

// StoredNodeID returns the node id kept in store, or "" for a new store.
func StoredNodeID(ctx context.Context, store tiers.Store) (string, error) {
	v, err := store.Get(ctx, metaKey("node-id"))
	switch {
	case err == nil:
		return string(v), nil
	case errors.Is(err, tiers.ErrNotFound):
		return "", nil
	}
	return "", fmt.Errorf("core: reading node id: %w", err)
}

// StoredRegion returns the region a store was opened in, "" when none was
// recorded (a new store, or one never given a region).
func StoredRegion(ctx context.Context, store tiers.Store) (string, error) {
	v, err := store.Get(ctx, metaKey("region"))
	switch {
	case err == nil:
		return string(v), nil
	case errors.Is(err, tiers.ErrNotFound):
		return "", nil
	}
	return "", fmt.Errorf("core: reading region: %w", err)
}

// LeadingSince returns when this node learned it leads partition part,
// in its current term; false when it does not lead it.
func (n *Node) LeadingSince(part int) (time.Time, bool) {
	if n.raft == nil {
		return time.Time{}, false
	}
	return n.raft.LeadingSince(multiraft.GroupID(part))
}

// ElectionTimeout is the raft groups' election timeout in force; 0 on a
// node without raft.
func (n *Node) ElectionTimeout() time.Duration {
	if n.raft == nil {
		return 0
	}
	return n.raft.ElectionTimeout()
}
