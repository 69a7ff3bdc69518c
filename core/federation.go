package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers"
)

// The core side of replication between regions (package federation does
// the rest). A partition's leader reads what local writes changed from its
// raft log and ships the items' current records; the receiving region
// proposes them as one OpReplicate command to the same partition's group,
// which merges each (mergeRemote) and records the source's position in the
// same apply.
//
// What crosses is state, not operations: a record with its clock time,
// origin and version vector. Merging states is commutative, associative
// and idempotent, so regions converge whatever the order, the duplicates,
// or the path (a relayed value is merged like a direct one). A PATCH is
// resolved against its own region's item, and its result is what the other
// regions see: a PATCH concurrent with a PUT elsewhere is a conflict, won
// as a whole by one of them.

// committedIndex tracks, per partition, the applied index whose writes
// are in the store (raftSM.Commit): a reader of the log may read those
// items and find the writes there. Not on a single node.
type committedIndex struct {
	idx []atomic.Uint64
	// deleted is, per partition, partState.deleted as of idx: stored
	// before idx, so a reader of idx then deleted sees every delete
	// through idx counted.
	deleted []atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed at the next commit; guarded by mu
	waiting atomic.Bool   // someone holds changed
}

func (c *committedIndex) init(parts int) {
	c.idx, c.deleted = make([]atomic.Uint64, parts), make([]atomic.Uint64, parts)
}

// set records part's stored state; called once per partition per commit
// by the driver.
func (c *committedIndex) set(part int, ps *partState) {
	c.deleted[part].Store(ps.deleted)
	c.idx[part].Store(ps.applied)
}

// notify wakes whoever waits for a commit.
func (c *committedIndex) notify() {
	if !c.waiting.Load() {
		return
	}
	c.mu.Lock()
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
	c.waiting.Store(false)
	c.mu.Unlock()
}

// Committed returns partition part's applied index whose writes are
// stored, and a channel closed at the node's next commit (of any
// partition). 0 and nil on a single node.
func (n *Node) Committed(part int) (uint64, <-chan struct{}) {
	c := &n.stored
	if n.raft == nil || part < 0 || part >= len(c.idx) {
		return 0, nil
	}
	c.mu.Lock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	ch := c.changed
	c.waiting.Store(true)
	c.mu.Unlock()
	return c.idx[part].Load(), ch
}

// Clock returns the node's hybrid clock.
func (n *Node) Clock() *Clock { return n.clock }

// Region is the region this node's writes come from (Config.Region).
func (n *Node) Region() string { return n.cfg.Region }

// Changes is a partition's item changes after a log position: the items'
// current stored records (tombstones for deleted ones), which include the
// changes and possibly later ones.
type Changes struct {
	Values []RemoteValue
	// To is the log index the values cover through: resume after it.
	To uint64
}

// LocalChanges returns what this region's writes changed in partition part
// after log index from, through at most its stored applied index and about
// maxBytes of records: the current records of the items written by local
// writes (OpReplicate entries are other regions' values, which those
// regions send themselves). It reads the log of a replica of part — the
// leader's, normally. multiraft.ErrCompacted means the log no longer holds
// from+1: the partition must be copied whole (PartitionSnapshot).
func (n *Node) LocalChanges(ctx context.Context, part int, from uint64, maxBytes int) (*Changes, error) {
	if n.raft == nil {
		return nil, errNoRaft
	}
	if part < 0 || part >= n.nparts {
		return nil, fmt.Errorf("core: no partition %d", part)
	}
	through, _ := n.Committed(part)
	out := &Changes{To: from}
	if through <= from {
		return out, nil
	}
	ents, err := n.raft.Entries(ctx, multiraft.GroupID(part), from+1, through+1, uint64(max(maxBytes, 1)))
	if err != nil {
		return nil, err
	}
	type key struct{ tenant, id string }
	seen := map[key]bool{}
	size := 0
	var kb []byte
	for _, e := range ents {
		out.To = e.Index
		if len(e.Data) == 0 {
			continue
		}
		var cmd Command
		if cmd.decode(e.Data) != nil || cmd.Op == OpReplicate {
			continue
		}
		k := key{cmd.Tenant, cmd.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		v, ok, err := n.storedValue(ctx, part, cmd.Tenant, cmd.ID, &kb)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Values = append(out.Values, v)
			size += v.Size()
		}
		if size >= maxBytes {
			break
		}
	}
	return out, nil
}

