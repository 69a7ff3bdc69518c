package segment

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/google/btree"
)

// Object names under Config.Objects. Sequence numbers are 16 hex digits so
// that a listing's byte order is sequence order.
const (
	segPrefix   = "seg/"
	ckptPrefix  = "ckpt/"
	manifestKey = "MANIFEST"
)

func segKey(seq uint64) string  { return fmt.Sprintf("%s%016x", segPrefix, seq) }
func ckptKey(seq uint64) string { return fmt.Sprintf("%s%016x", ckptPrefix, seq) }

// parseSeq returns the sequence number of an object named prefix+16 hex digits.
func parseSeq(prefix, key string) (uint64, error) {
	hex, ok := strings.CutPrefix(key, prefix)
	if !ok || len(hex) != 16 {
		return 0, fmt.Errorf("segment: unexpected object %q under %q", key, prefix)
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("segment: unexpected object %q under %q", key, prefix)
	}
	return seq, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt classifies every decoding failure of a segment, checkpoint or
// manifest object: the bytes are not what this package wrote.
var ErrCorrupt = errors.New("segment: corrupt object")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Segment layout (integers little-endian unless noted):
//
//	header  "BSEG" | version u8 | 3 zero bytes | seq u64            16 bytes
//	record  crc u32 | kind u8 | keyLen u32 | valLen u32 | key | value
//	...
//	trailer "BEND" | record count u32 | crc u32 of header+records     12 bytes
//
// A record's crc (crc32c) covers everything after it up to the end of the
// value, so a range read of one record checks itself without the rest of
// the segment. The trailer's crc covers the whole segment, so a full read
// (recovery, compaction) also catches lost or reordered records.
const (
	segMagic      = "BSEG"
	trailerMagic  = "BEND"
	segVersion    = 1
	segHeaderLen  = 16
	recHeaderLen  = 13
	trailerLen    = 12
	kindSet       = 1
	kindDelete    = 2
	maxRecordPart = 1<<32 - 1 // keyLen and valLen are u32
)

// appendHeader starts a segment.
func appendHeader(dst []byte, seq uint64) []byte {
	dst = append(dst, segMagic...)
	dst = append(dst, segVersion, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(dst, seq)
}

// appendRecord appends one record; value is ignored for a delete.
func appendRecord(dst []byte, del bool, key, value []byte) []byte {
	start := len(dst)
	kind := byte(kindSet)
	if del {
		kind, value = kindDelete, nil
	}
	dst = append(dst, 0, 0, 0, 0, kind)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], crcTable))
	return dst
}

// appendTrailer closes a segment of count records.
func appendTrailer(dst []byte, count int) []byte {
	sum := crc32.Checksum(dst, crcTable)
	dst = append(dst, trailerMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(count))
	return binary.LittleEndian.AppendUint32(dst, sum)
}

// record is one decoded record. Key and Value alias the decoded bytes.
type record struct {
	Del        bool
	Key, Value []byte
	Off, Len   int64 // the record's position in its segment
}

// decodeRecord decodes the record at the start of b, checking its crc, and
// returns it with its encoded length.
func decodeRecord(b []byte) (record, error) {
	if len(b) < recHeaderLen {
		return record{}, corrupt("record header truncated (%d of %d bytes)", len(b), recHeaderLen)
	}
	kind := b[4]
	klen := uint64(binary.LittleEndian.Uint32(b[5:]))
	vlen := uint64(binary.LittleEndian.Uint32(b[9:]))
	n := recHeaderLen + klen + vlen
	if n > uint64(len(b)) {
		return record{}, corrupt("record of %d bytes overruns the %d available", n, len(b))
	}
	if want, got := binary.LittleEndian.Uint32(b), crc32.Checksum(b[4:n], crcTable); want != got {
		return record{}, corrupt("record checksum %08x, want %08x", got, want)
	}
	r := record{Key: b[recHeaderLen : recHeaderLen+klen : recHeaderLen+klen], Len: int64(n)}
	switch kind {
	case kindSet:
		r.Value = b[recHeaderLen+klen : n : n]
	case kindDelete:
		if vlen != 0 {
			return record{}, corrupt("delete record carries a %d-byte value", vlen)
		}
		r.Del = true
	default:
		return record{}, corrupt("record kind %d", kind)
	}
	return r, nil
}

