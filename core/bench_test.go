package core

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/disk"
)

type noTransport struct{}

func (noTransport) Send(multiraft.NodeID, []multiraft.Message) {}

// BenchmarkLoneVoterPut is brainy-core's write path alone, without HTTP:
// a node that is the only voter of its 64 partitions, on pebble, durable
// PUTs replacing items of a 10,000-key space from 64 goroutines (as
// bench-e2e's 64 connections). It reports allocations per write — which,
// unlike time, a loaded machine does not move — and writes per store
// write (the cycle's batch: the more, the fewer syncs).
func BenchmarkLoneVoterPut(b *testing.B) {
	store, err := disk.Open(disk.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	n, err := Open(context.Background(), Config{Store: store,
		Raft: &RaftConfig{ID: 1, Transport: noTransport{}, Bootstrap: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	data := []byte(fmt.Sprintf(`{"v":"%0100d"}`, 0))
	for i := range 64 { // one write per partition: every group has its leader
		if _, _, err := n.Put(ctx, "bench", &item.Item{ID: fmt.Sprint("warm-", i), Type: "bench", Data: data}, item.Cond{}); err != nil {
			b.Fatal(err)
		}
	}
	before := n.RaftStats()
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("key-%011d", seq.Add(7919)%10000)
			if _, _, err := n.Put(ctx, "bench", &item.Item{ID: id, Type: "bench", Data: data}, item.Cond{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	after := n.RaftStats()
	if syncs := after.Syncs - before.Syncs; syncs > 0 {
		b.ReportMetric(float64(b.N)/float64(syncs), "writes/storewrite")
	}
}