// storedValue reads an item's record, or its tombstone when deleted; ok is
// false when neither exists (a write that failed its checks, or an item
// deleted outside a federation).
func (n *Node) storedValue(ctx context.Context, part int, tenant, id string, kb *[]byte) (RemoteValue, bool, error) {
	*kb = itemKey((*kb)[:0], part, tenant, id)
	val, found, ok := n.readRecord(ctx, *kb)
	if !ok {
		return RemoteValue{}, false, fmt.Errorf("%w: reading %q", item.ErrUnavailable, id)
	}
	if found {
		return RemoteValue{Tenant: tenant, ID: id, Record: append([]byte(nil), val...)}, true, nil
	}
	*kb = tombKey((*kb)[:0], part, tenant, id)
	val, err := n.store.Get(ctx, *kb)
	switch {
	case err == nil:
		return RemoteValue{Tenant: tenant, ID: id, Deleted: true, Record: append([]byte(nil), val...)}, true, nil
	case isNotFound(err):
		return RemoteValue{}, false, nil
	}
	return RemoteValue{}, false, fmt.Errorf("%w: reading %q: %v", item.ErrUnavailable, id, err)
}

// PartitionValues calls fn with every item record and tombstone of
// partition part, as of one consistent read, and returns the partition's
// applied index at that read: a copy of the partition for a region whose
// position the log no longer holds.
func (n *Node) PartitionValues(ctx context.Context, part int, fn func(RemoteValue) error) (uint64, error) {
	it, err := n.PartitionSnapshot(ctx, part)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var applied uint64
	for it.Next() {
		key := it.Key()
		switch {
		case len(key) == 4 && key[3] == kindState:
			var ps partState
			if err := ps.decode(it.Value()); err != nil {
				return 0, err
			}
			applied = ps.applied
		case len(key) > 4 && (key[3] == kindItem || key[3] == kindTombstone):
			tenant, id, ok := strings.Cut(string(key[4:]), "\x00")
			if !ok {
				continue
			}
			v := RemoteValue{Tenant: tenant, ID: id, Deleted: key[3] == kindTombstone, Record: bytes.Clone(it.Value())}
			if err := fn(v); err != nil {
				return 0, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	return applied, nil
}

// Replicated is what applying a batch of another region's values did.
type Replicated struct {
	// Position is how far this partition has applied the source's log.
	Position uint64
	// Replaced counts values that replaced this region's; Conflicts those
	// concurrent with it (the later one kept); Skipped malformed ones.
	Replaced, Conflicts, Skipped int
}

// ApplyReplicated applies values of region source's partition part,
// covering its log (from, to], through this region's raft group of part
// (this node must lead it: ErrNotLeader otherwise): as durable as a local
// write once it returns. Every value's clock time is first checked against
// this node's clock: one further ahead than the allowed skew refuses the
// batch (ErrClockSkew) — a region with a fast clock must not win every
// conflict. ErrReplicationGap (with the position in Replicated) when from
// is past the partition's position for source.
func (n *Node) ApplyReplicated(ctx context.Context, part int, source string, from, to uint64, resync bool, values []RemoteValue) (Replicated, error) {
	if n.raft == nil {
		return Replicated{}, errNoRaft
	}
	if part < 0 || part >= n.nparts {
		return Replicated{}, fmt.Errorf("core: no partition %d", part)
	}
	if source == "" || source == n.cfg.Region {
		return Replicated{}, fmt.Errorf("core: values from region %q cannot be applied in region %q", source, n.cfg.Region)
	}
	var latest uint64
	lim := &n.cfg.Limits
	for i := range values {
		v := &values[i]
		var r record
		if err := r.decode(v.Record); err != nil {
			return Replicated{}, fmt.Errorf("core: value %d (%q) from region %s: %w", i, v.ID, source, err)
		}
		if err := errors.Join(lim.CheckTenant(v.Tenant), lim.CheckID(v.ID), lim.CheckType(r.typ), lim.CheckVector(r.vector),
			checkItemSize(r.data, r.metadata, r.vector)); err != nil {
			return Replicated{}, fmt.Errorf("core: value %d (%q) from region %s: %w", i, v.ID, source, firstInvalid(err))
		}
		if PartitionOf(v.Tenant, v.ID, n.nparts) != part {
			return Replicated{}, fmt.Errorf("core: value %d (%q) from region %s belongs to partition %d, not %d: the regions' partition counts differ",
				i, v.ID, source, PartitionOf(v.Tenant, v.ID, n.nparts), part)
		}
		latest = max(latest, r.hlc)
	}
	if err := n.clock.Observe(int64(min(latest, 1<<63-1))); err != nil {
		n.ops.skewRefused.Add(1)
		return Replicated{}, fmt.Errorf("region %s: %w", source, err)
	}
	cmd := &Command{Op: OpReplicate, Now: n.clock.Now(), Origin: n.cfg.Region, Federated: true,
		Source: source, From: from, To: to, Resync: resync, Values: values}
	res := n.proposeRaftTo(ctx, part, cmd)
	out := Replicated{Position: res.position, Replaced: res.replicated, Conflicts: res.conflicts, Skipped: res.skipped}
	n.ops.replicated.Add(uint64(res.replicated))
	n.ops.conflicts.Add(uint64(res.conflicts))
	return out, res.err
}

// CollectBatch bounds the tombstones one OpCollect command removes.
const CollectBatch = 1000

// CollectTombstones removes partition part's tombstones older than horizon
// (a clock time, Unix nanoseconds), at most CollectBatch of them, through
// its raft group (this node must lead it), and returns how many went. From
// then on, a value from another region older than the newest tombstone
// removed, of an item the partition has no trace of, is dropped as deleted
// (and logged as a conflict's loser): see partState.collected. The caller picks horizon so
// that every region has had every delete older than it (federation's
// RegionDeadAfter).
func (n *Node) CollectTombstones(ctx context.Context, part int, horizon int64) (int, error) {
	if n.raft == nil {
		return 0, errNoRaft
	}
	if part < 0 || part >= n.nparts {
		return 0, fmt.Errorf("core: no partition %d", part)
	}
	if horizon <= 0 {
		return 0, nil
	}
	prefix := appendPartition(nil, part, kindTombstone)
	it, err := n.store.NewIter(ctx, prefix, prefixEnd(prefix))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	var old []RemoteValue
	var newest int64
	for it.Next() && len(old) < CollectBatch {
		tenant, id, ok := strings.Cut(string(it.Key()[len(prefix):]), "\x00")
		v := RemoteValue{Record: it.Value()}
		if t := v.Time(); ok && t < horizon {
			old = append(old, RemoteValue{Tenant: tenant, ID: id, Deleted: true})
			newest = max(newest, t)
		}
	}
	err = it.Err()
	it.Close()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	if len(old) == 0 {
		return 0, nil
	}
	// The partition's horizon becomes just past the newest tombstone
	// removed, not the horizon asked for: only a value older than a
	// removed delete can be one it deleted, and a region that never
	// removed anything (one still receiving its first copy) drops nothing.
	res := n.proposeRaftTo(ctx, part, &Command{Op: OpCollect, Now: n.clock.Now(), Origin: n.cfg.Region, Federated: true, To: uint64(newest) + 1, Values: old})
	return res.collected, res.err
}

// ReplicationPosition returns how far this replica of partition part has
// applied region's log, as stored: a hint for where a sender resumes (the
// apply itself drops what it already has).
func (n *Node) ReplicationPosition(ctx context.Context, part int, region string) (uint64, error) {
	if part < 0 || part >= n.nparts {
		return 0, fmt.Errorf("core: no partition %d", part)
	}
	v, err := n.store.Get(ctx, stateKey(part))
	if isNotFound(err) {
		return 0, ErrNotHere
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	var ps partState
	if err := ps.decode(v); err != nil {
		return 0, err
	}
	return ps.position(region), nil
}

func isNotFound(err error) bool { return errors.Is(err, tiers.ErrNotFound) }

// ReplicationStats counts what applying other regions' values did here.
type ReplicationStats struct {
	Replaced, Conflicts, SkewRefused uint64
}

// ReplicationStats returns the node's counters since it started.
func (n *Node) ReplicationStats() ReplicationStats {
	return ReplicationStats{Replaced: n.ops.replicated.Load(), Conflicts: n.ops.conflicts.Load(), SkewRefused: n.ops.skewRefused.Load()}
}

// ItemVersion reads tenant's item id as this region holds it, deletes
// included: its record's clock time and origin, whether that is a
// tombstone, and found false when there is neither. It is linearizable
// like Get (a read barrier first, unless ctx allows stale reads), and a
// node holding no replica of the item's partition answers ErrNotHere.
func (n *Node) ItemVersion(ctx context.Context, tenant, id string) (hlc uint64, origin string, deleted, found bool, err error) {
	lim := &n.cfg.Limits
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id)); err != nil {
		return 0, "", false, false, firstInvalid(err)
	}
	part := PartitionOf(tenant, id, n.nparts)
	if err := n.readable(ctx, []int{part}); err != nil {
		return 0, "", false, false, err
	}
	var kb []byte
	v, ok, err := n.storedValue(ctx, part, tenant, id, &kb)
	if err != nil || !ok {
		return 0, "", false, false, err
	}
	var r record
	if err := r.decode(v.Record); err != nil {
		return 0, "", false, false, err
	}
	return r.hlc, r.origin, v.Deleted, true, nil
}
