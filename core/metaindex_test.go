package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

// scanOnly hides a node's indexes: a find over it lists every item of the
// type, the truth an indexed find must equal.
type scanOnly struct{ n *Node }

func (s scanOnly) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	return s.n.List(ctx, tenant, opts)
}

// findAll runs body over src page after page and returns the ids.
func findAll(t *testing.T, src query.Lister, body string) []string {
	t.Helper()
	q, err := query.Parse([]byte(body), item.Limits{})
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var ids []string
	for pages := 0; ; pages++ {
		res, err := query.Find(context.Background(), src, "t", q)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		for _, h := range res.Hits {
			ids = append(ids, h.ID)
		}
		if res.Cursor == "" || pages > 1000 {
			return ids
		}
		q.Cursor = res.Cursor
	}
}

// TestMetadataIndex: finds that name a type and require top-level metadata
// values are listed through the index, and answer exactly as a scan does
// — with the values an index finds hard: long strings sharing their
// beginning, strings holding NUL, -0 and 0, arrays longer than the
// entries an item gets, more fields than a type indexes, names an index
// refuses, values that change type, items that change type, rewrites and
// deletes.
func TestMetadataIndex(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n := openNode(t, s)
		defer n.Close()
		long := strings.Repeat("x", maxIndexedString)
		put := func(id, typ string, meta map[string]any) {
			t.Helper()
			mb, _ := json.Marshal(meta)
			if _, _, err := n.Put(ctx, "t", &item.Item{ID: id, Type: typ, Metadata: mb}, item.Cond{}); err != nil {
				t.Fatal(err)
			}
		}
		var many []any
		for i := range maxArrayEntries + 5 {
			many = append(many, fmt.Sprint("tag", i))
		}
		for i := range 300 {
			meta := map[string]any{
				"lang": []string{"en", "no", "de"}[i%3],
				"n":    float64(i % 7),
				"s":    long + fmt.Sprint(i%4), // differs past what is indexed
				"nul":  "a\x00" + fmt.Sprint(i%2),
				"ok":   i%2 == 0,
			}
			switch i % 5 {
			case 0:
				meta["tags"] = many // past maxArrayEntries: an overflow entry
			case 1:
				meta["tags"] = []any{"tag3", "tag3", map[string]any{"tag4": 1}}
			case 2:
				meta["n"] = "3" // a string where others have numbers
			case 3:
				meta["n"] = -0.0
			}
			if i%11 == 0 {
				meta["bad\x01name"] = "x"
			}
			put(fmt.Sprintf("i%03d", i), []string{"doc", "note"}[i%2], meta)
		}
		// Fields past maxIndexedFields for one type: never indexed there.
		wide := map[string]any{}
		for f := range maxIndexedFields + 8 {
			wide[fmt.Sprintf("f%02d", f)] = f
		}
		put("wide-1", "wide", wide)
		put("wide-2", "wide", wide)
		// Rewrites: values change, types change, items go.
		put("i004", "doc", map[string]any{"lang": "fr", "n": 1})
		put("i005", "doc", map[string]any{"lang": "en", "tags": []any{"tag0"}}) // was a note
		for _, id := range []string{"i010", "i011", "i012"} {
			if err := n.Delete(ctx, "t", id, item.Cond{}); err != nil {
				t.Fatal(err)
			}
		}
		before := n.Metrics().Operations.IndexLookups
		for _, body := range []string{
			`{"type":"doc","where":{"metadata.lang":"en"},"limit":7}`,
			`{"type":"note","where":{"metadata.lang":{"in":["no","de","no"]}},"limit":9}`,
			`{"type":"doc","where":{"metadata.lang":{"in":[]}}}`,
			`{"type":"doc","where":{"metadata.n":0}}`,
			`{"type":"doc","where":{"metadata.n":"3"}}`,
			`{"type":"doc","where":{"metadata.n":3,"metadata.lang":"no"}}`,
			`{"type":"doc","where":{"metadata.s":"` + long + `2"}}`,
			`{"type":"note","where":{"metadata.nul":"a\u00001"}}`,
			`{"type":"doc","where":{"metadata.ok":true,"metadata.lang":{"ne":"en"}},"limit":5}`,
			`{"type":"doc","where":{"metadata.tags":{"contains":"tag19"}}}`,
			`{"type":"doc","where":{"metadata.tags":{"contains":"tag7"}}}`, // past the entries an item gets
			`{"type":"doc","where":{"metadata.tags":{"contains":"tag3"}}}`,
			`{"type":"note","where":{"metadata.tags":{"contains":"tag0"}},"limit":3}`,
			`{"type":"doc","where":{"metadata.tags":"tag3"}}`,
			`{"type":"doc","where":{"and":[{"metadata.lang":"fr"},{"metadata.n":{"gte":0}}]}}`,
			`{"type":"wide","where":{"metadata.f01":1}}`,
			`{"type":"wide","where":{"metadata.f39":39}}`,
			`{"type":"doc","where":{"metadata.bad\u0001name":"x"}}`,
			`{"type":"doc","where":{"or":[{"metadata.lang":"en"},{"metadata.n":2}]},"limit":50}`,
			`{"type":"doc","where":{"metadata.n":{"gte":2,"lt":5}},"limit":6}`,
			`{"type":"note","where":{"metadata.n":{"gt":3}},"limit":11}`,
			`{"type":"doc","where":{"metadata.n":{"lte":0}}}`,
			`{"type":"doc","where":{"metadata.n":{"gt":0,"lte":0}}}`,
			`{"type":"doc","where":{"metadata.n":{"gte":1,"gt":1,"lt":6,"lte":5}}}`,
			`{"type":"doc","where":{"metadata.lang":{"gt":"d"},"metadata.n":{"lt":3}},"limit":4}`,
			`{"type":"wide","where":{"metadata.f02":{"gte":1}}}`,
			`{"type":"wide","where":{"metadata.f38":{"gte":1}}}`,
		} {
			got, want := findAll(t, n, body), findAll(t, scanOnly{n}, body)
			if !slices.Equal(got, want) {
				t.Errorf("%s:\nindexed %v\nscan    %v", body, got, want)
			}
		}
		if after := n.Metrics().Operations.IndexLookups; after == before {
			t.Fatal("no find went through the metadata index")
		}
	})
}

