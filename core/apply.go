package core

import (
	"errors"
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

	kbuf, tbuf, dbuf, rbuf, mbuf []byte // scratch, reused across calls
	meta                         metaScratch
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
	// sources holds, per other region, how far this partition has applied
	// the same partition's log there (OpReplicate), sorted by region.
	sources []sourcePos
	// tombstones counts the partition's tombstones: while there are none,
	// a write of an absent item need not look for one (a store read that
	// misses costs about a tenth of a write).
	tombstones uint64
	// collected is the horizon (a clock time) of the last tombstone
	// collection: a value from another region older than it, of an item
	// this partition has no trace of, may be one whose delete was
	// collected here, and must not come back (mergeRemote).
	collected uint64
	// deleted is the latest version (clock time) a delete gave an item
	// here. An item created where none is, nor a tombstone, gets a later
	// one, so that an item's versions grow in log order across deletes
	// too: outside a federation no tombstone remembers the deleted
	// version, and a create proposed before a delete but applied after it
	// would otherwise carry an older version than the item it follows. A
	// follower cluster, which merges by version, needs that order
	// (SyncChanges).
	deleted uint64
	// indexed: every live item of the partition has its metadata index
	// entries (metaindex.go). False for a partition whose store predates
	// the index and still holds items from then; it becomes true once the
	// partition is empty.
	indexed bool
	// types caches what the partition knows of its tenants' types
	// (metaindex.go), by tenant + "\x00" + type; only the apply reads and
	// writes it.
	types map[string]typeInfo
}

type sourcePos struct {
	region string
	pos    uint64
}

// position returns how far the partition has applied region's log.
func (ps *partState) position(region string) uint64 {
	for _, s := range ps.sources {
		if s.region == region {
			return s.pos
		}
	}
	return 0
}

// setPosition records region's position, copying the slice: a snapshot of
// the state may share it.
func (ps *partState) setPosition(region string, pos uint64) {
	out := make([]sourcePos, 0, len(ps.sources)+1)
	done := false
	for _, s := range ps.sources {
		switch {
		case s.region == region:
			s.pos, done = pos, true
		case !done && s.region > region:
			out = append(out, sourcePos{region, pos})
			done = true
		}
		out = append(out, s)
	}
	if !done {
		out = append(out, sourcePos{region, pos})
	}
	ps.sources = out
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

	// OpReplicate only: the source's position after the batch, and how
	// many values replaced this region's, were concurrent with them, or
	// were malformed.
	position                       uint64
	replicated, conflicts, skipped int

	collected int // OpCollect: tombstones removed
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
	switch cmd.Op {
	case OpReplicate:
		return sm.applyReplicated(v, w, part, cmd)
	case OpCollect:
		return sm.applyCollect(v, w, part, cmd)
	case OpSyncState:
		return sm.applySyncState(w, part, cmd) // core/sync.go
	}
	sm.kbuf = itemKey(sm.kbuf[:0], part, cmd.Tenant, cmd.ID)
	key := sm.kbuf
	prev, exists, err := sm.read(v, key, cmd.ID, part)
	if err != nil {
		return result{err: err}
	}
	// In a federation a deleted item leaves a tombstone: a new value must
	// be ordered after the delete, in its clock and its vector.
	var tomb record
	tombstoned := false
	if !exists && cmd.Federated && sm.parts[part].tombstones > 0 {
		sm.dbuf = tombKey(sm.dbuf[:0], part, cmd.Tenant, cmd.ID)
		if tomb, tombstoned, err = sm.read(v, sm.dbuf, cmd.ID, part); err != nil {
			return result{err: err}
		}
	}

	if cmd.Op == OpCreate && exists {
		return result{err: item.ErrConflict}
	}
	if err := checkCond(cmd.Cond, exists, &prev); err != nil {
		return result{err: err}
	}

	// The write's version: its proposer's clock time, unless the item's
	// last write (or delete) has one as late — a leader whose clock is
	// behind its predecessor's — so that an item's versions always grow.
	base := &prev
	if tombstoned {
		base = &tomb
	}
	hlc := uint64(max(cmd.Now, 0))
	var vv versionVector
	if exists || tombstoned {
		hlc = max(hlc, base.hlc+1)
		vv = base.clock().with(cmd.Origin, hlc)
	} else {
		hlc = max(hlc, sm.parts[part].deleted+1)
	}

	var next record
	switch cmd.Op {
	case OpCreate, OpPut:
		next = record{created: cmd.Now, updated: cmd.Now, typ: cmd.Type,
			data: cmd.Data, metadata: cmd.Metadata, vector: cmd.Vector}
		if exists {
			next.created = prev.created
		}
	case OpPatch:
		if !exists {
			return result{err: item.ErrNotFound}
		}
		next = prev
		next.updated = cmd.Now
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
		sm.parts[part].deleted = max(sm.parts[part].deleted, hlc)
		if cmd.Federated {
			t := record{hlc: hlc, origin: cmd.Origin, created: prev.created, updated: cmd.Now, vv: vv}
			return result{err: sm.install(v, w, part, cmd.Tenant, cmd.ID, &prev, true, false, &t, true)}
		}
		return result{err: sm.install(v, w, part, cmd.Tenant, cmd.ID, &prev, true, false, nil, true)}
	default:
		return result{err: fmt.Errorf("core: unknown op %d", cmd.Op)}
	}
	next.hlc, next.origin, next.vv = hlc, cmd.Origin, vv

	if err := checkItemSize(next.data, next.metadata, next.vector); err != nil {
		return result{err: err}
	}
	if err := sm.checkVector(v, part, cmd.Tenant, &next); err != nil {
		return result{err: err}
	}
	if err := sm.install(v, w, part, cmd.Tenant, cmd.ID, &prev, exists, tombstoned, &next, false); err != nil {
		return result{err: err}
	}
	return result{item: next.toItem(cmd.Tenant, cmd.ID, false), created: !exists}
}