// decodeSegment checks a whole segment object and returns its sequence
// number and records (aliasing b). It never panics, whatever b holds.
func decodeSegment(b []byte) (uint64, []record, error) {
	if len(b) < segHeaderLen+trailerLen {
		return 0, nil, corrupt("segment of %d bytes is shorter than its header and trailer", len(b))
	}
	if string(b[:4]) != segMagic {
		return 0, nil, corrupt("segment magic %q, want %q", b[:4], segMagic)
	}
	if b[4] != segVersion || b[5]|b[6]|b[7] != 0 {
		return 0, nil, corrupt("segment version %d (reserved %x), want %d", b[4], b[5:8], segVersion)
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	tr := b[len(b)-trailerLen:]
	body := b[:len(b)-trailerLen]
	if string(tr[:4]) != trailerMagic {
		return 0, nil, corrupt("segment %d: trailer magic %q, want %q (truncated?)", seq, tr[:4], trailerMagic)
	}
	count := binary.LittleEndian.Uint32(tr[4:])
	if want, got := binary.LittleEndian.Uint32(tr[8:]), crc32.Checksum(body, crcTable); want != got {
		return 0, nil, corrupt("segment %d: checksum %08x, want %08x", seq, got, want)
	}
	if uint64(count) > uint64(len(body)-segHeaderLen)/recHeaderLen {
		return 0, nil, corrupt("segment %d: %d records cannot fit in %d bytes", seq, count, len(body))
	}
	recs := make([]record, 0, count)
	off := segHeaderLen
	for off < len(body) {
		r, err := decodeRecord(body[off:])
		if err != nil {
			return 0, nil, fmt.Errorf("segment %d, record %d at offset %d: %w", seq, len(recs), off, err)
		}
		r.Off = int64(off)
		recs = append(recs, r)
		off += int(r.Len)
	}
	if len(recs) != int(count) {
		return 0, nil, corrupt("segment %d: %d records, trailer says %d", seq, len(recs), count)
	}
	return seq, recs, nil
}

// entry is the index's value for one live key: where its record is.
type entry struct {
	key []byte
	seq uint64 // segment
	off int64  // record offset in the segment
	n   int64  // record length
}

// liveBytes is what the key and its value count towards Stats.LiveBytes.
func (e entry) liveBytes() int64 { return e.n - recHeaderLen }

func lessEntry(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// Checkpoint layout:
//
//	"BCKP" | version u8 | 3 zero bytes | seq u64 | count u64
//	count × (uvarint keyLen | key | uvarint seq | uvarint off | uvarint n)
//	crc u32 of everything before it
//
// Entries are in strictly ascending key order.
const (
	ckptMagic     = "BCKP"
	ckptVersion   = 1
	ckptHeaderLen = 24
)

func encodeCheckpoint(seq uint64, idx *btree.BTreeG[entry]) []byte {
	buf := make([]byte, 0, ckptHeaderLen+idx.Len()*32)
	buf = append(buf, ckptMagic...)
	buf = append(buf, ckptVersion, 0, 0, 0)
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(idx.Len()))
	idx.Ascend(func(e entry) bool {
		buf = binary.AppendUvarint(buf, uint64(len(e.key)))
		buf = append(buf, e.key...)
		buf = binary.AppendUvarint(buf, e.seq)
		buf = binary.AppendUvarint(buf, uint64(e.off))
		buf = binary.AppendUvarint(buf, uint64(e.n))
		return true
	})
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
}

// decodeCheckpoint checks a checkpoint object and returns its sequence
// number and entries (with keys copied out of b).
func decodeCheckpoint(b []byte) (uint64, []entry, error) {
	if len(b) < ckptHeaderLen+4 {
		return 0, nil, corrupt("checkpoint of %d bytes is shorter than its header", len(b))
	}
	if string(b[:4]) != ckptMagic || b[4] != ckptVersion || b[5]|b[6]|b[7] != 0 {
		return 0, nil, corrupt("checkpoint magic %q version %d, want %q version %d", b[:4], b[4], ckptMagic, ckptVersion)
	}
	body := b[:len(b)-4]
	if want, got := binary.LittleEndian.Uint32(b[len(b)-4:]), crc32.Checksum(body, crcTable); want != got {
		return 0, nil, corrupt("checkpoint checksum %08x, want %08x", got, want)
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	count := binary.LittleEndian.Uint64(b[16:])
	if count > uint64(len(body)) {
		return 0, nil, corrupt("checkpoint %d: %d entries cannot fit in %d bytes", seq, count, len(body))
	}
	p := body[ckptHeaderLen:]
	var scratch [binary.MaxVarintLen64]byte
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 || n != len(binary.AppendUvarint(scratch[:0], v)) { // only the shortest encoding
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	entries := make([]entry, 0, count)
	for i := uint64(0); i < count; i++ {
		klen, ok := uv()
		if !ok || klen > uint64(len(p)) {
			return 0, nil, corrupt("checkpoint %d: entry %d: bad key length", seq, i)
		}
		key := bytes.Clone(p[:klen])
		p = p[klen:]
		eseq, ok1 := uv()
		off, ok2 := uv()
		n, ok3 := uv()
		switch {
		case !ok1 || !ok2 || !ok3:
			return 0, nil, corrupt("checkpoint %d: entry %d truncated", seq, i)
		case eseq == 0 || eseq > seq:
			return 0, nil, corrupt("checkpoint %d: entry %d in segment %d", seq, i, eseq)
		case off < segHeaderLen || off > 1<<62 || n < recHeaderLen+klen || n > 1<<40:
			return 0, nil, corrupt("checkpoint %d: entry %d at offset %d length %d", seq, i, off, n)
		case i > 0 && bytes.Compare(entries[i-1].key, key) >= 0:
			return 0, nil, corrupt("checkpoint %d: entry %d out of order", seq, i)
		}
		entries = append(entries, entry{key: key, seq: eseq, off: int64(off), n: int64(n)})
	}
	if len(p) != 0 {
		return 0, nil, corrupt("checkpoint %d: %d bytes after the last entry", seq, len(p))
	}
	return seq, entries, nil
}

// manifest is the MANIFEST object: the one mutable object, naming the
// checkpoint recovery starts from.
type manifest struct {
	Version int `json:"version"`
	// Checkpoint is the sequence number of the checkpoint (ckpt/<seq>); 0
	// means none yet, and recovery replays every segment.
	Checkpoint uint64 `json:"checkpoint"`
}

const manifestVersion = 1

func encodeManifest(ckpt uint64) []byte {
	b, _ := json.Marshal(manifest{Version: manifestVersion, Checkpoint: ckpt})
	return b
}

func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, corrupt("MANIFEST: %v", err)
	}
	if m.Version != manifestVersion {
		return m, corrupt("MANIFEST version %d, want %d", m.Version, manifestVersion)
	}
	return m, nil
}
