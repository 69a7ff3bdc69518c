package raftlog

import (
	"encoding/binary"
	"hash/crc32"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Batch is what one Write stores: any number of operations on any number
// of groups, applied in the order they were added, atomically (after a
// crash, replay has all of a batch or none of it). The zero value is
// empty and ready; Reset lets a batch be reused without allocating.
//
// A Batch encodes as it goes (it copies entry data), so the entries and
// hard states passed to it may be reused once the call returns. The
// rules each operation must keep are checked by Write, which refuses a
// batch that breaks one before writing any of it.
type Batch struct {
	// buf holds recHeaderLen bytes for a record header, then the
	// operations' encodings, so that a batch that fits one record is
	// written from buf as is.
	buf []byte
	ops []op
}

func (b *Batch) start(kind byte, g GroupID) int {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, make([]byte, recHeaderLen)...)
	}
	pos := len(b.buf)
	b.buf = append(b.buf, kind)
	b.buf = binary.AppendUvarint(b.buf, uint64(g))
	return pos
}

func (b *Batch) finish(o op) {
	o.n = len(b.buf) - o.pos
	if o.kind == opEntry {
		o.crc = crc32.Checksum(b.buf[o.pos:], crcTable)
	}
	b.ops = append(b.ops, o)
}

// Append stores entries of group g, which must have consecutive indexes.
// The group's entries at and after the first one's index are dropped
// first: raft overwrites a conflicting tail that way. The first index
// must be after the group's compaction point and at most one past its
// last entry.
func (b *Batch) Append(g GroupID, ents []*pb.Entry) {
	for _, e := range ents {
		pos := b.start(opEntry, g)
		b.buf = binary.AppendUvarint(b.buf, e.GetTerm())
		b.buf = binary.AppendUvarint(b.buf, e.GetIndex())
		typ := e.GetType()
		if typ < 0 || typ > 255 {
			typ = 255 // refused by Write
		}
		b.buf = append(b.buf, byte(typ))
		b.buf = binary.AppendUvarint(b.buf, uint64(len(e.GetData())))
		b.buf = append(b.buf, e.GetData()...)
		b.finish(op{kind: opEntry, group: g, a: e.GetTerm(), b: e.GetIndex(), etype: byte(typ), pos: pos})
	}
}

// SetHardState stores group g's hard state.
func (b *Batch) SetHardState(g GroupID, hs *pb.HardState) {
	b.hardState(g, hardState{hs.GetTerm(), hs.GetVote(), hs.GetCommit()})
}

func (b *Batch) hardState(g GroupID, hs hardState) {
	pos := b.start(opHardState, g)
	b.buf = binary.AppendUvarint(b.buf, hs.term)
	b.buf = binary.AppendUvarint(b.buf, hs.vote)
	b.buf = binary.AppendUvarint(b.buf, hs.commit)
	b.finish(op{kind: opHardState, group: g, a: hs.term, b: hs.vote, c: hs.commit, pos: pos})
}

// Compact drops group g's entries up to index, recording index and term
// as those of the last entry compacted away (raft's snapshot metadata for
// what is gone). index must be at least the group's current compaction
// point (equal changes nothing) and at most its last entry's index.
func (b *Batch) Compact(g GroupID, index, term uint64) {
	b.compaction(opCompact, g, index, term)
}

// Snapshot records that a snapshot at index (with term) replaced group
// g's log: every entry is dropped and the log continues at index+1.
// index must be at least the group's current compaction point.
func (b *Batch) Snapshot(g GroupID, index, term uint64) {
	b.compaction(opSnapshot, g, index, term)
}

func (b *Batch) compaction(kind byte, g GroupID, index, term uint64) {
	pos := b.start(kind, g)
	b.buf = binary.AppendUvarint(b.buf, index)
	b.buf = binary.AppendUvarint(b.buf, term)
	b.finish(op{kind: kind, group: g, a: index, b: term, pos: pos})
}

// Remove drops everything of group g: its entries, hard state and
// compaction point. Later operations on g start it afresh.
func (b *Batch) Remove(g GroupID) {
	pos := b.start(opRemove, g)
	b.finish(op{kind: opRemove, group: g, pos: pos})
}

// checkpoint marks the batch as a segment's checkpoint (gc.go), after a
// segment of prevSize bytes; it must be its first operation.
func (b *Batch) checkpoint(prevSize int64) {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, make([]byte, recHeaderLen)...)
	}
	pos := len(b.buf)
	b.buf = append(b.buf, opCheckpoint)
	b.buf = binary.AppendUvarint(b.buf, uint64(prevSize))
	b.finish(op{kind: opCheckpoint, a: uint64(prevSize), pos: pos})
}

// Len returns the number of operations in the batch (an entry is one).
func (b *Batch) Len() int { return len(b.ops) }

// Size returns the bytes the batch's operations take in the log.
func (b *Batch) Size() int { return max(len(b.buf)-recHeaderLen, 0) }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.ops = b.ops[:0]
}
