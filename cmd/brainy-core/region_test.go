package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/netrelay"
)

// TestRegionDetectedByLatency (issue 13, done-when 5): a core started
// with --federation and no --region joins the region whose cores answer
// within --region-rtt — the near one, though it was given only the far
// one's gossip address — and forms one regional cluster with it; it is not
// placed in the region behind a 40 ms relay. With a --region-rtt nothing
// meets, a core makes a region of its own and says why. A restart keeps
// the region the store was placed in. Addresses 127.0.0.241-244.
func TestRegionDetectedByLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four cores, one behind a relay")
	}
	dir := t.TempDir()
	secret := coretest.NewSecret(t)
	relay, err := netrelay.Start(netrelay.Config{Listen: "127.0.0.1:0", Target: net.JoinHostPort("127.0.0.242", "7071"),
		Delay: 40 * time.Millisecond, UDP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	args := func(ip, id string, extra ...string) []string {
		return append([]string{"--bind", ip, "--storage", filepath.Join(dir, id), "--node-id", id, "--cluster-secret", secret,
			"--partitions", "8", "--federation", "detect"}, extra...)
	}
	near := coretest.StartCore(t, bin, nil, args("127.0.0.241", "near-0", "--region", "near")...)
	far := coretest.StartCore(t, bin, nil, args("127.0.0.242", "far-0", "--region", "far",
		"--federation-peers", "127.0.0.241", "--federation-quic-addr", relay.Addr())...)
	waitFor(t, 30*time.Second, func() (bool, string) {
		m := metrics(t, near)
		return m.Federation != nil && len(m.Federation.Regions) == 1, fmt.Sprintf("%+v", m.Federation)
	})

	newcomerArgs := args("127.0.0.243", "newcomer", "--federation-peers", "127.0.0.242")
	newcomer := coretest.StartCore(t, bin, nil, newcomerArgs...)
	if m := metrics(t, newcomer); m.Federation == nil || m.Federation.Region != "near" {
		t.Fatalf("a core without --region was placed in %+v, not near:\n%s", m.Federation, newcomer.Log())
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		m := metrics(t, near)
		return m.Nodes.Total == 2, fmt.Sprintf("near's nodes: %+v", m.Nodes)
	})
	if m := metrics(t, far); m.Nodes.Total != 1 {
		t.Fatalf("the far region's cluster took the newcomer in: %+v", m.Nodes)
	}
	// The newcomer holds near's data: a write in near reads there.
	if code, body := do(t, "PUT", near.URL("/v1/items/detected"), "application/json", `{"data":1}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		code, body := do(t, "GET", newcomer.URL("/v1/items/detected"), "", "")
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	// A restart keeps the region, from the store.
	newcomer.Stop(10 * time.Second)
	newcomer = coretest.StartCore(t, bin, nil, newcomerArgs...)
	if m := metrics(t, newcomer); m.Federation == nil || m.Federation.Region != "near" {
		t.Fatalf("after a restart the core is in %+v, not near", m.Federation)
	}
	if !strings.Contains(newcomer.Log(), "region from the store") {
		t.Errorf("the restarted core did not take its region from the store:\n%s", newcomer.Log())
	}

	// Nothing within 1 µs: a region of its own, with the reason logged.
	solo := coretest.StartCore(t, bin, nil, args("127.0.0.244", "solo", "--federation-peers", "127.0.0.241", "--region-rtt", "1us")...)
	if m := metrics(t, solo); m.Federation == nil || m.Federation.Region != "auto-solo" {
		t.Fatalf("a core near no region is in %+v, not auto-solo", m.Federation)
	}
	if !strings.Contains(solo.Log(), "no region's cores answer within --region-rtt") {
		t.Errorf("the core did not say why it is a region of its own:\n%s", solo.Log())
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		m := metrics(t, near)
		return m.Federation != nil && len(m.Federation.Regions) == 2, fmt.Sprintf("%+v", m.Federation)
	})
}
