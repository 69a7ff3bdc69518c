package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// The conflict log. When mergeRemote resolves two concurrent values of an
// item, the loser is written to its tenant's log in the item's partition,
// in the same apply: every replica of the region holds the same log, and
// a snapshot carries it. Each region logs the conflicts it resolves
// itself: a region that receives the winner already merged with the loser
// (its vector covers both) resolves nothing and logs nothing, so the
// union of the regions' logs, not each one, holds every loser.
//
//	p<part:2>x<tenant>\x00<seq:8>   an entry (conflictEntry), seq from 1
//	p<part:2>X<tenant>              the tenant's bounds: uvarint first, next
//
// A tenant keeps its last ConflictLogKeep entries per partition: the
// oldest entry goes when a new one would exceed it, so a tenant's log is
// bounded (64 partitions × 256 by default) and one tenant cannot grow
// another's.

// ConflictLogKeep is how many conflicts a tenant's log keeps per
// partition. A constant, not a setting: every replica must trim alike.
const ConflictLogKeep = 256

func conflictPrefix(dst []byte, part int, tenant string) []byte {
	dst = appendPartition(dst, part, kindConflict)
	dst = append(dst, tenant...)
	return append(dst, 0)
}

func conflictKey(dst []byte, part int, tenant string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(conflictPrefix(dst, part, tenant), seq)
}

func conflictBoundsKey(dst []byte, part int, tenant string) []byte {
	dst = appendPartition(dst, part, kindConflictBounds)
	return append(dst, tenant...)
}

// conflictEntry is a logged loser:
//
//	format byte (1)
//	varint  at (the resolving command's clock time, Unix ns)
//	uvarint len, id
//	byte    flags: 1 the loser was a delete, 2 the winner was
//	uvarint len, loser's record
//	uvarint winner's hlc; uvarint len, winner's origin
type conflictEntry struct {
	at                          int64
	id                          string
	loserDeleted, winnerDeleted bool
	loser                       []byte
	winnerHLC                   uint64
	winnerOrigin                string
}

const conflictFormat = 1

func (e *conflictEntry) append(dst []byte) []byte {
	dst = append(dst, conflictFormat)
	dst = binary.AppendVarint(dst, e.at)
	dst = codec.AppendString(dst, e.id)
	var flags byte
	if e.loserDeleted {
		flags |= 1
	}
	if e.winnerDeleted {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = codec.AppendBytes(dst, e.loser)
	dst = binary.AppendUvarint(dst, e.winnerHLC)
	return codec.AppendString(dst, e.winnerOrigin)
}

func (e *conflictEntry) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	if d.Byte() != conflictFormat {
		return errCorrupt
	}
	e.at = d.Varint()
	e.id = d.String()
	flags := d.Byte()
	e.loserDeleted, e.winnerDeleted = flags&1 != 0, flags&2 != 0
	e.loser = d.Bytes()
	e.winnerHLC = d.Uvarint()
	e.winnerOrigin = d.String()
	if d.Err != nil || len(d.B) != 0 {
		return errCorrupt
	}
	return nil
}

// logConflict appends the loser of a conflict on tenant's item id to the
// tenant's log in part, dropping the oldest entry past ConflictLogKeep.
// loser is the losing record before its vector was merged.
func (sm *stateMachine) logConflict(v view, w writer, part int, tenant, id string, at int64, loser *record, loserDeleted bool, winner *record, winnerDeleted bool) error {
	bk := conflictBoundsKey(nil, part, tenant)
	var first, next uint64 = 1, 1
	if b, ok, err := v.get(bk); err != nil {
		return fmt.Errorf("%w: reading the conflict log: %v", item.ErrUnavailable, err)
	} else if ok {
		d := codec.Decoder{B: b, Fail: errCorrupt}
		first, next = d.Uvarint(), d.Uvarint()
		if d.Err != nil || first > next || first == 0 {
			first, next = 1, 1 // unreadable bounds start the log afresh
		}
	}
	e := conflictEntry{at: at, id: id, loserDeleted: loserDeleted, winnerDeleted: winnerDeleted,
		loser: loser.append(nil), winnerHLC: winner.hlc, winnerOrigin: winner.origin}
	w.set(conflictKey(nil, part, tenant, next), e.append(nil))
	next++
	for next-first > ConflictLogKeep {
		w.del(conflictKey(nil, part, tenant, first))
		first++
	}
	w.set(bk, binary.AppendUvarint(binary.AppendUvarint(nil, first), next))
	return nil
}

