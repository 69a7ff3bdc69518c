// Package wire is the binary encoding of item requests and answers between
// an edge (package upstream) and a core (core's RPC handlers), carried by
// package transport. Both sides import it; it imports only the item model.
//
// Every message starts with a format byte; strings and byte slices are
// uvarint-length-prefixed; integers are varints. Decoders bound every
// length by the bytes actually present, so a hostile frame cannot make them
// allocate more than the frame's own size.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/soullabs/brainy/internal/item"
)

// Methods, as transport method numbers. Never reuse a number.
const (
	MethodGet    uint16 = 100
	MethodAdd    uint16 = 101
	MethodPut    uint16 = 102
	MethodPatch  uint16 = 103
	MethodDelete uint16 = 104
	MethodList   uint16 = 105
)

// ErrMalformed reports a message that does not decode.
var ErrMalformed = errors.New("wire: malformed message")

const format = 1

const (
	flagIfNoneMatch = 1 << iota
	flagHasType
	flagHasVector
	flagCreated
)

// Request is any item request; each method uses the fields it needs.
type Request struct {
	Tenant string
	ID     string
	Cond   item.Cond
	// Add and Put: the new item (ID, Type, Data, Metadata, Vector).
	// Patch: Type (if HasType), Data and Metadata as merge patches, Vector
	// (if HasVector).
	Type      string
	Data      []byte
	Metadata  []byte
	Vector    []float32
	HasType   bool
	HasVector bool
	// List.
	List item.ListOptions
}

// AppendRequest appends the encoding of r.
func AppendRequest(dst []byte, r *Request) []byte {
	var flags byte
	if r.Cond.IfNoneMatch {
		flags |= flagIfNoneMatch
	}
	if r.HasType {
		flags |= flagHasType
	}
	if r.HasVector {
		flags |= flagHasVector
	}
	dst = append(dst, format, flags)
	dst = appendString(dst, r.Tenant)
	dst = appendString(dst, r.ID)
	dst = appendString(dst, r.Cond.IfMatch)
	dst = appendString(dst, r.Type)
	dst = appendBytes(dst, r.Data)
	dst = appendBytes(dst, r.Metadata)
	dst = appendVector(dst, r.Vector)
	dst = appendString(dst, r.List.Type)
	dst = binary.AppendUvarint(dst, uint64(max(r.List.Limit, 0)))
	return appendString(dst, r.List.Cursor)
}

// DecodeRequest decodes a request. Byte slices of the result alias b.
func DecodeRequest(b []byte) (*Request, error) {
	d := decoder{b: b}
	if d.byte() != format {
		return nil, ErrMalformed
	}
	flags := d.byte()
	r := &Request{
		Tenant: d.string(), ID: d.string(),
		Cond: item.Cond{IfMatch: d.string(), IfNoneMatch: flags&flagIfNoneMatch != 0},
		Type: d.string(), Data: d.bytes(), Metadata: d.bytes(), Vector: d.vector(),
		HasType: flags&flagHasType != 0, HasVector: flags&flagHasVector != 0,
	}
	r.List.Type = d.string()
	limit := d.uvarint()
	r.List.Cursor = d.string()
	if d.err != nil || len(d.b) != 0 || flags&^(flagIfNoneMatch|flagHasType|flagHasVector) != 0 || limit > math.MaxInt32 {
		return nil, ErrMalformed
	}
	r.List.Limit = int(limit)
	return r, nil
}

// Item builds the item of an Add or Put request.
func (r *Request) Item() *item.Item {
	return &item.Item{ID: r.ID, Type: r.Type, Data: r.Data, Metadata: r.Metadata, Vector: r.Vector}
}

// Patch builds the patch of a Patch request.
func (r *Request) Patch() *item.Patch {
	p := &item.Patch{Data: r.Data, Metadata: r.Metadata, Vector: r.Vector, HasVector: r.HasVector}
	if r.HasType {
		t := r.Type
		p.Type = &t
	}
	return p
}

// AppendItem appends the encoding of an answer carrying one item.
func AppendItem(dst []byte, it *item.Item, created bool) []byte {
	var flags byte
	if created {
		flags |= flagCreated
	}
	dst = append(dst, format, flags)
	return appendItemBody(dst, it)
}

func appendItemBody(dst []byte, it *item.Item) []byte {
	dst = appendString(dst, it.ID)
	dst = appendString(dst, it.Type)
	dst = appendString(dst, it.Tenant)
	dst = appendBytes(dst, it.Data)
	dst = appendBytes(dst, it.Metadata)
	dst = appendVector(dst, it.Vector)
	dst = binary.AppendVarint(dst, it.CreatedAt.UnixNano())
	dst = binary.AppendVarint(dst, it.UpdatedAt.UnixNano())
	return appendString(dst, it.Version)
}

// DecodeItem decodes an answer carrying one item. The item owns its bytes.
func DecodeItem(b []byte) (it *item.Item, created bool, err error) {
	d := decoder{b: b}
	if d.byte() != format {
		return nil, false, ErrMalformed
	}
	flags := d.byte()
	it = d.item()
	if d.err != nil || len(d.b) != 0 || flags&^flagCreated != 0 {
		return nil, false, ErrMalformed
	}
	return it, flags&flagCreated != 0, nil
}

