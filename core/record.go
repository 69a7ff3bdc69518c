package core

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"

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
	dst = appendBytes(dst, []byte(r.typ))
	dst = appendBytes(dst, r.data)
	dst = appendBytes(dst, r.metadata)
	return appendVector(dst, r.vector)
}

// decode parses b into r. The byte slices of r alias b.
func (r *record) decode(b []byte) error {
	d := decoder{b: b}
	if d.byte() != recordFormat {
		return errCorrupt
	}
	r.version = d.uvarint()
	r.created = d.varint()
	r.updated = d.varint()
	r.typ = string(d.bytes())
	r.data = d.bytes()
	r.metadata = d.bytes()
	r.vector = d.vector()
	if d.err != nil || len(d.b) != 0 {
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

func appendBytes(dst, p []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	return append(dst, p...)
}

func appendVector(dst []byte, v []float32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, f := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

// decoder reads the varint encodings above; the first failure sticks in err
// and later reads return zero values, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errCorrupt; d.b = nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) vector() []float32 {
	n := d.uvarint()
	if n > uint64(len(d.b)/4) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.b[4*i:]))
	}
	d.b = d.b[4*n:]
	return v
}
