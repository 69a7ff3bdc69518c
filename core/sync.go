package core

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
)

// The core side of blue/green sync (package federation, sync.go and
// syncserve.go): a cluster ("green") follows another ("blue") one way. The
// blue side reads a partition in pages (PartitionPage) and then its raft
// log (SyncChanges); the green side merges the values through
// ApplyReplicated, regrouped by its own partitions, and keeps its position
// in each blue partition under a key of one of its partitions
// (SaveSyncState), written through raft like any write.

// kindSync is the key kind of a follower's positions in blue partitions:
//
//	p<part:2>y<name>    a sync state (opaque to core; package federation encodes it)
//
// It sits in the partition's key range, so a snapshot carries it to a new
// replica, and no scan of items, tombstones or types reads it.
const kindSync = 'y'

func syncKey(dst []byte, part int, name string) []byte {
	return append(appendPartition(dst, part, kindSync), name...)
}

// Bounds of a sync state: a name and a few positions.
const (
	maxSyncName  = 64
	maxSyncState = 4 << 10
)

// applySyncState stores a sync state (OpSyncState). It touches no item,
// so it needs no checks beyond the proposer's.
func (sm *stateMachine) applySyncState(w writer, part int, cmd *Command) result {
	if cmd.ID == "" || len(cmd.ID) > maxSyncName || len(cmd.Data) > maxSyncState {
		return result{err: fmt.Errorf("core: a sync state of %d bytes named %q", len(cmd.Data), cmd.ID)}
	}
	w.set(syncKey(nil, part, cmd.ID), cmd.Data)
	return result{}
}

// SaveSyncState stores state under name in partition part, through the
// partition's raft group (this node must lead it): every replica holds it,
// so whichever leads part later reads it (SyncState). Names are at most 64
// bytes, states at most 4 KiB.
func (n *Node) SaveSyncState(ctx context.Context, part int, name string, state []byte) error {
	if n.raft == nil {
		return errNoRaft
	}
	if part < 0 || part >= n.nparts {
		return fmt.Errorf("core: no partition %d", part)
	}
	if name == "" || len(name) > maxSyncName || len(state) > maxSyncState {
		return fmt.Errorf("core: a sync state of %d bytes named %q", len(state), name)
	}
	return n.proposeRaftTo(ctx, part, &Command{Op: OpSyncState, Now: n.clock.Now(), ID: name, Data: state}).err
}

