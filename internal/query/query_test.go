package query_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/internal/query/querytest"
)

// TestParseErrorsNamePath: every malformed query is a 400 invalid_query
// whose message starts with the offending path.
func TestParseErrorsNamePath(t *testing.T) {
	for body, path := range map[string]string{
		`[]`:                                         "the body must be a JSON object",
		`{"wher":{}}`:                                "wher: unknown field",
		`{"limit":0}`:                                "limit:",
		`{"limit":1.5}`:                              "limit:",
		`{"where":[]}`:                               "where: must be an object",
		`{"where":{"metadata.n":{"gte":{}}}}`:        "where.metadata.n.gte:",
		`{"where":{"metadata.n":{"between":1}}}`:     "where.metadata.n.between: unknown operator",
		`{"where":{"or":[{"metadata.a":1},[]]}}`:     "where.or[1]:",
		`{"where":{"or":[]}}`:                        "where.or:",
		`{"where":{"data.x":1}}`:                     "where.data.x: unknown field",
		`{"where":{"metadata.":1}}`:                  "where.metadata.:",
		`{"where":{"createdAt":{"gt":"yesterday"}}}`: "where.createdAt.gt: must be an RFC 3339 time",
		`{"where":{"type":3}}`:                       "where.type: must be a string",
		`{"where":{"metadata.x":{"exists":1}}}`:      "where.metadata.x.exists:",
		`{"where":{"type":{"contains":"a"}}}`:        "where.type.contains:",
		`{"near":{"vector":[]}}`:                     "near.vector:",
		`{"near":{"vector":[1],"k":1001}}`:           "near.k:",
		`{"near":{"vector":[1],"metric":"hamming"}}`: "near.metric:",
		`{"near":{"k":3}}`:                           "near.vector: is required",
		`{"near":{"vector":[1e300]}}`:                "near.vector[0]:",
		`{"near":{"vector":[1]},"cursor":"MWE"}`:     "cursor:",
		`{"scope":"everywhere"}`:                     "scope:",
		`{"consistency":"eventual"}`:                 "consistency:",
		`{"where":` + strings.Repeat(`{"not":`, 12) + `{}` + strings.Repeat(`}`, 12) + `}`: "nests deeper",
	} {
		_, err := query.Parse([]byte(body), item.Limits{})
		var inv *item.InvalidError
		if !errors.As(err, &inv) || inv.Code != "invalid_query" || !strings.Contains(inv.Message, path) {
			t.Errorf("%s: %v, want invalid_query mentioning %q", body, err, path)
		}
	}
	if _, err := query.Parse([]byte(`{"where":{"metadata.lang":"en"},"limit":5,"type":"doc","consistency":"stale","scope":"region"}`), item.Limits{}); err != nil {
		t.Fatalf("a good query: %v", err)
	}
}

