package core

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/tiers"
)

// The metadata index: per partition, tenant and type, the items by the
// values of their top-level metadata fields, kept by the state machine in
// the apply of each write (install), so that a find whose where requires
// metadata.f to equal some values (query.Lookup) lists those items
// instead of every item of the type. It is a candidate list: the find
// evaluates its whole where on each item it reads, so the index may hold
// more than the matches, never fewer.
//
//	p<part:2>m<tenant>\x00<type>\x00<field>\x00<value><id>   an entry, empty value
//	p<part:2>M<tenant>\x00<type>                           the type: its indexed fields, its vectors' dimension
//
// Values are encoded so that no value's encoding is a prefix of another's
// (appendMetaValue): a tag, then a fixed-length number, or an escaped and
// terminated string. Strings longer than maxIndexedString are indexed by
// their first maxIndexedString bytes (a lookup of a long string finds
// every item sharing its beginning). An array is indexed by each distinct
// scalar element, up to maxArrayEntries; an array with more has, besides,
// an overflow entry that makes the item a candidate for every contains on
// the field. Objects, and objects or arrays inside arrays, have no entries:
// no lookup (a scalar eq, in or contains) can match them.
//
// Which fields: the first maxIndexedFields fields (names of 1 to
// maxFieldName bytes, no control characters) that items of the type bring
// with a scalar or array value, in the order writes bring them; later
// fields are never indexed for the type, in that partition. A type's list
// is written with the type's first item (empty if it has no such field),
// only grows, and a field joins it with the first item of the type that
// has it, so:
//
// Invariant: for every field in a type's list, every live item of the type
// in the partition whose metadata holds the field with a scalar or array
// value has its entries; while the list has room, no item of the type
// holds a field the list does not name. A partition whose store predates
// the index holds items without entries: its state says so
// (partState.indexed false) and it gets no lists, and hence no lookups,
// until it has been empty once.
const (
	maxIndexedFields = 32
	maxFieldName     = 64
	maxIndexedString = 128
	maxArrayEntries  = 16
)

// Value tags. Each is one byte; what follows is fixed by the tag.
const (
	tagNull     = 'n'
	tagFalse    = 'f'
	tagTrue     = 't'
	tagNumber   = 'd' // 8 bytes, big-endian, ordered like the numbers
	tagString   = 's' // escaped, 0x00 0x01 ends it
	tagLong     = 'S' // the first maxIndexedString bytes of a longer string, as tagString
	tagOverflow = 'o' // an array with more than maxArrayEntries scalars
)

// metaValuePrefix is the prefix of the entries of field = value (an
// encoded value) of tenant's items of typ in part.
func metaValuePrefix[V string | []byte](dst []byte, part int, tenant, typ, field string, value V) []byte {
	dst = tenantTypePrefix(dst, part, kindMetaEntry, tenant, typ)
	dst = append(dst, field...)
	dst = append(dst, 0)
	return append(dst, value...)
}

func metaFieldsKey(dst []byte, part int, tenant, typ string) []byte {
	dst = appendPartition(dst, part, kindMetaFields)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, typ...)
}

// appendMetaValue appends the encoding of v, a scalar as encoding/json
// decodes one (what a query's values are); ok is false for anything else.
// appendMetaRaw encodes the same values from their JSON text.
func appendMetaValue(dst []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, tagNull), true
	case bool:
		if x {
			return append(dst, tagTrue), true
		}
		return append(dst, tagFalse), true
	case float64:
		return appendMetaNumber(dst, x), true
	case string:
		return appendMetaString(dst, x), true
	}
	return dst, false
}

