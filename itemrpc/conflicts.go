package itemrpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// Conflict log requests (wire.MethodConflicts), between the cores of a
// cluster, which merges the pages of the nodes holding its partitions.
//
// Request:
//
//	format byte (2)
//	uvarint len, tenant
//	uvarint len, cursor (item.ConflictCursor.Encode: where the page starts)
//	uvarint limit
//	byte    stale (1: a replica may answer without a read barrier)
//	uvarint n, n × uvarint partition
//
// Answer:
//
//	uvarint len, cursor; uvarint len, resume
//	uvarint n, n × conflict:
//	  varint at; uvarint partition; uvarint seq
//	  uvarint len, id
//	  byte    flags: 1 the loser was a delete, 2 the winner was
//	  uvarint len, winner version
//	  uvarint len, the loser (wire.AppendItem)

// ConflictsFunc reads tenant's conflict log over the given partitions.
type ConflictsFunc func(ctx context.Context, tenant string, opts item.ConflictOptions, parts []int) (*item.ConflictPage, error)

var errMalformedConflicts = errors.New("itemrpc: malformed conflict log request")

// ConflictsHandler serves wire.MethodConflicts with read, for partitions
// below maxParts().
func ConflictsHandler(maxParts func() int, read ConflictsFunc) transport.HandlerFunc {
	return func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		tenant, opts, parts, stale, err := decodeConflictsRequest(req, maxParts())
		if err != nil {
			return nil, Error(item.Invalid("malformed_request", "%v", err))
		}
		if stale {
			ctx = item.WithStaleReads(ctx)
		}
		p, err := read(ctx, tenant, opts, parts)
		if err != nil {
			return nil, Error(err)
		}
		return appendConflictPage(nil, p), nil
	}
}

// Conflicts reads tenant's conflict log over the given partitions on a
// node that holds them (ConflictsHandler on its side).
func (r *Remote) Conflicts(ctx context.Context, tenant string, opts item.ConflictOptions, parts []int) (*item.ConflictPage, error) {
	start, err := opts.Start()
	if err != nil {
		return nil, err
	}
	req := appendConflictsRequest(nil, tenant, start.Encode(), opts.Limit, item.StaleReads(ctx), parts)
	out, err := r.Call(ctx, wire.MethodConflicts, Target{Tenant: tenant}, req)
	if err = answerError(ctx, err, wire.MethodConflicts); err != nil {
		return nil, err
	}
	p, err := decodeConflictPage(out)
	return p, malformed(err)
}

func appendConflictsRequest(dst []byte, tenant, start string, limit int, stale bool, parts []int) []byte {
	dst = append(dst, 2)
	dst = codec.AppendString(dst, tenant)
	dst = codec.AppendString(dst, start)
	dst = binary.AppendUvarint(dst, uint64(max(limit, 0)))
	s := byte(0)
	if stale {
		s = 1
	}
	dst = append(dst, s)
	dst = binary.AppendUvarint(dst, uint64(len(parts)))
	for _, p := range parts {
		dst = binary.AppendUvarint(dst, uint64(p))
	}
	return dst
}

func decodeConflictsRequest(b []byte, maxParts int) (tenant string, opts item.ConflictOptions, parts []int, stale bool, err error) {
	d := codec.Decoder{B: b, Fail: errMalformedConflicts}
	if d.Byte() != 2 {
		return "", opts, nil, false, errMalformedConflicts
	}
	tenant = d.String()
	start := d.String()
	limit := d.Uvarint()
	stale = d.Byte() == 1
	count := d.Uvarint()
	if d.Err != nil || count > uint64(maxParts) || limit > item.MaxListLimit {
		return "", opts, nil, false, errMalformedConflicts
	}
	parts = make([]int, 0, count)
	for range count {
		p := d.Uvarint()
		if p >= uint64(maxParts) {
			return "", opts, nil, false, fmt.Errorf("%w: partition %d of %d", errMalformedConflicts, p, maxParts)
		}
		parts = append(parts, int(p))
	}
	if d.Err != nil || len(d.B) != 0 {
		return "", opts, nil, false, errMalformedConflicts
	}
	if _, err := item.DecodeConflictCursor(start); err != nil {
		return "", opts, nil, false, fmt.Errorf("%w: %v", errMalformedConflicts, err)
	}
	return tenant, item.ConflictOptions{Cursor: start, Limit: int(limit)}, parts, stale, nil
}

func appendPosition(dst []byte, p item.ConflictPosition) []byte {
	dst = binary.AppendVarint(dst, p.At)
	dst = binary.AppendUvarint(dst, uint64(p.Partition))
	return binary.AppendUvarint(dst, p.Seq)
}

func decodePosition(d *codec.Decoder) item.ConflictPosition {
	at := d.Varint()
	part := d.Uvarint()
	seq := d.Uvarint()
	if part > 1<<30 {
		d.Err, d.B = d.Fail, nil
		return item.ConflictPosition{}
	}
	return item.ConflictPosition{At: at, Partition: int(part), Seq: seq}
}

func appendConflictPage(dst []byte, p *item.ConflictPage) []byte {
	dst = codec.AppendString(dst, p.Cursor)
	dst = codec.AppendString(dst, p.Resume)
	dst = binary.AppendUvarint(dst, uint64(len(p.Conflicts)))
	for _, c := range p.Conflicts {
		dst = appendPosition(dst, c.Position)
		dst = codec.AppendString(dst, c.ID)
		var flags byte
		if c.LoserDeleted {
			flags |= 1
		}
		if c.WinnerDeleted {
			flags |= 2
		}
		dst = append(dst, flags)
		dst = codec.AppendString(dst, c.Winner)
		dst = codec.AppendBytes(dst, wire.AppendItem(nil, c.Loser, false))
	}
	return dst
}

func decodeConflictPage(b []byte) (*item.ConflictPage, error) {
	d := codec.Decoder{B: b, Fail: errMalformedConflicts}
	p := &item.ConflictPage{Cursor: d.String(), Resume: d.String()}
	n := d.Uvarint()
	if d.Err != nil || n > item.MaxListLimit {
		return nil, errMalformedConflicts
	}
	p.Conflicts = make([]*item.Conflict, 0, n)
	for range n {
		c := &item.Conflict{Position: decodePosition(&d), ID: d.String()}
		flags := d.Byte()
		c.LoserDeleted, c.WinnerDeleted = flags&1 != 0, flags&2 != 0
		c.Winner = d.String()
		loser, _, err := wire.DecodeItem(d.Bytes())
		if d.Err != nil || err != nil {
			return nil, errors.Join(errMalformedConflicts, err)
		}
		c.Loser = loser
		c.ResolvedAt = time.Unix(0, c.Position.At).UTC()
		p.Conflicts = append(p.Conflicts, c)
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, errMalformedConflicts
	}
	return p, nil
}
