package core

import (
	"context"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// Partition digests, for resyncing a region whose position another
// region's log no longer holds: instead of copying the partition whole,
// the sender compares its digest with the receiver's and sends only the
// items of the ranges that differ (Cassandra's repair, with a one-level
// tree sized to the partition: one round trip).
//
// A partition's items and tombstones are spread over 2^b ranges by the top
// b bits of a hash of tenant and id; a range's digest is the XOR of a hash
// of each of its values' bytes. Regions that agree hold byte-identical
// records (merges converge on the same bytes), so equal digests mean equal
// ranges, and the XOR makes the digest independent of order — and lets a
// fine digest fold into a coarser one. Conflict logs, which each region
// keeps for itself, are not included.
//
// The sender picks b from its partition's size (DigestBits: about eight
// items per range), so the ranges that differ hold few items besides the
// changed ones, and the receiver's digest costs 8 bytes per range.

// MinDigestBits and MaxDigestBits bound a digest's resolution: 1,024 to
// 65,536 ranges (8 to 512 KiB). Below a thousand ranges, a digest saves
// less than the items it makes cross.
const (
	MinDigestBits = 10
	MaxDigestBits = 16
)

// DigestBits returns the resolution for a partition of items values:
// about eight per range.
func DigestBits(items int) int {
	b := bits.Len(uint(items / 8))
	return min(max(b, MinDigestBits), MaxDigestBits)
}

// DigestBucket returns the range of a digest of 2^b ranges that holds
// tenant's id.
func DigestBucket(tenant, id string, b int) int {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(tenant)
	d.Write([]byte{0})
	d.WriteString(id)
	return int(d.Sum64() >> (64 - b))
}

// valueHash hashes everything that makes v: its key and its record.
func valueHash(v *RemoteValue) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(v.Tenant)
	d.Write([]byte{0})
	d.WriteString(v.ID)
	if v.Deleted {
		d.Write([]byte{0, 1})
	} else {
		d.Write([]byte{0, 0})
	}
	d.Write(v.Record)
	return d.Sum64()
}

// FoldDigest returns digest (2^k ranges) at the coarser resolution of 2^b
// ranges: range i of the result is ranges i<<(k-b) … of the input, XORed.
func FoldDigest(digest []uint64, b int) []uint64 {
	k := bits.Len(uint(len(digest))) - 1
	if b >= k {
		return digest
	}
	out := make([]uint64, 1<<b)
	for i, h := range digest {
		out[i>>(k-b)] ^= h
	}
	return out
}

// PartitionDigest returns partition part's digest of 2^b ranges as this
// replica holds it (ErrNotHere if it holds none), the applied index it
// reflects, and how many values (items and tombstones) it covers.
func (n *Node) PartitionDigest(ctx context.Context, part, b int) (digest []uint64, applied uint64, values int, err error) {
	b = min(max(b, MinDigestBits), MaxDigestBits)
	digest = make([]uint64, 1<<b)
	applied, err = n.PartitionValues(ctx, part, func(v RemoteValue) error {
		digest[DigestBucket(v.Tenant, v.ID, b)] ^= valueHash(&v)
		values++
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if applied == 0 {
		return nil, 0, 0, ErrNotHere // no partition state: no replica here
	}
	return digest, applied, values, nil
}
