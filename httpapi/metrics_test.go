package httpapi

import (
	"strings"
	"testing"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/nodestats"
)

// fullMetrics is a node whose every metric has a distinct value.
type fullMetrics struct{ *core.Node }

func (f fullMetrics) Metrics() nodestats.Snapshot {
	avail := int64(123456)
	return nodestats.Snapshot{
		Nodes:       nodestats.Nodes{Total: 3, Healthy: 2},
		Shards:      nodestats.Shards{Total: 64, Leaders: 21, Replicas: 40},
		Replication: nodestats.Replication{LagEntries: 7, Elections: 5, SnapshotsSent: 2, SnapshotsInstalled: 1, SnapshotBytes: 4096, RejectedMessages: 9},
		Operations:  nodestats.Operations{Gets: 11, Adds: 4, StoredWrites: 6, Commits: 3},
		Storage: nodestats.Storage{Backend: "disk", Items: 10, Bytes: 999, Used: 999, Available: &avail,
			Tiers: []nodestats.Tier{{Name: "hot", Bytes: 500, Demoted: 8}, {Name: "warm", Bytes: 499, Promoted: 2}}},
		Cache:      nodestats.Cache{Enabled: true, Hits: 30, Misses: 12, Bytes: 2048},
		Federation: &nodestats.Federation{Regions: []nodestats.Region{{Name: "us-east", Healthy: true, LagMs: 42}}},
	}
}

// TestPrometheusCarriesMetrics: /metrics carries what /v1/metrics does —
// nodes, partitions, replication, cache, tiers, storage, federation — each
// with the snapshot's value, and brainy_node_healthy is this node's own
// health.
func TestPrometheusCarriesMetrics(t *testing.T) {
	s := newTestServerWith(t, Config{}, func(n *core.Node) Backend { return fullMetrics{n} })
	r := s.do(t, "GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	body := string(r.body)
	for _, want := range []string{
		`brainy_cluster_nodes{state="total"} 3`,
		`brainy_cluster_nodes{state="healthy"} 2`,
		`brainy_core_partition_leaders 21`,
		`brainy_core_partitions 40`,
		`brainy_replication_lag_entries 7`,
		`brainy_replication_elections_total 5`,
		`brainy_replication_snapshots_total{direction="sent"} 2`,
		`brainy_replication_snapshots_total{direction="installed"} 1`,
		`brainy_replication_snapshot_bytes_total 4096`,
		`brainy_replication_rejected_messages_total 9`,
		`brainy_core_operations_total{op="get"} 11`,
		`brainy_core_committed_writes_total 6`,
		`brainy_storage_available_bytes 123456`,
		`brainy_cache_lookups_total{result="hit"} 30`,
		`brainy_cache_lookups_total{result="miss"} 12`,
		`brainy_cache_bytes 2048`,
		`brainy_tier_bytes{tier="hot"} 500`,
		`brainy_tier_moves_total{direction="demoted",tier="hot"} 8`,
		`brainy_tier_moves_total{direction="promoted",tier="warm"} 2`,
		`brainy_federation_region_lag_milliseconds{region="us-east"} 42`,
		// Healthy is the node's own: 1, though one member of three is not.
		`brainy_node_healthy 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
