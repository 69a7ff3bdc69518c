package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
)

// syncItems is how many items blue holds before green starts:
// BRAINY_SYNC_ITEMS, else 20,000 (the 100,000 takes a few minutes
// on a small machine).
func syncItems(t testing.TB) int {
	if s := os.Getenv("BRAINY_SYNC_ITEMS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("BRAINY_SYNC_ITEMS=%q", s)
		}
		return n
	}
	return 20000
}

// dumpAll lists every item of the default tenant at p, page by page: id →
// version and data.
func dumpAll(t testing.TB, p *coretest.Process) map[string]string {
	t.Helper()
	out := map[string]string{}
	cursor := ""
	for {
		code, body := do(t, "GET", p.URL("/v1/items?limit=1000&cursor="+url.QueryEscape(cursor)), "", "")
		if code != 200 {
			t.Fatalf("list at %s: %d %s", p.Addr, code, body)
		}
		var page struct {
			Items []struct {
				ID, Version string
				Data        json.RawMessage
			}
			Cursor string
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			out[it.ID] = it.Version + " " + string(it.Data)
		}
		if page.Cursor == "" {
			return out
		}
		cursor = page.Cursor
	}
}

// fill puts n items into p with 16 clients.
func fill(t *testing.T, p *coretest.Process, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				code, body, err := tryDo("PUT", p.URL(fmt.Sprintf("/v1/items/item-%d", i)), "application/json",
					fmt.Sprintf(`{"type":"thing","data":{"n":%d,"text":"an item of the blue cluster, number %d"}}`, i, i))
				if err != nil || code != 201 {
					t.Errorf("PUT item-%d: %d %s %v", i, code, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// churn puts, patches and deletes items of p (the n filled and new ones)
// with 2 clients until ctx ends, and returns how many writes it made.
func churn(ctx context.Context, t *testing.T, p *coretest.Process, n int) *atomic.Int64 {
	var writes atomic.Int64
	for c := range 2 {
		rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("item-%d", rng.IntN(n+n/10)) // a tenth are new
				var err error
				switch op := rng.IntN(4); op {
				case 0, 1:
					_, _, err = tryDo("PUT", p.URL("/v1/items/"+id), "application/json", fmt.Sprintf(`{"data":{"w":%d}}`, i))
				case 2:
					_, _, err = tryDo("PATCH", p.URL("/v1/items/"+id), "application/merge-patch+json", fmt.Sprintf(`{"data":{"p%d":%d}}`, c, i))
				default:
					_, _, err = tryDo("DELETE", p.URL("/v1/items/"+id), "", "")
				}
				if err != nil && ctx.Err() == nil {
					t.Errorf("churn: %v", err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	return &writes
}

// TestSyncBlueGreen: blue holds items and keeps taking puts, patches and
// deletes while green, with another partition count, starts following it
// (--sync-from). Green is killed mid-copy and resumes from the positions
// it stored; it reaches the changes and lag 0; once blue's writes stop,
// green lists exactly blue's items, versions and data (deleted items in
// neither), and metrics say so — the README's cut-over. Blue is one node
// at 127.0.0.211, green one at 127.0.0.215; BRAINY_SYNC_ITEMS sets the
// size. The initial copy's rate is logged.
func TestSyncBlueGreen(t *testing.T) {
	if testing.Short() {
		t.Skip("copies a cluster of 20,000 items")
	}
	n := syncItems(t)
	dir := t.TempDir()
	secret := coretest.NewSecret(t)
	blue := coretest.StartCore(t, bin, nil, "--bind", "127.0.0.211", "--storage", filepath.Join(dir, "blue"), "--node-id", "blue-0",
		"--cluster-secret", secret, "--cluster-name", "blue", "--partitions", "16")
	start := time.Now()
	fill(t, blue, n)
	t.Logf("blue holds %d items (%.0f PUT/s)", n, float64(n)/time.Since(start).Seconds())

	ctx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	writes := churn(ctx, t, blue, n)

	greenArgs := []string{"--bind", "127.0.0.215", "--storage", filepath.Join(dir, "green"), "--node-id", "green-0",
		"--cluster-secret", secret, "--cluster-name", "green", "--partitions", "12", "--sync-from", "127.0.0.211:7071"}
	var green *coretest.Process
	t.Cleanup(func() {
		if t.Failed() && green != nil {
			t.Logf("green's log:\n%s", tail(green.Log(), 60))
		}
	})
	// First slowly (64 KiB/s), so that it is killed mid-copy.
	green = coretest.StartCore(t, bin, nil, append(greenArgs, "--sync-copy-rate", "65536")...)
	var before uint64
	waitFor(t, 30*time.Second, func() (bool, string) {
		s := metrics(t, green).Sync
		if s == nil {
			t.Fatal("green's metrics have no sync section")
		}
		before = s.ItemsCopied
		return s.ItemsCopied > 0 && s.State == "copying", fmt.Sprintf("sync: %+v", *s)
	})
	green.Kill()

	restarted := time.Now()
	green = coretest.StartCore(t, bin, nil, greenArgs...)
	var copied uint64
	waitFor(t, 120*time.Second, func() (bool, string) {
		s := metrics(t, green).Sync
		copied = s.ItemsCopied
		return s.State == "following", fmt.Sprintf("sync: %+v", *s)
	})
	took := time.Since(restarted)
	t.Logf("green copied %d items after its restart in %v (%.0f items/s, start-up included); %d copied before it",
		copied-min(copied, before), took.Round(time.Millisecond), float64(copied-min(copied, before))/took.Seconds(), before)
	// The restart resumed: the positions stored before it were read back.
	resumed := regexp.MustCompile(`"msg":"resuming a blue partition's (copy|changes)"[^\n]*"items_copied":([1-9][0-9]*)`)
	if !resumed.MatchString(green.Log()) {
		t.Fatalf("green did not resume from stored positions after its restart:\n%s", tail(green.Log(), 40))
	}

	time.Sleep(2 * time.Second) // writes go on while green follows
	stopWrites()
	// The cut-over: writes to blue stopped, wait for lag 0 (twice, a
	// second apart: the last writes may be on their way).
	zero := 0
	waitFor(t, 60*time.Second, func() (bool, string) {
		s := metrics(t, green).Sync
		if s.State == "following" && s.LagMs == 0 {
			zero++
		} else {
			zero = 0
		}
		time.Sleep(time.Second)
		return zero >= 2, fmt.Sprintf("sync: %+v", *s)
	})
	want, got := dumpAll(t, blue), dumpAll(t, green)
	for id, v := range want {
		if got[id] != v {
			t.Errorf("%s: blue %q, green %q", id, v, got[id])
		}
	}
	for id, v := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: in green (%q), not in blue", id, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d writes to blue during the sync; %d items in both", writes.Load(), len(want))
	if len(want) >= n+n/10 || writes.Load() == 0 {
		t.Fatalf("%d items, %d writes: the churn deleted nothing", len(want), writes.Load())
	}
}

// startCluster starts n nodes named name-i at 127.0.0.<base+i>, joined
// through the first.
func startCluster(t *testing.T, dir, name string, base, n int, args ...string) []*coretest.Process {
	t.Helper()
	var nodes []*coretest.Process
	for i := range n {
		addr := fmt.Sprintf("127.0.0.%d", base+i)
		a := append([]string{"--bind", addr, "--storage", filepath.Join(dir, addr), "--node-id", fmt.Sprintf("%s-%d", name, i),
			"--cluster-name", name}, args...)
		if i > 0 {
			a = append(a, "--peers", nodes[0].GossipAddr)
		}
		nodes = append(nodes, coretest.StartCore(t, bin, nil, a...))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range nodes {
				t.Logf("log of %s:\n%s", p.Addr, tail(p.Log(), 30))
			}
		}
	})
	return nodes
}

// TestSyncClusters: a blue cluster of three nodes followed by a green one
// of three, every green node given a blue node that leads few partitions
// (so most reads are forwarded once). Each blue partition is pulled by
// exactly one green node, the pulls are spread over green's nodes, values
// reach green partitions led elsewhere (MethodSyncApply), and once blue's
// writes stop every green node reports lag 0 and green lists what blue
// does. Addresses 127.0.0.212-214 (blue) and 216-218 (green).
func TestSyncClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters of three")
	}
	n := min(syncItems(t), 5000)
	dir := t.TempDir()
	secret := coretest.NewSecret(t)
	blue := startCluster(t, dir, "blue", 212, 3, "--cluster-secret", secret, "--partitions", "16")
	fill(t, blue[0], n)
	ctx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	writes := churn(ctx, t, blue[1], n)
	green := startCluster(t, dir, "green", 216, 3, "--cluster-secret", secret, "--partitions", "12", "--sync-from", "127.0.0.214:7071")
	waitFor(t, 120*time.Second, func() (bool, string) {
		pulled, nodes := 0, 0
		for _, p := range green {
			s := metrics(t, p).Sync
			if s == nil || s.State != "following" {
				return false, fmt.Sprintf("%s: %+v", p.Addr, s)
			}
			pulled += s.Partitions
			if s.Partitions > 0 {
				nodes++
			}
		}
		return pulled == 16 && nodes >= 2, fmt.Sprintf("%d blue partitions pulled by %d green nodes", pulled, nodes)
	})
	time.Sleep(time.Second)
	stopWrites()
	zero := 0
	waitFor(t, 60*time.Second, func() (bool, string) {
		for _, p := range green {
			if s := metrics(t, p).Sync; s.State != "following" || s.LagMs != 0 {
				zero = 0
				time.Sleep(500 * time.Millisecond)
				return false, fmt.Sprintf("%s: %+v", p.Addr, *s)
			}
		}
		zero++
		time.Sleep(time.Second)
		return zero >= 2, ""
	})
	want, got := dumpAll(t, blue[0]), dumpAll(t, green[1])
	for id, v := range want {
		if got[id] != v {
			t.Errorf("%s: blue %q, green %q", id, v, got[id])
		}
	}
	for id, v := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: in green (%q), not in blue", id, v)
		}
	}
	t.Logf("%d writes to blue during the sync; %d items in both", writes.Load(), len(want))
}
