package main

import (
	"slices"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/nodestats"
)

const wrkOutput = `Running 20s test @ http://127.0.0.41:7070
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    30.12ms   12.40ms 210.00ms   80.00%
    Req/Sec     1.02k   120.00     1.30k    70.00%
  Latency Distribution
     50%   28.10ms
     75%   35.00ms
     90%   45.00ms
     99%    1.02s
  40400 requests in 20.00s, 9.00MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 0, write 0, timeout 2
Requests/sec:   2020.15
Transfer/sec:    460.00KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 2020.15 || r.p50 != 28100*time.Microsecond || r.p99 != 1020*time.Millisecond || r.non2xx != 3 || r.sockErrors == "" {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrk("Running 20s test\nunable to connect to 127.0.0.41:7070 Connection refused\n"); err == nil {
		t.Fatal("output without results parsed")
	}
}

// snapshot builds one node's metrics holding every partition with the
// given voters and leaders.
func snapshot(self string, healthy int, voters map[int][]string, leaders map[int]string) *nodestats.Snapshot {
	s := &nodestats.Snapshot{Nodes: nodestats.Nodes{Self: self, Healthy: healthy}}
	for p := range partitions {
		if v, ok := voters[p]; ok {
			s.Partitions = append(s.Partitions, nodestats.Partition{ID: p, Leader: leaders[p], Voters: v})
		}
	}
	return s
}

func TestHealthy(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	voters, leaders := map[int][]string{}, map[int]string{}
	for p := range partitions {
		voters[p] = ids
		leaders[p] = ids[p%3]
	}
	snaps := []*nodestats.Snapshot{snapshot("n1", 3, voters, leaders), snapshot("n2", 3, voters, leaders), snapshot("n3", 3, voters, leaders)}
	got, why := healthy(snaps, ids)
	if got == nil || got[4] != "n2" {
		t.Fatalf("healthy cluster not recognised: %s", why)
	}

	other := map[int]string{}
	for p, l := range leaders {
		other[p] = l
	}
	other[7] = "n3"
	if got, _ := healthy([]*nodestats.Snapshot{snaps[0], snapshot("n2", 3, voters, other)}, ids); got != nil {
		t.Fatal("nodes disagreeing on a leader counted as healthy")
	}
	if got, _ := healthy([]*nodestats.Snapshot{snaps[0], snapshot("n2", 2, voters, leaders)}, ids); got != nil {
		t.Fatal("a node seeing a member down counted as healthy")
	}
	learning := snapshot("n1", 3, voters, leaders)
	learning.Partitions[5].Learners = []string{"n3"}
	if got, _ := healthy([]*nodestats.Snapshot{learning}, ids); got != nil {
		t.Fatal("a partition with a learner counted as healthy")
	}
	short := map[int][]string{}
	for p, v := range voters {
		short[p] = v
	}
	short[9] = []string{"n1", "n2"}
	if got, _ := healthy([]*nodestats.Snapshot{snapshot("n1", 3, short, leaders)}, ids); got != nil {
		t.Fatal("a partition with 2 voters counted as healthy")
	}
}

func TestPlacementGivesTheNewNodeAShare(t *testing.T) {
	three := placement([]string{"n1", "n2", "n3"}, 3)
	four := placement([]string{"n1", "n2", "n3", "n4"}, 3)
	moved, held := 0, 0
	for p := range partitions {
		if len(four[p]) != 3 || len(slices.Compact(slices.Clone(four[p]))) != 3 {
			t.Fatalf("partition %d placed on %v", p, four[p])
		}
		if !slices.Equal(three[p], []string{"n1", "n2", "n3"}) {
			t.Fatalf("3 nodes, partition %d placed on %v", p, three[p])
		}
		if slices.Contains(four[p], "n4") {
			held++
		}
		if !slices.Equal(three[p], four[p]) {
			moved++
		}
	}
	if held == 0 || held != moved {
		t.Fatalf("n4 holds %d partitions, %d moved", held, moved)
	}
}

func TestSettled(t *testing.T) {
	target := placement([]string{"n1", "n2", "n3", "n4"}, 3)
	// Each node reports the partitions it leads (one of the target's voters,
	// varying with the partition so that every node leads some).
	build := func(target map[int][]string) []*nodestats.Snapshot {
		var snaps []*nodestats.Snapshot
		for _, self := range []string{"n1", "n2", "n3", "n4"} {
			voters, leaders := map[int][]string{}, map[int]string{}
			for p, v := range target {
				if v[p%3] == self {
					voters[p], leaders[p] = v, self
				}
			}
			snaps = append(snaps, snapshot(self, 4, voters, leaders))
		}
		return snaps
	}
	if ok, why := settled(build(target), target); !ok {
		t.Fatalf("settled placement not recognised: %s", why)
	}
	snaps := build(target)
	snaps[0].Partitions[0].Learners = []string{"n4"}
	if ok, _ := settled(snaps, target); ok {
		t.Fatal("a learner left counted as settled")
	}
	old := placement([]string{"n1", "n2", "n3"}, 3)
	if ok, _ := settled(build(old), target); ok {
		t.Fatal("the 3-node placement counted as settled for 4 nodes")
	}
	if ok, _ := settled(build(target)[:3], target); ok {
		t.Fatal("partitions with no reporting leader counted as settled")
	}
}

func TestKeysOf(t *testing.T) {
	for _, p := range []int{0, 17, 63} {
		keys := keysOf(p, 32)
		if len(keys) != 32 {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if core.PartitionOf(tenant, k, partitions) != p {
				t.Fatalf("key %s is not in partition %d", k, p)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i)*time.Millisecond)
	}
	if p := percentile(d, 0.5); p != 50*time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if p := percentile(d, 0.99); p != 99*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
	if p := percentile(d, 1); p != 100*time.Millisecond {
		t.Fatalf("max %v", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Fatalf("empty: %v", p)
	}
}

// TestPacedWriterCountsOnlyRequestsSentAfterTheKill: a request launched
// before the kill that succeeds after it must not end the failover.
func TestPacedWriterCountsOnlyRequestsSentAfterTheKill(t *testing.T) {
	w := &pacedWriter{}
	before := time.Now()
	kill := before.Add(time.Millisecond)
	w.arm(kill)
	w.done(before, true, "")
	select {
	case <-w.signal:
		t.Fatal("a request sent before the kill ended the failover")
	default:
	}
	w.done(kill.Add(time.Millisecond), false, "timeout")
	w.done(kill.Add(2*time.Millisecond), true, "")
	select {
	case <-w.signal:
	default:
		t.Fatal("a success after the kill was not noticed")
	}
	if w.okBefore != 1 || w.failed != 1 || !w.got {
		t.Fatalf("counted %d before, %d failed, got %v", w.okBefore, w.failed, w.got)
	}
}
