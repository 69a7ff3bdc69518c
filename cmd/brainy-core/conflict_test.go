package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/netrelay"
)

// wanFederation starts regions of one node each, every node's QUIC port
// behind a relay adding delay each way: other regions reach it through
// the relay only (--federation-quic-addr), as across a WAN.
func wanFederation(t testing.TB, base int, names []string, delay time.Duration, extra ...string) ([]*fedRegion, map[string]*netrelay.Relay) {
	t.Helper()
	relays := map[string]*netrelay.Relay{}
	sizes := make([]int, len(names))
	for i := range names {
		sizes[i] = 1
		addr := fmt.Sprintf("127.0.0.%d", base+i)
		r, err := netrelay.Start(netrelay.Config{Listen: "127.0.0.1:0", Target: net.JoinHostPort(addr, "7071"), Delay: delay, UDP: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		relays[addr] = r
	}
	regions := startFederationWith(t, base, names, sizes, func(addr string) []string {
		return append([]string{"--federation-quic-addr", relays[addr].Addr()}, extra...)
	})
	waitFederated(t, regions)
	return regions, relays
}

// waitFederated waits until every node sees every other region.
func waitFederated(t testing.TB, regions []*fedRegion) {
	t.Helper()
	waitFor(t, 60*time.Second, func() (bool, string) {
		for _, r := range regions {
			for _, p := range r.nodes {
				m := metrics(t, p)
				if m.Federation == nil || len(m.Federation.Regions) != len(regions)-1 {
					return false, fmt.Sprintf("%s: %+v", p.Addr, m.Federation)
				}
			}
		}
		return true, ""
	})
}

// fedSeeds returns the workload seeds: BRAINY_FED_SEED replays one.
func fedSeeds(t testing.TB, n int) []uint64 {
	if s := os.Getenv("BRAINY_FED_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BRAINY_FED_SEED=%q: %v", s, err)
		}
		return []uint64{seed}
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64() % 1e9
	}
	return seeds
}

// fedDuration is how long each workload runs: BRAINY_FED_SECONDS, or d.
func fedDuration(t testing.TB, d time.Duration) time.Duration {
	if s := os.Getenv("BRAINY_FED_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("BRAINY_FED_SECONDS=%q: %v", s, err)
		}
		return time.Duration(n) * time.Second
	}
	return d
}

// ackedWrite is a write a region acknowledged, with the version it
// answered.
type ackedWrite struct {
	key, version, region string
}

// conflictLoad runs clients per region that put, patch and delete the
// same keys concurrently until ctx ends, and returns the acknowledged
// writes.
func conflictLoad(ctx context.Context, t *testing.T, seed uint64, targets map[string]*coretest.Process, clients, keys int) []ackedWrite {
	var mu sync.Mutex
	var acked []ackedWrite
	var wg sync.WaitGroup
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range targets {
			if !yield(n) {
				return
			}
		}
	})
	for ri, region := range names {
		p := targets[region]
		for c := range clients {
			rng := rand.New(rand.NewPCG(seed, uint64(ri*100+c)))
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					key := fmt.Sprintf("k%d", rng.IntN(keys))
					var code int
					var body []byte
					var err error
					switch op := rng.IntN(10); {
					case op < 5:
						code, body, err = tryDo("PUT", p.URL("/v1/items/"+key), "application/json", fmt.Sprintf(`{"data":{"w":"%s-%d-%d"}}`, region, c, i))
					case op < 8:
						code, body, err = tryDo("PATCH", p.URL("/v1/items/"+key), "application/merge-patch+json", fmt.Sprintf(`{"data":{"p%s%d":%d}}`, region, c, i))
					default:
						code, body, err = tryDo("DELETE", p.URL("/v1/items/"+key), "", "")
					}
					if err != nil {
						t.Errorf("%s: %v", region, err)
						return
					}
					if code == 200 || code == 201 {
						var it struct{ Version string }
						if json.Unmarshal(body, &it) == nil {
							mu.Lock()
							acked = append(acked, ackedWrite{key, it.Version, region})
							mu.Unlock()
						}
					}
				}
			})
		}
	}
	wg.Wait()
	return acked
}

