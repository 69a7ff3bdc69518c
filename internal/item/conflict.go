package item

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"time"
)

// Conflict is a write that lost a conflict between regions: two regions
// wrote the item concurrently (neither had seen the other's write), every
// region kept the later one, and the region that resolved it logged the
// other here, so that no acknowledged write disappears without a trace.
// A client that prefers the loser writes it back with If-Match on the
// winner's version.
type Conflict struct {
	// ID is the item's id.
	ID string `json:"id"`
	// ResolvedAt is when this region resolved the conflict (its clock when
	// the winning or losing value arrived).
	ResolvedAt time.Time `json:"resolvedAt"`
	// Loser is the losing value as written; LoserDeleted when it was a
	// delete (then only its id, version and times are meaningful).
	Loser        *Item `json:"loser"`
	LoserDeleted bool  `json:"loserDeleted,omitempty"`
	// Winner is the version that won, and WinnerDeleted whether it was a
	// delete.
	Winner        string `json:"winner"`
	WinnerDeleted bool   `json:"winnerDeleted,omitempty"`

	// Position orders conflicts: resolution time, then partition, then the
	// entry's number in its partition's log.
	Position ConflictPosition `json:"-"`
}

// ConflictPosition is a conflict's place in a tenant's log: the
// partition's log it is in and its number there, and its resolution time,
// by which pages are ordered.
type ConflictPosition struct {
	At        int64 // Unix nanoseconds
	Partition int
	Seq       uint64
}

// Less orders positions by time, partition, sequence.
func (p ConflictPosition) Less(q ConflictPosition) bool {
	if p.At != q.At {
		return p.At < q.At
	}
	if p.Partition != q.Partition {
		return p.Partition < q.Partition
	}
	return p.Seq < q.Seq
}

// ConflictOptions selects a page of a tenant's conflict log.
type ConflictOptions struct {
	// Since keeps conflicts resolved after it (zero: all).
	Since time.Time
	// Cursor is ConflictPage.Cursor (or Resume) of an earlier page; it
	// supersedes Since.
	Cursor string
	// Limit is the page size: 0 means DefaultListLimit, more than
	// MaxListLimit is an error.
	Limit int
}

// Start returns where the page starts: the cursor's position, or Since
// with nothing read.
func (o *ConflictOptions) Start() (ConflictCursor, error) {
	if o.Cursor != "" {
		return DecodeConflictCursor(o.Cursor)
	}
	c := ConflictCursor{Since: -1 << 63}
	if !o.Since.IsZero() {
		c.Since = o.Since.UnixNano()
	}
	return c, nil
}

// ConflictPage is a page of a tenant's conflict log, in the order the
// regions resolved the conflicts.
type ConflictPage struct {
	Conflicts []*Conflict `json:"conflicts"`
	// Cursor is empty on the last page.
	Cursor string `json:"cursor,omitempty"`
	// Resume is where to read from later, for conflicts logged after this
	// page: a cursor even on the last page.
	Resume string `json:"resume"`
}

// ConflictLog reads a tenant's conflict log. Backends of a federated
// cluster implement it.
type ConflictLog interface {
	Conflicts(ctx context.Context, tenant string, opts ConflictOptions) (*ConflictPage, error)
}

// ConflictCursor is a place in a tenant's conflict log: per partition,
// the number of the last entry read (entries are numbered in the order
// the partition logged them), and the Since of the first page, which
// still applies to partitions nothing was read from. Resolution times are
// clock readings of different nodes, not an order a reader could resume
// from without missing an entry logged late with an early time; entry
// numbers are.
type ConflictCursor struct {
	Since int64
	Seqs  map[int]uint64
}

// After reports whether the entry at p comes after c.
func (c ConflictCursor) After(p ConflictPosition) bool {
	if seq, ok := c.Seqs[p.Partition]; ok {
		return p.Seq > seq
	}
	return p.At > c.Since
}

// Encode renders c as an opaque cursor: a format byte, the since time,
// and the partitions' numbers, base64url.
func (c ConflictCursor) Encode() string {
	parts := make([]int, 0, len(c.Seqs))
	for p := range c.Seqs {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	b := []byte{2}
	b = binary.AppendVarint(b, c.Since)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(p))
		b = binary.AppendUvarint(b, c.Seqs[p])
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxCursorPartitions bounds a decoded cursor: partition numbers take two
// bytes in keys.
const maxCursorPartitions = 1 << 16

// DecodeConflictCursor is the inverse of Encode; a malformed cursor is an
// invalid-request error.
func DecodeConflictCursor(s string) (ConflictCursor, error) {
	bad := Invalid("invalid_cursor", "cursor is not one this server handed out")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != 2 {
		return ConflictCursor{}, bad
	}
	b = b[1:]
	since, k := binary.Varint(b)
	if k <= 0 {
		return ConflictCursor{}, bad
	}
	b = b[k:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxCursorPartitions || n > uint64(len(b)) {
		return ConflictCursor{}, bad
	}
	b = b[k:]
	c := ConflictCursor{Since: since, Seqs: make(map[int]uint64, n)}
	for range n {
		p, k := binary.Uvarint(b)
		if k <= 0 || p >= maxCursorPartitions {
			return ConflictCursor{}, bad
		}
		b = b[k:]
		seq, k := binary.Uvarint(b)
		if k <= 0 {
			return ConflictCursor{}, bad
		}
		b = b[k:]
		c.Seqs[int(p)] = seq
	}
	if len(b) != 0 {
		return ConflictCursor{}, bad
	}
	return c, nil
}

// Meta is what a read with ?meta=versions adds to an item in a
// federation: how the value came to be.
type Meta struct {
	// Versions is the value's version vector: per region, the version of
	// that region's latest write the value includes.
	Versions map[string]string `json:"versions"`
	// Conflicts counts the entries of this region's conflict log for the
	// item (the log keeps its tenant's last entries per partition).
	Conflicts int `json:"conflicts"`
}

// MetaReader reads an item's Meta. Backends of a federated cluster
// implement it.
type MetaReader interface {
	ItemMeta(ctx context.Context, tenant, id string) (*Meta, error)
}
