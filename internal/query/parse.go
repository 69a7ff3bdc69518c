// Package query is find's language and its evaluation: a JSON query
// (type, where, near, limit, cursor, consistency, scope) parsed with every
// mistake reported by its path, a filter evaluated against items, and a
// find run over any lister of items by scanning in id order — narrowed by
// the lister's indexes where it has them (Lookups, WhereLister, Indexed),
// or run by the lister itself across its partitions (Scatterer, Merge).
//
// Exact search is the truth the indexes are measured against: it answers
// every query correctly at the cost of reading every item of the type (see
// Find for the bounds on one request); an index only narrows what is read.
package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/soullabs/brainy/internal/item"
)

// Limits of one query.
const (
	MaxK       = 1000 // near.k
	DefaultK   = 10
	MaxLimit   = 1000 // limit without near
	maxDepth   = 10   // nesting of and/or/not
	maxNodes   = 256  // conditions and combinators in a where
	maxIn      = 1000 // values of one "in"
	maxPathLen = 8    // segments of a field path
)

// Query is a parsed find.
type Query struct {
	// Type, when not empty, keeps only items of that type.
	Type string
	// Where keeps the items it matches; nil keeps all.
	Where *Filter
	// Near, when set, ranks by vector similarity and returns the K best.
	Near *Near
	// Limit is the page size without Near.
	Limit int
	// Cursor continues a previous page (without Near).
	Cursor string
	// Consistency is "strong" (default) or "stale", as for reads.
	Consistency string
	// Scope is "region" (default: this cluster's items) or "global" (every
	// region's, through the federation; a cluster in none is the world).
	Scope string
}

