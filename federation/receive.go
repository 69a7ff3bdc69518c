package federation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// The bodies of the federation methods:
//
//	MethodFedPosition  request: flags byte, uvarint partition, string source region
//	                   answer:  uvarint position
//	MethodFedApply     request: flags byte, uvarint partition, core.Command (OpReplicate),
//	                            S2-compressed when flags has flagCompressed
//	                   answer:  status byte (0 applied, 1 gap), uvarint position,
//	                            uvarint replaced, conflicts, skipped
//	MethodFedDigest    request: flags byte, uvarint partition, string source region,
//	                            byte b (core.MinDigestBits … MaxDigestBits)
//	                   answer:  2^b × uint64 little-endian
//
// flagForwarded marks a request a region's node passed to the partition's
// leader in its region: it is never passed on again (one hop, no loops).
// flagCompressed marks a MethodFedApply body compressed with S2 (the
// snappy format's faster, denser successor): records are JSON, which
// compresses about threefold, and links cross WANs billed by the byte.
const (
	flagForwarded  = 1
	flagCompressed = 2
)

// maxBatchBytes bounds a decompressed batch: a sender's batches are
// Config.BatchBytes (256 KiB by default) of records, merged by an inbox
// into at most 1 MiB; this leaves room, and refuses a compressed bomb.
const maxBatchBytes = 16 << 20

const (
	statusApplied = 0
	statusGap     = 1
)

var errBadRequest = errors.New("federation: malformed request")

// request is a decoded federation request's header.
type request struct {
	forwarded, compressed bool
	part                  int
	rest                  []byte
}

func decodeRequest(b []byte, partitions int) (request, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	flags := d.Byte()
	part := d.Uvarint()
	if d.Err != nil || flags&^(flagForwarded|flagCompressed) != 0 {
		return request{}, errBadRequest
	}
	if part >= uint64(partitions) {
		return request{}, fmt.Errorf("%w: no partition %d (this region has %d)", errBadRequest, part, partitions)
	}
	return request{forwarded: flags&flagForwarded != 0, compressed: flags&flagCompressed != 0, part: int(part), rest: d.B}, nil
}

func appendHeader(dst []byte, forwarded bool, part int) []byte {
	var flags byte
	if forwarded {
		flags = flagForwarded
	}
	return binary.AppendUvarint(append(dst, flags), uint64(part))
}

// header re-encodes r's header for the leader it is passed to.
func (r *request) header() []byte {
	flags := byte(flagForwarded)
	if r.compressed {
		flags |= flagCompressed
	}
	return binary.AppendUvarint([]byte{flags}, uint64(r.part))
}

