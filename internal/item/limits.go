package item

import (
	"unicode/utf8"
)

// MaxItemBytes bounds a stored item's value — data, metadata and vector —
// whatever writes built it: a PATCH merges into what is there, so a few
// bodies under MaxBodyBytes could otherwise grow one item past what a
// single transport frame (4 MiB) carries, and the item could then never
// be read through an edge, listed, or copied to a new replica. It is a
// constant, not a setting: every replica's state machine must refuse the
// same writes.
const MaxItemBytes = 2 << 20

// MaxPageBytes is the byte budget of a list page, as encoded between
// nodes: a page ends before the item that would take it past the budget,
// and its cursor continues from there. MaxListLimit items of up to
// MaxItemBytes each would otherwise make a page of gigabytes, far past what
// one transport frame (4 MiB) carries from the node that lists to the one
// that asked. A page always holds at least one item, so a page of one item
// may pass the budget, never the frame: MaxItemBytes fits one.
const MaxPageBytes = 1 << 20

// Limits bound every input, so that no request can make the server spend
// unbounded memory or time. The zero value of a field means its default.
type Limits struct {
	// MaxBodyBytes bounds an HTTP request body. Default 1 MiB.
	MaxBodyBytes int
	// MaxIDBytes bounds an item id. Default 256.
	MaxIDBytes int
	// MaxTypeBytes bounds a type name. Default 128.
	MaxTypeBytes int
	// MaxTenantBytes bounds a tenant name. Default 128.
	MaxTenantBytes int
	// MaxDepth bounds JSON nesting (objects and arrays) anywhere in a body.
	// Default 32.
	MaxDepth int
	// MaxFields bounds the number of object members in one JSON document,
	// counted over all nesting levels. Default 10,000.
	MaxFields int
	// MaxVectorDims bounds the length of an item's vector. Default 4096.
	MaxVectorDims int
}

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:   1 << 20,
		MaxIDBytes:     256,
		MaxTypeBytes:   128,
		MaxTenantBytes: 128,
		MaxDepth:       32,
		MaxFields:      10_000,
		MaxVectorDims:  4096,
	}
}

// EnsureDefaults replaces every zero field with its default.
func (l *Limits) EnsureDefaults() {
	d := DefaultLimits()
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&l.MaxBodyBytes, d.MaxBodyBytes)
	set(&l.MaxIDBytes, d.MaxIDBytes)
	set(&l.MaxTypeBytes, d.MaxTypeBytes)
	set(&l.MaxTenantBytes, d.MaxTenantBytes)
	set(&l.MaxDepth, d.MaxDepth)
	set(&l.MaxFields, d.MaxFields)
	set(&l.MaxVectorDims, d.MaxVectorDims)
}

// CheckID reports whether id is a valid item id: non-empty, valid UTF-8, no
// control characters (the storage key layout relies on the absence of NUL)
// and at most MaxIDBytes long.
func (l *Limits) CheckID(id string) error {
	if id == "" {
		return Invalid("invalid_id", "id must not be empty")
	}
	if len(id) > l.MaxIDBytes {
		return Invalid("id_too_long", "id is %d bytes, the limit is %d", len(id), l.MaxIDBytes)
	}
	return checkText("id", "invalid_id", id)
}

// CheckType reports whether typ is a valid type name. The empty type is
// allowed: it means "untyped".
func (l *Limits) CheckType(typ string) error {
	if len(typ) > l.MaxTypeBytes {
		return Invalid("type_too_long", "type is %d bytes, the limit is %d", len(typ), l.MaxTypeBytes)
	}
	return checkText("type", "invalid_type", typ)
}

// CheckTenant reports whether tenant is a valid tenant name: 1 to
// MaxTenantBytes of [A-Za-z0-9._-].
func (l *Limits) CheckTenant(tenant string) error {
	if tenant == "" {
		return Invalid("invalid_tenant", "tenant must not be empty")
	}
	if len(tenant) > l.MaxTenantBytes {
		return Invalid("invalid_tenant", "tenant is %d bytes, the limit is %d", len(tenant), l.MaxTenantBytes)
	}
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return Invalid("invalid_tenant", "tenant may only hold letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// CheckVector reports whether v is within MaxVectorDims.
func (l *Limits) CheckVector(v []float32) error {
	if len(v) > l.MaxVectorDims {
		return Invalid("vector_too_large", "vector has %d dimensions, the limit is %d", len(v), l.MaxVectorDims)
	}
	return nil
}

func checkText(field, code, s string) error {
	if !utf8.ValidString(s) {
		return Invalid("invalid_utf8", "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return Invalid(code, "%s must not contain control characters", field)
		}
	}
	return nil
}
