// Reading a group's state and entries back.

package raftlog

import (
	"fmt"
	"hash/crc32"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// State is what the log holds of a group besides its entries.
type State struct {
	// HardState is the last one stored, nil if none was.
	HardState *pb.HardState
	// Compacted and CompactedTerm are the index and term of the last
	// entry compacted away (0 and 0 if none was): raft's snapshot
	// metadata for what the log no longer has.
	Compacted, CompactedTerm uint64
	// First and Last bound the entries held: First is Compacted+1, and
	// Last is Compacted when there is none.
	First, Last uint64
}

// State returns group g's state, and false if the log holds nothing of g.
func (l *Log) State(g GroupID) (State, bool) {
	s := l.groups[g]
	if s == nil {
		return State{}, false
	}
	st := State{Compacted: s.trunc, CompactedTerm: s.truncTerm, First: s.trunc + 1, Last: s.last()}
	if s.hsSet {
		term, vote, commit := s.hs.term, s.hs.vote, s.hs.commit
		st.HardState = &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
	}
	return st, true
}

// Load returns group g's state and all its entries: what a replica
// restarts from. Open keeps the entries it decoded of each group until
// the group is loaded (or gets a new entry), so loading every group
// after Open reads nothing from disk again; Load lets them go.
func (l *Log) Load(g GroupID) (State, []*pb.Entry, error) {
	st, ok := l.State(g)
	if !ok {
		return State{}, nil, nil
	}
	ents, err := l.Entries(g, st.First, st.Last+1)
	if err != nil {
		return State{}, nil, err
	}
	l.groups[g].rec = nil
	return st, ents, nil
}

// Entries returns group g's entries [lo, hi). Like raft.Storage's, the
// error wraps raft.ErrCompacted when lo is before the first entry held
// and raft.ErrUnavailable when hi is past the last one. The entries are
// the caller's; read back from disk, each is checked against the crc32c
// taken when it was written (ErrCorrupt).
func (l *Log) Entries(g GroupID, lo, hi uint64) ([]*pb.Entry, error) {
	if l.closed {
		return nil, ErrClosed
	}
	s := l.groups[g]
	first, last := uint64(1), uint64(0)
	if s != nil {
		first, last = s.trunc+1, s.last()
	}
	switch {
	case lo < first:
		return nil, fmt.Errorf("raftlog: group %d entries from %d, first is %d: %w", g, lo, first, raft.ErrCompacted)
	case hi > last+1:
		return nil, fmt.Errorf("raftlog: group %d entries to %d, last is %d: %w", g, hi, last, raft.ErrUnavailable)
	case lo >= hi:
		return nil, nil
	}
	i, j := int(lo-s.first), int(hi-s.first)
	if s.rec != nil {
		return append([]*pb.Entry(nil), s.rec[i:j]...), nil
	}
	out := make([]*pb.Entry, 0, j-i)
	locs := s.locs[i:j]
	for i := 0; i < len(locs); {
		// Read runs of entries close together in one segment at once.
		start, end := locs[i].off, locs[i].off+locs[i].n
		k := i + 1
		for k < len(locs) && locs[k].seg == locs[i].seg && locs[k].off >= end &&
			locs[k].off-end <= readGap && locs[k].off+locs[k].n-start <= readRun {
			end = locs[k].off + locs[k].n
			k++
		}
		seg := l.segment(uint64(locs[i].seg))
		if seg == nil {
			return nil, fmt.Errorf("%w: group %d entry %d is in segment %d, which is gone", ErrCorrupt, g, lo+uint64(len(out)), locs[i].seg)
		}
		buf := make([]byte, end-start)
		if _, err := seg.f.ReadAt(buf, int64(start)); err != nil {
			return nil, fmt.Errorf("raftlog: reading segment %d: %w", seg.seq, err)
		}
		for ; i < k; i++ {
			p := buf[locs[i].off-start : locs[i].off-start+locs[i].n]
			index := lo + uint64(len(out))
			if crc32.Checksum(p, crcTable) != locs[i].crc {
				return nil, fmt.Errorf("%w: group %d entry %d fails its checksum (segment %d)", ErrCorrupt, g, index, seg.seq)
			}
			e, err := decodeEntry(p, g, index)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Reads of entries merge into one read across gaps up to readGap (other
// groups' entries between), up to readRun bytes.
const (
	readGap = 4 << 10
	readRun = 1 << 20
)