// TestMetadataIndexNarrows: a list through the index reads only the items
// it lists: a rare value among many is found without reading the rest.
func TestMetadataIndexNarrows(t *testing.T) {
	n := openNode(t, memory.New())
	defer n.Close()
	ctx := context.Background()
	for i := range 2000 {
		lang := "en"
		if i%500 == 0 {
			lang = "is"
		}
		if _, _, err := n.Put(ctx, "t", &item.Item{ID: fmt.Sprintf("i%04d", i), Type: "doc", Metadata: []byte(`{"lang":"` + lang + `"}`)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	q, _ := query.Parse([]byte(`{"where":{"metadata.lang":"is"}}`), item.Limits{})
	page, err := n.ListWhere(ctx, "t", item.ListOptions{Type: "doc", Limit: 1000}, q.Where)
	if err != nil || len(page.Items) != 4 || page.Cursor != "" {
		t.Fatalf("the index listed %d items (cursor %q, %v), want the 4 that match", len(page.Items), page.Cursor, err)
	}
	// A field no item of the type has: nothing to read at all.
	before := n.Metrics().Operations.IndexLookups
	nq, _ := query.Parse([]byte(`{"where":{"metadata.nowhere":1}}`), item.Limits{})
	if page, err := n.ListWhere(ctx, "t", item.ListOptions{Type: "doc", Limit: 1000}, nq.Where); err != nil || len(page.Items) != 0 {
		t.Fatalf("a field on no item listed %d items (%v)", len(page.Items), err)
	}
	if got := n.Metrics().Operations.IndexLookups - before; got != 64 {
		t.Fatalf("%d of 64 partitions answered from their field lists", got)
	}
	// A range: the ids of its numbers, sorted — exactly the matches here.
	for i := range 20 {
		if _, _, err := n.Put(ctx, "t", &item.Item{ID: fmt.Sprintf("n%02d", 19-i), Type: "doc", Metadata: fmt.Appendf(nil, `{"lang":"en","rank":%d}`, i)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}
	before = n.Metrics().Operations.IndexLookups
	rq, _ := query.Parse([]byte(`{"where":{"metadata.rank":{"gt":4,"lte":9}}}`), item.Limits{})
	page, err = n.ListWhere(ctx, "t", item.ListOptions{Type: "doc", Limit: 1000}, rq.Where)
	var got []string
	for _, it := range page.Items {
		got = append(got, it.ID)
	}
	if want := []string{"n10", "n11", "n12", "n13", "n14"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("rank in (4, 9]: the index listed %v (%v), want %v", got, err, want)
	}
	if n.Metrics().Operations.IndexLookups == before {
		t.Fatal("the range did not go through the index")
	}
	// An "in" of more values than the index takes (an iterator each, in
	// every partition) is answered by a scan.
	before = n.Metrics().Operations.IndexLookups
	var many []string
	for i := range maxLookupValues + 1 {
		many = append(many, fmt.Sprintf("%q", fmt.Sprint("x", i)))
	}
	wide, _ := query.Parse([]byte(`{"where":{"metadata.lang":{"in":["is",`+strings.Join(many, ",")+`]}}}`), item.Limits{})
	if page, err := n.ListWhere(ctx, "t", item.ListOptions{Type: "doc", Limit: 1000}, wide.Where); err != nil || len(page.Items) != 1000 {
		t.Fatalf("a wide in: %d items (%v), want a scan's full page", len(page.Items), err)
	}
	if got := n.Metrics().Operations.IndexLookups - before; got != 0 {
		t.Fatalf("a wide in went through the index in %d partitions", got)
	}
	// Rewritten, retyped, deleted: their entries go with them.
	if _, _, err := n.Put(ctx, "t", &item.Item{ID: "i0000", Type: "doc", Metadata: []byte(`{"lang":"en"}`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Put(ctx, "t", &item.Item{ID: "i0500", Type: "note", Metadata: []byte(`{"lang":"is"}`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(ctx, "t", "i1000", item.Cond{}); err != nil {
		t.Fatal(err)
	}
	page, err = n.ListWhere(ctx, "t", item.ListOptions{Type: "doc", Limit: 1000}, q.Where)
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "i1500" {
		t.Fatalf("after a rewrite, a retype and a delete the index listed %d items (%v), want i1500", len(page.Items), err)
	}
}

// FuzzMetaEntries: whatever metadata (a JSON object) and type key the
// store hands back, the index's encoders and decoder do not panic, and the
// encodings of one field's values are prefix-free — an id appended to one
// can never read as another value's entry.
func FuzzMetaEntries(f *testing.F) {
	ti := typeInfo{fields: []string{"a", "b"}, dims: 3}
	f.Add([]byte(`{"a":"x","b":[1,"y",null,true],"c":{"d":1},"e":-0}`), ti.append(nil))
	f.Add([]byte(`{"s":"a\u0000b","t":"a"}`), []byte{0, 2, 1, 'a'})
	for _, v := range []string{`"a\u00e9\"b"`, `-0`, `1e400`, `123456789012345678`, `-12`, `0.5`, `true`, `null`} {
		f.Add([]byte(v), []byte{0})
	}
	f.Fuzz(func(t *testing.T, meta, fields []byte) {
		if ti, err := decodeTypeInfo(fields); err == nil {
			if back := must(decodeTypeInfo(ti.append(nil))); !slices.Equal(back.fields, ti.fields) || back.dims != ti.dims {
				t.Fatalf("type round trip: %+v -> %+v", ti, back)
			}
		}
		if !json.Valid(meta) {
			return
		}
		// A scalar's text encodes as the value a query holds does.
		if raw, err := jsontext.Compact(nil, meta, jsontext.Limits{}); err == nil {
			var v any
			uerr := json.Unmarshal(raw, &v)
			fromRaw, okRaw := appendMetaRaw(nil, raw)
			fromValue, okValue := appendMetaValue(nil, v)
			if uerr == nil && okValue && (!okRaw || !bytes.Equal(fromRaw, fromValue)) {
				t.Fatalf("%s: encoded from its text %q (%v), from its value %q", raw, fromRaw, okRaw, fromValue)
			}
			if uerr != nil && okRaw {
				t.Fatalf("%s: encoding/json refuses it (%v), the index encodes it", raw, uerr)
			}
		}
		entries, _ := metaEntries(&metaScratch{}, meta, nil)
		for i, a := range entries {
			for _, b := range entries[i+1:] {
				if a.field == b.field && (strings.HasPrefix(a.value, b.value) || strings.HasPrefix(b.value, a.value)) {
					t.Fatalf("values %q and %q of field %q: one is a prefix of the other", a.value, b.value, a.field)
				}
			}
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVectorDimensionFixedPerType: the first vector of a type fixes its
// dimension; a write giving an item of that type another — a new item, a
// rewrite, a patch that moves an item into the type — is refused with
// vector_dimension, and nothing is written. Other types, and items with
// no type, are free.
func TestVectorDimensionFixedPerType(t *testing.T) {
	n := openNode(t, memory.New())
	defer n.Close()
	ctx := context.Background()
	put := func(id, typ string, vec ...float32) error {
		_, _, err := n.Put(ctx, "t", &item.Item{ID: id, Type: typ, Vector: vec}, item.Cond{})
		return err
	}
	if err := put("a", "emb", 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		var inv *item.InvalidError
		if !errors.As(err, &inv) || inv.Code != "vector_dimension" {
			t.Fatalf("%s: %v, want vector_dimension", what, err)
		}
	}
	refused("a rewrite with 4 dimensions", put("a", "emb", 1, 2, 3, 4))
	if it, err := n.Get(ctx, "t", "a"); err != nil || len(it.Vector) != 3 {
		t.Fatalf("after the refused rewrite: %+v %v", it, err)
	}
	if err := put("a", "emb", 3, 2, 1); err != nil {
		t.Fatalf("a rewrite with 3 dimensions: %v", err)
	}
	// "b" lands in another partition than "a" or not; find one that
	// shares a's, so the rule is the partition's.
	same := ""
	for i := 0; same == ""; i++ {
		if id := fmt.Sprint("b", i); PartitionOf("t", id, n.Partitions()) == PartitionOf("t", "a", n.Partitions()) {
			same = id
		}
	}
	refused("a new item with 2 dimensions", put(same, "emb", 1, 2))
	if err := put(same, "other", 1, 2); err != nil {
		t.Fatalf("another type: %v", err)
	}
	emb := "emb"
	_, err := n.Patch(ctx, "t", same, &item.Patch{Type: &emb}, item.Cond{})
	refused("a patch moving a 2-dimension item into the type", err)
	if err := put(same, "", 1, 2, 3, 4, 5); err != nil {
		t.Fatalf("no type: %v", err)
	}
}
