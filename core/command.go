package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// Op is the kind of a write command.
type Op byte

// Ops. The numbers are part of the log format: never reuse one.
const (
	OpCreate Op = 1 // create; ErrConflict if the item exists
	OpPut    Op = 2 // create or replace
	OpPatch  Op = 3 // merge into an existing item
	OpDelete Op = 4 // remove
	// OpReplicate applies other regions' item values to this region
	// (federation): see Command.Values and stateMachine.applyReplicated.
	OpReplicate Op = 5
	// OpCollect removes tombstones older than a horizon (federation):
	// see Command.Values and stateMachine.applyCollect.
	OpCollect Op = 6
	// OpSyncState stores a blue/green follower's position in one blue
	// partition (ID names it, Data holds it) in this partition's key range:
	// see core/sync.go. (6 is OpCollect, tombstone collection.)
	OpSyncState Op = 7
)

// Command is one write, as it travels through the log. Everything the apply
// function needs is in it — including the wall-clock time, chosen once by
// the proposer — so that every replica applying it computes the same result.
type Command struct {
	Op     Op
	Now    int64 // Unix nanoseconds, set by the proposer
	Tenant string
	ID     string
	Cond   item.Cond

	// For OpCreate and OpPut: the new value. For OpPatch: Type and Vector
	// replace when HasType / HasVector; Data and Metadata are merge patches.
	Type      string
	Data      []byte
	Metadata  []byte
	Vector    []float32
	HasType   bool
	HasVector bool

	// Origin is the region of the node that proposed a local write: the
	// record's origin, so that its version is the same in every region.
	Origin string
	// Federated: the cluster replicates to other regions, so a delete
	// leaves a tombstone (an older value arriving later must not bring the
	// item back) and a write reads the tombstone for its clock and vector.
	Federated bool

	// For OpReplicate: item values of region Source, from its partition
	// of the same number, covering that partition's log indexes (From,
	// To]. The receiving partition records To as Source's position in the
	// same apply, so a batch is applied once however often it is sent.
	// Resync batches (a full copy, when the source's log no longer holds
	// the receiver's position) apply whatever the position, and move it
	// only forward.
	//
	// For OpCollect: the tombstones to remove (Values, without records),
	// each only if it is still there and older than To, the horizon.
	Source   string
	From, To uint64
	Resync   bool
	Values   []RemoteValue
}

// RemoteValue is an item's stored record as another region holds it.
type RemoteValue struct {
	Tenant, ID string
	Deleted    bool   // Record is a tombstone
	Record     []byte // the encoded record (record.go), read-only
}

// Size is about what v takes in a batch: what batches are bounded by.
func (v *RemoteValue) Size() int { return len(v.Record) + len(v.Tenant) + len(v.ID) }

// Time is the hybrid-clock time (Unix nanoseconds) of the write that made
// v, read from the head of its record; 0 for a record too short to hold one.
func (v *RemoteValue) Time() int64 {
	if len(v.Record) < 2 {
		return 0
	}
	hlc, n := binary.Uvarint(v.Record[1:])
	if n <= 0 || hlc > math.MaxInt64 {
		return 0
	}
	return int64(hlc)
}

// commandFormat 2 adds the origin and, for OpReplicate, the batch; a
// format 1 command (origin "") still decodes, as old log entries must.
const commandFormat = 2

const (
	flagIfNoneMatch = 1 << iota
	flagHasType
	flagHasVector
	flagFederated
	flagResync
)

// AppendEncode appends the binary encoding of c to dst.
func (c *Command) AppendEncode(dst []byte) []byte {
	dst = append(dst, commandFormat, byte(c.Op))
	var flags byte
	if c.Cond.IfNoneMatch {
		flags |= flagIfNoneMatch
	}
	if c.HasType {
		flags |= flagHasType
	}
	if c.HasVector {
		flags |= flagHasVector
	}
	if c.Federated {
		flags |= flagFederated
	}
	if c.Resync {
		flags |= flagResync
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, c.Now)
	dst = codec.AppendBytes(dst, []byte(c.Tenant))
	dst = codec.AppendBytes(dst, []byte(c.ID))
	dst = codec.AppendBytes(dst, []byte(c.Cond.IfMatch))
	dst = codec.AppendBytes(dst, []byte(c.Type))
	dst = codec.AppendBytes(dst, c.Data)
	dst = codec.AppendBytes(dst, c.Metadata)
	dst = codec.AppendVector(dst, c.Vector)
	dst = codec.AppendString(dst, c.Origin)
	if c.Op != OpReplicate && c.Op != OpCollect {
		return dst
	}
	dst = codec.AppendString(dst, c.Source)
	dst = binary.AppendUvarint(dst, c.From)
	dst = binary.AppendUvarint(dst, c.To)
	dst = binary.AppendUvarint(dst, uint64(len(c.Values)))
	for _, v := range c.Values {
		dst = codec.AppendString(dst, v.Tenant)
		dst = codec.AppendString(dst, v.ID)
		var del byte
		if v.Deleted {
			del = 1
		}
		dst = append(dst, del)
		dst = codec.AppendBytes(dst, v.Record)
	}
	return dst
}

var errBadCommand = errors.New("core: malformed command")

// DecodeCommand parses an encoded command. Byte slices of the result alias b.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := c.decode(b); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Command) decode(b []byte) error {
	d := codec.Decoder{B: b, Fail: errBadCommand}
	format := d.Byte()
	if format != 1 && format != commandFormat {
		return errBadCommand
	}
	c.Op = Op(d.Byte())
	flags := d.Byte()
	c.Now = d.Varint()
	c.Tenant = d.String()
	c.ID = d.String()
	c.Cond.IfMatch = d.String()
	c.Type = d.String()
	c.Data = d.Bytes()
	c.Metadata = d.Bytes()
	c.Vector = d.Vector()
	if format >= 2 {
		c.Origin = d.String()
	}
	if format >= 2 && (c.Op == OpReplicate || c.Op == OpCollect) {
		c.Source = d.String()
		c.From = d.Uvarint()
		c.To = d.Uvarint()
		n := d.Uvarint()
		// Each value takes at least four bytes: n cannot exceed what b holds.
		if n > uint64(len(d.B)/4) {
			return fmt.Errorf("%w: %d values in %d bytes", errBadCommand, n, len(d.B))
		}
		c.Values = make([]RemoteValue, 0, n)
		for range n {
			v := RemoteValue{Tenant: d.String(), ID: d.String()}
			switch d.Byte() {
			case 0:
			case 1:
				v.Deleted = true
			default:
				return fmt.Errorf("%w: bad deleted flag", errBadCommand)
			}
			v.Record = d.Bytes()
			c.Values = append(c.Values, v)
		}
	}
	if flags&^(flagIfNoneMatch|flagHasType|flagHasVector|flagFederated|flagResync) != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errBadCommand, flags)
	}
	c.Cond.IfNoneMatch = flags&flagIfNoneMatch != 0
	c.HasType = flags&flagHasType != 0
	c.HasVector = flags&flagHasVector != 0
	c.Federated = flags&flagFederated != 0
	c.Resync = flags&flagResync != 0
	if d.Err != nil || len(d.B) != 0 {
		return errBadCommand
	}
	if c.Op < OpCreate || c.Op > OpSyncState || (c.Op >= OpReplicate && format < 2) {
		return fmt.Errorf("%w: unknown op %d", errBadCommand, c.Op)
	}
	return nil
}
