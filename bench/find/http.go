package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchhttp"
	"github.com/soullabs/brainy/bench/internal/benchnode"
	"github.com/soullabs/brainy/bench/internal/benchproc"
)

// The HTTP part (-core): the same vectors and queries through real
// brainy-core processes, in turn: one node with its vector index (the
// default), one without (--vector-index-bytes -1: finds scan), and a
// cluster of three (64 partitions, each replicated three ways), loaded
// alike, asked alike. Addresses 127.0.0.95 to .97.
var httpIPs = []string{"127.0.0.95", "127.0.0.96", "127.0.0.97"}

// target is one way of running brainy-core.
type target struct {
	name    string
	nodes   int      // processes, on httpIPs from the first
	extra   []string // flags for each
	indexed bool     // finds by vector use the index
}

var targets = []target{
	{name: "one node, index", nodes: 1, indexed: true},
	{name: "one node, --vector-index-bytes -1 (scan)", nodes: 1, extra: []string{"--vector-index-bytes", "-1"}},
	{name: "3-node cluster, index", nodes: 3, indexed: true},
}

type httpResult struct {
	name                 string
	p50, p99             time.Duration
	perSecond            float64
	recall, recallFilter float64
	filterP50, filterP99 time.Duration
	loadSeconds          float64 // the load's PUTs
	indexSec             float64 // from the load's start until every node's index held every item
}

