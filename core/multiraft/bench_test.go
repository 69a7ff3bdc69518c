package multiraft

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
)

// BenchmarkPropose replicates commands across 3 in-process nodes (durable
// disk stores, in-memory network), from 64 concurrent proposers over 16
// groups: the cost of a majority-acknowledged write without sockets.
func BenchmarkPropose(b *testing.B) {
	nw := newNetwork()
	ids := []NodeID{1, 2, 3}
	nodes := map[NodeID]*Node{}
	for _, id := range ids {
		st, err := disk.Open(disk.Config{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		n, err := New(Config{ID: id, Store: tiers.Store(st), Transport: endpoint{nw, id}, StateMachine: newRecorder()})
		if err != nil {
			b.Fatal(err)
		}
		for g := range 16 {
			if err := n.OpenGroup(context.Background(), GroupID(g), ids); err != nil {
				b.Fatal(err)
			}
		}
		nw.attach(id, n)
		nodes[id] = n
		defer st.Close()
		defer n.Close()
	}
	leaderOf := func(g GroupID) *Node {
		for {
			for id, n := range nodes {
				if n.Leader(g) == id {
					return n
				}
			}
			time.Sleep(time.Millisecond)
		}
	}
	leaders := make([]*Node, 16)
	for g := range leaders {
		leaders[g] = leaderOf(GroupID(g))
	}
	payload := []byte(`{"type":"bench","data":{"v":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	var next atomic.Uint32
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := GroupID(next.Add(1) % 16)
		for pb.Next() {
			if _, err := leaders[g].Propose(context.Background(), g, payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	var s Stats
	for _, n := range nodes {
		st := n.Stats()
		s.Syncs += st.Syncs
		s.Readies += st.Readies
	}
	b.ReportMetric(float64(s.Readies)/float64(s.Syncs), "readies/sync")
}

// BenchmarkFailover measures, with the default ticks (20 ms, election after
// 10–20 ticks), the time from stopping a group's leader to a new leader
// being known on the survivors.
func BenchmarkFailover(b *testing.B) {
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		nw := newNetwork()
		ids := []NodeID{1, 2, 3}
		nodes := map[NodeID]*Node{}
		for _, id := range ids {
			n, err := New(Config{ID: id, Store: tiers.Store(memoryStore()), Transport: endpoint{nw, id}, StateMachine: newRecorder()})
			if err != nil {
				b.Fatal(err)
			}
			if err := n.OpenGroup(context.Background(), 0, ids); err != nil {
				b.Fatal(err)
			}
			nw.attach(id, n)
			nodes[id] = n
		}
		var old NodeID
		for old == 0 {
			for id, n := range nodes {
				if n.Leader(0) == id {
					old = id
				}
			}
			time.Sleep(time.Millisecond)
		}
		nw.setDown(old, true)
		nodes[old].Close()
		start := time.Now()
		elected := false
		for !elected {
			for id, n := range nodes {
				if id != old && n.Leader(0) == id {
					elected = true
				}
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		for id, n := range nodes {
			if id != old {
				n.Close()
			}
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}

func memoryStore() tiers.Store { return memory.New() }
