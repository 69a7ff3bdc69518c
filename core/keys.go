package core

import (
	"encoding/binary"

	"github.com/soullabs/brainy/internal/wire"
)

// Key layout. Every key of a partition starts with 'p' and the partition
// number (2 bytes, big-endian), so one partition is one contiguous key
// range: a future snapshot or move of a partition is one range scan.
//
//	p<part:2>i<tenant>\x00<id>              item record (see record.go)
//	p<part:2>t<tenant>\x00<type>\x00<id>    type index, empty value
//	p<part:2>s                              partition state (applied index, item count)
//	p<part:2>d<tenant>\x00<id>              a deleted item's tombstone (a record), in a federation
//	p<part:2>x<tenant>\x00<seq:8>           a conflict log entry (conflicts.go)
//	p<part:2>X<tenant>                      the tenant's conflict log bounds
//	p<part:2>m<tenant>\x00<type>\x00<field>\x00<value><id>  metadata index entry (metaindex.go)
//	p<part:2>M<tenant>\x00<type>             a type's indexed metadata fields
//	m<name>                                 node metadata (node id, partition count)
//
// Tenants hold no NUL (validated charset) and ids and types no control
// characters, so the NUL separators keep each tenant's and type's keys
// contiguous and ordered by id.
const (
	prefixPartition    = 'p'
	kindItem           = 'i'
	kindType           = 't'
	kindState          = 's'
	kindTombstone      = 'd'
	kindConflict       = 'x'
	kindConflictBounds = 'X'
	kindMetaEntry      = 'm'
	kindMetaFields     = 'M'
	prefixMeta         = 'm'
)

// PartitionOf maps a tenant and id to a partition in [0, n): see
// wire.PartitionOf, which every router shares.
func PartitionOf(tenant, id string, n int) int { return wire.PartitionOf(tenant, id, n) }

func appendPartition(dst []byte, part int, kind byte) []byte {
	dst = append(dst, prefixPartition)
	dst = binary.BigEndian.AppendUint16(dst, uint16(part))
	return append(dst, kind)
}

func itemKey(dst []byte, part int, tenant, id string) []byte {
	dst = appendPartition(dst, part, kindItem)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, id...)
}

// Demotable reports whether key may leave a node's hot storage tier: item
// records may; the node's metadata, partition state, type index and raft
// log, which every write or start-up reads, stay hot.
func Demotable(key []byte) bool { return isItemKey(key) }

func isItemKey(key []byte) bool {
	return len(key) > 3 && key[0] == prefixPartition && key[3] == kindItem
}

func tombKey(dst []byte, part int, tenant, id string) []byte {
	dst = appendPartition(dst, part, kindTombstone)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, id...)
}

func typeKey(dst []byte, part int, tenant, typ, id string) []byte {
	dst = typePrefix(dst, part, tenant, typ)
	return append(dst, id...)
}

// itemPrefix is the prefix of all item keys of tenant in part.
func itemPrefix(dst []byte, part int, tenant string) []byte {
	dst = appendPartition(dst, part, kindItem)
	dst = append(dst, tenant...)
	return append(dst, 0)
}

// typePrefix is the prefix of the type index of tenant and typ in part.
func typePrefix(dst []byte, part int, tenant, typ string) []byte {
	return tenantTypePrefix(dst, part, kindType, tenant, typ)
}

// tenantTypePrefix is the prefix of keys of kind about tenant's type typ
// in part: the type index's, the metadata index's (metaindex.go).
func tenantTypePrefix(dst []byte, part int, kind byte, tenant, typ string) []byte {
	dst = appendPartition(dst, part, kind)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	dst = append(dst, typ...)
	return append(dst, 0)
}

func stateKey(part int) []byte {
	return appendPartition(make([]byte, 0, 4), part, kindState)
}

func metaKey(name string) []byte {
	return append([]byte{prefixMeta}, name...)
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// where p ends in a NUL separator (so bumping it to 0x01 is enough).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	end[len(end)-1]++
	return end
}