// runHTTP measures finds through brainy-core at path core, each process
// started with coreFlags too.
func runHTTP(core string, coreFlags []string, base, queries [][]float32, truth, truthFilter [][]int32, k, nq int) ([]httpResult, error) {
	for _, ip := range httpIPs {
		if err := benchproc.CheckFree(ip, benchnode.Ports...); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "bench-find-http")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	reg := benchproc.NewRegistry(slog.Default())
	defer reg.StopAll(5 * time.Second)
	api := benchhttp.NewClient(errors.New("stopped"))
	ctx := context.Background()
	var out []httpResult
	for ti, tg := range targets {
		var urls []func(string) string
		var procs []*benchproc.Proc
		for i := range tg.nodes {
			ip := httpIPs[i]
			args := []string{"--bind", ip, "--storage", filepath.Join(dir, fmt.Sprint(ti, "-", i)), "--node-id", fmt.Sprint("n", i+1),
				"--cluster-name", fmt.Sprint("bench-find-", ti)}
			if i > 0 {
				args = append(args, "--peers", httpIPs[0]+":7946")
			}
			p := &benchproc.Proc{Name: fmt.Sprint(tg.name, "/n", i+1), Path: core, Log: filepath.Join(dir, fmt.Sprint(ti, "-", i, ".log")),
				Args: append(append(args, tg.extra...), coreFlags...)}
			if err := reg.Start(p); err != nil {
				return nil, err
			}
			url := func(path string) string { return "http://" + ip + ":7070" + path }
			if err := benchnode.WaitReady(ctx, api, p, url("/readyz"), time.Minute); err != nil {
				return nil, fmt.Errorf("%s: %w", p.Name, err)
			}
			urls, procs = append(urls, url), append(procs, p)
		}
		if err := api.WaitFor(ctx, time.Minute, func() (bool, string) { return clusterOf(ctx, api, urls) }); err != nil {
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		r, err := measure(ctx, api, tg, urls, base, queries, truth, truthFilter, k, nq)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		log.Printf("%s: p50 %v, p99 %v, %.0f finds/s", tg.name, r.p50, r.p99, r.perSecond)
		for _, p := range procs {
			p.Stop(10 * time.Second)
		}
		out = append(out, r)
	}
	return out, nil
}

// clusterOf reports whether every node sees all of them and every
// partition with as many voters as nodes (up to three).
func clusterOf(ctx context.Context, api *benchhttp.Client, urls []func(string) string) (bool, string) {
	for _, url := range urls {
		var m struct {
			Nodes      struct{ Total int }
			Partitions []struct {
				Leader string
				Voters []string
			}
		}
		code, body, err := api.Do(ctx, "GET", url("/v1/metrics"), nil, 5*time.Second)
		if err != nil || code != 200 || json.Unmarshal(body, &m) != nil {
			return false, fmt.Sprintf("metrics: %d %v", code, err)
		}
		if m.Nodes.Total != len(urls) {
			return false, fmt.Sprintf("%d of %d nodes seen", m.Nodes.Total, len(urls))
		}
		for _, p := range m.Partitions {
			if len(p.Voters) != min(len(urls), 3) || p.Leader == "" {
				return false, fmt.Sprintf("a partition with voters %v, leader %q", p.Voters, p.Leader)
			}
		}
	}
	return true, ""
}

// measure loads base through urls (in turn) and times finds through them.
func measure(ctx context.Context, api *benchhttp.Client, tg target, urls []func(string) string, base, queries [][]float32, truth, truthFilter [][]int32, k, nq int) (httpResult, error) {
	r := httpResult{name: tg.name}
	// The first find by vector asks for the index: before the load, so
	// that the writes pay for keeping it.
	for _, url := range urls {
		if _, err := find(ctx, api, url, queries[0], k, false); err != nil {
			return r, err
		}
	}
	indexed := func(n int) func() (bool, string) {
		return func() (bool, string) {
			for _, url := range urls {
				var m struct {
					Vectors *struct {
						State   string
						Vectors int
					}
				}
				code, body, err := api.Do(ctx, "GET", url("/v1/metrics"), nil, 5*time.Second)
				if err != nil || code != 200 || json.Unmarshal(body, &m) != nil || m.Vectors == nil {
					return false, fmt.Sprintf("metrics: %d %v", code, err)
				}
				if m.Vectors.State != "ready" || m.Vectors.Vectors < n {
					return false, fmt.Sprintf("index %s, %d vectors", m.Vectors.State, m.Vectors.Vectors)
				}
			}
			return true, ""
		}
	}
	if tg.indexed {
		if err := api.WaitFor(ctx, time.Minute, indexed(0)); err != nil {
			return r, err
		}
	}
	start := time.Now()
	if err := load(ctx, api, urls, base); err != nil {
		return r, fmt.Errorf("loading: %w", err)
	}
	r.loadSeconds = time.Since(start).Seconds()
	log.Printf("%s: %d items in %.1f s", tg.name, len(base), r.loadSeconds)
	if tg.indexed {
		if err := api.WaitFor(ctx, 30*time.Minute, indexed(len(base))); err != nil {
			return r, err
		}
		r.indexSec = time.Since(start).Seconds()
		log.Printf("%s: every item indexed %.1f s after the load began", tg.name, r.indexSec)
	}
	qs := queries[:min(nq, len(queries))]
	var lat, flat []time.Duration
	hits, fhits := 0, 0
	for qi, q := range qs {
		url := urls[qi%len(urls)]
		for _, filtered := range []bool{false, true} {
			t := time.Now()
			ids, err := find(ctx, api, url, q, k, filtered)
			if err != nil {
				return r, err
			}
			d := time.Since(t)
			want := truth[qi]
			if filtered {
				want = truthFilter[qi]
			}
			n := 0
			for _, id := range ids {
				if slices.Contains(want, id) {
					n++
				}
			}
			if filtered {
				flat, fhits = append(flat, d), fhits+n
			} else {
				lat, hits = append(lat, d), hits+n
			}
		}
	}
	r.p50, r.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
	r.filterP50, r.filterP99 = percentile(flat, 0.5), percentile(flat, 0.99)
	r.recall, r.recallFilter = float64(hits)/float64(len(qs)*k), float64(fhits)/float64(len(qs)*k)
	// Throughput: 8 clients for as many finds again, unfiltered.
	start = time.Now()
	err := parallel(8, len(qs), func(j int) error {
		_, err := find(ctx, api, urls[j%len(urls)], qs[j], k, false)
		return err
	})
	r.perSecond = float64(len(qs)) / time.Since(start).Seconds()
	return r, err
}

// parallel runs do(0..n-1) from clients goroutines and returns the first
// error.
func parallel(clients, n int, do func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range clients {
		wg.Go(func() {
			for j := next.Add(1) - 1; j < int64(n); j = next.Add(1) - 1 {
				if err := do(int(j)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	err, _ := firstErr.Load().(error)
	return err
}

// load PUTs every vector as item vNNNNNN of type emb, with metadata
// {"bucket": i % 10}, from 16 clients, through urls in turn.
func load(ctx context.Context, api *benchhttp.Client, urls []func(string) string, base [][]float32) error {
	return parallel(16, len(base), func(i int) error {
		body, _ := json.Marshal(map[string]any{"type": "emb", "vector": base[i], "metadata": map[string]int{"bucket": i % 10}})
		code, resp, err := api.Do(ctx, "PUT", urls[i%len(urls)](fmt.Sprintf("/v1/items/v%06d", i)), body, 30*time.Second)
		if err == nil && code != 200 && code != 201 {
			err = fmt.Errorf("PUT: %d %s", code, resp)
		}
		return err
	})
}

// find asks for the k nearest q (of bucket 3 when filtered) and returns
// their indexes.
func find(ctx context.Context, api *benchhttp.Client, url func(string) string, q []float32, k int, filtered bool) ([]int32, error) {
	req := map[string]any{"type": "emb", "near": map[string]any{"vector": q, "k": k}}
	if filtered {
		req["where"] = map[string]any{"metadata.bucket": 3}
	}
	body, _ := json.Marshal(req)
	code, resp, err := api.Do(ctx, "POST", url("/v1/find"), body, time.Minute)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("find: %d %s", code, resp)
	}
	var r struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, err
	}
	var ids []int32
	for _, it := range r.Items {
		n, _ := strconv.Atoi(it.ID[1:])
		ids = append(ids, int32(n))
	}
	return ids, nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
