package core

import (
	"context"
	"fmt"
	"path/filepath"
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
// write (the cycle's batch: the more, the fewer syncs). log=raftlog keeps
// the raft log in a dedicated log next to the store, as brainy-core on a
// local directory does; log=store keeps it in pebble, as on an object
// store.
func BenchmarkLoneVoterPut(b *testing.B) {
	for _, dedicated := range []bool{true, false} {
		name := map[bool]string{true: "log=raftlog", false: "log=store"}[dedicated]
		b.Run(name, func(b *testing.B) { benchmarkLoneVoterPut(b, dedicated) })
	}
}

// BenchmarkLoneVoterPutMetadata is BenchmarkLoneVoterPut (log=raftlog)
// with items that carry six top-level metadata fields, whose values change
// with every rewrite: the metadata index's cost on the write path
// (metaindex.go) is the difference to meta=none, in the same run.
func BenchmarkLoneVoterPutMetadata(b *testing.B) {
	for _, meta := range []bool{false, true} {
		name := map[bool]string{false: "meta=none", true: "meta=6fields"}[meta]
		b.Run(name, func(b *testing.B) { benchmarkLoneVoterPutMeta(b, true, meta) })
	}
}

func benchmarkLoneVoterPut(b *testing.B, dedicated bool) {
	benchmarkLoneVoterPutMeta(b, dedicated, false)
}

func benchmarkLoneVoterPutMeta(b *testing.B, dedicated, meta bool) {
	dir := b.TempDir()
	store, err := disk.Open(disk.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	cfg := Config{Store: store, Raft: &RaftConfig{ID: 1, Transport: noTransport{}, Bootstrap: true}}
	if dedicated {
		cfg.RaftLogDir = filepath.Join(dir, "raftlog")
	}
	n, err := Open(context.Background(), cfg)
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
			i := seq.Add(7919)
			id := fmt.Sprintf("key-%011d", i%10000)
			it := &item.Item{ID: id, Type: "bench", Data: data}
			if meta {
				it.Metadata = fmt.Appendf(nil, `{"lang":%q,"n":%d,"ok":%v,"city":"c%d","tags":["a","t%d","z"],"score":%d.5}`,
					[]string{"en", "no", "de"}[i%3], i%1000, i%2 == 0, i%50, i%20, i%100)
			}
			if _, _, err := n.Put(ctx, "bench", it, item.Cond{}); err != nil {
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