// tryDo is do for goroutines other than the test's: it returns errors,
// a body it could not read included.
func tryDo(method, url, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// dumpItems lists every item of the default tenant at p, page by page:
// id → version and data.
func dumpItems(t testing.TB, p *coretest.Process) (map[string]string, bool) {
	out := map[string]string{}
	cursor := ""
	for {
		code, body := do(t, "GET", p.URL("/v1/items?limit=1000&cursor="+cursor), "", "")
		if code != 200 {
			return nil, false
		}
		var page struct {
			Items []struct {
				ID, Version string
				Data        json.RawMessage
			}
			Cursor string
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("list at %s: %v", p.Addr, err)
		}
		for _, it := range page.Items {
			out[it.ID] = it.Version + " " + string(it.Data)
		}
		if page.Cursor == "" {
			return out, true
		}
		cursor = page.Cursor
	}
}

// waitConverged waits until every node lists the same items, with the same
// versions and data, and returns that state.
func waitConverged(t testing.TB, nodes []*coretest.Process, timeout time.Duration) map[string]string {
	t.Helper()
	var state map[string]string
	waitFor(t, timeout, func() (bool, string) {
		first, ok := dumpItems(t, nodes[0])
		if !ok {
			return false, nodes[0].Addr + " does not list"
		}
		for _, p := range nodes[1:] {
			d, ok := dumpItems(t, p)
			if !ok {
				return false, p.Addr + " does not list"
			}
			for k, v := range first {
				if d[k] != v {
					return false, fmt.Sprintf("%s: %s is %q at %s, %q at %s", k, k, v, nodes[0].Addr, d[k], p.Addr)
				}
			}
			if len(d) != len(first) {
				return false, fmt.Sprintf("%d items at %s, %d at %s", len(first), nodes[0].Addr, len(d), p.Addr)
			}
		}
		state = first
		return true, ""
	})
	return state
}

// versionAfter reports whether version a = "<hlc base36>.<region>" is
// later than b by the conflict rule (clock time, then region name).
func versionAfter(a, b string) bool {
	ah, ar, _ := strings.Cut(a, ".")
	bh, br, _ := strings.Cut(b, ".")
	an, _ := strconv.ParseUint(ah, 36, 64)
	bn, _ := strconv.ParseUint(bh, 36, 64)
	if an != bn {
		return an > bn
	}
	return ar > br
}

// checkNoAckedWriteLost: last writer wins, so no acknowledged write of a
// key may be later than the key's converged version — that write would
// have been lost, not out-written.
func checkNoAckedWriteLost(t *testing.T, state map[string]string, acked []ackedWrite) {
	t.Helper()
	for _, w := range acked {
		v, ok := state[w.key]
		if !ok {
			continue // deleted: a later delete won (tombstones are not listed)
		}
		final, _, _ := strings.Cut(v, " ")
		if versionAfter(w.version, final) {
			t.Errorf("%s: the write acknowledged by %s as version %s is later than the converged %s: it was lost", w.key, w.region, w.version, final)
		}
	}
}

// conflictLog reads p's whole conflict log, page by page.
func conflictLog(t testing.TB, p *coretest.Process) []conflictEntry {
	t.Helper()
	var out []conflictEntry
	cursor := ""
	for {
		code, body := do(t, "GET", p.URL("/v1/conflicts?limit=1000&cursor="+cursor), "", "")
		if code != 200 {
			t.Fatalf("conflicts at %s: %d %s", p.Addr, code, body)
		}
		var page struct {
			Conflicts []conflictEntry
			Cursor    string
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("conflicts at %s: %v", p.Addr, err)
		}
		out = append(out, page.Conflicts...)
		if page.Cursor == "" {
			return out
		}
		cursor = page.Cursor
	}
}

type conflictEntry struct {
	ID    string
	Loser struct {
		Version string
		Data    json.RawMessage
	}
	LoserDeleted bool
	Winner       string
}

// checkConflictLogs: each region logs the conflicts its metrics count (a
// batch applied whose proposer timed out is logged uncounted), up to the
// log's bound,
// and every logged loser is an acknowledged write of its key — with its
// data, unless it was a delete — that lost to a later version.
// (TestRegionsConverge in package core checks exactly that every lost
// write is logged; here the log is checked through the running binaries.)
func checkConflictLogs(t *testing.T, targets map[string]*coretest.Process, acked []ackedWrite) {
	t.Helper()
	written := map[string]bool{}
	for _, w := range acked {
		written[w.key+" "+w.version] = true
	}
	for region, p := range targets {
		log := conflictLog(t, p)
		m := metrics(t, p)
		counted, bound := m.Federation.Conflicts, uint64(core.ConflictLogKeep*len(m.Partitions))
		if n := uint64(len(log)); n == 0 || n < min(counted, core.ConflictLogKeep) || n > bound {
			t.Fatalf("%s logged %d conflicts and counted %d (the log keeps at most %d)", region, n, counted, bound)
		}
		checkItemMeta(t, p, log)
		for _, c := range log {
			if !c.LoserDeleted && !written[c.ID+" "+c.Loser.Version] { // a delete answers no version
				t.Errorf("%s logged %s version %s as a loser, which no region acknowledged", region, c.ID, c.Loser.Version)
			}
			if !versionAfter(c.Winner, c.Loser.Version) {
				t.Errorf("%s logged %s: winner %s is not later than loser %s", region, c.ID, c.Winner, c.Loser.Version)
			}
			if !c.LoserDeleted && len(c.Loser.Data) == 0 {
				t.Errorf("%s logged %s version %s without its data", region, c.ID, c.Loser.Version)
			}
		}
	}
}

// checkItemMeta: a read with ?meta=versions counts the item's entries in
// the region's conflict log, and its version vector holds the item's own
// version.
func checkItemMeta(t *testing.T, p *coretest.Process, log []conflictEntry) {
	t.Helper()
	count := map[string]int{}
	for _, c := range log {
		count[c.ID]++
	}
	checked := 0
	for id, n := range count {
		code, body := do(t, "GET", p.URL("/v1/items/"+id+"?meta=versions"), "", "")
		if code == 404 {
			continue // deleted: the read answers no meta
		}
		var it struct {
			Version string
			Meta    struct {
				Versions  map[string]string
				Conflicts int
			}
		}
		if err := json.Unmarshal(body, &it); code != 200 || err != nil {
			t.Fatalf("GET %s?meta=versions at %s: %d %s", id, p.Addr, code, body)
		}
		if it.Meta.Conflicts != n || !slices.Contains(slices.Collect(maps.Values(it.Meta.Versions)), it.Version) {
			t.Fatalf("%s at %s: meta %+v for version %s; the log holds %d entries for it", id, p.Addr, it.Meta, it.Version, n)
		}
		if checked++; checked == 5 {
			return
		}
	}
}

// TestFederationConflictsConverge: with 40 ms one way between regions,
// four clients per region put, patch and delete the same 100 keys at once;
// once writes stop, every region lists the same items with the same
// versions and data, and no acknowledged write is later than its key's
// final version. Each seed replays with BRAINY_FED_SEED; BRAINY_FED_SECONDS
// lengthens the load (default 4 s per seed).
func TestFederationConflictsConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three regions behind WAN relays")
	}
	regions, _ := wanFederation(t, 151, []string{"eu-west", "us-east", "ap-south"}, 40*time.Millisecond)
	targets := map[string]*coretest.Process{}
	var nodes []*coretest.Process
	for _, r := range regions {
		targets[r.name] = r.nodes[0]
		nodes = append(nodes, r.nodes[0])
	}
	var allAcked []ackedWrite
	for _, seed := range fedSeeds(t, 2) {
		t.Logf("seed %d (replay with BRAINY_FED_SEED=%d)", seed, seed)
		ctx, cancel := context.WithTimeout(context.Background(), fedDuration(t, 4*time.Second))
		acked := conflictLoad(ctx, t, seed, targets, 4, 100)
		cancel()
		state := waitConverged(t, nodes, 60*time.Second)
		checkNoAckedWriteLost(t, state, acked)
		conflicts := uint64(0)
		for _, p := range nodes {
			conflicts += metrics(t, p).Federation.Conflicts
		}
		t.Logf("seed %d: %d acknowledged writes, %d items left, %d conflicts resolved", seed, len(acked), len(state), conflicts)
		if len(acked) == 0 || conflicts == 0 {
			t.Fatalf("seed %d: %d writes and %d conflicts: the load did not race", seed, len(acked), conflicts)
		}
		allAcked = append(allAcked, acked...)
		checkConflictLogs(t, targets, allAcked)
	}
}