// TestMatchSemantics pins each operator's meaning, including missing
// fields, mixed types and nested paths.
func TestMatchSemantics(t *testing.T) {
	it := &item.Item{ID: "a1", Type: "doc", CreatedAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Metadata: []byte(`{"lang":"en","n":7,"s":"7","tags":["red","blue"],"addr":{"city":"Oslo"},"nil":null,"obj":{"a":[1,2]}}`)}
	for where, want := range map[string]bool{
		`{"metadata.lang":"en"}`:                                    true,
		`{"metadata.lang":"no"}`:                                    false,
		`{"metadata.n":7}`:                                          true,
		`{"metadata.n":"7"}`:                                        false, // a number is not a string
		`{"metadata.s":{"gt":"6"}}`:                                 true,
		`{"metadata.s":{"gt":6}}`:                                   false, // a string does not compare with a number
		`{"metadata.n":{"gte":7,"lt":8}}`:                           true,
		`{"metadata.n":{"gt":7}}`:                                   false,
		`{"metadata.missing":{"ne":1}}`:                             true,
		`{"metadata.missing":{"lt":1}}`:                             false,
		`{"metadata.nil":{"exists":true}}`:                          true,
		`{"metadata.missing":{"exists":false}}`:                     true,
		`{"metadata.nil":null}`:                                     true,
		`{"metadata.tags":{"contains":"blue"}}`:                     true,
		`{"metadata.tags":{"contains":"green"}}`:                    false,
		`{"metadata.lang":{"contains":"e"}}`:                        false, // not an array
		`{"metadata.tags":["red","blue"]}`:                          true,
		`{"metadata.addr.city":"Oslo"}`:                             true,
		`{"metadata.lang.x":"Oslo"}`:                                false,
		`{"metadata.obj":{"eq":{"a":[1,2]}}}`:                       true,
		`{"metadata.lang":{"in":["no","en"]}}`:                      true,
		`{"type":"doc","id":{"gte":"a","lt":"b"}}`:                  true,
		`{"createdAt":{"gte":"2026-12-01T00:00:00Z"}}`:              true,
		`{"createdAt":{"lt":"2026-11-30T23:59:59.9Z"}}`:             false,
		`{"or":[{"metadata.lang":"no"},{"metadata.n":7}]}`:          true,
		`{"not":{"metadata.lang":"en"}}`:                            false,
		`{"and":[{"metadata.lang":"en"},{"not":{"metadata.n":1}}]}`: true,
	} {
		q, err := query.Parse([]byte(`{"where":`+where+`}`), item.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if got := q.Where.Match(query.NewDoc(it)); got != want {
			t.Errorf("%s: %v, want %v", where, got, want)
		}
	}
}

// sliceStore is a lister over items in memory with pages of 7, so that
// finds cross many page boundaries.
type sliceStore struct{ items []*item.Item }

func (s *sliceStore) Put(_ context.Context, _ string, it *item.Item, _ item.Cond) (*item.Item, bool, error) {
	s.items = append(s.items, it)
	slices.SortFunc(s.items, func(a, b *item.Item) int { return strings.Compare(a.ID, b.ID) })
	return it, true, nil
}

func (s *sliceStore) List(_ context.Context, _ string, opts item.ListOptions) (*item.Page, error) {
	after, err := item.CursorID(opts.Cursor)
	if err != nil {
		return nil, err
	}
	p := &item.Page{}
	for _, it := range s.items {
		if it.ID <= after || (opts.Type != "" && it.Type != opts.Type) {
			continue
		}
		if len(p.Items) == 7 {
			p.Cursor = item.ListCursor(p.Items[6].ID)
			break
		}
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// TestFindMatchesBruteForce: random finds over a lister with small pages
// equal brute force, page after page.
func TestFindMatchesBruteForce(t *testing.T) {
	g := querytest.New(1)
	items := g.Items(300)
	s := &sliceStore{}
	querytest.Write(t, s, "t", items)
	querytest.Check(t, g, s, "t", items, 400)
}

// shardedStore is a Scatterer over shards of items (by the id's last
// byte): each shard finds in its own items, from the query as AppendJSON
// sends it, and Merge makes the answer. A shard listed in down does not
// answer.
type shardedStore struct {
	shards []sliceStore
	down   map[int]bool
	cut    bool // even shards answer half their page
}

func (s *shardedStore) shard(id string) int { return int(id[len(id)-1]) % len(s.shards) }

func (s *shardedStore) Put(ctx context.Context, tenant string, it *item.Item, c item.Cond) (*item.Item, bool, error) {
	return s.shards[s.shard(it.ID)].Put(ctx, tenant, it, c)
}

func (s *shardedStore) List(context.Context, string, item.ListOptions) (*item.Page, error) {
	panic("a Scatterer's List is not used by Find")
}

func (s *shardedStore) FindScattered(ctx context.Context, tenant string, q *query.Query) (*query.Result, error) {
	sent := q.AppendJSON(nil)
	var rs []*query.Result
	for i := range s.shards {
		if s.down[i] {
			rs = append(rs, &query.Result{Missing: []string{query.PartName(i)}})
			continue
		}
		sq, err := query.Parse(sent, item.Limits{})
		if err != nil {
			return nil, err
		}
		r, err := query.Find(ctx, &s.shards[i], tenant, sq)
		if err != nil {
			return nil, err
		}
		if s.cut && q.Near == nil && i%2 == 0 && len(r.Hits) > 1 {
			// A shard may stop early (its byte or scan budget), with a
			// cursor: more of its items may follow its last.
			r.Hits = r.Hits[:len(r.Hits)/2]
			r.Cursor = item.ListCursor(r.Hits[len(r.Hits)-1].ID)
		}
		rs = append(rs, r)
	}
	return query.Merge(q, rs, nil)
}

// TestMergeOfSharesIsTheWhole: a find scattered over shards and merged
// equals brute force over all the items, page after page — the query
// sent on as AppendJSON writes it; with shards down, brute force over the
// others, the down ones named on every page. Shards that stop early do
// not make the merge skip what they have not shown.
func TestMergeOfSharesIsTheWhole(t *testing.T) {
	g := querytest.New(2)
	items := g.Items(300)
	s := &shardedStore{shards: make([]sliceStore, 5)}
	querytest.Write(t, s, "t", items)
	querytest.Check(t, g, s, "t", items, 400)
	s.cut = true
	querytest.Check(t, g, s, "t", items, 400)
	s.down = map[int]bool{1: true, 3: true}
	querytest.CheckPartial(t, g, s, "t", items, 200, []string{"p1", "p3"}, func(it *item.Item) bool { return s.down[s.shard(it.ID)] })
}

// FuzzParse: no body panics the parser, a query that parses matches an
// item without panicking, and the JSON a cluster sends it on as
// (AppendJSON) parses to the same query.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"where":{"metadata.a":{"in":[1,"x",null]},"or":[{"not":{"type":"d"}}]}}`,
		`{"near":{"vector":[1,2],"k":3,"metric":"l2"},"type":"x"}`, `{"limit":10,"cursor":"MWE"}`} {
		f.Add([]byte(s))
	}
	it := &item.Item{ID: "a", Metadata: []byte(`{"a":1,"b":[1,"x"],"c":{"d":null}}`)}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := query.Parse(b, item.Limits{})
		if err != nil {
			var inv *item.InvalidError
			if !errors.As(err, &inv) || inv.Code != "invalid_query" {
				t.Fatalf("a parse error that is not invalid_query: %v", err)
			}
			return
		}
		q.Where.Match(query.NewDoc(it))
		sent := q.AppendJSON(nil)
		again, err := query.Parse(sent, item.Limits{})
		if err != nil {
			t.Fatalf("%s parsed, but not as sent on (%s): %v", b, sent, err)
		}
		if resent := again.AppendJSON(nil); !bytes.Equal(resent, sent) || again.Where.Match(query.NewDoc(it)) != q.Where.Match(query.NewDoc(it)) {
			t.Fatalf("%s sent on as %s, then as %s", b, sent, resent)
		}
	})
}

