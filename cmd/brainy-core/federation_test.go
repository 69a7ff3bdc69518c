package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// fedRegion is one region of a test federation: its nodes.
type fedRegion struct {
	name  string
	nodes []*coretest.Process
	args  [][]string // each node's arguments, to restart it
}

// startFederation starts one cluster per region (sizes[i] nodes for
// region i, on 127.0.0.<base+n>), all joined to one federation through
// the first node's federation port only.
func startFederation(t testing.TB, base int, names []string, sizes []int, extra ...string) []*fedRegion {
	return startFederationWith(t, base, names, sizes, func(string) []string { return extra })
}

// startFederationWith is startFederation with arguments per node (by its
// address).
func startFederationWith(t testing.TB, base int, names []string, sizes []int, nodeArgs func(addr string) []string) []*fedRegion {
	t.Helper()
	dir := t.TempDir()
	secret := coretest.NewSecret(t)
	first := fmt.Sprintf("127.0.0.%d", base)
	var regions []*fedRegion
	n := 0
	for i, name := range names {
		r := &fedRegion{name: name}
		for j := range sizes[i] {
			addr := fmt.Sprintf("127.0.0.%d", base+n)
			n++
			args := append([]string{"--bind", addr, "--storage", filepath.Join(dir, addr), "--node-id", fmt.Sprintf("%s-%d", name, j),
				"--cluster-secret", secret, "--partitions", "8", "--region", name, "--federation", "test",
				"--federation-peers", first}, nodeArgs(addr)...)
			if j > 0 {
				args = append(args, "--peers", r.nodes[0].GossipAddr)
			}
			r.nodes = append(r.nodes, coretest.StartCore(t, bin, nil, args...))
			r.args = append(r.args, args)
		}
		regions = append(regions, r)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range regions {
				for _, p := range r.nodes {
					t.Logf("log of %s (%s):\n%s", p.Addr, r.name, p.Log())
				}
			}
		}
	})
	return regions
}

// waitFor polls cond until it holds, failing with its last word after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", timeout, why)
}

// readItem returns the item's data and version at p, or the status.
func readItem(t testing.TB, p *coretest.Process, id string) (code int, data, version string) {
	code, body := do(t, "GET", p.URL("/v1/items/"+id), "", "")
	if code != 200 {
		return code, "", ""
	}
	var it struct {
		Data    json.RawMessage
		Version string
	}
	if err := json.Unmarshal(body, &it); err != nil {
		t.Fatal(err)
	}
	return code, string(it.Data), it.Version
}

