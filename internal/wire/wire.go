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
	"strings"
	"time"

	"github.com/soullabs/brainy/internal/codec"
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
	flagStale
	flagForwarded
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
	// Stale: a read may be answered by the local replica (item.WithStaleReads).
	Stale bool
	// Forwarded: a core sent it on behalf of a client (one hop); the
	// receiver answers from its own replicas and never forwards it again.
	Forwarded bool
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
	if r.Stale {
		flags |= flagStale
	}
	if r.Forwarded {
		flags |= flagForwarded
	}
	dst = append(dst, format, flags)
	dst = codec.AppendString(dst, r.Tenant)
	dst = codec.AppendString(dst, r.ID)
	dst = codec.AppendString(dst, r.Cond.IfMatch)
	dst = codec.AppendString(dst, r.Type)
	dst = codec.AppendBytes(dst, r.Data)
	dst = codec.AppendBytes(dst, r.Metadata)
	dst = codec.AppendVector(dst, r.Vector)
	dst = codec.AppendString(dst, r.List.Type)
	dst = binary.AppendUvarint(dst, uint64(max(r.List.Limit, 0)))
	return codec.AppendString(dst, r.List.Cursor)
}

// DecodeRequest decodes a request. Byte slices of the result alias b.
func DecodeRequest(b []byte) (*Request, error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, ErrMalformed
	}
	flags := d.Byte()
	r := &Request{
		Tenant: d.String(), ID: d.String(),
		Cond: item.Cond{IfMatch: d.String(), IfNoneMatch: flags&flagIfNoneMatch != 0},
		Type: d.String(), Data: d.Bytes(), Metadata: d.Bytes(), Vector: d.Vector(),
		HasType: flags&flagHasType != 0, HasVector: flags&flagHasVector != 0, Stale: flags&flagStale != 0, Forwarded: flags&flagForwarded != 0,
	}
	r.List.Type = d.String()
	limit := d.Uvarint()
	r.List.Cursor = d.String()
	if d.Err != nil || len(d.B) != 0 || flags&^(flagIfNoneMatch|flagHasType|flagHasVector|flagStale|flagForwarded) != 0 || limit > math.MaxInt32 {
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
	dst = codec.AppendString(dst, it.ID)
	dst = codec.AppendString(dst, it.Type)
	dst = codec.AppendString(dst, it.Tenant)
	dst = codec.AppendBytes(dst, it.Data)
	dst = codec.AppendBytes(dst, it.Metadata)
	dst = codec.AppendVector(dst, it.Vector)
	dst = binary.AppendVarint(dst, it.CreatedAt.UnixNano())
	dst = binary.AppendVarint(dst, it.UpdatedAt.UnixNano())
	return codec.AppendString(dst, it.Version)
}

// DecodeItem decodes an answer carrying one item. The item owns its bytes.
func DecodeItem(b []byte) (it *item.Item, created bool, err error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, false, ErrMalformed
	}
	flags := d.Byte()
	it = decodeItem(&d)
	if d.Err != nil || len(d.B) != 0 || flags&^flagCreated != 0 {
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
	return codec.AppendString(dst, p.Cursor)
}

// ItemSize is the number of bytes AppendPage spends on it.
func ItemSize(it *item.Item) int {
	var b [binary.MaxVarintLen64]byte
	uvarint := func(v int) int { return len(binary.AppendUvarint(b[:0], uint64(v))) }
	varint := func(v int64) int { return len(binary.AppendVarint(b[:0], v)) }
	n := 0
	for _, l := range []int{len(it.ID), len(it.Type), len(it.Tenant), len(it.Data), len(it.Metadata), len(it.Version)} {
		n += uvarint(l) + l
	}
	return n + uvarint(len(it.Vector)) + 4*len(it.Vector) + varint(it.CreatedAt.UnixNano()) + varint(it.UpdatedAt.UnixNano())
}

// DecodePage decodes a listing page.
func DecodePage(b []byte) (*item.Page, error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, ErrMalformed
	}
	n := d.Uvarint()
	if n > uint64(len(d.B)) { // every item takes at least one byte
		return nil, ErrMalformed
	}
	p := &item.Page{Items: make([]*item.Item, 0, n)}
	for range n {
		p.Items = append(p.Items, decodeItem(&d))
	}
	p.Cursor = d.String()
	if d.Err != nil || len(d.B) != 0 {
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
	CodeWrongNode
	CodeOutcomeUnknown
	// CodeForbidden: the caller's certificate role may not call the method.
	CodeForbidden
	// CodeNotLeader: see ErrNotLeader.
	CodeNotLeader
)

// ErrWrongNode: the node asked holds no replica of the item's partition,
// so another node must answer. It is an item.ErrUnavailable to whoever
// cannot forward the request.
var ErrWrongNode = fmt.Errorf("%w: this node holds no replica of the partition", item.ErrUnavailable)

// ErrNotLeader: the node asked holds a replica of the item's partition
// but does not lead it (leadership moved), so the write was not made and
// should go to the leader. Like ErrWrongNode, an item.ErrUnavailable to
// whoever cannot forward the request.
var ErrNotLeader = fmt.Errorf("%w: this node does not lead the partition", item.ErrUnavailable)