// read reads and decodes the record under key, if any.
func (sm *stateMachine) read(v view, key []byte, id string, part int) (r record, found bool, err error) {
	val, found, err := v.get(key)
	if err != nil {
		return r, false, fmt.Errorf("%w: reading %q: %v", item.ErrUnavailable, id, err)
	}
	if found {
		if err := r.decode(val); err != nil {
			return r, false, fmt.Errorf("core: item %q in partition %d: %w", id, part, err)
		}
	}
	return r, found, nil
}

// install replaces an item's stored state — prev, its live record if
// live, and its tombstone if tombstoned — by next: a live record, or a
// tombstone when deleted (nil: no tombstone, the item just goes). It
// keeps the type index and the item count in step.
func (sm *stateMachine) install(v view, w writer, part int, tenant, id string, prev *record, live, tombstoned bool, next *record, deleted bool) error {
	ps := &sm.parts[part]
	if !ps.indexed && ps.items == 0 {
		ps.indexed = true // nothing from before the index is left
	}
	now := next
	if deleted {
		now = nil
	}
	if err := sm.indexMeta(v, w, part, tenant, id, prev, live, now); err != nil {
		return err
	}
	key := itemKey(sm.kbuf[:0], part, tenant, id)
	sm.kbuf = key
	if deleted {
		if live {
			w.del(key)
			if prev.typ != "" {
				w.del(typeKey(sm.tbuf[:0], part, tenant, prev.typ, id))
			}
			ps.items--
		}
		if next != nil {
			sm.rbuf = next.append(sm.rbuf[:0])
			w.set(tombKey(sm.dbuf[:0], part, tenant, id), sm.rbuf)
			if !tombstoned {
				ps.tombstones++
			}
		}
		return nil
	}
	sm.rbuf = next.append(sm.rbuf[:0])
	w.set(key, sm.rbuf)
	if live && prev.typ != next.typ && prev.typ != "" {
		w.del(typeKey(sm.tbuf[:0], part, tenant, prev.typ, id))
	}
	if next.typ != "" && (!live || prev.typ != next.typ) {
		w.set(typeKey(sm.tbuf[:0], part, tenant, next.typ, id), nil)
	}
	if tombstoned {
		w.del(tombKey(sm.dbuf[:0], part, tenant, id))
		ps.tombstones--
	}
	if !live {
		ps.items++
	}
	return nil
}