// TestFederationFormsAndReplicates: three regions of one node and one of
// three form one federation given only the first node's federation
// address; an item written in one region is read, with the same version,
// in every other; every node's metrics list the other regions; and no
// region's nodes joined another region's cluster.
func TestFederationFormsAndReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes in four regions")
	}
	regions := startFederation(t, 141, []string{"eu-west", "us-east", "ap-south", "sa-east"}, []int{1, 1, 1, 3})
	var all []*coretest.Process
	for _, r := range regions {
		all = append(all, r.nodes...)
	}

	waitFor(t, 60*time.Second, func() (bool, string) {
		for _, r := range regions {
			for _, p := range r.nodes {
				m := metrics(t, p)
				if m.Federation == nil || m.Federation.Region != r.name {
					return false, fmt.Sprintf("%s: federation section %+v", p.Addr, m.Federation)
				}
				var names []string
				for _, o := range m.Federation.Regions {
					want := 1
					if o.Name == "sa-east" {
						want = 3
					}
					if o.Nodes != want {
						return false, fmt.Sprintf("%s sees %d nodes in %s", p.Addr, o.Nodes, o.Name)
					}
					names = append(names, o.Name)
				}
				want := []string{}
				for _, o := range regions {
					if o != r {
						want = append(want, o.name)
					}
				}
				slices.Sort(want)
				if !slices.Equal(names, want) {
					return false, fmt.Sprintf("%s (%s) lists regions %v, want %v", p.Addr, r.name, names, want)
				}
				if m.Nodes.Total != len(r.nodes) {
					return false, fmt.Sprintf("%s (%s) is in a cluster of %d nodes, want %d", p.Addr, r.name, m.Nodes.Total, len(r.nodes))
				}
			}
		}
		return true, ""
	})

	// A write in each region reaches every node of every other region.
	for i, r := range regions {
		id := "from-" + r.name
		writer := r.nodes[len(r.nodes)-1]
		code, body := do(t, "PUT", writer.URL("/v1/items/"+id), "application/json", fmt.Sprintf(`{"data":{"n":%d}}`, i))
		if code != 201 {
			t.Fatalf("PUT in %s: %d %s", r.name, code, body)
		}
		var written struct{ Version string }
		json.Unmarshal(body, &written)
		waitFor(t, 20*time.Second, func() (bool, string) {
			for _, p := range all {
				code, data, version := readItem(t, p, id)
				if code != 200 || data != fmt.Sprintf(`{"n":%d}`, i) || version != written.Version {
					return false, fmt.Sprintf("%s reads %s: %d %s version %q (written %q)", p.Addr, id, code, data, version, written.Version)
				}
			}
			return true, ""
		})
	}
	// Every region reports the others healthy (they answer its calls).
	waitFor(t, 10*time.Second, func() (bool, string) {
		for _, p := range all {
			for _, o := range metrics(t, p).Federation.Regions {
				if !o.Healthy {
					return false, fmt.Sprintf("%s: region %s not healthy: %+v", p.Addr, o.Name, o)
				}
			}
		}
		return true, ""
	})

	// A delete crosses too, and leaves nothing to read anywhere.
	code, body := do(t, "DELETE", regions[1].nodes[0].URL("/v1/items/from-eu-west"), "", "")
	if code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	waitFor(t, 20*time.Second, func() (bool, string) {
		for _, p := range all {
			if code, _, _ := readItem(t, p, "from-eu-west"); code != 404 {
				return false, fmt.Sprintf("%s still reads the deleted item: %d", p.Addr, code)
			}
		}
		return true, ""
	})
	var fed *nodestats.Federation = metrics(t, regions[0].nodes[0]).Federation
	if fed.Replaced == 0 {
		t.Fatalf("eu-west applied no other region's values: %+v", fed)
	}
}

// TestFederationTombstonesCollected: deletes leave tombstones in every
// region, and --region-dead-after later every region removes its own,
// leaving the surviving items alone.
func TestFederationTombstonesCollected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two regions")
	}
	regions := startFederation(t, 201, []string{"eu-west", "us-east"}, []int{1, 1}, "--region-dead-after", "2s")
	waitFederated(t, regions)
	eu, us := regions[0].nodes[0], regions[1].nodes[0]
	for i := range 40 {
		if code, body := do(t, "PUT", eu.URL(fmt.Sprintf("/v1/items/k%d", i)), "application/json", `{"data":1}`); code != 201 {
			t.Fatalf("put: %d %s", code, body)
		}
	}
	waitConverged(t, []*coretest.Process{eu, us}, 30*time.Second)
	for i := range 25 {
		if code, body := do(t, "DELETE", eu.URL(fmt.Sprintf("/v1/items/k%d", i)), "", ""); code != 204 {
			t.Fatalf("delete: %d %s", code, body)
		}
	}
	state := waitConverged(t, []*coretest.Process{eu, us}, 30*time.Second)
	if len(state) != 15 {
		t.Fatalf("%d items after deleting 25 of 40", len(state))
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		for _, p := range []*coretest.Process{eu, us} {
			if n := metrics(t, p).Federation.TombstonesCollected; n != 25 {
				return false, fmt.Sprintf("%s collected %d tombstones", p.Addr, n)
			}
		}
		return true, ""
	})
	if after := waitConverged(t, []*coretest.Process{eu, us}, 10*time.Second); !maps.Equal(after, state) {
		t.Fatalf("collecting tombstones changed the items: %v, was %v", after, state)
	}
}