// TestFederationRegionReturns: a region killed while the others take
// writes catches up by itself once restarted — from its positions, or,
// when the others' logs no longer hold them (a small --log-keep), by a
// digest resync that sends only the ranges that differ — and the regions
// converge. A region cut
// off by the network instead (its relay and its traffic at the others'
// relays dropped), taking conflicting writes of its own meanwhile,
// converges with the others once the link heals.
func TestFederationRegionReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a region")
	}
	for _, tc := range []struct {
		name    string
		base    int
		logKeep string
	}{{"positions", 161, "10000"}, {"compacted", 171, "8"}, {"cut", 131, "10000"}} {
		t.Run(tc.name, func(t *testing.T) {
			regions, relays := wanFederation(t, tc.base, []string{"eu-west", "us-east", "ap-south"}, 10*time.Millisecond, "--log-keep", tc.logKeep)
			seed := fedSeeds(t, 1)[0]
			t.Logf("seed %d (replay with BRAINY_FED_SEED=%d)", seed, seed)
			b := regions[1]
			bAddr := fmt.Sprintf("127.0.0.%d", tc.base+1)
			const seeded = 1000 // items every region holds before the split
			if tc.name == "compacted" {
				a := regions[0].nodes[0]
				for i := range seeded {
					if code, body := do(t, "PUT", a.URL(fmt.Sprintf("/v1/items/base%d", i)), "application/json", `{"data":{"base":true}}`); code != 201 {
						t.Fatalf("seeding: %d %s", code, body)
					}
				}
				waitConverged(t, []*coretest.Process{a, b.nodes[0], regions[2].nodes[0]}, 60*time.Second)
			}
			targets := map[string]*coretest.Process{regions[0].name: regions[0].nodes[0], regions[2].name: regions[2].nodes[0]}
			if tc.name == "cut" {
				relays[bAddr].Cut(true)
				for addr, r := range relays {
					if addr != bAddr {
						r.CutFrom(netip.MustParseAddr(bAddr), true)
					}
				}
				targets[b.name] = b.nodes[0] // both sides of the cut take writes
			} else {
				b.nodes[0].Kill()
			}
			ctx, cancel := context.WithTimeout(context.Background(), fedDuration(t, 3*time.Second))
			acked := conflictLoad(ctx, t, seed, targets, 2, 200)
			cancel()
			if tc.name == "cut" {
				relays[bAddr].Cut(false)
				for addr, r := range relays {
					if addr != bAddr {
						r.CutFrom(netip.MustParseAddr(bAddr), false)
					}
				}
			} else {
				b.nodes[0] = coretest.StartCore(t, bin, nil, b.args[0]...)
			}
			state := waitConverged(t, []*coretest.Process{regions[0].nodes[0], b.nodes[0], regions[2].nodes[0]}, 90*time.Second)
			checkNoAckedWriteLost(t, state, acked)
			t.Logf("%d acknowledged writes while %s was away, %d items", len(acked), b.name, len(state))
			if len(state) == 0 {
				t.Fatal("nothing to catch up: the load wrote nothing")
			}
			resyncs, resyncSent := uint64(0), uint64(0)
			for _, r := range []*fedRegion{regions[0], regions[2]} {
				for _, o := range metrics(t, r.nodes[0]).Federation.Regions {
					if o.Name == b.name {
						resyncs += o.Resyncs
						resyncSent += o.ResyncSent
					}
				}
			}
			if want := tc.name == "compacted"; (resyncs > 0) != want {
				t.Fatalf("%d partitions resynced to %s; want resyncs: %v", resyncs, b.name, want)
			}
			if tc.name == "compacted" {
				// Only the ranges that differ cross: the items written while
				// b was away (and any sharing their digest ranges), from each
				// of the two regions, not the seeded ones b already held.
				t.Logf("resyncs sent %d values for %d items (%d seeded)", resyncSent, len(state), seeded)
				if resyncSent == 0 || resyncSent >= seeded {
					t.Fatalf("resyncs sent %d values to %s, which held %d of the %d items already", resyncSent, b.name, seeded, len(state))
				}
			}
		})
	}
}