// Conflicts returns a page of tenant's conflict log over partitions parts
// (nil: all); see item.ConflictLog. Like ListPartitions, it reads after a
// read barrier unless ctx allows stale reads, and answers ErrNotHere for a
// partition this node holds no replica of.
//
// A page merges the partitions' logs by resolution time, each partition's
// in the order it logged them, so the cursor (per partition, the last
// entry read) never skips an entry however the clocks that timed them
// differ. Only the entries' heads are read to choose the page; only the
// page's entries are loaded whole: a tenant's log may hold thousands of
// losers of up to an item's size each.
func (n *Node) Conflicts(ctx context.Context, tenant string, opts item.ConflictOptions, parts []int) (*item.ConflictPage, error) {
	parts, err := n.partitionsOf(parts)
	if err != nil {
		return nil, err
	}
	if err := n.cfg.Limits.CheckTenant(tenant); err != nil {
		return nil, firstInvalid(err)
	}
	limit, err := conflictLimit(opts.Limit)
	if err != nil {
		return nil, err
	}
	start, err := opts.Start()
	if err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, item.ErrClosed
	}
	if err := n.readable(ctx, parts); err != nil {
		return nil, err
	}
	lists := make([][]*item.Conflict, 0, len(parts))
	for _, p := range parts {
		prefix := conflictPrefix(nil, p, tenant)
		it, err := n.store.NewIter(ctx, prefix, prefixEnd(prefix))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		}
		var list []*item.Conflict
		for it.Next() {
			key, val := it.Key(), it.Value()
			if len(key) != len(prefix)+8 || len(val) < 2 || val[0] != conflictFormat {
				continue // written by a newer version of this code, or damaged: skip, do not fail the log
			}
			at, k := binary.Varint(val[1:])
			if k <= 0 {
				continue
			}
			pos := item.ConflictPosition{At: at, Partition: p, Seq: binary.BigEndian.Uint64(key[len(prefix):])}
			if start.After(pos) {
				list = append(list, &item.Conflict{Position: pos})
			}
		}
		err = it.Err()
		it.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		}
		lists = append(lists, list)
	}
	taken, more := MergeConflicts(lists, limit)
	page := &item.ConflictPage{Conflicts: make([]*item.Conflict, 0, len(taken))}
	var budget PageBudget
	for _, c := range taken {
		val, err := n.store.Get(ctx, conflictKey(nil, c.Position.Partition, tenant, c.Position.Seq))
		var e conflictEntry
		var loser record
		switch {
		case isNotFound(err):
			continue // trimmed since the scan
		case err != nil:
			return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		case e.decode(val) != nil || loser.decode(e.loser) != nil:
			continue
		}
		c.ID, c.ResolvedAt = e.id, time.Unix(0, e.at).UTC()
		c.Loser, c.LoserDeleted, c.WinnerDeleted = loser.toItem(tenant, e.id, false), e.loserDeleted, e.winnerDeleted
		if e.winnerHLC != 0 { // 0: a delete whose tombstone was collected (applyCollect)
			c.Winner = FormatVersion(e.winnerHLC, e.winnerOrigin)
		}
		if !budget.Add(c.Loser) {
			more = true // taken[i] and after wait for the next page
			break
		}
		page.Conflicts = append(page.Conflicts, c)
	}
	ConflictCursors(page, start, more)
	return page, nil
}

// conflictLimit checks a page size: 0 means item.DefaultListLimit.
func conflictLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return item.DefaultListLimit, nil
	case limit < 0 || limit > item.MaxListLimit:
		return 0, item.Invalid("invalid_limit", "limit must be between 1 and %d", item.MaxListLimit)
	}
	return limit, nil
}