// appendMetaRaw appends the encoding of raw, a compact JSON value, when
// it is a scalar: what appendMetaValue appends for the value
// encoding/json decodes from raw. ok is false for objects, arrays and
// numbers out of float64's range (encoding/json fails the whole object on
// those: no field of it matches anything).
func appendMetaRaw(dst, raw []byte) (_ []byte, ok bool) {
	switch raw[0] {
	case '"':
		inner := raw[1 : len(raw)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			return appendMetaString(dst, inner), true
		}
		s, err := jsontext.Unquote(raw)
		return appendMetaString(dst, s), err == nil
	case 't':
		return append(dst, tagTrue), true
	case 'f':
		return append(dst, tagFalse), true
	case 'n':
		return append(dst, tagNull), true
	case '{', '[':
		return dst, false
	}
	if x, ok := smallInt(raw); ok {
		return appendMetaNumber(dst, x), true
	}
	x, err := strconv.ParseFloat(string(raw), 64)
	return appendMetaNumber(dst, x), err == nil
}

// smallInt parses raw when it is an integer of at most 15 digits, which
// a float64 holds exactly: most metadata numbers, without ParseFloat.
func smallInt(raw []byte) (float64, bool) {
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	if len(digits) == 0 || len(digits) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return float64(n), true
}

func appendMetaNumber(dst []byte, x float64) []byte {
	if x == 0 {
		x = 0 // -0 equals 0
	}
	b := math.Float64bits(x)
	if x < 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(append(dst, tagNumber), b)
}

func appendMetaString[S string | []byte](dst []byte, x S) []byte {
	tag := byte(tagString)
	if len(x) > maxIndexedString {
		tag, x = tagLong, x[:maxIndexedString]
	}
	dst = append(dst, tag)
	for i := 0; i < len(x); i++ {
		if x[i] == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, x[i])
		}
	}
	return append(dst, 0, 1)
}

// indexableField reports whether a metadata field name may be indexed.
func indexableField(name string) bool {
	if name == "" || len(name) > maxFieldName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return false
		}
	}
	return true
}

// metaEntry is one index entry of an item: a field and an encoded value.
type metaEntry struct{ field, value string }

// metaScratch is metaEntries' reusable memory.
type metaScratch struct {
	obj, val, key []byte
	vals          []string
}

// metaEntries returns the entries metadata (a stored JSON object) calls
// for, sorted, over the fields keep accepts (nil: all), and the fields
// that have any (sorted). It reads the object as Match does (package
// query decodes it with encoding/json) — strings unescaped, numbers as
// float64 — without decoding what it does not index.
func metaEntries(sc *metaScratch, metadata []byte, keep func(field string) bool) (entries []metaEntry, fields []string) {
	if len(metadata) == 0 {
		return nil, nil
	}
	// Stored metadata is compact already; another region's may not be,
	// and Members reads compact JSON only.
	var err error
	if sc.obj, err = jsontext.Compact(sc.obj[:0], metadata, jsontext.Limits{}); err != nil {
		return nil, nil
	}
	_ = jsontext.Members(sc.obj, func(rawKey, raw []byte) error {
		f, err := jsontext.Unquote(rawKey)
		if err != nil || !indexableField(f) || (keep != nil && !keep(f)) {
			return nil
		}
		if raw[0] != '[' {
			var ok bool
			if sc.val, ok = appendMetaRaw(sc.val[:0], raw); ok {
				fields = append(fields, f)
				entries = append(entries, metaEntry{f, string(sc.val)})
			}
			return nil
		}
		fields = append(fields, f)
		vals := sc.vals[:0]
		_ = jsontext.Elements(raw, func(e []byte) error {
			var ok bool
			if sc.val, ok = appendMetaRaw(sc.val[:0], e); ok {
				vals = append(vals, string(sc.val))
			}
			return nil
		})
		slices.Sort(vals)
		vals = slices.Compact(vals)
		if len(vals) > maxArrayEntries {
			vals = append(vals[:maxArrayEntries], string([]byte{tagOverflow}))
		}
		for _, val := range vals {
			entries = append(entries, metaEntry{f, val})
		}
		sc.vals = vals[:0]
		return nil
	})
	slices.SortFunc(entries, compareEntries)
	entries = slices.Compact(entries)
	slices.Sort(fields)
	fields = slices.Compact(fields) // an object may name a member twice
	return entries, fields
}

