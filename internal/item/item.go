// Package item holds the data model shared by every layer of Brainy: the
// Item itself, the limits every input is checked against, and the error
// sentinels that the HTTP layer maps to status codes in one place.
//
// It imports nothing of ours, so core, edge and the embedded API can all
// speak it without depending on each other.
package item

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// Item is one stored record. Tenant and ID together name it; everything
// else is its value.
type Item struct {
	// ID is client-given or generated; UTF-8, at most Limits.MaxIDBytes bytes,
	// no control characters.
	ID string `json:"id"`
	// Type is the noun type (for example "person"); lists filter on it.
	Type string `json:"type,omitempty"`
	// Tenant owns the item. Set by the server from the API key or the
	// X-Brainy-Tenant header, never from a request body.
	Tenant string `json:"tenant"`
	// Data is any JSON value, stored compacted.
	Data json.RawMessage `json:"data,omitempty"`
	// Metadata is a JSON object, stored compacted.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Vector is an optional embedding.
	Vector []float32 `json:"vector,omitempty"`
	// CreatedAt and UpdatedAt are set by the server when the write is proposed.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Version changes on every write of the item. It is opaque to clients and
	// doubles as the HTTP ETag.
	Version string `json:"version"`
}

// Decode unmarshals the item's Data into v.
func (it *Item) Decode(v any) error {
	if len(it.Data) == 0 {
		return json.Unmarshal([]byte("null"), v)
	}
	return json.Unmarshal(it.Data, v)
}

// Patch is a partial update. Data and Metadata are JSON merge patches
// (RFC 7386) applied to the stored values; Type and Vector, when non-nil,
// replace the stored ones.
type Patch struct {
	Type     *string
	Data     json.RawMessage
	Metadata json.RawMessage
	Vector   []float32
	// HasVector distinguishes "replace the vector with an empty one" from
	// "leave the vector alone".
	HasVector bool
}

// Cond is the precondition of a write, from the HTTP If-Match and
// If-None-Match headers. The zero value means unconditional.
type Cond struct {
	// IfMatch, when non-empty, requires the stored version to equal it.
	// "*" requires the item to exist.
	IfMatch string
	// IfNoneMatch "*" requires the item not to exist.
	IfNoneMatch bool
}

// ListOptions selects a page of a tenant's items, ordered by id.
type ListOptions struct {
	// Type, when non-empty, keeps only items of that type.
	Type string
	// Limit is the page size; 0 means DefaultListLimit, more than
	// MaxListLimit is an error.
	Limit int
	// Cursor is the opaque value of Page.Cursor from the previous page.
	Cursor string
}

// Page is one page of a listing.
type Page struct {
	Items []*Item `json:"items"`
	// Cursor is empty on the last page.
	Cursor string `json:"cursor,omitempty"`
	// Partial marks a list of every region (GlobalScope) that some
	// regions, named in Missing, did not answer.
	Partial bool     `json:"partial,omitempty"`
	Missing []string `json:"missing,omitempty"`
}

const (
	// DefaultListLimit is the page size when ListOptions.Limit is 0.
	DefaultListLimit = 100
	// MaxListLimit bounds a page so one request cannot read the whole store.
	MaxListLimit = 1000
)

// ListCursor is the cursor of a page whose last item is lastID: the next
// page starts after it. Lists and finds over any number of partitions and
// nodes share it, since ids are one total order.
func ListCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{'1'}, lastID...))
}

// CursorID returns the id a cursor from ListCursor continues after ("" for
// no cursor).
func CursorID(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != '1' {
		return "", Invalid("invalid_cursor", "the cursor is not one this server issued")
	}
	return string(b[1:]), nil
}
