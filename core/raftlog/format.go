// The file format: segment names and headers, record framing, and the
// encoding of the operations a batch carries.

package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/internal/codec"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Segment files are named by their sequence number, 16 hex digits.
const segmentSuffix = ".rlog"

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

// parseSegmentName returns the sequence number a segment file name
// carries, and false for any other name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != 16+len(segmentSuffix) || name[16:] != segmentSuffix {
		return 0, false
	}
	seq, err := strconv.ParseUint(name[:16], 16, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// The segment header:
//
//	[0:8]   magic "BRNYRLOG"
//	[8:12]  format version, little-endian uint32 (1)
//	[12:20] the segment's sequence number, little-endian uint64
//	[20:24] crc32c of [0:20]
const (
	headerLen     = 24
	formatVersion = 1
	magic         = "BRNYRLOG"
)

func encodeHeader(seq uint64) []byte {
	h := make([]byte, 0, headerLen)
	h = append(h, magic...)
	h = binary.LittleEndian.AppendUint32(h, formatVersion)
	h = binary.LittleEndian.AppendUint64(h, seq)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, crcTable))
}

// errTornHeader: the header is short or fails its checksum, as a crash
// while the segment was being created leaves it.
var errTornHeader = errors.New("raftlog: torn segment header")

// checkHeader checks a segment header read from segment seq.
func checkHeader(h []byte, seq uint64) error {
	if len(h) < headerLen || crc32.Checksum(h[:20], crcTable) != binary.LittleEndian.Uint32(h[20:24]) {
		return errTornHeader
	}
	if string(h[:8]) != magic {
		return fmt.Errorf("%w: segment %d: bad magic", ErrCorrupt, seq)
	}
	if v := binary.LittleEndian.Uint32(h[8:12]); v != formatVersion {
		return fmt.Errorf("%w: segment %d: format version %d, want %d", ErrCorrupt, seq, v, formatVersion)
	}
	if s := binary.LittleEndian.Uint64(h[12:20]); s != seq {
		return fmt.Errorf("%w: segment file %d holds segment %d", ErrCorrupt, seq, s)
	}
	return nil
}

// A record frames part or all of one batch:
//
//	[0:4] payload length, little-endian uint32 (at most maxRecordBytes)
//	[4]   type (recFull, recFirst, recMiddle, recLast)
//	[5:9] crc32c of [0:5] and the payload
//	[9:]  payload: whole operations (an operation never spans records)
//
// A batch whose encoding fits one record is one recFull record. A larger
// one is split, between operations, into recFirst, recMiddle…, recLast,
// consecutive in one segment; replay applies it only once its recLast is
// read, so a batch is replayed whole or not at all.
const (
	recHeaderLen = 9
	// maxRecordBytes bounds a record's payload. Replay refuses a longer
	// length outright, whatever the file holds, so a corrupt length can
	// never make it allocate more than this (nor more than the file's
	// size, which it also checks).
	maxRecordBytes = 64 << 20
)

// Record types. Zero is invalid, so zeroed space is never a record.
const (
	recFull   = 1
	recFirst  = 2
	recMiddle = 3
	recLast   = 4
)

// recordCRC is the checksum of a record whose 9-byte header is h.
func recordCRC(h, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(h[:5], crcTable), crcTable, payload)
}

// putRecordHeader fills h (9 bytes) for a record of type typ.
func putRecordHeader(h []byte, typ byte, payload []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(payload)))
	h[4] = typ
	binary.LittleEndian.PutUint32(h[5:], recordCRC(h, payload))
}

// Operations, each a kind byte then uvarints:
//
//	opEntry      group term index type(1 byte) len data
//	             the group's entry at index; entries at index and after
//	             are dropped first (raft overwrites a conflicting tail)
//	opHardState  group term vote commit
//	opCompact    group index term: entries up to index are gone, index
//	             and term are the last compacted entry's
//	opSnapshot   group index term: a snapshot at index replaced the log;
//	             every entry is gone, the log continues at index+1
//	opRemove     group: the group's state is gone
//	opCheckpoint size: this batch restates the live state (see gc.go);
//	             only ever the first operation of a segment's first batch.
//	             size is the previous segment's final size (0 if it was
//	             gone), checked at Open while it exists
const (
	opEntry      = 1
	opHardState  = 2
	opCompact    = 3
	opSnapshot   = 4
	opRemove     = 5
	opCheckpoint = 6
)