// body returns r's body, decompressed if it was compressed: at most
// maxBatchBytes, whatever the sender claims.
func (r *request) body() ([]byte, error) {
	if !r.compressed {
		return r.rest, nil
	}
	n, err := s2.DecodedLen(r.rest)
	if err != nil || n > maxBatchBytes {
		return nil, fmt.Errorf("%w: a compressed body of %d bytes (at most %d): %v", errBadRequest, n, maxBatchBytes, err)
	}
	b, err := s2.Decode(make([]byte, n), r.rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return b, nil
}

// checkCaller admits a core of region source speaking for itself, or a
// core of this region forwarding.
func (f *Federation) checkCaller(peer *transport.Peer, source string, forwarded bool) error {
	if peer.Role() != pki.RoleCore {
		return &transport.RemoteError{Code: wire.CodeForbidden, Message: fmt.Sprintf("federation methods answer cores only; %q holds a %s certificate", peer.ID(), peer.Role())}
	}
	region := (*f.regionOf.Load())[peer.ID()]
	if (region == source && source != f.cfg.Region) || (forwarded && region == f.cfg.Region) {
		return nil
	}
	// A member this node has not heard of yet may be new: the sender
	// retries, by which time the gossip has spread.
	return itemrpc.Error(fmt.Errorf("%w (%q, region %q, for %q)", errCaller, peer.ID(), region, source))
}

// toLeader passes r, a request for partition r.part, to the partition's
// leader in this cluster, unless this node leads it (here) or r was
// forwarded already (one hop at most). The federation's and the sync
// server's handlers both use it.
func toLeader(ctx context.Context, c *cluster.Node, client *transport.Client, method uint16, r request) (answer []byte, here bool, err error) {
	addr, here, ok := c.LeaderAddr(r.part)
	switch {
	case here:
		return nil, true, nil
	case r.forwarded:
		return nil, false, itemrpc.Error(fmt.Errorf("%w (partition %d)", core.ErrNotLeader, r.part))
	case !ok:
		return nil, false, itemrpc.Error(fmt.Errorf("%w: partition %d has no leader", core.ErrNotLeader, r.part))
	}
	answer, err = client.Call(ctx, addr, method, append(r.header(), r.rest...))
	return answer, false, err
}

// toLeader is the package's toLeader on this node's cluster.
func (f *Federation) toLeader(ctx context.Context, method uint16, r request) ([]byte, bool, error) {
	return toLeader(ctx, f.cfg.Cluster, f.cfg.Client, method, r)
}

func (f *Federation) handlePosition(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	source := d.String()
	if d.Err != nil || len(d.B) != 0 {
		return nil, itemrpc.Error(errBadRequest)
	}
	if err := f.checkCaller(peer, source, r.forwarded); err != nil {
		return nil, err
	}
	// Any replica's stored position will do: it only tells the sender
	// where to resume, and what it sends again is dropped.
	pos, err := f.core.ReplicationPosition(ctx, r.part, source)
	if errors.Is(err, core.ErrNotHere) {
		answer, _, ferr := f.toLeader(ctx, wire.MethodFedPosition, r)
		return answer, ferr
	}
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	return binary.AppendUvarint(nil, pos), nil
}

// handleDigest answers a partition's digest (core.PartitionDigest), from
// any replica here: a stale one only makes more ranges differ.
func (f *Federation) handleDigest(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	source := d.String()
	b := int(d.Byte())
	if d.Err != nil || len(d.B) != 0 || b < core.MinDigestBits || b > core.MaxDigestBits {
		return nil, itemrpc.Error(errBadRequest)
	}
	if err := f.checkCaller(peer, source, r.forwarded); err != nil {
		return nil, err
	}
	digest, _, _, err := f.core.PartitionDigest(ctx, r.part, b)
	if errors.Is(err, core.ErrNotHere) {
		answer, _, ferr := f.toLeader(ctx, wire.MethodFedDigest, r)
		return answer, ferr
	}
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	out := make([]byte, 0, 8*len(digest))
	for _, h := range digest {
		out = binary.LittleEndian.AppendUint64(out, h)
	}
	return out, nil
}

func (f *Federation) handleApply(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	body, err := r.body()
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	cmd, err := core.DecodeCommand(body)
	if err != nil || cmd.Op != core.OpReplicate {
		return nil, itemrpc.Error(fmt.Errorf("%w: not a batch of values", errBadRequest))
	}
	if err := f.checkCaller(peer, cmd.Source, r.forwarded); err != nil {
		return nil, err
	}
	if answer, here, err := f.toLeader(ctx, wire.MethodFedApply, r); !here {
		return answer, err
	}
	var res core.Replicated
	if cmd.Resync {
		res, err = f.core.ApplyReplicated(ctx, r.part, cmd.Source, cmd.From, cmd.To, true, cmd.Values)
		if err == nil {
			f.received.Add(1)
		}
	} else {
		res, err = f.inboxFor(cmd.Source, r.part).apply(ctx, cmd)
	}
	status := byte(statusApplied)
	switch {
	case errors.Is(err, core.ErrReplicationGap):
		status = statusGap
	case errors.Is(err, core.ErrClockSkew):
		if f.skewLog.Allow() {
			f.log.Warn("refused a batch from another region: its clock is ahead of ours (at most one such line a minute)",
				"peer_region", cmd.Source, "peer", peer.ID(), "partition", r.part, "err", err)
		}
		return nil, itemrpc.Error(err)
	case err != nil:
		return nil, itemrpc.Error(err)
	}
	out := append(make([]byte, 0, 16), status)
	out = binary.AppendUvarint(out, res.Position)
	out = binary.AppendUvarint(out, uint64(res.Replaced))
	out = binary.AppendUvarint(out, uint64(res.Conflicts))
	return binary.AppendUvarint(out, uint64(res.Skipped)), nil
}

// applied is a decoded MethodFedApply answer.
type applied struct {
	gap                          bool
	position                     uint64
	replaced, conflicts, skipped uint64
}

func decodeApplied(b []byte) (applied, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	status := d.Byte()
	a := applied{gap: status == statusGap, position: d.Uvarint(), replaced: d.Uvarint(), conflicts: d.Uvarint(), skipped: d.Uvarint()}
	if d.Err != nil || len(d.B) != 0 || status > statusGap {
		return applied{}, fmt.Errorf("federation: malformed answer to a batch")
	}
	return a, nil
}
