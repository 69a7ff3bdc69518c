package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

func metrics(t testing.TB, p *coretest.Process) nodestats.Snapshot {
	t.Helper()
	code, body := do(t, "GET", p.URL("/v1/metrics"), "", "")
	if code != 200 {
		t.Fatalf("GET /v1/metrics: %d %s", code, body)
	}
	var s nodestats.Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitReplicated waits until every node reports every partition with
// voters on exactly the nodes given, and all items on every node.
func waitReplicated(t *testing.T, nodes []*coretest.Process, partitions int, items uint64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		ids := map[string]bool{}
		for _, n := range nodes {
			ids[metrics(t, n).Nodes.Self] = true
		}
		for _, n := range nodes {
			m := metrics(t, n)
			if len(m.Partitions) != partitions {
				ok, last = false, fmt.Sprintf("%s holds %d partitions", m.Nodes.Self, len(m.Partitions))
				continue
			}
			for _, p := range m.Partitions {
				distinct := map[string]bool{}
				for _, v := range p.Voters {
					distinct[v] = ids[v]
				}
				if len(p.Voters) != len(nodes) || len(distinct) != len(nodes) || slices.Contains(slices.Collect(mapValues(distinct)), false) {
					ok, last = false, fmt.Sprintf("%s: partition %d has voters %v", m.Nodes.Self, p.ID, p.Voters)
				}
			}
			if m.Storage.Items != items {
				ok, last = false, fmt.Sprintf("%s holds %d items", m.Nodes.Self, m.Storage.Items)
			}
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not replicated: %s", last)
}

func mapValues(m map[string]bool) func(func(bool) bool) {
	return func(yield func(bool) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestClusterGrowsFromOneNode: a node holding 10,000 items alone is joined
// by two more started with the same command plus --bind and --peers; every
// partition gets 3 voters on 3 distinct nodes, all 10,000 items are on
// every node, and an item added through node 1 is read through 2 and 3.
func TestClusterGrowsFromOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes and replicates 10,000 items")
	}
	dir := t.TempDir()
	start := func(i int, extra ...string) *coretest.Process {
		args := append([]string{"--bind", fmt.Sprintf("127.0.0.%d", 30+i), "--storage", filepath.Join(dir, fmt.Sprint("node-", i)),
			"--node-id", fmt.Sprint("node-", i)}, extra...)
		return coretest.StartCore(t, bin, nil, args...)
	}
	n1 := start(1)
	const items = 10000
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < items; i += 16 {
				code, body := do(t, "POST", n1.URL("/v1/items"), "application/json", fmt.Sprintf(`{"id":"item-%d","data":%d}`, i, i))
				if code != 201 {
					errs <- fmt.Errorf("add item-%d: %d %s", i, code, body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n2 := start(2, "--peers", n1.GossipAddr)
	n3 := start(3, "--peers", n1.GossipAddr)
	nodes := []*coretest.Process{n1, n2, n3}
	waitReplicated(t, nodes, 64, items)

	code, body := do(t, "POST", n1.URL("/v1/items"), "application/json", `{"id":"fresh","data":"through node 1"}`)
	if code != 201 {
		t.Fatalf("add through node 1: %d %s", code, body)
	}
	for _, n := range []*coretest.Process{n2, n3} {
		code, body := do(t, "GET", n.URL("/v1/items/fresh"), "", "")
		if code != 200 {
			t.Fatalf("read through %s: %d %s", n.Addr, code, body)
		}
		var it struct{ Data string }
		json.Unmarshal(body, &it)
		if it.Data != "through node 1" {
			t.Fatalf("read through %s: %s", n.Addr, body)
		}
	}
	// A stale read answers from the local replica; replication lag may
	// hide the newest write for a moment, never for long.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := do(t, "GET", n3.URL("/v1/items/fresh?consistency=stale"), "", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale read through node 3: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := do(t, "GET", n3.URL("/v1/items/fresh?consistency=sometimes"), "", ""); code != 400 || !strings.Contains(string(body), "invalid_consistency") {
		t.Fatalf("a bad consistency: %d %s", code, body)
	}
	m := metrics(t, n2)
	if m.Nodes.Total != 3 || m.Replication.Factor != 3 || m.Replication.Mode != "raft" || m.Shards.Local != 64 {
		t.Errorf("metrics: nodes %+v replication %+v shards %+v", m.Nodes, m.Replication, m.Shards)
	}
}
