package core

import (
	"context"

	"github.com/cespare/xxhash/v2"
)

// Partition digests, for resyncing a region whose position another
// region's log no longer holds: instead of copying the partition whole,
// the sender compares its digest with the receiver's and sends only the
// items of the ranges that differ (Cassandra's repair, with a one-level
// tree: DigestBuckets leaves, one round trip).
//
// A partition's items and tombstones are spread over the buckets by a
// hash of tenant and id; a bucket's digest is the XOR of a hash of each
// of its values' bytes. Regions that agree hold byte-identical records
// (merges converge on the same bytes), so equal digests mean equal
// ranges, and the XOR makes the digest independent of order. Conflict
// logs, which each region keeps for itself, are not included.

// DigestBuckets is how many ranges a partition's digest divides it into:
// 32 KiB of digest per partition; a partition of a million items has
// about 250 per range.
const DigestBuckets = 4096

// DigestBucket returns the range of the digest that holds tenant's id.
func DigestBucket(tenant, id string) int {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(tenant)
	d.Write([]byte{0})
	d.WriteString(id)
	return int(d.Sum64() >> 52) // the top 12 bits: 4096 buckets
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

// AddToDigest folds v into digest (DigestBuckets long).
func AddToDigest(digest []uint64, v *RemoteValue) {
	digest[DigestBucket(v.Tenant, v.ID)] ^= valueHash(v)
}

// PartitionDigest returns partition part's digest as this replica holds
// it (ErrNotHere if it holds none), and the applied index it reflects.
func (n *Node) PartitionDigest(ctx context.Context, part int) ([]uint64, uint64, error) {
	digest := make([]uint64, DigestBuckets)
	applied, err := n.PartitionValues(ctx, part, func(v RemoteValue) error {
		AddToDigest(digest, &v)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if applied == 0 {
		return nil, 0, ErrNotHere // no partition state: no replica here
	}
	return digest, applied, nil
}