// typeInfo is what a partition knows of one of a tenant's types, kept
// in one key per type (metaFieldsKey): the fields its metadata index holds
// (sorted) and the dimension of its vectors, fixed by the first (0: none
// yet).
type typeInfo struct {
	fields []string
	dims   int
	found  bool // the key exists: some item of the type was installed
}

// decodeTypeInfo decodes a type's key: the dimension, then the fields.
func decodeTypeInfo(b []byte) (typeInfo, error) {
	d := codec.Decoder{B: b, Fail: errCorrupt}
	dims := d.Uvarint()
	n := d.Uvarint()
	if n > maxIndexedFields || dims > 1<<20 {
		return typeInfo{}, errCorrupt
	}
	ti := typeInfo{dims: int(dims), fields: make([]string, 0, n), found: true}
	for range n {
		ti.fields = append(ti.fields, d.String())
	}
	if d.Err != nil || len(d.B) != 0 {
		return typeInfo{}, errCorrupt
	}
	return ti, nil
}

func (ti *typeInfo) append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(ti.dims))
	dst = binary.AppendUvarint(dst, uint64(len(ti.fields)))
	for _, f := range ti.fields {
		dst = codec.AppendString(dst, f)
	}
	return dst
}

// has reports whether field is among the fields the index holds.
func (ti *typeInfo) has(field string) bool {
	_, ok := slices.BinarySearch(ti.fields, field)
	return ok
}

// readTypeInfo returns what part knows of tenant's type typ, read through
// v once and then kept with the partition's state (which a snapshot or a
// dropped replica replaces whole). Its fields are the cache's: not to be
// modified.
func (sm *stateMachine) readTypeInfo(v view, part int, tenant, typ string) (typeInfo, error) {
	ps := &sm.parts[part]
	sm.meta.key = append(append(append(sm.meta.key[:0], tenant...), 0), typ...)
	if ti, ok := ps.types[string(sm.meta.key)]; ok {
		return ti, nil
	}
	val, found, err := v.get(metaFieldsKey(nil, part, tenant, typ))
	if err != nil {
		return typeInfo{}, err
	}
	var ti typeInfo
	if found {
		if ti, err = decodeTypeInfo(val); err != nil {
			return typeInfo{}, fmt.Errorf("core: type %q in partition %d: %w", typ, part, err)
		}
	}
	ps.cacheType(string(sm.meta.key), ti)
	return ti, nil
}

// cacheType keeps a type's info, at most maxCachedTypes of them per
// partition: past that the cache starts again.
func (ps *partState) cacheType(key string, ti typeInfo) {
	if ps.types == nil || len(ps.types) >= maxCachedTypes {
		ps.types = map[string]typeInfo{}
	}
	ps.types[key] = ti
}

// maxCachedTypes bounds the types a partition's state keeps.
const maxCachedTypes = 1024

// checkVector refuses next, an item about to be written by a client, when
// its vector's dimension is not its type's in this partition (the first
// vector of the type here fixed it). Only partitions that keep type keys
// (partState.indexed) know a type's dimension.
func (sm *stateMachine) checkVector(v view, part int, tenant string, next *record) error {
	if !sm.parts[part].indexed || next.typ == "" || len(next.vector) == 0 {
		return nil
	}
	ti, err := sm.readTypeInfo(v, part, tenant, next.typ)
	if err != nil {
		return err
	}
	if ti.dims != 0 && ti.dims != len(next.vector) {
		return item.Invalid("vector_dimension", "items of type %q hold vectors of %d dimensions; this one has %d", next.typ, ti.dims, len(next.vector))
	}
	return nil
}

