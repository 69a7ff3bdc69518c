package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/transport"
)

// Snapshot streaming. A replica that must install a snapshot asks the
// sender for the partition's keys: the first call opens a read session on
// a consistent iterator of the partition, and each call returns the next
// chunk, so a partition of any size crosses the QUIC frame limit in pieces
// that all come from one point in time. A session left idle for
// snapshotIdle is closed. Chunks leave no faster than
// Config.SnapshotBytesPerSecond, for all sessions together.
//
// A session opens only if this node's replica of the partition has
// applied the snapshot's index: the receiver deletes its own copy of the
// partition once the first chunk arrives, so a snapshot that cannot be
// served (a lying peer's, or a removed replica's) must fail before.
//
// Request:  session (8 bytes, 0 opens one) · partition (uvarint) · index (uvarint)
// Response: session (8 bytes) · done (1 byte) · pairs (bytes key, bytes value)...

const (
	// snapshotChunk bounds a chunk's bytes, unless its one pair is larger:
	// an item record of item.MaxItemBytes (2 MiB) with its key still fits
	// a 4 MiB frame alone.
	snapshotChunk = 1 << 20
	snapshotIdle  = 30 * time.Second
)

var errMalformedSnapshot = errors.New("cluster: malformed snapshot request or chunk")

type snapshotSession struct {
	it      tiers.Iterator
	part    int
	pending bool // it is positioned on a pair not yet sent
	used    time.Time
}

type snapshotSessions struct {
	mu sync.Mutex
	m  map[uint64]*snapshotSession
}

func (n *Node) handleSnapshot(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
	if len(req) < 8 {
		return nil, errMalformedSnapshot
	}
	id := binary.BigEndian.Uint64(req)
	d := codec.Decoder{B: req[8:], Fail: errMalformedSnapshot}
	part, index := int(d.Uvarint()), d.Uvarint()
	if d.Err != nil || len(d.B) != 0 || part >= n.core.Partitions() {
		return nil, errMalformedSnapshot
	}
	if id == 0 {
		if err := n.canServe(ctx, part, index); err != nil {
			return nil, err
		}
	}
	ss := &n.snapshots
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = map[uint64]*snapshotSession{}
	}
	for k, s := range ss.m { // expire idle sessions
		if time.Since(s.used) > snapshotIdle {
			s.it.Close()
			delete(ss.m, k)
		}
	}
	s := ss.m[id]
	if id != 0 && s == nil {
		ss.mu.Unlock()
		return nil, fmt.Errorf("cluster: snapshot session %x expired", id)
	}
	if s == nil {
		it, err := n.core.PartitionSnapshot(ctx, part)
		if err != nil {
			ss.mu.Unlock()
			return nil, err
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = binary.BigEndian.Uint64(b[:]) | 1
		s = &snapshotSession{it: it, part: part}
		ss.m[id] = s
	}
	delete(ss.m, id) // one call at a time per session
	ss.mu.Unlock()

	out := binary.BigEndian.AppendUint64(nil, id)
	out = append(out, 0)
	out, done := s.fill(out)
	if n.snapshotPace != nil {
		// Paced: the chunk leaves once the node's snapshot budget
		// (Config.SnapshotBytesPerSecond) allows it. A wait longer than
		// the caller's deadline fails the call, and the session with it.
		if err := n.snapshotPace.WaitN(ctx, len(out)); err != nil {
			s.it.Close()
			return nil, fmt.Errorf("cluster: snapshot of partition %d paced past the deadline: %w", part, err)
		}
	}
	if !done {
		s.used = time.Now()
		ss.mu.Lock()
		ss.m[id] = s
		ss.mu.Unlock()
		return out, nil
	}
	err := s.it.Err()
	s.it.Close()
	if err != nil {
		return nil, err
	}
	out[8] = 1 // done
	return out, nil
}

// fill appends the session's next pairs to out, the chunk's header, until
// the next pair would take it past snapshotChunk; the first pair goes in
// whatever its size. done reports the end of the iteration.
func (s *snapshotSession) fill(out []byte) (_ []byte, done bool) {
	header := len(out)
	for s.pending || s.it.Next() {
		k, v := s.it.Key(), s.it.Value()
		if len(out) > header && len(out)+pairLen(k, v) > snapshotChunk {
			s.pending = true
			return out, false
		}
		s.pending = false
		out = codec.AppendBytes(out, k)
		out = codec.AppendBytes(out, v)
	}
	return out, true
}

// pairLen is the encoded length of a key and value in a chunk.
func pairLen(k, v []byte) int {
	return uvarintLen(uint64(len(k))) + len(k) + uvarintLen(uint64(len(v))) + len(v)
}

// canServe reports why this node cannot serve a snapshot of part at index.
func (n *Node) canServe(ctx context.Context, part int, index uint64) error {
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return err
	}
	for _, g := range st {
		if int(g.Group) == part {
			if g.Applied < index {
				return fmt.Errorf("cluster: partition %d: applied %d, behind the snapshot's %d", part, g.Applied, index)
			}
			return nil
		}
	}
	return fmt.Errorf("cluster: no replica of partition %d here", part)
}

// fetchPartition is core.RaftConfig.FetchPartition over QUIC.
func (n *Node) fetchPartition(ctx context.Context, from multiraft.NodeID, part int, index uint64, fn func(key, value []byte) error) error {
	addr, ok := n.addrOf(from)
	if !ok {
		return fmt.Errorf("cluster: no address for node %x", uint64(from))
	}
	var session uint64
	for {
		req := binary.AppendUvarint(binary.BigEndian.AppendUint64(nil, session), uint64(part))
		req = binary.AppendUvarint(req, index)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := n.cfg.Client.Call(cctx, addr, wire.MethodSnapshot, req)
		cancel()
		if err != nil {
			return err
		}
		if len(out) < 9 {
			return errMalformedSnapshot
		}
		session = binary.BigEndian.Uint64(out)
		done := out[8] == 1
		d := codec.Decoder{B: out[9:], Fail: errMalformedSnapshot}
		for len(d.B) > 0 {
			k, v := d.Bytes(), d.Bytes()
			if d.Err != nil {
				return d.Err
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		n.snapshotBytes.Add(uint64(len(out)))
		if done {
			return nil
		}
	}
}
