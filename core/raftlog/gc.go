// Moving to a new segment, and deleting the segments nothing needs.
//
// The invariant that makes deleting a segment safe: the oldest segment
// may go once (1) every group's entries it holds are compacted away
// (maxIndex[g] <= the group's compaction point; a removed group's are
// forgotten, a rewritten group's live entries are all in a later
// segment), (2) the segment after it begins with a checkpoint, which
// restates every group's hard state and compaction point, so that the
// latest of each is in a later segment, and (3) the operations behind (1)
// are durable. Replay of the segments that remain then rebuilds the same
// state: each live entry's latest write, and each group's latest hard
// state and compaction point, are in them, and nothing in them is undone
// by anything that was only in the deleted segment (segments are deleted
// oldest first, so what remains is a suffix of the log).

package raftlog

import (
	"fmt"
	"slices"
)

// roll moves writing to a new segment: the current one is synced (so
// that only the last segment can ever end torn), the new one created
// with its checkpoint — and the live entries of the groups that pin old
// segments, once there are more than RewriteSegments — synced with the
// directory, and old segments deleted.
func (l *Log) roll() error {
	old := l.cur()
	if err := l.sync(); err != nil {
		return err
	}
	rewrite := l.pickRewrites()
	s, err := l.createSegment(old.seq + 1)
	if err != nil {
		return err
	}
	l.segs = append(l.segs, s)
	if err := l.writeCheckpoint(s, rewrite); err != nil {
		return err
	}
	l.stats.Rolls++
	l.log.Debug("moved to a new segment", "segment", s.seq, "rewritten_groups", len(rewrite))
	return l.gc()
}

// writeCheckpoint writes segment s's first batch — every group's hard
// state and compaction point, then all live entries of the groups in
// rewrite — and syncs s and the directory.
func (l *Log) writeCheckpoint(s *segment, rewrite []GroupID) error {
	if s.size > headerLen {
		return fmt.Errorf("%w: segment %d holds batches but no checkpoint", ErrCorrupt, s.seq)
	}
	var prevSize int64
	if len(l.segs) > 1 {
		prevSize = l.segs[len(l.segs)-2].size
	}
	b := &l.ckpt
	b.Reset()
	b.checkpoint(prevSize)
	for _, g := range l.Groups() {
		st := l.groups[g]
		if st.hsSet {
			b.hardState(g, st.hs)
		}
		if st.trunc > 0 {
			b.Compact(g, st.trunc, st.truncTerm)
		}
	}
	for _, g := range rewrite {
		st := l.groups[g]
		ents, err := l.Entries(g, st.first, st.last()+1)
		if err != nil {
			return err
		}
		b.Append(g, ents)
		l.stats.RewrittenBytes += uint64(st.bytes)
	}
	if b.Size() > maxBatchBytes {
		return fmt.Errorf("raftlog: a checkpoint of %d bytes exceeds the batch limit", b.Size())
	}
	if err := l.writeBatch(s, b); err != nil {
		return err
	}
	if err := l.sync(); err != nil {
		return err
	}
	if err := l.syncDir(); err != nil {
		return err
	}
	for i := range b.ops {
		l.apply(&b.ops[i], s)
	}
	s.checkpointed = true
	for _, g := range rewrite {
		for _, o := range l.segs {
			if o != s {
				delete(o.maxIndex, g)
			}
		}
	}
	l.gcDue = true
	return nil
}

// pickRewrites chooses, when the log holds more than RewriteSegments
// segments, the groups whose live entries keep its oldest segments alive,
// oldest segment first, while freeing the next one costs at most what is
// left of RewriteBytes. A group is rewritten whole (every live entry), so
// afterwards no older segment holds anything it needs.
func (l *Log) pickRewrites() []GroupID {
	n := len(l.segs) + 1 // with the segment being created
	if n <= l.cfg.RewriteSegments {
		return nil
	}
	budget := l.cfg.RewriteBytes
	var picked []GroupID
	for k := 0; k < len(l.segs) && n-k > l.cfg.RewriteSegments; k++ {
		var need []GroupID
		var cost int64
		for g, m := range l.segs[k].maxIndex {
			if st := l.groups[g]; st != nil && st.trunc < m && !slices.Contains(picked, g) {
				need = append(need, g)
				cost += st.bytes
			}
		}
		if cost > budget {
			break
		}
		budget -= cost
		picked = append(picked, need...)
	}
	slices.Sort(picked)
	return picked
}

// gc deletes the oldest segments while nothing in them is needed (see
// the invariant above). It runs only when everything written is durable.
func (l *Log) gc() error {
	l.gcDue = false
	for len(l.segs) > 1 && l.segs[1].checkpointed && l.deletable(l.segs[0]) {
		s := l.segs[0]
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		if err := l.fs.Remove(l.path(s.seq)); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		// One directory sync per deletion: a crash then brings back at
		// most the oldest segment, never a hole in the sequence.
		if err := l.syncDir(); err != nil {
			return err
		}
		l.segs[0] = nil
		l.segs = l.segs[1:]
		l.stats.DeletedSegments++
		l.log.Debug("deleted a segment", "segment", s.seq)
	}
	return nil
}

// deletable reports whether every group's entries in s are compacted.
func (l *Log) deletable(s *segment) bool {
	for g, m := range s.maxIndex {
		if st := l.groups[g]; st != nil && st.trunc < m {
			return false
		}
	}
	return true
}
