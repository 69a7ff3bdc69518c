// Package codec is the binary encoding shared by Brainy's stored records,
// log commands and wire messages: uvarint-length-prefixed byte strings,
// varints, and float32 vectors, with a decoder that bounds every length by
// the bytes actually present (a hostile input cannot make it allocate more
// than its own size).
package codec

import (
	"encoding/binary"
	"math"
)

// AppendBytes appends p, length-prefixed.
func AppendBytes(dst, p []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	return append(dst, p...)
}

// AppendString appends s, length-prefixed.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendVector appends v as a count and little-endian float32s.
func AppendVector(dst []byte, v []float32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, f := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

// Decoder reads the encodings above from B. The first failure sets Err to
// Fail and empties B; later reads return zero values, so callers check Err
// once at the end.
type Decoder struct {
	B    []byte
	Fail error // the error a failure reports; set by the caller
	Err  error
}

func (d *Decoder) fail() {
	d.Err = d.Fail
	d.B = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) < 1 {
		d.fail()
		return 0
	}
	c := d.B[0]
	d.B = d.B[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bytes reads a length-prefixed byte string, aliasing B; empty is nil.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if n > uint64(len(d.B)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	p := d.B[:n:n]
	d.B = d.B[n:]
	return p
}

// String reads a length-prefixed string.
func (d *Decoder) String() string { return string(d.Bytes()) }

// Vector reads a float32 vector; empty is nil.
func (d *Decoder) Vector() []float32 {
	n := d.Uvarint()
	if n > uint64(len(d.B)/4) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.B[4*i:]))
	}
	d.B = d.B[4*n:]
	return v
}