// Cluster methods, between cores.
const (
	// MethodRaft carries a batch of raft messages (AppendRaft); the answer
	// is empty.
	MethodRaft uint16 = 120
	// MethodClusterInfo asks a core about its cluster (ClusterInfo).
	MethodClusterInfo uint16 = 121
	// MethodGroupInfo asks a core how it sees one partition's group: the
	// request is the partition (uvarint); the answer, whether the core
	// leads it, the term, and the replica ids (uvarints).
	MethodGroupInfo uint16 = 122
	// MethodSnapshot streams a partition's keys to a replica installing a
	// snapshot, in chunks of one consistent read (see cluster/snapshot.go).
	MethodSnapshot uint16 = 123
	// MethodListPartitions lists some partitions only: the body is a List
	// request (bytes) then the partitions (uvarint count, uvarints); the
	// answer a page. A cluster merges the pages of the nodes holding them.
	MethodListPartitions uint16 = 124
	// MethodConflicts reads some partitions' conflict logs: the body is
	// tenant, page start, limit and partitions (package itemrpc); the
	// answer a page. A cluster merges the pages of the nodes holding them.
	MethodConflicts uint16 = 125
)

// Federation methods, between cores of different regions (package
// federation documents the bodies).
const (
	// MethodFedPosition asks how far a partition has applied another
	// region's log.
	MethodFedPosition uint16 = 130
	// MethodFedApply delivers a batch of another region's item values.
	MethodFedApply uint16 = 131
	// MethodFedDigest asks for a partition's digest, to resync it by the
	// ranges that differ.
	MethodFedDigest uint16 = 135
	// MethodFedVersion asks a region which version of an item it holds,
	// deletes included (global reads).
	MethodFedVersion uint16 = 136
	// MethodFedList asks a region for a page of a tenant's items (global
	// lists).
	MethodFedList uint16 = 137
	// MethodFedMeta asks the leader of an item's partition, in the same
	// region, for the item's version vector and conflict count.
	MethodFedMeta uint16 = 138
	// MethodFedFind asks a region to run a find over its cluster (finds
	// of scope global).
	MethodFedFind uint16 = 139
)

// Idempotent reports whether sending a request of method twice does no
// harm (the reads): only such a request may be sent again after a call
// that may have reached its handler.
func Idempotent(method uint16) bool {
	switch method {
	case MethodGet, MethodList, MethodListPartitions, MethodConflicts, MethodFind:
		return true
	}
	return false
}

// ErrorCode classifies err for the wire, and the message to send with it.
// An *item.InvalidError travels as "code\x00message" so that the edge can
// answer with the same error code as the core.
func ErrorCode(err error) (uint16, string) {
	var inv *item.InvalidError
	switch {
	case errors.As(err, &inv):
		return CodeInvalid, inv.Code + "\x00" + inv.Message
	case errors.Is(err, ErrWrongNode):
		return CodeWrongNode, err.Error()
	case errors.Is(err, ErrNotLeader):
		return CodeNotLeader, err.Error()
	case errors.Is(err, item.ErrNotFound):
		return CodeNotFound, err.Error()
	case errors.Is(err, item.ErrConflict):
		return CodeConflict, err.Error()
	case errors.Is(err, item.ErrPreconditionFailed):
		return CodePreconditionFailed, err.Error()
	case errors.Is(err, item.ErrClosed):
		return CodeClosed, err.Error()
	case errors.Is(err, item.ErrOutcomeUnknown):
		return CodeOutcomeUnknown, err.Error()
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
	case CodeWrongNode:
		return ErrWrongNode
	case CodeNotLeader:
		return ErrNotLeader
	case CodeOutcomeUnknown:
		return fmt.Errorf("%w: %s", item.ErrOutcomeUnknown, strings.TrimPrefix(msg, item.ErrOutcomeUnknown.Error()+": "))
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

func decodeItem(d *codec.Decoder) *item.Item {
	it := &item.Item{ID: d.String(), Type: d.String(), Tenant: d.String()}
	if b := d.Bytes(); b != nil {
		it.Data = append([]byte(nil), b...)
	}
	if b := d.Bytes(); b != nil {
		it.Metadata = append([]byte(nil), b...)
	}
	it.Vector = d.Vector()
	it.CreatedAt = time.Unix(0, d.Varint()).UTC()
	it.UpdatedAt = time.Unix(0, d.Varint()).UTC()
	it.Version = d.String()
	return it
}

// Change methods: an edge subscribes; the core then pushes the changes of
// every commit to it.
const (
	MethodSubscribe  uint16 = 110
	MethodInvalidate uint16 = 111
)

// MethodPing is answered at once with nothing: a round trip, for routers
// that measure how far each core is.
const MethodPing uint16 = 113

// FeedHeartbeat is the longest a subscribed core stays silent: with no
// change to push for this long it pushes an empty batch. A subscriber
// that hears nothing for several of these knows the feed is gone — a core
// killed or cut off says nothing, and QUIC would notice only at its idle
// timeout — and must stop trusting what the feed was keeping fresh.
const FeedHeartbeat = 100 * time.Millisecond

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
		dst = codec.AppendString(dst, c.Tenant)
		dst = codec.AppendString(dst, c.ID)
		dst = codec.AppendString(dst, c.Version)
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
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, false, ErrMalformed
	}
	flags := d.Byte()
	n := d.Uvarint()
	if n > uint64(len(d.B)) || flags > 1 {
		return nil, false, ErrMalformed
	}
	changes = make([]Change, 0, n)
	for range n {
		c := Change{Tenant: d.String(), ID: d.String(), Version: d.String()}
		switch d.Byte() {
		case 0:
		case 1:
			c.Deleted = true
		default:
			d.Err = ErrMalformed
			d.B = nil
		}
		changes = append(changes, c)
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, false, ErrMalformed
	}
	return changes, flags == 1, nil
}
