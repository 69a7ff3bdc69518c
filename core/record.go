package core

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// A record is the stored value of an item:
//
//	format byte (1)
//	uvarint version  (the partition log index of the last write)
//	varint  createdAt, updatedAt (Unix nanoseconds)
//	uvarint len, type
//	uvarint len, data (compact JSON)
//	uvarint len, metadata (compact JSON object)
//	uvarint dims, dims × float32 little-endian
//
// Tenant and id live in the key.
type record struct {
	version          uint64
	created, updated int64
	typ              string
	data, metadata   []byte
	vector           []float32
}

const recordFormat = 1

var errCorrupt = errors.New("core: corrupt record")

func (r *record) append(dst []byte) []byte {
	dst = append(dst, recordFormat)
	dst = binary.AppendUvarint(dst, r.version)
	dst = binary.AppendVarint(dst, r.created)
	dst = binary.AppendVarint(dst, r.updated)
	dst = codec.AppendBytes(dst, []byte(r.typ))
	dst = codec.AppendBytes(dst, r.data)
	dst = codec.AppendBytes(dst, r.metadata)
	return codec.AppendVector(dst, r.vector)
}

// decode parses b into r. The byte slices of r alias b.
func (r *record) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	if d.Byte() != recordFormat {
		return errCorrupt
	}
	r.version = d.Uvarint()
	r.created = d.Varint()
	r.updated = d.Varint()
	r.typ = string(d.Bytes())
	r.data = d.Bytes()
	r.metadata = d.Bytes()
	r.vector = d.Vector()
	if d.Err != nil || len(d.B) != 0 {
		return errCorrupt
	}
	return nil
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
		Version:   FormatVersion(r.version),
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

// FormatVersion renders a partition log index as the item's opaque version.
func FormatVersion(v uint64) string { return strconv.FormatUint(v, 36) }

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