// SyncState returns the state stored under name in partition part, after
// a read barrier (a new leader that has not applied its predecessor's last
// state must not start over); found is false when there is none.
func (n *Node) SyncState(ctx context.Context, part int, name string) (state []byte, found bool, err error) {
	if part < 0 || part >= n.nparts {
		return nil, false, fmt.Errorf("core: no partition %d", part)
	}
	if err := n.readable(ctx, []int{part}); err != nil {
		return nil, false, err
	}
	v, err := n.store.Get(ctx, syncKey(nil, part, name))
	switch {
	case err == nil:
		return bytes.Clone(v), true, nil
	case isNotFound(err):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
}

// MaxSyncCursor bounds a PartitionPage cursor: a key kind, a tenant and
// an id, well within any limits a node is configured with.
const MaxSyncCursor = 1 << 10

// PartitionPage returns partition part's item records and tombstones after
// cursor (nil: from the start), in key order, at most maxItems of them and
// about maxBytes (at least one), as the store holds them now: every write
// through the partition's stored applied index (Committed) is in them. next
// is the cursor of the following page, nil when the partition ends.
//
// Pages are separate reads, not one snapshot: a copy made of them is no
// partition's state at any one time, but every value in it is at least as
// new as the applied index read before its first page; the log from there
// on brings the rest (package federation, sync.go).
func (n *Node) PartitionPage(ctx context.Context, part int, cursor []byte, maxItems, maxBytes int) (values []RemoteValue, next []byte, err error) {
	if part < 0 || part >= n.nparts {
		return nil, nil, fmt.Errorf("core: no partition %d", part)
	}
	if len(cursor) > MaxSyncCursor {
		return nil, nil, fmt.Errorf("core: a cursor of %d bytes", len(cursor))
	}
	// Tombstones ('d') then items ('i'): the kinds between hold nothing.
	lower := appendPartition(nil, part, kindTombstone)
	upper := appendPartition(nil, part, kindItem+1)
	if len(cursor) > 0 {
		lower = append(append(lower[:3], cursor...), 0) // the first key after the cursor
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil, nil, nil
	}
	it, err := n.store.NewIter(ctx, lower, upper)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	defer it.Close()
	size := 0
	for it.Next() {
		key := it.Key()
		if len(key) < 4 || (key[3] != kindItem && key[3] != kindTombstone) {
			continue
		}
		if len(values) >= max(maxItems, 1) || (len(values) > 0 && size >= maxBytes) {
			return values, next, nil
		}
		tenant, id, ok := strings.Cut(string(key[4:]), "\x00")
		if !ok {
			continue
		}
		v := RemoteValue{Tenant: tenant, ID: id, Deleted: key[3] == kindTombstone, Record: bytes.Clone(it.Value())}
		values = append(values, v)
		size += v.Size()
		next = append(next[:0], key[3:]...)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	return values, nil, nil
}

// SyncChanges is LocalChanges for a follower cluster: the current records
// of the items that every write after log index from changed, through at
// most the stored applied index (returned as committed) and about maxBytes
// of records. Unlike LocalChanges it keeps other regions' values
// (OpReplicate): the follower has no other way to them.
//
// A cluster outside a federation keeps no tombstones, so an item deleted
// there has no record at all. For such an item the answer holds a
// tombstone made for it, of this node's region, at the partition's latest
// deleted version (partState.deleted) as stored with the entries read,
// read before any item: every delete among those entries gave its item a
// version no later, so the tombstone wins over the values they deleted;
// and every item created after the read gets a later version than any
// delete before it, so the tombstone never wins over a write the answer
// did not see. (A clock reading here would be later than a create
// proposed before the read but applied after it, and the follower would
// keep the tombstone over it.) A partition whose deletes all predate that
// count has none, and gets a clock reading as before.
//
// multiraft.ErrCompacted: the log no longer holds from+1.
func (n *Node) SyncChanges(ctx context.Context, part int, from uint64, maxBytes int) (ch *Changes, committed uint64, err error) {
	if n.raft == nil {
		return nil, 0, errNoRaft
	}
	if part < 0 || part >= n.nparts {
		return nil, 0, fmt.Errorf("core: no partition %d", part)
	}
	through, _ := n.Committed(part)
	deleted := n.stored.deleted[part].Load() // after through: see set
	out := &Changes{To: from}
	if through <= from {
		return out, through, nil
	}
	ents, err := n.raft.Entries(ctx, multiraft.GroupID(part), from+1, through+1, uint64(max(maxBytes, 1)))
	if err != nil {
		return nil, through, err
	}
	cmds := make([]*Command, len(ents))
	var latest int64
	for i, e := range ents {
		if len(e.Data) == 0 {
			continue
		}
		var cmd Command
		if cmd.decode(e.Data) == nil {
			cmds[i] = &cmd
			latest = max(latest, cmd.Now)
		}
	}
	type key struct{ tenant, id string }
	seen := map[key]bool{}
	size := 0
	var kb []byte
	var tomb []byte // the tombstone of a deleted item, made once per call
	add := func(tenant, id string) error {
		k := key{tenant, id}
		if tenant == "" || id == "" || seen[k] {
			return nil
		}
		seen[k] = true
		v, ok, err := n.storedValue(ctx, part, tenant, id, &kb)
		if err != nil {
			return err
		}
		if !ok {
			if tomb == nil {
				hlc := int64(deleted)
				if deleted == 0 {
					hlc = max(n.clock.Now(), latest+1)
				}
				r := record{hlc: uint64(hlc), origin: n.cfg.Region, created: hlc, updated: hlc}
				tomb = r.append(nil)
			}
			v = RemoteValue{Tenant: tenant, ID: id, Deleted: true, Record: tomb}
		}
		out.Values = append(out.Values, v)
		size += v.Size()
		return nil
	}
	for i, e := range ents {
		out.To = e.Index
		cmd := cmds[i]
		switch {
		case cmd == nil, cmd.Op == OpSyncState:
		case cmd.Op == OpReplicate:
			for j := range cmd.Values {
				if err := add(cmd.Values[j].Tenant, cmd.Values[j].ID); err != nil {
					return nil, through, err
				}
			}
		default:
			if err := add(cmd.Tenant, cmd.ID); err != nil {
				return nil, through, err
			}
		}
		// Whole entries only: the position moves past an entry once every
		// item it wrote is in the answer.
		if size >= maxBytes {
			break
		}
	}
	return out, through, nil
}