// MergeConflicts merges lists of conflict log entries — each holding
// every partition's entries in the order the partition logged them — by
// resolution time, up to limit entries, and reports whether any are left.
// Every partition's entries taken are the first of its entries in the
// lists: a cursor of the last one taken per partition misses none. A
// cluster merges its nodes' pages with it.
func MergeConflicts(lists [][]*item.Conflict, limit int) (taken []*item.Conflict, more bool) {
	heads := make([]int, len(lists))
	for len(taken) < limit {
		best := -1
		for i, l := range lists {
			if heads[i] < len(l) && (best < 0 || l[heads[i]].Position.Less(lists[best][heads[best]].Position)) {
				best = i
			}
		}
		if best < 0 {
			return taken, false
		}
		taken = append(taken, lists[best][heads[best]])
		heads[best]++
	}
	for i, l := range lists {
		if heads[i] < len(l) {
			return taken, true
		}
	}
	return taken, false
}

// ConflictCursors sets page's Resume — start moved past the page's
// entries — and its Cursor when more entries are left.
func ConflictCursors(page *item.ConflictPage, start item.ConflictCursor, more bool) {
	next := item.ConflictCursor{Since: start.Since, Seqs: maps.Clone(start.Seqs)}
	if next.Seqs == nil {
		next.Seqs = map[int]uint64{}
	}
	for _, c := range page.Conflicts {
		next.Seqs[c.Position.Partition] = max(next.Seqs[c.Position.Partition], c.Position.Seq)
	}
	page.Resume = next.Encode()
	if more {
		page.Cursor = page.Resume
	}
}

// readable makes parts readable here: a read barrier on each (reads see
// every write acknowledged before), or, when ctx allows stale reads, a
// check that this node holds a replica of each (ErrNotHere if not).
func (n *Node) readable(ctx context.Context, parts []int) error {
	switch {
	case n.raft != nil && !isStale(ctx):
		for _, p := range parts {
			if err := n.readBarrier(ctx, p); err != nil {
				return err
			}
		}
	case n.raft != nil:
		st, err := n.raft.Status(ctx)
		if err != nil {
			return fmt.Errorf("%w: %v", item.ErrUnavailable, err)
		}
		held := make([]bool, n.nparts)
		for _, g := range st {
			held[g.Group] = true
		}
		for _, p := range parts {
			if !held[p] {
				return ErrNotHere
			}
		}
	}
	return nil
}

// isConflictKey reports whether key belongs to a conflict log: state a
// region keeps for itself, which regions do not compare.
func isConflictKey(key []byte) bool {
	return len(key) > 3 && key[0] == prefixPartition && (key[3] == kindConflict || key[3] == kindConflictBounds)
}

// ItemMeta returns tenant's item id's version vector and how many entries
// of this region's conflict log name it, deletes included (a tombstone's
// vector); item.ErrNotFound when neither a value nor a tombstone is here.
// Like ItemVersion, it reads after a read barrier unless ctx allows stale
// reads, and answers ErrNotHere for a partition held elsewhere.
func (n *Node) ItemMeta(ctx context.Context, tenant, id string) (*item.Meta, error) {
	lim := &n.cfg.Limits
	if err := errors.Join(lim.CheckTenant(tenant), lim.CheckID(id)); err != nil {
		return nil, firstInvalid(err)
	}
	part := PartitionOf(tenant, id, n.nparts)
	if err := n.readable(ctx, []int{part}); err != nil {
		return nil, err
	}
	var kb []byte
	v, ok, err := n.storedValue(ctx, part, tenant, id, &kb)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, item.ErrNotFound
	}
	var r record
	if err := r.decode(v.Record); err != nil {
		return nil, err
	}
	m := &item.Meta{Versions: map[string]string{}}
	for _, e := range r.clock() {
		m.Versions[e.region] = FormatVersion(e.hlc, e.region)
	}
	prefix := conflictPrefix(nil, part, tenant)
	it, err := n.store.NewIter(ctx, prefix, prefixEnd(prefix))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	defer it.Close()
	for it.Next() {
		var e conflictEntry
		if e.decode(it.Value()) == nil && e.id == id {
			m.Conflicts++
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", item.ErrUnavailable, err)
	}
	return m, nil
}
