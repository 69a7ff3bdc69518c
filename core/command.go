package core

import (
	"encoding/binary"
	"errors"
	"fmt"

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
}

const commandFormat = 1

const (
	flagIfNoneMatch = 1 << iota
	flagHasType
	flagHasVector
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
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, c.Now)
	dst = codec.AppendBytes(dst, []byte(c.Tenant))
	dst = codec.AppendBytes(dst, []byte(c.ID))
	dst = codec.AppendBytes(dst, []byte(c.Cond.IfMatch))
	dst = codec.AppendBytes(dst, []byte(c.Type))
	dst = codec.AppendBytes(dst, c.Data)
	dst = codec.AppendBytes(dst, c.Metadata)
	return codec.AppendVector(dst, c.Vector)
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
	if d.Byte() != commandFormat {
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
	if flags&^(flagIfNoneMatch|flagHasType|flagHasVector) != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errBadCommand, flags)
	}
	c.Cond.IfNoneMatch = flags&flagIfNoneMatch != 0
	c.HasType = flags&flagHasType != 0
	c.HasVector = flags&flagHasVector != 0
	if d.Err != nil || len(d.B) != 0 {
		return errBadCommand
	}
	if c.Op < OpCreate || c.Op > OpDelete {
		return fmt.Errorf("%w: unknown op %d", errBadCommand, c.Op)
	}
	return nil
}
