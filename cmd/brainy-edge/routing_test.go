package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// TestEdgeRoutesToLeaders: an edge given the address of one core of a
// 3-node cluster learns the leaders from the topology the cores push and
// sends every request about an item to its partition's leader: the cores
// forward none of 400 reads and writes (their Forwarded counters do not
// move). When a core dies and its partitions elect new leaders, the edge
// follows the pushed change, and again the cores forward nothing.
func TestEdgeRoutesToLeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cores and an edge")
	}
	cores, _, edgeTLS := startThreeCores(t, 71)
	edge := coretest.Start(t, edgeBin, nil, append(edgeTLS, "--upstream", cores[0].QUICAddr, "--cache-size", "0")...)

	forwarded := func(cs []*coretest.Process) (sum uint64) {
		for _, c := range cs {
			code, body := do(t, "GET", c.URL("/v1/metrics"), "")
			var s nodestats.Snapshot
			if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
				t.Fatalf("%s metrics: %d %s", c.Addr, code, body)
			}
			sum += s.Operations.Forwarded
		}
		return sum
	}
	// round reads (and, with writes, first rewrites) 200 items through the
	// edge and returns how many requests the cores forwarded meanwhile.
	round := func(cs []*coretest.Process, writes bool) uint64 {
		before := forwarded(cs)
		for i := range 200 {
			key := edge.URL(fmt.Sprintf("/v1/items/k-%d", i))
			if writes {
				if code, body := do(t, "PUT", key, fmt.Sprintf(`{"data":%d}`, i)); code != 200 && code != 201 {
					t.Fatalf("PUT through the edge: %d %s", code, body)
				}
			}
			if code, body := do(t, "GET", key, ""); code != 200 && code != 404 {
				t.Fatalf("GET through the edge: %d %s", code, body)
			}
		}
		return forwarded(cs) - before
	}
	settle := func(cs []*coretest.Process, what string) time.Duration {
		start := time.Now()
		for round(cs, false) != 0 {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s: the cores still forward the edge's requests after %v", what, time.Since(start))
			}
		}
		return time.Since(start)
	}

	settle(cores, "after the edge connected")
	if n := round(cores, true); n != 0 {
		t.Fatalf("the cores forwarded %d of the edge's 400 requests: it does not route to the leaders", n)
	}

	// Core 2 dies: its partitions elect leaders among cores 0 and 1.
	cores[2].Kill()
	alive := cores[:2]
	waitFor(t, "writes after the kill", func() bool {
		code, _ := do(t, "PUT", cores[0].URL("/v1/items/probe"), `{"data":0}`)
		return code == 200 || code == 201
	})
	took := settle(alive, "after a core died")
	if n := round(alive, true); n != 0 {
		t.Fatalf("after the leader moves, the cores forwarded %d of the edge's 400 requests", n)
	}
	t.Logf("routing settled %v after writes resumed following the kill", took.Round(time.Millisecond))
}