// op is one decoded operation. For opEntry, a is the term and b the
// index; for opHardState a, b, c are term, vote and commit; for opCompact
// and opSnapshot a is the index and b the term; for opCheckpoint a is the
// previous segment's size.
type op struct {
	kind    byte
	etype   byte
	group   GroupID
	a, b, c uint64
	// pos and n locate the operation's bytes: in a Batch, within its
	// buffer; once written or replayed, off is its offset in its segment.
	pos, n int
	off    int64
	crc    uint32 // an entry's: crc32c of its bytes
	// data aliases the decoded bytes (valid while they are); ent is the
	// decoded entry, kept (replay only).
	data []byte
	ent  *pb.Entry
}

var errBadOp = fmt.Errorf("%w: undecodable operation", ErrCorrupt)

// decodeOp decodes the operation at the start of p, returning it and its
// length. With keep, an entry's data is copied into a (the decoded entry
// is kept).
func decodeOp(p []byte, keep bool, a *arena) (op, int, error) {
	d := codec.Decoder{B: p, Fail: errBadOp}
	o := op{kind: d.Byte()}
	switch o.kind {
	case opEntry:
		o.group = decodeGroup(&d)
		o.a, o.b = d.Uvarint(), d.Uvarint()
		o.etype = d.Byte()
		o.data = d.Bytes()
		if d.Err == nil && (o.etype > byte(pb.EntryType_EntryConfChangeV2) || o.b == 0) {
			return op{}, 0, fmt.Errorf("%w: entry type %d index %d", ErrCorrupt, o.etype, o.b)
		}
		if d.Err == nil && keep {
			o.ent = a.entry(o.a, o.b, o.etype, o.data)
		}
	case opHardState:
		o.group = decodeGroup(&d)
		o.a, o.b, o.c = d.Uvarint(), d.Uvarint(), d.Uvarint()
	case opCompact, opSnapshot:
		o.group = decodeGroup(&d)
		o.a, o.b = d.Uvarint(), d.Uvarint()
		if d.Err == nil && o.a == 0 {
			return op{}, 0, fmt.Errorf("%w: compaction to index 0", ErrCorrupt)
		}
	case opRemove:
		o.group = decodeGroup(&d)
	case opCheckpoint:
		o.a = d.Uvarint()
	default:
		return op{}, 0, fmt.Errorf("%w: operation kind %d", ErrCorrupt, o.kind)
	}
	if d.Err != nil {
		return op{}, 0, d.Err
	}
	o.n = len(p) - len(d.B)
	if o.kind == opEntry {
		o.crc = crc32.Checksum(p[:o.n], crcTable)
	}
	return o, o.n, nil
}

func decodeGroup(d *codec.Decoder) GroupID {
	g := d.Uvarint()
	if g > 1<<32-1 {
		d.B, d.Err = nil, d.Fail
		return 0
	}
	return GroupID(g)
}

// decodeEntry decodes an entry operation read back from a segment (its
// bytes as written, checked against their crc by the caller), aliasing
// its data into p.
func decodeEntry(p []byte, g GroupID, index uint64) (*pb.Entry, error) {
	o, n, err := decodeOp(p, false, nil)
	if err != nil || n != len(p) || o.kind != opEntry || o.group != g || o.b != index {
		return nil, fmt.Errorf("%w: group %d entry %d does not read back", ErrCorrupt, g, index)
	}
	return newEntry(o.a, o.b, o.etype, o.data), nil
}

// entryAlloc holds an entry with the fields its pointers refer to, so
// that an entry costs one allocation.
type entryAlloc struct {
	e     pb.Entry
	term  uint64
	index uint64
	typ   pb.EntryType
}

func newEntry(term, index uint64, typ byte, data []byte) *pb.Entry {
	x := &entryAlloc{term: term, index: index, typ: pb.EntryType(typ)}
	x.e.Term, x.e.Index, x.e.Type = &x.term, &x.index, &x.typ
	if len(data) > 0 {
		x.e.Data = data
	}
	return &x.e
}

// arena copies the data of the entries replay keeps into shared chunks:
// fewer, larger allocations than one per entry.
type arena struct{ buf []byte }

const arenaChunk = 256 << 10

func (a *arena) entry(term, index uint64, typ byte, data []byte) *pb.Entry {
	var cp []byte
	if n := len(data); n > arenaChunk/8 {
		cp = append([]byte(nil), data...)
	} else if n > 0 {
		if cap(a.buf)-len(a.buf) < n {
			a.buf = make([]byte, 0, arenaChunk)
		}
		a.buf = append(a.buf, data...)
		cp = a.buf[len(a.buf)-n : len(a.buf) : len(a.buf)]
	}
	return newEntry(term, index, typ, cp)
}
