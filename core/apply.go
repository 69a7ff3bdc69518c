package core

import (
	"fmt"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
)

// stateMachine applies encoded commands to partitions. It is the only code
// that changes item keys: every write path — the single-node driver today,
// a raft group's committed entries in a cluster — ends in apply.
//
// It is owned by one goroutine (the driver) and does no I/O of its own: it
// reads through a view and writes through a writer.
//
// Invariant: apply is deterministic. Given the same stored state and the
// same (part, index, command), it produces the same writes and result on
// every replica. Hence no clock, no randomness, no map iteration order.
type stateMachine struct {
	limits item.Limits
	parts  []partState

	kbuf, tbuf, rbuf, mbuf []byte // scratch, reused across calls
}

// partState is a partition's replicated state besides its items. The
// driver writes it under stateKey once per cycle for every partition the
// cycle touched, in the same batch as the writes it accounts for, so the
// stored applied index always matches the stored items.
type partState struct {
	applied uint64 // index of the last applied command
	items   uint64 // live items in the partition
	// conf is the partition's raft membership (a marshaled
	// raftpb.ConfState) as of applied; nil on a single node. Keeping it
	// here stores it atomically with the applied index it belongs to.
	conf []byte
}

// view reads the partition state as of the commands applied so far,
// including those not yet durable.
type view interface {
	get(key []byte) (val []byte, ok bool, err error)
}

// writer receives the writes of one command. It must copy what it keeps.
type writer interface {
	set(key, val []byte)
	del(key []byte)
}

// result is what a command did.
type result struct {
	item    *item.Item // the item after the write; nil for a delete or an error
	created bool
	err     error // a sentinel from package item, possibly wrapped
}

// apply applies cmd as command number index of partition part.
// Commands that fail their checks still consume their index, as a raft
// entry would: the partition's applied index counts log entries, not
// successful writes. A nil cmd is a log entry with no command (raft's
// election and membership entries): it only consumes its index.
func (sm *stateMachine) apply(v view, w writer, part int, index uint64, cmd *Command) result {
	ps := &sm.parts[part]
	if index != ps.applied+1 {
		panic(fmt.Sprintf("core: partition %d: applying index %d after %d", part, index, ps.applied))
	}
	ps.applied = index
	if cmd == nil {
		return result{}
	}
	return sm.applyItem(v, w, part, index, cmd)
}

func (sm *stateMachine) applyItem(v view, w writer, part int, index uint64, cmd *Command) result {
	ps := &sm.parts[part]
	sm.kbuf = itemKey(sm.kbuf[:0], part, cmd.Tenant, cmd.ID)
	key := sm.kbuf
	old, exists, err := v.get(key)
	if err != nil {
		return result{err: fmt.Errorf("%w: reading %q: %v", item.ErrUnavailable, cmd.ID, err)}
	}
	var prev record
	if exists {
		if err := prev.decode(old); err != nil {
			return result{err: fmt.Errorf("core: item %q in partition %d: %w", cmd.ID, part, err)}
		}
	}

	if cmd.Op == OpCreate && exists {
		return result{err: item.ErrConflict}
	}
	if err := checkCond(cmd.Cond, exists, prev.version); err != nil {
		return result{err: err}
	}

	var next record
	switch cmd.Op {
	case OpCreate, OpPut:
		next = record{version: index, created: cmd.Now, updated: cmd.Now, typ: cmd.Type,
			data: cmd.Data, metadata: cmd.Metadata, vector: cmd.Vector}
		if exists {
			next.created = prev.created
		}
	case OpPatch:
		if !exists {
			return result{err: item.ErrNotFound}
		}
		next = prev
		next.version, next.updated = index, cmd.Now
		if cmd.HasType {
			next.typ = cmd.Type
		}
		if cmd.HasVector {
			next.vector = cmd.Vector
		}
		if next.data, err = sm.merge(prev.data, cmd.Data, "data"); err != nil {
			return result{err: err}
		}
		if next.metadata, err = sm.merge(prev.metadata, cmd.Metadata, "metadata"); err != nil {
			return result{err: err}
		}
	case OpDelete:
		if !exists {
			return result{err: item.ErrNotFound}
		}
		w.del(key)
		if prev.typ != "" {
			w.del(typeKey(sm.tbuf[:0], part, cmd.Tenant, prev.typ, cmd.ID))
		}
		ps.items--
		return result{}
	default:
		return result{err: fmt.Errorf("core: unknown op %d", cmd.Op)}
	}

	if err := checkItemSize(next.data, next.metadata, next.vector); err != nil {
		return result{err: err}
	}
	sm.rbuf = next.append(sm.rbuf[:0])
	w.set(key, sm.rbuf)
	if exists && prev.typ != next.typ && prev.typ != "" {
		w.del(typeKey(sm.tbuf[:0], part, cmd.Tenant, prev.typ, cmd.ID))
	}
	if next.typ != "" && (!exists || prev.typ != next.typ) {
		w.set(typeKey(sm.tbuf[:0], part, cmd.Tenant, next.typ, cmd.ID), nil)
	}
	if !exists {
		ps.items++
	}
	return result{item: next.toItem(cmd.Tenant, cmd.ID, false), created: !exists}
}

