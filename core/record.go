package core

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// A record is the stored value of an item (under its item key), or of a
// deleted item's tombstone (under its tombstone key, in a federation):
//
//	format byte (2; format 1 lacks origin and clock)
//	uvarint hlc      (the version: the hybrid-clock time of the last write)
//	uvarint len, origin (the region that made the last write; "" alone)
//	varint  createdAt, updatedAt (Unix nanoseconds)
//	uvarint len, type
//	uvarint len, data (compact JSON)
//	uvarint len, metadata (compact JSON object)
//	uvarint dims, dims × float32 little-endian
//	uvarint n, n × (uvarint len, region; uvarint hlc): the version vector
//
// Tenant and id live in the key. The version vector holds, per region, the
// hlc of that region's latest write the record includes; an empty one
// stands for {origin: hlc}, the common case of an item written in one
// region, so that it costs a byte. A format 1 record (written before
// versions were clock times) reads as hlc = its version, which was its
// partition's log index: smaller than any clock time, so the next write's
// version still exceeds it.
type record struct {
	hlc              uint64
	origin           string
	created, updated int64
	typ              string
	data, metadata   []byte
	vector           []float32
	vv               versionVector
}

const recordFormat = 2

var errCorrupt = errors.New("core: corrupt record")

func (r *record) append(dst []byte) []byte {
	dst = append(dst, recordFormat)
	dst = binary.AppendUvarint(dst, r.hlc)
	dst = codec.AppendString(dst, r.origin)
	dst = binary.AppendVarint(dst, r.created)
	dst = binary.AppendVarint(dst, r.updated)
	dst = codec.AppendBytes(dst, []byte(r.typ))
	dst = codec.AppendBytes(dst, r.data)
	dst = codec.AppendBytes(dst, r.metadata)
	dst = codec.AppendVector(dst, r.vector)
	vv := r.vv
	if vv.implicit(r.origin, r.hlc) {
		vv = nil
	}
	dst = binary.AppendUvarint(dst, uint64(len(vv)))
	for _, e := range vv {
		dst = codec.AppendString(dst, e.region)
		dst = binary.AppendUvarint(dst, e.hlc)
	}
	return dst
}

// decode parses b into r. The byte slices of r alias b.
func (r *record) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	format := d.Byte()
	if format != 1 && format != 2 {
		return errCorrupt
	}
	r.hlc = d.Uvarint()
	r.origin = ""
	if format == 2 {
		r.origin = d.String()
	}
	r.created = d.Varint()
	r.updated = d.Varint()
	r.typ = string(d.Bytes())
	r.data = d.Bytes()
	r.metadata = d.Bytes()
	r.vector = d.Vector()
	r.vv = nil
	if format == 2 {
		n := d.Uvarint()
		if n > MaxRegions {
			return errCorrupt
		}
		for range n {
			r.vv = append(r.vv, vvEntry{region: d.String(), hlc: d.Uvarint()})
		}
	}
	if d.Err != nil || len(d.B) != 0 {
		return errCorrupt
	}
	return nil
}

// version is the item's opaque version (its ETag): the same in every
// region for the same write.
func (r *record) version() string { return FormatVersion(r.hlc, r.origin) }

// clock returns the record's version vector, made explicit.
func (r *record) clock() versionVector {
	if len(r.vv) == 0 {
		return versionVector{{region: r.origin, hlc: r.hlc}}
	}
	return r.vv
}

// toItem builds the API view of r. Unless owned, it copies r's byte
// slices, so r may alias a buffer that is reused.
func (r *record) toItem(tenant, id string, owned bool) *item.Item {
	it := &item.Item{
		ID:        id,
		Type:      r.typ,
		Tenant:    tenant,
		CreatedAt: time.Unix(0, r.created).UTC(),
		UpdatedAt: time.Unix(0, r.updated).UTC(),
		Version:   r.version(),
		Vector:    r.vector,
	}
	if owned {
		it.Data, it.Metadata = r.data, r.metadata
		return it
	}
	if len(r.data) > 0 {
		it.Data = append([]byte(nil), r.data...)
	}
	if len(r.metadata) > 0 {
		it.Metadata = append([]byte(nil), r.metadata...)
	}
	if len(r.vector) > 0 {
		it.Vector = append([]float32(nil), r.vector...)
	}
	return it
}

// FormatVersion renders a write's hybrid-clock time and origin region as
// the item's opaque version: the time in base 36, then "." and the region
// when it has one. Versions of one item increase with its writes, so a
// cache may compare their leading numbers.
func FormatVersion(hlc uint64, origin string) string {
	v := strconv.FormatUint(hlc, 36)
	if origin == "" {
		return v
	}
	return v + "." + origin
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
