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

// The HTTP part (-core): the same vectors and queries through two real
// brainy-core processes, one with its vector index (the default) and one
// without (--vector-index-bytes -1: finds scan), loaded alike, asked alike
// in the same run. Addresses 127.0.0.95 and .96.
var httpIPs = []string{"127.0.0.95", "127.0.0.96"}

type httpResult struct {
	name                  string
	p50, p99              time.Duration
	perSecond             float64
	recall, recallFilter  float64
	filterP50, filterP99  time.Duration
	loadSeconds, indexSec float64
}

// runHTTP measures finds through brainy-core at path core.
func runHTTP(core string, base, queries [][]float32, truth, truthFilter [][]int32, k, nq int) ([]httpResult, error) {
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
	for i, ip := range httpIPs {
		name, extra := "brainy-core (index)", []string{}
		if i == 1 {
			name, extra = "brainy-core (--vector-index-bytes -1: scan)", []string{"--vector-index-bytes", "-1"}
		}
		p := &benchproc.Proc{Name: name, Path: core, Log: filepath.Join(dir, fmt.Sprint(i, ".log")),
			Args: append([]string{"--bind", ip, "--storage", filepath.Join(dir, fmt.Sprint(i))}, extra...)}
		if err := reg.Start(p); err != nil {
			return nil, err
		}
		url := func(path string) string { return "http://" + ip + ":7070" + path }
		if err := benchnode.WaitReady(ctx, api, p, url("/readyz"), 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r := httpResult{name: name}
		start := time.Now()
		if err := load(ctx, api, url, base); err != nil {
			return nil, fmt.Errorf("%s: loading: %w", name, err)
		}
		r.loadSeconds = time.Since(start).Seconds()
		log.Printf("%s: %d items in %.1f s", name, len(base), r.loadSeconds)
		// The first find by vector asks for the index; then wait for it.
		start = time.Now()
		if _, err := find(ctx, api, url, queries[0], k, false); err != nil {
			return nil, err
		}
		if i == 0 {
			if err := api.WaitFor(ctx, 10*time.Minute, func() (bool, string) {
				var m struct{ Vectors *struct{ State string } }
				code, body, err := api.Do(ctx, "GET", url("/v1/metrics"), nil, 5*time.Second)
				if err != nil || code != 200 || json.Unmarshal(body, &m) != nil || m.Vectors == nil {
					return false, fmt.Sprintf("metrics: %d %v", code, err)
				}
				return m.Vectors.State == "ready", "index " + m.Vectors.State
			}); err != nil {
				return nil, err
			}
			r.indexSec = time.Since(start).Seconds()
			log.Printf("%s: index built in %.1f s", name, r.indexSec)
		}
		qs := queries[:min(nq, len(queries))]
		var lat, flat []time.Duration
		hits, fhits := 0, 0
		for qi, q := range qs {
			for _, filtered := range []bool{false, true} {
				t := time.Now()
				ids, err := find(ctx, api, url, q, k, filtered)
				if err != nil {
					return nil, err
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
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		start = time.Now()
		for range 8 {
			wg.Go(func() {
				for j := next.Add(1) - 1; j < int64(len(qs)); j = next.Add(1) - 1 {
					if _, err := find(ctx, api, url, qs[j], k, false); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return nil, err
		}
		r.perSecond = float64(len(qs)) / time.Since(start).Seconds()
		log.Printf("%s: p50 %v, p99 %v, %.0f finds/s", name, r.p50, r.p99, r.perSecond)
		p.Stop(10 * time.Second)
		out = append(out, r)
	}
	return out, nil
}

// load PUTs every vector as item vNNNNN of type emb, with metadata
// {"bucket": i % 10}, from 16 clients.
func load(ctx context.Context, api *benchhttp.Client, url func(string) string, base [][]float32) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(base)); i = next.Add(1) - 1 {
				body, _ := json.Marshal(map[string]any{"type": "emb", "vector": base[i], "metadata": map[string]int{"bucket": int(i % 10)}})
				code, resp, err := api.Do(ctx, "PUT", url(fmt.Sprintf("/v1/items/v%06d", i)), body, 30*time.Second)
				if err == nil && code != 200 && code != 201 {
					err = fmt.Errorf("PUT: %d %s", code, resp)
				}
				if err != nil {
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