// indexMeta moves an item's index entries from prev (its record while
// live) to next (nil: gone), adding next's new fields to its type's list
// while there is room, and fixing the type's vector dimension with its
// first vector. Entries that both hold are left as they are.
func (sm *stateMachine) indexMeta(v view, w writer, part int, tenant, id string, prev *record, live bool, next *record) error {
	ps := &sm.parts[part]
	if !ps.indexed {
		return nil
	}
	if live && next != nil && prev.typ == next.typ && bytes.Equal(prev.metadata, next.metadata) && len(prev.vector) == len(next.vector) {
		return nil // the same entries; prev's vector fixed the dimension
	}
	var old, add []metaEntry
	if live && prev.typ != "" && len(prev.metadata) > 0 {
		ti, err := sm.readTypeInfo(v, part, tenant, prev.typ)
		if err != nil {
			return err
		}
		if len(ti.fields) > 0 {
			old, _ = metaEntries(&sm.meta, prev.metadata, ti.has)
		}
	}
	if next != nil && next.typ != "" {
		// The key exists from the type's first item on, even with no
		// field: a field it does not name, while it has room, is on no
		// item.
		ti, err := sm.readTypeInfo(v, part, tenant, next.typ)
		if err != nil {
			return err
		}
		changed := !ti.found
		if ti.dims == 0 && len(next.vector) > 0 {
			ti.dims, changed = len(next.vector), true
		}
		var all []metaEntry
		if len(next.metadata) > 0 {
			var have, grown []string
			all, have = metaEntries(&sm.meta, next.metadata, nil)
			for _, f := range have {
				if len(ti.fields)+len(grown) == maxIndexedFields {
					break
				}
				if !ti.has(f) {
					grown = append(grown, f)
				}
			}
			if len(grown) > 0 {
				ti.fields = slices.Sorted(slices.Values(append(slices.Clone(ti.fields), grown...)))
				changed = true
			}
		}
		if changed {
			ti.found = true
			w.set(metaFieldsKey(nil, part, tenant, next.typ), ti.append(nil))
			ps.cacheType(tenant+"\x00"+next.typ, ti)
		}
		for _, e := range all {
			if ti.has(e.field) {
				add = append(add, e)
			}
		}
	}
	sameType := next != nil && live && prev.typ == next.typ
	for _, e := range old {
		if sameType && hasEntry(add, e) {
			continue
		}
		sm.tbuf = append(metaValuePrefix(sm.tbuf[:0], part, tenant, prev.typ, e.field, e.value), id...)
		w.del(sm.tbuf)
	}
	for _, e := range add {
		if sameType && hasEntry(old, e) {
			continue
		}
		sm.tbuf = append(metaValuePrefix(sm.tbuf[:0], part, tenant, next.typ, e.field, e.value), id...)
		w.set(sm.tbuf, nil)
	}
	return nil
}

// hasEntry reports whether sorted (as metaEntries returns them) holds e.
func hasEntry(sorted []metaEntry, e metaEntry) bool {
	_, ok := slices.BinarySearchFunc(sorted, e, compareEntries)
	return ok
}

func compareEntries(a, b metaEntry) int {
	return cmp.Or(strings.Compare(a.field, b.field), strings.Compare(a.value, b.value))
}

// metaLookups returns where's lookups the index may answer: on fields it
// may hold (a field no list may name, indexableField, is one it knows
// nothing of) and with at most maxLookupValues values — each value is an
// iterator per partition, and an "in" of a thousand values would open
// 64,000 of them for one find.
func metaLookups(where *query.Filter) []query.Lookup {
	return slices.DeleteFunc(where.Lookups(), func(l query.Lookup) bool {
		return !indexableField(l.Field) || len(l.Values) > maxLookupValues
	})
}

// maxLookupValues bounds the values of a lookup the index answers.
const maxLookupValues = 16

