package wire

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
)

func TestRoundTrips(t *testing.T) {
	req := &Request{Tenant: "t", ID: "i", Cond: item.Cond{IfMatch: "3", IfNoneMatch: true}, Type: "person",
		Data: []byte(`{"a":1}`), Metadata: []byte(`{}`), Vector: []float32{1, -0.5}, HasType: true, HasVector: true,
		List: item.ListOptions{Type: "x", Limit: 10, Cursor: "c"}}
	got, err := DecodeRequest(AppendRequest(nil, req))
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("request: %+v, %v", got, err)
	}
	now := time.Unix(0, 1700000000123456789).UTC()
	it := &item.Item{ID: "i", Type: "t", Tenant: "x", Data: []byte(`1`), Vector: []float32{2}, CreatedAt: now, UpdatedAt: now, Version: "a1"}
	back, created, err := DecodeItem(AppendItem(nil, it, true))
	if err != nil || !created || !reflect.DeepEqual(back, it) {
		t.Fatalf("item: %+v, %v, %v", back, created, err)
	}
	page := &item.Page{Items: []*item.Item{it, it}, Cursor: "next"}
	bp, err := DecodePage(AppendPage(nil, page))
	if err != nil || len(bp.Items) != 2 || bp.Cursor != "next" || !reflect.DeepEqual(bp.Items[1], it) {
		t.Fatalf("page: %+v, %v", bp, err)
	}
}

// TestItemSize: ItemSize is exactly what a page spends on an item, which
// list pages are budgeted by.
func TestItemSize(t *testing.T) {
	now := time.Unix(0, 1700000000123456789).UTC()
	for _, it := range []*item.Item{
		{},
		{ID: "i", Tenant: "t", Version: "1"},
		{ID: "i", Type: "person", Tenant: "t", Data: bytes.Repeat([]byte("x"), 300), Metadata: []byte(`{"a":1}`),
			Vector: make([]float32, 40), CreatedAt: now, UpdatedAt: now.Add(time.Hour), Version: "zz"},
		{ID: "big", Tenant: "t", Data: make([]byte, item.MaxItemBytes), Vector: make([]float32, 4096), CreatedAt: now, UpdatedAt: now},
	} {
		if got, want := ItemSize(it), len(appendItemBody(nil, it)); got != want {
			t.Errorf("ItemSize of %q (%d data bytes) = %d, its encoding takes %d", it.ID, len(it.Data), got, want)
		}
	}
}

func TestChangesRoundTrip(t *testing.T) {
	cs := []Change{{Tenant: "t", ID: "a", Version: "3"}, {Tenant: "t", ID: "b", Deleted: true}}
	got, lost, err := DecodeChanges(AppendChanges(nil, cs, true))
	if err != nil || !lost || !reflect.DeepEqual(got, cs) {
		t.Fatalf("changes: %+v %v %v", got, lost, err)
	}
}

func TestErrorsTravel(t *testing.T) {
	for _, err := range []error{item.ErrNotFound, item.ErrConflict, item.ErrPreconditionFailed, item.ErrUnavailable,
		item.Invalid("too_deep", "data: nesting too deep")} {
		code, msg := ErrorCode(err)
		back := Error(code, msg)
		for _, s := range []error{item.ErrNotFound, item.ErrConflict, item.ErrPreconditionFailed, item.ErrInvalid, item.ErrUnavailable} {
			if errors.Is(err, s) != errors.Is(back, s) {
				t.Errorf("%v came back as %v", err, back)
			}
		}
	}
	var inv *item.InvalidError
	if !errors.As(Error(ErrorCode(item.Invalid("too_deep", "deep"))), &inv) || inv.Code != "too_deep" || inv.Message != "deep" {
		t.Fatalf("invalid error lost its code: %+v", inv)
	}
}

