// The in-memory index of the log: per group its hard state, compaction
// point and where each live entry lies; per segment what it holds. Writes
// and replay change it through the same apply.

package raftlog

import (
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
)

// loc is where an entry lies: its operation's bytes in a segment, and
// their crc32c (checked when the entry is read back).
type loc struct {
	seg uint32 // segment sequence number
	off uint32
	n   uint32
	crc uint32
}

// group is the state of one group.
//
// Invariant: locs[i] is entry first+i, and first == trunc+1 once Open has
// returned (replay may briefly see a gap, see apply).
type group struct {
	hs        hardState
	hsSet     bool
	trunc     uint64 // index of the last entry compacted away (0: none)
	truncTerm uint64
	first     uint64
	locs      []loc
	bytes     int64 // sum of locs' n
	// rec holds the entries replay decoded, aligned with locs, until the
	// group is loaded or gets an entry written (nil then).
	rec []*pb.Entry
}

type hardState struct{ term, vote, commit uint64 }

// last is the index of the group's last entry, or its compaction point
// when it holds none.
func (s *group) last() uint64 {
	if len(s.locs) == 0 {
		return s.trunc
	}
	return s.first + uint64(len(s.locs)) - 1
}

// empty reports whether the group holds nothing (it is then forgotten).
func (s *group) empty() bool { return !s.hsSet && s.trunc == 0 && len(s.locs) == 0 }

// dropFrom drops the entries at index i and after.
func (s *group) dropFrom(i uint64) {
	if len(s.locs) == 0 || i > s.last() {
		return
	}
	k := 0
	if i > s.first {
		k = int(i - s.first)
	}
	for _, l := range s.locs[k:] {
		s.bytes -= int64(l.n)
	}
	s.locs = s.locs[:k]
	if s.rec != nil {
		s.rec = s.rec[:k]
	}
}

// dropTo drops the entries up to index i.
func (s *group) dropTo(i uint64) {
	if len(s.locs) == 0 || i < s.first {
		return
	}
	if i >= s.last() {
		s.locs, s.rec, s.bytes = nil, nil, 0
		return
	}
	k := int(i - s.first + 1)
	for _, l := range s.locs[:k] {
		s.bytes -= int64(l.n)
	}
	s.locs = s.locs[k:]
	if s.rec != nil {
		s.rec = s.rec[k:]
	}
	s.first = i + 1
}

// segment is one segment file.
type segment struct {
	seq  uint64
	f    file
	size int64
	// maxIndex is, per group, the highest entry index written into this
	// segment (by this incarnation of the group: Remove forgets it).
	// Invariant: every entry this segment holds that a group still needs
	// has an index <= maxIndex[group]; so once a group's compaction point
	// reaches it, the group needs nothing here.
	maxIndex map[GroupID]uint64
	// checkpointed: the segment's first batch restates every group's
	// hard state and compaction point (every segment has one but the
	// first ever, sequence number 1).
	checkpointed bool
}

// apply applies one operation, written (or replayed) in segment seg, to
// the index. Writes are checked first (check), so the lenient cases
// below arise only in replay: after old segments were deleted, a
// checkpoint may restate a compaction point for entries that are gone,
// and later entries follow it with a gap until a compaction closes it.
func (l *Log) apply(o *op, seg *segment) {
	switch o.kind {
	case opCheckpoint:
		return
	case opRemove:
		delete(l.groups, o.group)
		for _, s := range l.segs {
			delete(s.maxIndex, o.group)
		}
		l.gcDue = true
		return
	}
	s := l.groups[o.group]
	if s == nil {
		s = &group{}
		l.groups[o.group] = s
	}
	switch o.kind {
	case opEntry:
		i := o.b
		if i <= s.trunc {
			break // replay only: compacted already
		}
		if len(s.locs) > 0 && (i > s.last()+1 || i < s.first) {
			s.locs, s.rec, s.bytes = nil, nil, 0 // replay only: a gap
		}
		s.dropFrom(i)
		if len(s.locs) == 0 {
			s.first = i
		}
		switch {
		case o.ent != nil && (s.rec != nil || len(s.locs) == 0):
			s.rec = append(s.rec, o.ent)
		default:
			s.rec = nil
		}
		s.locs = append(s.locs, loc{seg: uint32(seg.seq), off: uint32(o.off), n: uint32(o.n), crc: o.crc})
		s.bytes += int64(o.n)
		if m, ok := seg.maxIndex[o.group]; !ok || i > m {
			seg.maxIndex[o.group] = i
		}
	case opHardState:
		s.hs, s.hsSet = hardState{o.a, o.b, o.c}, true
	case opCompact:
		if o.a <= s.trunc {
			break
		}
		s.dropTo(o.a)
		s.trunc, s.truncTerm = o.a, o.b
		if len(s.locs) == 0 {
			s.first = o.a + 1
		}
		l.gcDue = true
	case opSnapshot:
		s.locs, s.rec, s.bytes = nil, nil, 0
		s.trunc, s.truncTerm, s.first = o.a, o.b, o.a+1
		l.gcDue = true
	}
	if s.empty() {
		delete(l.groups, o.group)
	}
}

// view is what check knows of a group part way through a batch.
type view struct{ trunc, last uint64 }

// check refuses a batch that breaks a rule of Batch's methods, before
// anything of it is written, so that the log never holds what replay
// would read differently.
func (l *Log) check(b *Batch) error {
	clear(l.views)
	get := func(g GroupID) view {
		if v, ok := l.views[g]; ok {
			return v
		}
		if s := l.groups[g]; s != nil {
			return view{s.trunc, s.last()}
		}
		return view{}
	}
	for i := range b.ops {
		o := &b.ops[i]
		if o.n > l.fragBytes {
			return fmt.Errorf("%w: group %d: an operation of %d bytes exceeds the record limit", ErrBadBatch, o.group, o.n)
		}
		v := get(o.group)
		switch o.kind {
		case opEntry:
			if o.etype > byte(pb.EntryType_EntryConfChangeV2) {
				return fmt.Errorf("%w: group %d entry %d: unknown entry type", ErrBadBatch, o.group, o.b)
			}
			if o.b <= v.trunc || o.b > v.last+1 {
				return fmt.Errorf("%w: group %d: entry %d does not follow the log (compacted to %d, last %d)", ErrBadBatch, o.group, o.b, v.trunc, v.last)
			}
			v.last = o.b
		case opCompact:
			if o.a == 0 || o.a < v.trunc || o.a > v.last {
				return fmt.Errorf("%w: group %d: compaction to %d outside the log (compacted to %d, last %d)", ErrBadBatch, o.group, o.a, v.trunc, v.last)
			}
			v.trunc = o.a
		case opSnapshot:
			if o.a == 0 || o.a < v.trunc {
				return fmt.Errorf("%w: group %d: snapshot at %d behind the compaction point %d", ErrBadBatch, o.group, o.a, v.trunc)
			}
			v.trunc, v.last = o.a, o.a
		case opRemove:
			v = view{}
		case opCheckpoint:
			if i != 0 {
				return fmt.Errorf("%w: a checkpoint inside a batch", ErrBadBatch)
			}
		}
		l.views[o.group] = v
	}
	return nil
}
