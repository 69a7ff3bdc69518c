package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
)

// TestEdgeFindsOnTheCore: a find through an edge runs on the core, where
// the vector index is (the core's metrics show its index asked for, which
// an edge listing every item would never do), and answers as the core
// does; a malformed find is refused at the edge with the query's path; a
// find whose answer outgrows a transport frame is a 400 naming what to
// lower, and the edge keeps serving.
func TestEdgeFindsOnTheCore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "core-data")
	secret := newSecret(t)
	core := coretest.StartCore(t, coreBin, nil, "--storage", data, "--cluster-secret", secret)
	edge := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, filepath.Join(dir, "edge-tls"), "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr, "--cache-size", "0")...)

	big := strings.Repeat("x", 200<<10)
	for i := range 40 {
		body := fmt.Sprintf(`{"type":"doc","vector":[1,%d],"metadata":{"n":%d},"data":{"pad":%q}}`, i, i, big[:(i%2)*len(big)])
		if status, got := do(t, "PUT", edge.URL(fmt.Sprintf("/v1/items/d%02d", i)), body); status != 201 {
			t.Fatalf("PUT: %d %s", status, got)
		}
	}
	find := func(url, body string) (int, []string, string) {
		t.Helper()
		status, got := do(t, "POST", url, body)
		var r struct{ Items []struct{ ID string } }
		_ = json.Unmarshal([]byte(got), &r)
		var ids []string
		for _, it := range r.Items {
			ids = append(ids, it.ID)
		}
		return status, ids, got
	}
	q := `{"type":"doc","near":{"vector":[1,7.2],"k":3},"where":{"metadata.n":{"gte":5}}}`
	deadline := time.Now().Add(20 * time.Second)
	for {
		st1, viaCore, _ := find(core.URL("/v1/find"), q)
		st2, viaEdge, got := find(edge.URL("/v1/find"), q)
		if st1 != 200 || st2 != 200 {
			t.Fatalf("find: core %d, edge %d %s", st1, st2, got)
		}
		if fmt.Sprint(viaEdge) != fmt.Sprint(viaCore) || fmt.Sprint(viaEdge) != "[d07 d08 d06]" {
			t.Fatalf("find via edge %v, via core %v, want [d07 d08 d06]", viaEdge, viaCore)
		}
		var m struct{ Vectors *struct{ State string } }
		_, mb := do(t, "GET", core.URL("/v1/metrics"), "")
		if json.Unmarshal([]byte(mb), &m) == nil && m.Vectors != nil && m.Vectors.State == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the core's vector index is not ready after 20 s: %s", mb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _, got := find(edge.URL("/v1/find"), `{"near":{"vector":"x"}}`); status != 400 || !strings.Contains(got, "near.vector") {
		t.Fatalf("a malformed find via edge: %d %s", status, got)
	}
	// 20 items of 200 KiB: more than a frame carries.
	if status, _, got := find(edge.URL("/v1/find"), `{"type":"doc","near":{"vector":[1,0],"k":40}}`); status != 400 || !strings.Contains(got, "result_too_large") {
		t.Fatalf("an oversized find via edge: %d %s", status, got)
	}
	if status, ids, got := find(edge.URL("/v1/find"), q); status != 200 || len(ids) != 3 {
		t.Fatalf("a find after the oversized one: %d %s", status, got)
	}
}