// metaSources returns iterators over the index entries that list the
// candidates of a lookup in part, past after: the lookup on the first
// field of lookups that the type's list holds; none when the list, with
// room to spare, holds none of them (no item here has those fields). ok
// is false when the index cannot tell — no list (a partition from before
// the index, or no item of the type), or a full one: the caller scans.
func (n *Node) metaSources(ctx context.Context, part int, tenant, typ string, lookups []query.Lookup, after string) (srcs []*mergeSource, ok bool, err error) {
	val, err := n.store.Get(ctx, metaFieldsKey(nil, part, tenant, typ))
	if errors.Is(err, tiers.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	ti, err := decodeTypeInfo(val)
	if err != nil {
		return nil, false, fmt.Errorf("core: type %q in partition %d: %w", typ, part, err)
	}
	fields := ti.fields
	var lk *query.Lookup
	for i := range lookups {
		if _, found := slices.BinarySearch(fields, lookups[i].Field); found {
			lk = &lookups[i]
			break
		}
	}
	if lk == nil {
		// A list with room names every field the type's items hold here:
		// none has the lookup's field, nothing matches. A full one may
		// leave it out: scan.
		return nil, len(fields) < maxIndexedFields, nil
	}
	if lk.Range != nil {
		src, ok, err := n.rangeSource(ctx, part, tenant, typ, lk, after)
		if !ok || err != nil {
			return nil, false, err
		}
		return []*mergeSource{src}, true, nil
	}
	var prefixes [][]byte
	for _, v := range lk.Values {
		enc, _ := appendMetaValue(nil, v)
		prefixes = append(prefixes, metaValuePrefix(nil, part, tenant, typ, lk.Field, enc))
	}
	if lk.Contains {
		prefixes = append(prefixes, metaValuePrefix(nil, part, tenant, typ, lk.Field, []byte{tagOverflow}))
	}
	slices.SortFunc(prefixes, bytes.Compare)
	prefixes = slices.CompactFunc(prefixes, bytes.Equal)
	for _, prefix := range prefixes {
		src, err := n.openSource(ctx, part, prefix, after)
		if err != nil {
			closeSources(srcs)
			return nil, false, err
		}
		srcs = append(srcs, src)
	}
	return srcs, true, nil
}

// maxRangeCandidates bounds the ids a range lookup collects in one
// partition: past it, the partition is scanned instead.
const maxRangeCandidates = query.MaxScan

// rangeSource lists, in id order, the items past after whose field lk
// holds a number in lk.Range (an array's too: candidates). The index
// orders them by value, so a partition's ids are collected and sorted:
// ok is false past maxRangeCandidates (the caller scans).
func (n *Node) rangeSource(ctx context.Context, part int, tenant, typ string, lk *query.Lookup, after string) (_ *mergeSource, ok bool, err error) {
	numbers := metaValuePrefix(nil, part, tenant, typ, lk.Field, []byte{tagNumber})
	at := func(x float64) []byte {
		return appendMetaNumber(metaValuePrefix(nil, part, tenant, typ, lk.Field, ""), x)
	}
	lower, upper := numbers, prefixEnd(numbers)
	if r := lk.Range; r.Lo != nil {
		if lower = at(*r.Lo); !r.LoIn {
			lower = prefixEnd(lower) // past every id of that value
		}
	}
	if r := lk.Range; r.Hi != nil {
		if upper = at(*r.Hi); r.HiIn {
			upper = prefixEnd(upper)
		}
	}
	if bytes.Compare(lower, upper) >= 0 {
		return &mergeSource{it: &idIter{}, part: part}, true, nil
	}
	it, err := n.store.NewIter(ctx, lower, upper)
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var ids []string
	plen := len(numbers) + 8
	for it.Next() {
		if id := string(it.Key()[plen:]); id > after {
			if ids = append(ids, id); len(ids) > maxRangeCandidates {
				return nil, false, nil
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, false, err
	}
	slices.Sort(ids)
	return &mergeSource{it: &idIter{ids: slices.Compact(ids)}, part: part}, true, nil
}

// idIter is a tiers.Iterator over sorted ids (keys, empty values).
type idIter struct {
	ids []string
	at  int
}

func (it *idIter) Next() bool {
	if it.at >= len(it.ids) {
		return false
	}
	it.at++
	return true
}
func (it *idIter) Key() []byte   { return []byte(it.ids[it.at-1]) }
func (it *idIter) Value() []byte { return nil }
func (it *idIter) Err() error    { return nil }
func (it *idIter) Close() error  { return nil }

func closeSources(srcs []*mergeSource) {
	for _, s := range srcs {
		s.it.Close()
	}
}