// merge applies a merge patch and re-checks the limits on the result: a
// patch within the limits can still grow a document beyond them.
// The result is a fresh slice: it outlives the scratch buffers.
func (sm *stateMachine) merge(target, patch []byte, field string) ([]byte, error) {
	if patch == nil {
		return target, nil
	}
	merged, err := jsontext.MergePatch(sm.mbuf[:0], target, patch)
	if err != nil {
		return nil, fmt.Errorf("core: merging %s: %w", field, err)
	}
	sm.mbuf = merged
	out, err := jsontext.Compact(nil, merged, jsontext.Limits{MaxDepth: sm.limits.MaxDepth, MaxFields: sm.limits.MaxFields})
	if err != nil {
		return nil, invalidJSON(field, err)
	}
	if string(out) == "null" {
		return nil, nil
	}
	return out, nil
}

// checkItemSize refuses data, metadata and a vector that together pass
// item.MaxItemBytes.
func checkItemSize(data, metadata []byte, vector []float32) error {
	if n := len(data) + len(metadata) + 4*len(vector); n > item.MaxItemBytes {
		return item.Invalid("item_too_large", "%d bytes of data, metadata and vector; an item holds at most %d", n, item.MaxItemBytes)
	}
	return nil
}

// checkCond evaluates If-Match / If-None-Match against the stored item.
func checkCond(c item.Cond, exists bool, version uint64) error {
	if c.IfNoneMatch && exists {
		return fmt.Errorf("%w: the item exists (If-None-Match: *)", item.ErrPreconditionFailed)
	}
	switch {
	case c.IfMatch == "":
	case !exists:
		return fmt.Errorf("%w: the item does not exist (If-Match)", item.ErrPreconditionFailed)
	case c.IfMatch != "*" && c.IfMatch != FormatVersion(version):
		return fmt.Errorf("%w: the item's version is %s, not %s", item.ErrPreconditionFailed, FormatVersion(version), c.IfMatch)
	}
	return nil
}

// Partition state format: version 1 is applied and items; version 2 adds
// the membership.
func (ps *partState) encode() []byte {
	b := make([]byte, 0, 20+len(ps.conf))
	if ps.conf == nil {
		b = append(b, 1)
	} else {
		b = append(b, 2)
	}
	b = appendUvarint(b, ps.applied)
	b = appendUvarint(b, ps.items)
	if ps.conf != nil {
		b = codec.AppendBytes(b, ps.conf)
	}
	return b
}

func (ps *partState) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	v := d.Byte()
	if v != 1 && v != 2 {
		return errCorrupt
	}
	ps.applied = d.Uvarint()
	ps.items = d.Uvarint()
	ps.conf = nil
	if v == 2 {
		ps.conf = append([]byte{}, d.Bytes()...)
	}
	if d.Err != nil || len(d.B) != 0 {
		return errCorrupt
	}
	return nil
}

// invalidJSON turns a jsontext error into the matching *item.InvalidError.
func invalidJSON(field string, err error) error {
	return item.Invalid(jsontext.Code(err), "%s: %v", field, err)
}
