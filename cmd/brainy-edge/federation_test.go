package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/coretest"
)

// TestEdgeSeesOtherRegionsWrites: an edge of region eu-west caches an
// item; the item is then updated, and deleted, in us-east. The edge's
// cached answer goes as soon as the value is applied in eu-west (its
// cores push the change like a local write's), long before the cache's
// TTL (60 s).
func TestEdgeSeesOtherRegionsWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two regions and an edge")
	}
	dir := t.TempDir()
	secret := newSecret(t)
	coreArgs := func(addr, region string, peers ...string) []string {
		args := []string{"--bind", addr, "--storage", filepath.Join(dir, region), "--node-id", region, "--cluster-secret", secret,
			"--partitions", "8", "--region", region, "--federation", "edge-test"}
		if len(peers) > 0 {
			args = append(args, "--federation-peers", strings.Join(peers, ","))
		}
		return args
	}
	euArgs := coreArgs("127.0.0.191", "eu-west")
	eu := coretest.StartCore(t, coreBin, nil, euArgs...)
	us := coretest.StartCore(t, coreBin, nil, coreArgs("127.0.0.192", "us-east", "127.0.0.191")...)
	edge := coretest.Start(t, edgeBin, nil, append(enrolment(t, eu, filepath.Join(dir, "edge-tls"), euArgs...),
		"--upstream", eu.QUICAddr, "--cache-size", "16777216", "--cache-ttl", "60s")...)

	if status, body := do(t, "PUT", eu.URL("/v1/items/a"), `{"data":1}`); status != 201 {
		t.Fatalf("PUT in eu-west: %d %s", status, body)
	}
	waitFor(t, "the item cached at the edge", func() bool {
		s, _, xc := doH(t, edge.URL("/v1/items/a"))
		return s == 200 && xc == "HIT"
	})
	// The regions find each other by gossip: the update may wait for that.
	if status, body := do(t, "PUT", us.URL("/v1/items/a"), `{"data":2}`); status != 200 && status != 201 {
		t.Fatalf("PUT in us-east: %d %s", status, body)
	}
	waitFor(t, "us-east's update at the edge of eu-west", func() bool {
		_, body, _ := doH(t, edge.URL("/v1/items/a"))
		return strings.Contains(body, `"data":2`)
	})
	if status, body := do(t, "DELETE", us.URL("/v1/items/a"), ""); status != 204 {
		t.Fatalf("DELETE in us-east: %d %s", status, body)
	}
	waitFor(t, "us-east's delete at the edge of eu-west", func() bool {
		s, _, _ := doH(t, edge.URL("/v1/items/a"))
		return s == 404
	})
	if m := fmt.Sprint(doH(t, eu.URL("/v1/metrics"))); !strings.Contains(m, `"us-east"`) {
		t.Fatalf("eu-west's metrics do not list us-east: %s", m)
	}
}
