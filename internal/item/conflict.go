package item

import (
	"context"
	"encoding/base64"
	"encoding/binary"
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

// ConflictPosition is a conflict's place in a tenant's log, in the order
// pages are served.
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
	// Cursor is ConflictPage.Cursor of the previous page; it supersedes
	// Since.
	Cursor string
	// Limit is the page size: 0 means DefaultListLimit, more than
	// MaxListLimit is an error.
	Limit int
}

// After returns the position a page starts after: the cursor's, or the
// end of Since's nanosecond.
func (o *ConflictOptions) After() (ConflictPosition, error) {
	if o.Cursor != "" {
		return DecodeConflictCursor(o.Cursor)
	}
	if o.Since.IsZero() {
		return ConflictPosition{At: -1 << 63}, nil
	}
	return ConflictPosition{At: o.Since.UnixNano(), Partition: 1 << 30}, nil
}

// ConflictPage is a page of a tenant's conflict log, oldest first.
type ConflictPage struct {
	Conflicts []*Conflict `json:"conflicts"`
	// Cursor is empty on the last page.
	Cursor string `json:"cursor,omitempty"`
}

// ConflictLog reads a tenant's conflict log. Backends of a federated
// cluster implement it.
type ConflictLog interface {
	Conflicts(ctx context.Context, tenant string, opts ConflictOptions) (*ConflictPage, error)
}

// ConflictCursor encodes p as an opaque cursor: a format byte and three
// varints, base64url.
func ConflictCursor(p ConflictPosition) string {
	b := []byte{1}
	b = binary.AppendVarint(b, p.At)
	b = binary.AppendUvarint(b, uint64(p.Partition))
	b = binary.AppendUvarint(b, p.Seq)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeConflictCursor is the inverse of ConflictCursor; a malformed
// cursor is an invalid-request error.
func DecodeConflictCursor(c string) (ConflictPosition, error) {
	bad := Invalid("invalid_cursor", "cursor is not one this server handed out")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 4 || b[0] != 1 {
		return ConflictPosition{}, bad
	}
	b = b[1:]
	at, n := binary.Varint(b)
	if n <= 0 {
		return ConflictPosition{}, bad
	}
	b = b[n:]
	part, n := binary.Uvarint(b)
	if n <= 0 || part > 1<<30 {
		return ConflictPosition{}, bad
	}
	b = b[n:]
	seq, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return ConflictPosition{}, bad
	}
	return ConflictPosition{At: at, Partition: int(part), Seq: seq}, nil
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