// applyReplicated applies another region's item values (OpReplicate): each
// is merged with this region's (mergeRemote), and the source's position
// moves to cmd.To in the same apply, so a batch sent twice — a retry after
// a lost answer, a new leader on either side — changes nothing the second
// time. A batch that starts past the position would skip changes: it is
// refused with the position, for the sender to resume from.
func (sm *stateMachine) applyReplicated(v view, w writer, part int, cmd *Command) result {
	ps := &sm.parts[part]
	pos := ps.position(cmd.Source)
	if !cmd.Resync {
		if cmd.To <= pos {
			return result{position: pos}
		}
		if cmd.From > pos {
			return result{position: pos, err: fmt.Errorf("%w: region %s's batch starts at %d, this partition holds it through %d", ErrReplicationGap, cmd.Source, cmd.From, pos)}
		}
	}
	var res result
	for i := range cmd.Values {
		if err := sm.mergeRemote(v, w, part, cmd.Now, &cmd.Values[i], &res); err != nil {
			// The store failed under the read: nothing else in the batch is
			// applied, nor the position moved, so the sender retries it.
			res.err = err
			res.position = pos
			return res
		}
	}
	if cmd.To > pos {
		ps.setPosition(cmd.Source, cmd.To)
	}
	res.position = ps.position(cmd.Source)
	return res
}

// applyCollect removes the tombstones cmd names that are still there and
// older than the horizon cmd.To, and raises the partition's collected
// horizon to it. The leader picks them (Node.CollectTombstones); the
// checks here make a stale pick harmless: a tombstone replaced by a newer
// one, or by a value, stays.
func (sm *stateMachine) applyCollect(v view, w writer, part int, cmd *Command) result {
	ps := &sm.parts[part]
	var res result
	for i := range cmd.Values {
		rv := &cmd.Values[i]
		sm.dbuf = tombKey(sm.dbuf[:0], part, rv.Tenant, rv.ID)
		tomb, found, err := sm.read(v, sm.dbuf, rv.ID, part)
		if err != nil {
			return result{err: err}
		}
		if !found || tomb.hlc >= cmd.To {
			continue
		}
		w.del(sm.dbuf)
		ps.tombstones--
		res.collected++
	}
	ps.collected = max(ps.collected, cmd.To)
	return res
}

// ErrReplicationGap: a batch from another region begins after the position
// the receiving partition holds; the sender must resend from there.
var ErrReplicationGap = errors.New("core: replication batch leaves a gap")

