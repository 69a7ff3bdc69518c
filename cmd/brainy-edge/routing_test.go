package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
	// leaders is every partition's leader as the cores report them.
	leaders := func(cs []*coretest.Process) string {
		var all []string
		for _, c := range cs {
			code, body := do(t, "GET", c.URL("/v1/metrics"), "")
			var s nodestats.Snapshot
			if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
				t.Fatalf("%s metrics: %d %s", c.Addr, code, body)
			}
			for _, p := range s.Partitions {
				all = append(all, fmt.Sprint(p.ID, "=", p.Leader))
			}
		}
		slices.Sort(all)
		return strings.Join(slices.Compact(all), " ")
	}
	// steady is a write round during which no leader moved (placement
	// still balances leaderships shortly after nodes join; a request on
	// its way while one moves is forwarded once, by design). Three tries.
	steady := func(cs []*coretest.Process) uint64 {
		var n uint64
		for range 3 {
			before := leaders(cs)
			if n = round(cs, true); leaders(cs) == before {
				return n
			}
		}
		return n
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
	if n := steady(cores); n != 0 {
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
	if n := steady(alive); n != 0 {
		t.Fatalf("after the leader moves, the cores forwarded %d of the edge's 400 requests", n)
	}
	t.Logf("routing settled %v after writes resumed following the kill", took.Round(time.Millisecond))
}
