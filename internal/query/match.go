package query

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"time"

	"github.com/soullabs/brainy/internal/item"
)

// Semantics of a condition, for every field:
//
//   - eq: the field exists and equals the value (JSON equality: numbers by
//     value, arrays and objects member by member).
//   - ne: not eq — a missing field is not equal to anything.
//   - in: eq to one of the values.
//   - gt, gte, lt, lte: the field and the value are both numbers or both
//     strings (strings compare bytewise), or both times (createdAt,
//     updatedAt); anything else does not match.
//   - exists: whether the field is present (a JSON null is present).
//   - contains: the field is an array with an element eq to the value.

// Doc is an item prepared for matching: its metadata decoded once, however
// many conditions look at it.
type Doc struct {
	it       *item.Item
	meta     map[string]any
	metaDone bool
}

// NewDoc prepares it for Match.
func NewDoc(it *item.Item) *Doc { return &Doc{it: it} }

// PreparedDoc is NewDoc with the metadata decoded at once: Match on it
// only reads, so concurrent finds may share it (an index keeps one per
// item).
func PreparedDoc(it *item.Item) *Doc {
	d := NewDoc(it)
	d.decodeMeta()
	return d
}

// Item returns the item d was made of.
func (d *Doc) Item() *item.Item { return d.it }

func (d *Doc) decodeMeta() {
	if !d.metaDone {
		d.metaDone = true
		if len(d.it.Metadata) > 0 {
			_ = json.Unmarshal(d.it.Metadata, &d.meta) // stored metadata is a valid object
		}
	}
}

// Match reports whether the filter holds for d. A nil filter holds for
// every item.
func (f *Filter) Match(d *Doc) bool {
	if f == nil {
		return true
	}
	switch f.kind {
	case kindAnd:
		for _, k := range f.kids {
			if !k.Match(d) {
				return false
			}
		}
		return true
	case kindOr:
		for _, k := range f.kids {
			if k.Match(d) {
				return true
			}
		}
		return false
	case kindNot:
		return !f.kids[0].Match(d)
	}
	v, ok := d.lookup(f.field)
	switch f.op {
	case "exists":
		return ok == f.value.(bool)
	case "ne":
		return !ok || !equal(v, f.value)
	}
	if !ok {
		return false
	}
	switch f.op {
	case "eq":
		return equal(v, f.value)
	case "in":
		return slices.ContainsFunc(f.value.([]any), func(x any) bool { return equal(v, x) })
	case "contains":
		arr, isArr := v.([]any)
		return isArr && slices.ContainsFunc(arr, func(x any) bool { return equal(x, f.value) })
	}
	c, comparable := compare(v, f.value)
	if !comparable {
		return false
	}
	switch f.op {
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	default: // lte
		return c <= 0
	}
}

// lookup returns the value of fd in d and whether it is present.
func (d *Doc) lookup(fd field) (any, bool) {
	switch fd.name {
	case "type":
		return d.it.Type, true
	case "id":
		return d.it.ID, true
	case "createdAt":
		return d.it.CreatedAt, true
	case "updatedAt":
		return d.it.UpdatedAt, true
	}
	d.decodeMeta()
	var v any = d.meta
	for _, seg := range fd.path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

func equal(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}

// compare orders two values of one kind: numbers, strings or times.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return cmp.Compare(x, y), ok
	case string:
		y, ok := b.(string)
		return cmp.Compare(x, y), ok
	case time.Time:
		y, ok := b.(time.Time)
		return x.Compare(y), ok
	}
	return 0, false
}