// AppendPage appends the encoding of a listing page.
func AppendPage(dst []byte, p *item.Page) []byte {
	dst = append(dst, format)
	dst = binary.AppendUvarint(dst, uint64(len(p.Items)))
	for _, it := range p.Items {
		dst = appendItemBody(dst, it)
	}
	return appendString(dst, p.Cursor)
}

// DecodePage decodes a listing page.
func DecodePage(b []byte) (*item.Page, error) {
	d := decoder{b: b}
	if d.byte() != format {
		return nil, ErrMalformed
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every item takes at least one byte
		return nil, ErrMalformed
	}
	p := &item.Page{Items: make([]*item.Item, 0, n)}
	for range n {
		p.Items = append(p.Items, d.item())
	}
	p.Cursor = d.string()
	if d.err != nil || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return p, nil
}

// Error codes carried in transport error frames (from transport.CodeUser).
const (
	CodeNotFound uint16 = 16 + iota
	CodeConflict
	CodePreconditionFailed
	CodeInvalid
	CodeUnavailable
	CodeClosed
)

// ErrorCode classifies err for the wire, and the message to send with it.
// An *item.InvalidError travels as "code\x00message" so that the edge can
// answer with the same error code as the core.
func ErrorCode(err error) (uint16, string) {
	var inv *item.InvalidError
	switch {
	case errors.As(err, &inv):
		return CodeInvalid, inv.Code + "\x00" + inv.Message
	case errors.Is(err, item.ErrNotFound):
		return CodeNotFound, err.Error()
	case errors.Is(err, item.ErrConflict):
		return CodeConflict, err.Error()
	case errors.Is(err, item.ErrPreconditionFailed):
		return CodePreconditionFailed, err.Error()
	case errors.Is(err, item.ErrClosed):
		return CodeClosed, err.Error()
	}
	return CodeUnavailable, err.Error()
}

// Error turns a wire error code and message back into the item error.
func Error(code uint16, msg string) error {
	switch code {
	case CodeInvalid:
		for i := 0; i < len(msg); i++ {
			if msg[i] == 0 {
				return &item.InvalidError{Code: msg[:i], Message: msg[i+1:]}
			}
		}
		return &item.InvalidError{Code: "invalid", Message: msg}
	case CodeNotFound:
		return item.ErrNotFound
	case CodeConflict:
		return item.ErrConflict
	case CodePreconditionFailed:
		return fmt.Errorf("%w: %s", item.ErrPreconditionFailed, trim(msg))
	case CodeClosed:
		return fmt.Errorf("%w: the core is shutting down", item.ErrUnavailable)
	}
	return fmt.Errorf("%w: %s", item.ErrUnavailable, trim(msg))
}

func trim(msg string) string {
	const p = "brainy: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

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

// decoder reads the encodings above; the first failure sticks in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = ErrMalformed; d.b = nil }

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
	if n == 0 {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
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

func (d *decoder) item() *item.Item {
	it := &item.Item{ID: d.string(), Type: d.string(), Tenant: d.string()}
	if b := d.bytes(); b != nil {
		it.Data = append([]byte(nil), b...)
	}
	if b := d.bytes(); b != nil {
		it.Metadata = append([]byte(nil), b...)
	}
	it.Vector = d.vector()
	it.CreatedAt = time.Unix(0, d.varint()).UTC()
	it.UpdatedAt = time.Unix(0, d.varint()).UTC()
	it.Version = d.string()
	return it
}

// Change methods: an edge subscribes; the core then pushes the changes of
// every commit to it.
const (
	MethodSubscribe  uint16 = 110
	MethodInvalidate uint16 = 111
)

// Change is one committed write of an item, as pushed to subscribers.
type Change struct {
	Tenant  string
	ID      string
	Version string // the item's new version; empty for a delete
	Deleted bool
}

// AppendChanges appends a push of changes. lost reports that changes were
// dropped before these (a slow subscriber): the receiver must treat every
// cached item as possibly stale.
func AppendChanges(dst []byte, changes []Change, lost bool) []byte {
	var flags byte
	if lost {
		flags = 1
	}
	dst = append(dst, format, flags)
	dst = binary.AppendUvarint(dst, uint64(len(changes)))
	for _, c := range changes {
		dst = appendString(dst, c.Tenant)
		dst = appendString(dst, c.ID)
		dst = appendString(dst, c.Version)
		if c.Deleted {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}

// DecodeChanges decodes a push of changes.
func DecodeChanges(b []byte) (changes []Change, lost bool, err error) {
	d := decoder{b: b}
	if d.byte() != format {
		return nil, false, ErrMalformed
	}
	flags := d.byte()
	n := d.uvarint()
	if n > uint64(len(d.b)) || flags > 1 {
		return nil, false, ErrMalformed
	}
	changes = make([]Change, 0, n)
	for range n {
		c := Change{Tenant: d.string(), ID: d.string(), Version: d.string()}
		switch d.byte() {
		case 0:
		case 1:
			c.Deleted = true
		default:
			d.fail()
		}
		changes = append(changes, c)
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, false, ErrMalformed
	}
	return changes, flags == 1, nil
}