// TestMergeKeepsTheLatestCopy: results that hold copies of the same items
// (regions) merge to one hit per id, the later copy's, by id and by
// score alike, and name every missing part.
func TestMergeKeepsTheLatestCopy(t *testing.T) {
	it := func(id, version string) *item.Item { return &item.Item{ID: id, Version: version} }
	newer := func(a, b *item.Item) bool { return a.Version > b.Version }
	a := &query.Result{Hits: []query.Hit{{Item: it("x", "1"), Score: 0.9}, {Item: it("y", "2"), Score: 0.5}}}
	b := &query.Result{Hits: []query.Hit{{Item: it("x", "3"), Score: 0.1}, {Item: it("z", "1"), Score: 0.7}}, Missing: []string{"us/p3"}}
	byID, _ := query.Parse([]byte(`{}`), item.Limits{})
	got, err := query.Merge(byID, []*query.Result{a, b}, newer)
	if err != nil || len(got.Hits) != 3 || got.Hits[0].Version != "3" || got.Hits[1].ID != "y" || got.Hits[2].ID != "z" || !slices.Equal(got.Missing, []string{"us/p3"}) {
		t.Fatalf("by id: %+v %v", got, err)
	}
	near, _ := query.Parse([]byte(`{"near":{"vector":[1],"k":2}}`), item.Limits{})
	got, err = query.Merge(near, []*query.Result{a, b}, newer)
	if err != nil || len(got.Hits) != 2 || got.Hits[0].ID != "z" || got.Hits[1].ID != "y" {
		t.Fatalf("nearest: x's later copy scores 0.1, so z and y: %+v %v", got.Hits, err)
	}
}