// mergeRemote merges one value from another region into this region's
// state for its item. The rule makes every region converge on the same
// value whatever order values arrive in (a state-based last-writer-wins
// register, with version vectors to tell replacement from conflict):
//
//   - the incoming vector is at or behind the stored one: the value is
//     already included (a resend, or a relay of something seen): nothing;
//   - ahead of it: the incoming value replaces the stored one;
//   - neither (concurrent writes in two regions): the value with the later
//     (clock, origin region) wins, deletes included (a tombstone is a value),
//     and the winner is stored with both vectors merged, so that the loser's
//     region, on receiving the winner, finds it ahead and takes it. The
//     loser goes to the tenant's conflict log (logConflict), time-stamped
//     with at, the command's clock time.
//
// Malformed values (which a correct peer never sends) are skipped, the
// same way on every replica.
func (sm *stateMachine) mergeRemote(v view, w writer, part int, at int64, rv *RemoteValue, res *result) error {
	var in record
	if err := in.decode(rv.Record); err != nil || PartitionOf(rv.Tenant, rv.ID, len(sm.parts)) != part ||
		rv.Tenant == "" || rv.ID == "" || checkItemSize(in.data, in.metadata, in.vector) != nil {
		res.skipped++
		return nil
	}
	key := itemKey(sm.kbuf[:0], part, rv.Tenant, rv.ID)
	sm.kbuf = key
	local, live, err := sm.read(v, key, rv.ID, part)
	if err != nil {
		return err
	}
	tombstoned := false
	if !live && sm.parts[part].tombstones > 0 {
		sm.dbuf = tombKey(sm.dbuf[:0], part, rv.Tenant, rv.ID)
		if local, tombstoned, err = sm.read(v, sm.dbuf, rv.ID, part); err != nil {
			return err
		}
	}
	winner, deleted := &in, rv.Deleted
	if !live && !tombstoned && in.hlc < sm.parts[part].collected {
		// Older than tombstones collected here, and unknown: its delete
		// may be one of them. A value is dropped, but logged, as a loser to
		// a delete; a tombstone (one collected here, sent back by a digest
		// resync) is simply dropped: the item is gone either way.
		if rv.Deleted {
			return nil
		}
		res.conflicts++
		return sm.logConflict(v, w, part, rv.Tenant, rv.ID, at, &in, false, &record{}, true)
	}
	if live || tombstoned {
		switch in.clock().compare(local.clock()) {
		case vvEqual, vvBefore:
			return nil
		case vvConcurrent:
			if in.hlc == local.hlc && in.origin == local.origin {
				// One write, merged with different losers on its way here:
				// the same value, whose vectors are joined. No conflict.
				local.vv = in.clock().merged(local.clock())
				return sm.install(v, w, part, rv.Tenant, rv.ID, &local, live, tombstoned, &local, tombstoned)
			}
			res.conflicts++
			merged := in.clock().merged(local.clock())
			loser, loserDeleted := &local, tombstoned
			if !wins(in.hlc, in.origin, local.hlc, local.origin) {
				winner, deleted = &local, tombstoned
				loser, loserDeleted = &in, rv.Deleted
			}
			if err := sm.logConflict(v, w, part, rv.Tenant, rv.ID, at, loser, loserDeleted, winner, deleted); err != nil {
				return err
			}
			winner.vv = merged
		}
	}
	// The stored value winning a conflict is rewritten too: its vector grew.
	if err := sm.install(v, w, part, rv.Tenant, rv.ID, &local, live, tombstoned, winner, deleted); err != nil {
		return err
	}
	if winner == &in {
		res.replicated++
	}
	return nil
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
func checkCond(c item.Cond, exists bool, prev *record) error {
	if c.IfNoneMatch && exists {
		return fmt.Errorf("%w: the item exists (If-None-Match: *)", item.ErrPreconditionFailed)
	}
	switch {
	case c.IfMatch == "":
	case !exists:
		return fmt.Errorf("%w: the item does not exist (If-Match)", item.ErrPreconditionFailed)
	case c.IfMatch != "*" && c.IfMatch != prev.version():
		return fmt.Errorf("%w: the item's version is %s, not %s", item.ErrPreconditionFailed, prev.version(), c.IfMatch)
	}
	return nil
}

// Partition state format: version 1 is applied and items; version 2 adds
// the membership; version 3 the other regions' positions (and a presence
// byte before the membership) and the tombstone count; version 4 the
// collection horizon; version 5 the latest deleted version; version 6
// whether the metadata index is complete.
func (ps *partState) encode() []byte {
	b := make([]byte, 0, 30+len(ps.conf))
	v6 := ps.indexed
	v5 := v6 || ps.deleted > 0
	v4 := v5 || ps.collected > 0
	v3 := v4 || ps.sources != nil || ps.tombstones > 0
	switch {
	case v6:
		b = append(b, 6)
	case v5:
		b = append(b, 5)
	case v4:
		b = append(b, 4)
	case v3:
		b = append(b, 3)
	case ps.conf == nil:
		b = append(b, 1)
	default:
		b = append(b, 2)
	}
	b = appendUvarint(b, ps.applied)
	b = appendUvarint(b, ps.items)
	if v3 {
		present := byte(0)
		if ps.conf != nil {
			present = 1
		}
		b = append(b, present)
	}
	if ps.conf != nil {
		b = codec.AppendBytes(b, ps.conf)
	}
	if v3 {
		b = ps.appendSources(b)
		b = appendUvarint(b, ps.tombstones)
	}
	if v4 {
		b = appendUvarint(b, ps.collected)
	}
	if v5 {
		b = appendUvarint(b, ps.deleted)
	}
	if v6 {
		b = append(b, 1)
	}
	return b
}

func (ps *partState) appendSources(b []byte) []byte {
	b = appendUvarint(b, uint64(len(ps.sources)))
	for _, s := range ps.sources {
		b = codec.AppendString(b, s.region)
		b = appendUvarint(b, s.pos)
	}
	return b
}

func (ps *partState) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	v := d.Byte()
	if v < 1 || v > 6 {
		return errCorrupt
	}
	ps.applied = d.Uvarint()
	ps.items = d.Uvarint()
	ps.conf, ps.sources, ps.tombstones, ps.collected, ps.deleted, ps.indexed, ps.types = nil, nil, 0, 0, 0, false, nil
	hasConf := v == 2
	if v >= 3 {
		hasConf = d.Byte() == 1
	}
	if hasConf {
		ps.conf = append([]byte{}, d.Bytes()...)
	}
	if v >= 3 {
		n := d.Uvarint()
		if n > MaxRegions {
			return errCorrupt
		}
		ps.sources = make([]sourcePos, 0, n)
		for range n {
			ps.sources = append(ps.sources, sourcePos{region: d.String(), pos: d.Uvarint()})
		}
		ps.tombstones = d.Uvarint()
	}
	if v >= 4 {
		ps.collected = d.Uvarint()
	}
	if v >= 5 {
		ps.deleted = d.Uvarint()
	}
	if v == 6 {
		ps.indexed = d.Byte() == 1
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