// FuzzDecode: no input panics a decoder, and what decodes re-encodes to
// something that decodes to the same value.
func FuzzDecode(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{Tenant: "t", ID: "i", Data: []byte("1"), Vector: []float32{1}}))
	f.Add(AppendItem(nil, &item.Item{ID: "i", Version: "1"}, false))
	f.Add(AppendPage(nil, &item.Page{Items: []*item.Item{{ID: "a"}}}))
	f.Add(AppendChanges(nil, []Change{{Tenant: "t", ID: "a", Version: "3"}, {Tenant: "t", ID: "b", Deleted: true}}, true))
	f.Add(AppendTopology(nil, &Topology{Partitions: 2, Nodes: []TopologyNode{{ID: "n1", Addr: "127.0.0.1:7071"}},
		Leaders: []Lead{{Node: 0, Term: 3, Replicas: []int{0}}, {Node: -1}}}))
	f.Add(AppendTopology(nil, &Topology{Region: "eu-west", Partitions: 1, Nodes: []TopologyNode{{ID: "n1", Addr: "127.0.0.1:7071"}},
		Leaders: []Lead{{Node: 0, Term: 1}}}))
	f.Add(AppendTopology(nil, &Topology{Region: "eu-west", Partitions: 1, Nodes: []TopologyNode{{ID: "n1", Addr: "10.0.0.1:7071", Public: "203.0.113.1:7071"}},
		Leaders: []Lead{{Node: 0, Term: 1}}, Others: []RegionCores{{Region: "us-east", Addrs: []string{"198.51.100.1:7071"}}}}))
	f.Add(AppendFindRequest(nil, &FindRequest{Tenant: "t", Query: []byte(`{"near":{"vector":[1],"k":1}}`)}))
	f.Add(AppendFindRequest(nil, &FindRequest{Tenant: "t", Query: []byte(`{}`), Parts: []int{0, 7}, Budget: 3 * time.Second}))
	f.Add(AppendFindAnswer(nil, &FindAnswer{Items: []*item.Item{{ID: "a", Vector: []float32{1}}}, Scores: []float64{0.5}, Cursor: "c", Missing: []string{"p3"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeFindRequest(b); err == nil {
			r2, err := DecodeFindRequest(AppendFindRequest(nil, r))
			if err != nil || r2.Tenant != r.Tenant || !bytes.Equal(r2.Query, r.Query) || !slices.Equal(r2.Parts, r.Parts) || r2.Budget != r.Budget {
				t.Fatalf("find request round trip: %+v -> %+v (%v)", r, r2, err)
			}
		}
		if a, err := DecodeFindAnswer(b); err == nil {
			enc := AppendFindAnswer(nil, a)
			a2, err := DecodeFindAnswer(enc)
			// Compare encodings, not values: a score or vector may be NaN.
			if err != nil || a2.Cursor != a.Cursor || len(a2.Scores) != len(a.Scores) || !slices.Equal(a2.Missing, a.Missing) || !bytes.Equal(AppendFindAnswer(nil, a2), enc) {
				t.Fatalf("find answer round trip failed: %v", err)
			}
		}
		if r, err := DecodeRequest(b); err == nil {
			enc := AppendRequest(nil, r)
			again, err := DecodeRequest(enc)
			// Compare encodings, not values: a vector may hold NaNs.
			if err != nil || !bytes.Equal(AppendRequest(nil, again), enc) {
				t.Fatalf("request round trip: %+v -> %+v (%v)", r, again, err)
			}
		}
		if it, created, err := DecodeItem(b); err == nil {
			enc := AppendItem(nil, it, created)
			again, _, err := DecodeItem(enc)
			if err != nil || !bytes.Equal(AppendItem(nil, again, created), enc) {
				t.Fatalf("item round trip failed: %v", err)
			}
		}
		if cs, lost, err := DecodeChanges(b); err == nil {
			again, lost2, err := DecodeChanges(AppendChanges(nil, cs, lost))
			if err != nil || lost2 != lost || !reflect.DeepEqual(again, cs) {
				t.Fatalf("changes round trip: %+v -> %+v (%v)", cs, again, err)
			}
		}
		if top, err := DecodeTopology(b); err == nil {
			again, err := DecodeTopology(AppendTopology(nil, top))
			if err != nil || !reflect.DeepEqual(again, top) {
				t.Fatalf("topology round trip: %+v -> %+v (%v)", top, again, err)
			}
		}
		if p, err := DecodePage(b); err == nil {
			if _, err := DecodePage(AppendPage(nil, p)); err != nil {
				t.Fatalf("page round trip: %v", err)
			}
		}
	})
}

// TestTopologyLimits: a topology that names a node it does not list, an
// address that is no host:port, or more partitions than it carries leaders
// for is refused.
func TestTopologyLimits(t *testing.T) {
	good := &Topology{Partitions: 2, Nodes: []TopologyNode{{ID: "n1", Addr: "127.0.0.1:7071"}, {ID: "n2", Addr: "[::1]:7071"}},
		Leaders: []Lead{{Node: 1, Term: 7, Replicas: []int{0, 1}}, {Node: -1}}}
	got, err := DecodeTopology(AppendTopology(nil, good))
	if err != nil || !reflect.DeepEqual(got, good) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, bad := range map[string]*Topology{
		"leader beyond the nodes":  {Partitions: 1, Nodes: good.Nodes, Leaders: []Lead{{Node: 2}}},
		"replica beyond the nodes": {Partitions: 1, Nodes: good.Nodes, Leaders: []Lead{{Node: 0, Replicas: []int{0, 2}}}},
		"too many replicas":        {Partitions: 1, Nodes: good.Nodes, Leaders: []Lead{{Node: 0, Replicas: make([]int, 17)}}},
		"address without a port":   {Partitions: 1, Nodes: []TopologyNode{{ID: "n1", Addr: "127.0.0.1"}}, Leaders: []Lead{{Node: 0}}},
		"no partitions":            {Partitions: 0, Nodes: good.Nodes},
		"fewer leaders":            {Partitions: 3, Nodes: good.Nodes, Leaders: good.Leaders},
		"a node without an id":     {Partitions: 1, Nodes: []TopologyNode{{Addr: "127.0.0.1:1"}}, Leaders: []Lead{{Node: 0}}},
	} {
		if _, err := DecodeTopology(AppendTopology(nil, bad)); !errors.Is(err, ErrMalformedTopology) {
			t.Errorf("%s: %v", name, err)
		}
	}
	b := AppendTopology(nil, good)
	if _, err := DecodeTopology(b[:len(b)-1]); err == nil {
		t.Error("a truncated topology decoded")
	}

	fed := &Topology{Region: "eu-west", Partitions: 1, Nodes: []TopologyNode{{ID: "n1", Addr: "10.0.0.1:7071", Public: "203.0.113.1:7071"}, {ID: "n2", Addr: "10.0.0.2:7071"}},
		Leaders: []Lead{{Node: 0, Term: 1}}, Others: []RegionCores{{Region: "us-east", Addrs: []string{"198.51.100.1:7071", "198.51.100.2:7071"}}}}
	if got, err := DecodeTopology(AppendTopology(nil, fed)); err != nil || !reflect.DeepEqual(got, fed) {
		t.Fatalf("federated round trip: %+v, %v", got, err)
	}
	many := make([]string, MaxTopologyRegionCores+1)
	for i := range many {
		many[i] = "198.51.100.1:7071"
	}
	for name, bad := range map[string]*Topology{
		"public address without a port": {Region: "a", Partitions: 1, Nodes: []TopologyNode{{ID: "n1", Addr: "10.0.0.1:1", Public: "203.0.113.1"}}, Leaders: []Lead{{Node: 0}}},
		"other region without a name":   {Region: "a", Partitions: 1, Nodes: fed.Nodes, Leaders: fed.Leaders, Others: []RegionCores{{Addrs: []string{"198.51.100.1:7071"}}}},
		"its own region as another":     {Region: "a", Partitions: 1, Nodes: fed.Nodes, Leaders: fed.Leaders, Others: []RegionCores{{Region: "a"}}},
		"too many cores of a region":    {Region: "a", Partitions: 1, Nodes: fed.Nodes, Leaders: fed.Leaders, Others: []RegionCores{{Region: "b", Addrs: many}}},
		"another region's bad address":  {Region: "a", Partitions: 1, Nodes: fed.Nodes, Leaders: fed.Leaders, Others: []RegionCores{{Region: "b", Addrs: []string{"x"}}}},
	} {
		if _, err := DecodeTopology(AppendTopology(nil, bad)); !errors.Is(err, ErrMalformedTopology) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