// AppendJSON appends q as the JSON Parse takes (a cluster sends it to the
// members that run their share of a find): its fields as they are now,
// and the where it was parsed with.
func (q *Query) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"limit":`...)
	dst = strconv.AppendInt(dst, int64(q.Limit), 10)
	dst = append(dst, `,"consistency":`...)
	dst = appendJSONString(dst, q.Consistency)
	if q.Scope != "" {
		dst = append(dst, `,"scope":`...)
		dst = appendJSONString(dst, q.Scope)
	}
	if q.Type != "" {
		dst = append(dst, `,"type":`...)
		dst = appendJSONString(dst, q.Type)
	}
	if q.Cursor != "" {
		dst = append(dst, `,"cursor":`...)
		dst = appendJSONString(dst, q.Cursor)
	}
	if q.Where != nil {
		dst = append(append(dst, `,"where":`...), q.Where.raw...)
	}
	if n := q.Near; n != nil {
		dst = append(dst, `,"near":{"k":`...)
		dst = strconv.AppendInt(dst, int64(n.K), 10)
		dst = append(dst, `,"metric":`...)
		dst = appendJSONString(dst, string(n.Metric))
		dst = append(dst, `,"vector":[`...)
		for i, v := range n.Vector {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendFloat(dst, float64(v), 'g', -1, 32)
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// Near is a nearest-neighbour search.
type Near struct {
	Vector []float32
	K      int
	Metric Metric
}

// Metric is how vectors are compared.
type Metric string

// Metrics. Cosine and dot rank by similarity (higher first), l2 by
// distance (lower first).
const (
	Cosine Metric = "cosine"
	Dot    Metric = "dot"
	L2     Metric = "l2"
)

// Parse parses a find request body. Every malformed query is an
// *item.InvalidError (code invalid_query) naming the offending path.
func Parse(body []byte, lim item.Limits) (*Query, error) {
	lim.EnsureDefaults()
	var top map[string]json.RawMessage
	if err := strictUnmarshal(body, &top); err != nil || top == nil {
		return nil, invalid("", "the body must be a JSON object")
	}
	q := &Query{Limit: item.DefaultListLimit, Consistency: "strong", Scope: "region"}
	for _, k := range sortedKeys(top) {
		raw := top[k]
		var err error
		switch k {
		case "type":
			err = unmarshalAs(raw, &q.Type, k, "a string")
			if err == nil && q.Type != "" {
				err = checkAt(k, lim.CheckType(q.Type))
			}
		case "where":
			p := &parser{}
			if q.Where, err = p.filter(raw, "where", 0); q.Where != nil {
				q.Where.raw = bytes.Clone(raw)
			}
		case "near":
			q.Near, err = parseNear(raw, lim)
		case "limit":
			var n float64
			if err = unmarshalAs(raw, &n, k, "a number"); err == nil && (n != math.Trunc(n) || n < 1 || n > MaxLimit) {
				err = invalid(k, "must be a whole number from 1 to %d", MaxLimit)
			}
			q.Limit = int(n)
		case "cursor":
			err = unmarshalAs(raw, &q.Cursor, k, "a string")
			if _, bad := item.CursorID(q.Cursor); err == nil && bad != nil {
				err = invalid(k, "is not one this server issued")
			}
		case "consistency":
			err = unmarshalAs(raw, &q.Consistency, k, "a string")
			if err == nil && q.Consistency != "strong" && q.Consistency != "stale" {
				err = invalid(k, "must be strong or stale, not %q", q.Consistency)
			}
		case "scope":
			err = unmarshalAs(raw, &q.Scope, k, "a string")
			if err == nil && q.Scope != "region" && q.Scope != "global" {
				err = invalid(k, "must be region or global, not %q", q.Scope)
			}
		default:
			err = invalid(k, "unknown field; a find takes type, where, near, limit, cursor, consistency and scope")
		}
		if err != nil {
			return nil, err
		}
	}
	if q.Near != nil && q.Cursor != "" {
		return nil, invalid("cursor", "a nearest-neighbour find returns its k items in one answer, without pages")
	}
	return q, nil
}

func parseNear(raw json.RawMessage, lim item.Limits) (*Near, error) {
	var m map[string]json.RawMessage
	if err := strictUnmarshal(raw, &m); err != nil || m == nil {
		return nil, invalid("near", "must be an object: {\"vector\": [...], \"k\": 10, \"metric\": \"cosine\"}")
	}
	n := &Near{K: DefaultK, Metric: Cosine}
	for _, k := range sortedKeys(m) {
		path := "near." + k
		switch k {
		case "vector":
			var v []float64
			if err := unmarshalAs(m[k], &v, path, "an array of numbers"); err != nil {
				return nil, err
			}
			if len(v) == 0 || len(v) > lim.MaxVectorDims {
				return nil, invalid(path, "must have 1 to %d numbers", lim.MaxVectorDims)
			}
			n.Vector = make([]float32, len(v))
			for i, f := range v {
				n.Vector[i] = float32(f)
				if math.IsInf(float64(n.Vector[i]), 0) {
					return nil, invalid(fmt.Sprintf("%s[%d]", path, i), "is out of the range of a 32-bit float")
				}
			}
		case "k":
			var f float64
			if err := unmarshalAs(m[k], &f, path, "a number"); err != nil {
				return nil, err
			}
			if f != math.Trunc(f) || f < 1 || f > MaxK {
				return nil, invalid(path, "must be a whole number from 1 to %d", MaxK)
			}
			n.K = int(f)
		case "metric":
			var s string
			if err := unmarshalAs(m[k], &s, path, "a string"); err != nil {
				return nil, err
			}
			switch Metric(s) {
			case Cosine, Dot, L2:
				n.Metric = Metric(s)
			default:
				return nil, invalid(path, "must be cosine, dot or l2, not %q", s)
			}
		default:
			return nil, invalid(path, "unknown field; near takes vector, k and metric")
		}
	}
	if n.Vector == nil {
		return nil, invalid("near.vector", "is required")
	}
	return n, nil
}

// Filter is a node of a where tree: a combination of filters, or one
// condition on one field.
type Filter struct {
	kind  kind
	kids  []*Filter // and, or; not has one
	field field
	op    string // eq ne in gt gte lt lte exists contains
	value any    // the operand (for in, []any); times for createdAt/updatedAt are time.Time
	raw   []byte // the root's JSON, which Query.AppendJSON sends on
}

type kind uint8

const (
	kindAnd kind = iota
	kindOr
	kindNot
	kindCond
)

// field is what a condition looks at: an item's type or id, a timestamp,
// or a path into its metadata.
type field struct {
	name string   // "type", "id", "createdAt", "updatedAt" or "metadata"
	path []string // within metadata
}

var operators = []string{"eq", "ne", "in", "gt", "gte", "lt", "lte", "exists", "contains"}

type parser struct{ nodes int }

// filter parses a where object: its keys are field paths (their
// conditions) and the combinators and, or, not; all must hold.
func (p *parser) filter(raw json.RawMessage, path string, depth int) (*Filter, error) {
	if depth > maxDepth {
		return nil, invalid(path, "nests deeper than %d", maxDepth)
	}
	var m map[string]json.RawMessage
	if err := strictUnmarshal(raw, &m); err != nil || m == nil {
		return nil, invalid(path, "must be an object of field paths and conditions")
	}
	all := &Filter{kind: kindAnd}
	for _, k := range sortedKeys(m) {
		if p.nodes++; p.nodes > maxNodes {
			return nil, invalid(path, "has more than %d conditions", maxNodes)
		}
		at := path + "." + k
		switch k {
		case "and", "or":
			var list []json.RawMessage
			if err := strictUnmarshal(m[k], &list); err != nil || len(list) == 0 {
				return nil, invalid(at, "must be a non-empty array of where objects")
			}
			f := &Filter{kind: kindAnd}
			if k == "or" {
				f.kind = kindOr
			}
			for i, r := range list {
				kid, err := p.filter(r, fmt.Sprintf("%s[%d]", at, i), depth+1)
				if err != nil {
					return nil, err
				}
				f.kids = append(f.kids, kid)
			}
			all.kids = append(all.kids, f)
		case "not":
			kid, err := p.filter(m[k], at, depth+1)
			if err != nil {
				return nil, err
			}
			all.kids = append(all.kids, &Filter{kind: kindNot, kids: []*Filter{kid}})
		default:
			fd, err := parseField(k, at)
			if err != nil {
				return nil, err
			}
			conds, err := p.conditions(fd, m[k], at)
			if err != nil {
				return nil, err
			}
			all.kids = append(all.kids, conds...)
		}
	}
	return all, nil
}

func parseField(k, at string) (field, error) {
	switch k {
	case "type", "id", "createdAt", "updatedAt":
		return field{name: k}, nil
	}
	rest, ok := strings.CutPrefix(k, "metadata.")
	if !ok {
		return field{}, invalid(at, "unknown field; a condition is on type, id, createdAt, updatedAt or metadata.<path>")
	}
	segs := strings.Split(rest, ".")
	if len(segs) > maxPathLen || slices.Contains(segs, "") {
		return field{}, invalid(at, "must be metadata followed by 1 to %d non-empty names", maxPathLen)
	}
	return field{name: "metadata", path: segs}, nil
}

// conditions parses a field's value: a scalar or array means equality;
// an object holds operators, all of which must hold.
func (p *parser) conditions(fd field, raw json.RawMessage, at string) ([]*Filter, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		c, err := p.condition(fd, "eq", raw, at)
		return []*Filter{c}, err
	}
	var ops map[string]json.RawMessage
	if err := strictUnmarshal(raw, &ops); err != nil || len(ops) == 0 {
		return nil, invalid(at, "must be a value or an object of operators (%s)", strings.Join(operators, ", "))
	}
	var out []*Filter
	for _, op := range sortedKeys(ops) {
		if !slices.Contains(operators, op) {
			return nil, invalid(at+"."+op, "unknown operator; use one of %s (to match an object, {\"eq\": {...}})", strings.Join(operators, ", "))
		}
		c, err := p.condition(fd, op, ops[op], at+"."+op)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *parser) condition(fd field, op string, raw json.RawMessage, at string) (*Filter, error) {
	f := &Filter{kind: kindCond, field: fd, op: op}
	var v any
	if err := strictUnmarshal(raw, &v); err != nil {
		return nil, invalid(at, "is not valid JSON")
	}
	switch op {
	case "exists":
		b, ok := v.(bool)
		if !ok {
			return nil, invalid(at, "must be true or false")
		}
		f.value = b
		return f, nil
	case "in":
		list, ok := v.([]any)
		if !ok || len(list) > maxIn {
			return nil, invalid(at, "must be an array of at most %d values", maxIn)
		}
		for i := range list {
			var err error
			if list[i], err = operand(fd, list[i], fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return nil, err
			}
		}
		f.value = list
		return f, nil
	case "gt", "gte", "lt", "lte":
		switch v.(type) {
		case float64, string:
		default:
			return nil, invalid(at, "must be a number or a string")
		}
	case "contains":
		if fd.name != "metadata" {
			return nil, invalid(at, "applies to metadata arrays only")
		}
	}
	var err error
	f.value, err = operand(fd, v, at)
	return f, err
}

// operand checks a value against its field: type and id compare as
// strings, createdAt and updatedAt as RFC 3339 times.
func operand(fd field, v any, at string) (any, error) {
	switch fd.name {
	case "type", "id":
		if _, ok := v.(string); !ok {
			return nil, invalid(at, "must be a string: %s is one", fd.name)
		}
	case "createdAt", "updatedAt":
		s, ok := v.(string)
		t, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil {
			return nil, invalid(at, "must be an RFC 3339 time, like 2026-12-06T10:00:00Z")
		}
		return t, nil
	}
	return v, nil
}

func invalid(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return item.Invalid("invalid_query", "%s", msg)
}

func checkAt(path string, err error) error {
	if err != nil {
		return invalid(path, "%v", err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value with nothing after it.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func unmarshalAs(raw json.RawMessage, v any, path, what string) error {
	if err := strictUnmarshal(raw, v); err != nil {
		return invalid(path, "must be %s", what)
	}
	return nil
}

// sortedKeys orders a JSON object's keys, so that of several mistakes the
// same one is reported every time.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
