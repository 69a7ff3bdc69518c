package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/server"
)

// TestReaderRole: --role reader through the server package. The reader
// announces its role in gossip, so the voters give it a learner of every
// partition and never a vote; it answers stale reads from its replicas and
// is listed as a reader in the metrics.
func TestReaderRole(t *testing.T) {
	sec := secret(t)
	a := start(t, "node-a", sec)
	b := start(t, "node-b", sec, a.GossipAddr())
	c := start(t, "node-c", sec, a.GossipAddr())
	r := startWith(t, server.Config{NodeID: "node-r", ClusterSecret: sec, Peers: []string{a.GossipAddr()}, Role: "reader"})
	eventually(t, "three voters and the reader's learner on every partition", 60*time.Second, func() bool {
		for _, n := range []*server.Server{a, b, c, r} {
			m := n.Cluster().Metrics()
			if len(m.Partitions) != 16 {
				return false
			}
			for _, p := range m.Partitions {
				if len(p.Voters) != 3 || slices.Contains(p.Voters, "node-r") || !slices.Equal(p.Learners, []string{"node-r"}) || p.Leader == "" {
					return false
				}
			}
		}
		return true
	})
	for i := range 16 {
		url := fmt.Sprintf("http://%s/v1/items/item-%d", a.HTTPAddr(), i)
		if status, body := do(t, "PUT", url, fmt.Sprintf(`{"data":%d}`, i)); status != 201 {
			t.Fatalf("PUT: %d %s", status, body)
		}
	}
	for i := range 16 {
		url := fmt.Sprintf("http://%s/v1/items/item-%d?consistency=stale", r.HTTPAddr(), i)
		eventually(t, "a stale read at the reader", 10*time.Second, func() bool {
			status, body := do(t, "GET", url, "")
			var it struct{ Data int }
			return status == 200 && json.Unmarshal([]byte(body), &it) == nil && it.Data == i
		})
	}
	roles := map[string]string{}
	for _, n := range a.Cluster().Metrics().Nodes.List {
		roles[n.ID] = n.Role
	}
	if roles["node-r"] != "reader" {
		t.Fatalf("the voters list the reader as %q", roles["node-r"])
	}
	cfg := server.Config{Role: "bystander"}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("--role bystander: %v, want a refusal naming --role", err)
	}
	cfg = server.Config{Role: "writer"}
	cfg.EnsureDefaults()
	if cfg.Role != server.RoleVoter {
		t.Fatalf("--role writer became %q, want voter", cfg.Role)
	}
}