// TestFederationGlobalReads: a read with ?consistency=global returns only
// once every reachable region holds the version it returns (so a regional
// read anywhere then sees it), and leaves out a region cut off; a list
// with ?scope=global merges every region's items, and names the regions
// that did not answer; so does a find with scope global.
func TestFederationGlobalReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three regions behind WAN relays")
	}
	regions, relays := wanFederation(t, 221, []string{"eu-west", "us-east", "ap-south"}, 60*time.Millisecond)
	eu, us, ap := regions[0].nodes[0], regions[1].nodes[0], regions[2].nodes[0]
	for i := range 5 {
		id := fmt.Sprintf("g%d", i)
		if code, body := do(t, "PUT", eu.URL("/v1/items/"+id), "application/json", fmt.Sprintf(`{"data":%d}`, i)); code != 201 {
			t.Fatalf("put: %d %s", code, body)
		}
		code, _, version := readItem(t, eu, id+"?consistency=global")
		if code != 200 {
			t.Fatalf("global read of %s: %d", id, code)
		}
		// No waiting here: the global read already did.
		for _, p := range []*coretest.Process{us, ap} {
			if c, _, v := readItem(t, p, id); c != 200 || versionAfter(version, v) {
				t.Fatalf("%s after a global read of version %s: %d, version %q", p.Addr, version, c, v)
			}
		}
	}
	// ap-south cut off: global reads leave it out, global lists name it.
	apAddr := "127.0.0.223"
	relays[apAddr].Cut(true)
	for addr, r := range relays {
		if addr != apAddr {
			r.CutFrom(netip.MustParseAddr(apAddr), true)
		}
	}
	if code, body := do(t, "PUT", ap.URL("/v1/items/ap-only"), "application/json", `{"data":"ap"}`); code != 201 {
		t.Fatalf("put in the cut region: %d %s", code, body)
	}
	if code, body := do(t, "PUT", eu.URL("/v1/items/g0"), "application/json", `{"data":"new"}`); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, data, _ := readItem(t, eu, "g0?consistency=global"); code != 200 || data != `"new"` {
		t.Fatalf("global read with a region cut off: %d %s", code, data)
	}
	var page struct {
		Items   []struct{ ID, Version string }
		Partial bool
		Missing []string
	}
	code, body := do(t, "GET", eu.URL("/v1/items?scope=global"), "", "")
	if err := json.Unmarshal(body, &page); code != 200 || err != nil {
		t.Fatalf("global list: %d %s", code, body)
	}
	if !page.Partial || !slices.Equal(page.Missing, []string{"ap-south"}) || len(page.Items) != 5 {
		t.Fatalf("global list with ap-south cut off: %s", body)
	}
	// A find of every region: the same, and the items of the regions that
	// answer are the latest copies (g0 holds "new" in eu-west).
	var found struct {
		Items []struct {
			ID   string
			Data json.RawMessage
		}
		Partial bool
		Missing []string
	}
	code, body = do(t, "POST", eu.URL("/v1/find"), "application/json", `{"scope":"global","limit":100}`)
	if err := json.Unmarshal(body, &found); code != 200 || err != nil {
		t.Fatalf("global find: %d %s", code, body)
	}
	if !found.Partial || !slices.Equal(found.Missing, []string{"ap-south"}) || len(found.Items) != 5 || found.Items[0].ID != "g0" || string(found.Items[0].Data) != `"new"` {
		t.Fatalf("global find with ap-south cut off: %s", body)
	}
	relays[apAddr].Cut(false)
	for addr, r := range relays {
		if addr != apAddr {
			r.CutFrom(netip.MustParseAddr(apAddr), false)
		}
	}
	waitFor(t, 30*time.Second, func() (bool, string) {
		code, body := do(t, "GET", us.URL("/v1/items?scope=global"), "", "")
		page.Partial, page.Missing = false, nil
		if err := json.Unmarshal(body, &page); code != 200 || err != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		return !page.Partial && len(page.Items) == 6, string(body)
	})
	waitFor(t, 30*time.Second, func() (bool, string) {
		code, body := do(t, "POST", us.URL("/v1/find"), "application/json", `{"scope":"global","where":{"id":{"gte":"ap"}}}`)
		found.Partial, found.Missing, found.Items = false, nil, nil
		if err := json.Unmarshal(body, &found); code != 200 || err != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		return !found.Partial && len(found.Items) == 6 && found.Items[0].ID == "ap-only", string(body)
	})
	if code, body := do(t, "GET", eu.URL("/v1/items?scope=everywhere"), "", ""); code != 400 {
		t.Fatalf("a bad scope: %d %s", code, body)
	}
	if code, body := do(t, "POST", eu.URL("/v1/find"), "application/json", `{"scope":"everywhere"}`); code != 400 {
		t.Fatalf("a find with a bad scope: %d %s", code, body)
	}
}
