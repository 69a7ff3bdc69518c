package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchrun"
	"github.com/soullabs/brainy/loadtest"
)

// loadKind is what a load sends.
type loadKind int

const (
	// loadMixed: the items workload, ReadPercent GETs and the rest PUTs,
	// default consistency.
	loadMixed loadKind = iota
	// loadStaleReads: GETs with ?consistency=stale only (the url
	// workload, since the items workload takes a base URL and no query).
	loadStaleReads
)

// loadResult is one load through several nodes: each node's loadtest
// result and their merge.
type loadResult struct {
	total   *loadtest.Result
	perNode []*loadtest.Result
	nodeIDs []string
	conns   []int
	// busyCores is the machine's average busy cores during the measured
	// part (after the warm-up), -1 if unknown.
	busyCores float64
}

// rps, p50 and p99 are the merged result's rate and latency percentiles.
func (r *loadResult) rps() float64 { return r.total.Throughput }
func (r *loadResult) p50() time.Duration {
	return time.Duration(r.total.Summary.P50US) * time.Microsecond
}
func (r *loadResult) p99() time.Duration {
	return time.Duration(r.total.Summary.P99US) * time.Microsecond
}

// opP99 returns op's p99 in the merged result (0 if the op did not run).
func (r *loadResult) opP99(op string) time.Duration {
	o := r.total.Ops[op]
	if o == nil {
		return 0
	}
	return time.Duration(o.Summary.P99US) * time.Microsecond
}

// loadConfig returns the loadtest config of kind's load through n with
// conns connections.
func (b *bench) loadConfig(kind loadKind, n *node, conns int, seed uint64) loadtest.Config {
	c := loadtest.Config{
		Connections: conns,
		Duration:    b.cfg.Warmup + b.cfg.Duration,
		Warmup:      b.cfg.Warmup,
		Timeout:     5 * time.Second,
		Keys:        b.cfg.Items,
		KeyDist:     fmt.Sprintf("zipf:%g", b.cfg.Theta),
		KeyPrefix:   keyPrefix,
		BodySize:    b.cfg.ValueSize,
		ItemType:    "bench",
		Seed:        seed,
		Label:       n.ID,
	}
	switch kind {
	case loadMixed:
		c.Workload = loadtest.WorkloadItems
		c.Target = n.URL("")
		if b.cfg.ReadPercent == 100 {
			c.Mix = "read=100"
		} else {
			c.Mix = fmt.Sprintf("read=%d,write=%d", b.cfg.ReadPercent, 100-b.cfg.ReadPercent)
		}
	case loadStaleReads:
		c.Workload = loadtest.WorkloadURL
		c.Method = "GET"
		c.Target = n.URL("/v1/items/" + keyPrefix + "{key}?consistency=stale")
	}
	return c
}

// runLoad runs kind's load through nodes, Config.Connections split evenly
// over them, one loadtest run per node side by side, and merges the
// results. Node i's run is seeded with seed+i*1e6, so that the same seed
// gives the same requests.
func (b *bench) runLoad(ctx context.Context, what string, kind loadKind, nodes []*node, seed uint64) (*loadResult, error) {
	res := &loadResult{conns: splitConns(b.cfg.Connections, len(nodes)), busyCores: -1}
	cfgs := make([]loadtest.Config, len(nodes))
	rates := make([]float64, len(nodes))
	var mu sync.Mutex
	for i, n := range nodes {
		cfgs[i] = b.loadConfig(kind, n, res.conns[i], seed+uint64(i)*1_000_000)
		cfgs[i].Progress = func(p loadtest.Progress) {
			mu.Lock()
			rates[i] = p.Rate
			mu.Unlock()
		}
		cfgs[i].EnsureDefaults()
		if err := cfgs[i].Validate(); err != nil {
			return nil, err
		}
		res.nodeIDs = append(res.nodeIDs, n.ID)
	}
	b.log.Info("load", "what", what, "target", cfgs[0].Target, "nodes", res.nodeIDs, "connections", res.conns,
		"warmup", b.cfg.Warmup, "duration", b.cfg.Duration)

	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { // progress and the CPU sample of the measured part
		var busy0, total0 uint64
		sampled := false
		if b.cfg.Warmup == 0 {
			busy0, total0, sampled = readCPU()
		}
		start := time.Now()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		var warm <-chan time.Time
		if b.cfg.Warmup > 0 {
			warm = time.After(b.cfg.Warmup)
		}
		for {
			select {
			case <-lctx.Done():
				if busy1, total1, ok := readCPU(); ok && sampled && total1 > total0 {
					mu.Lock()
					res.busyCores = float64(busy1-busy0) / float64(total1-total0) * float64(runtime.NumCPU())
					mu.Unlock()
				}
				return
			case <-warm:
				busy0, total0, sampled = readCPU()
			case <-t.C:
				// The loadtest package reports no rate during its
				// warm-up, and its first after it a second later.
				if time.Since(start) < b.cfg.Warmup+1500*time.Millisecond {
					b.log.Info("load progress", "what", what, "phase", "warm-up", "elapsed_s", int(time.Since(start).Seconds()))
					continue
				}
				mu.Lock()
				sum := 0.0
				for _, r := range rates {
					sum += r
				}
				mu.Unlock()
				b.log.Info("load progress", "what", what, "phase", "measuring", "elapsed_s", int(time.Since(start).Seconds()),
					"req_per_s", fmt.Sprintf("%.0f", sum))
			}
		}
	})
	results := make([]*loadtest.Result, len(nodes))
	errs := make([]error, len(nodes))
	var runs sync.WaitGroup
	for i := range nodes {
		runs.Go(func() { results[i], errs[i] = loadtest.Run(ctx, cfgs[i]) })
	}
	runs.Wait()
	stop()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("load through %s: %w", nodes[i].ID, err)
		}
	}
	total, err := loadtest.Merge(results...)
	if err != nil {
		return nil, err
	}
	res.total, res.perNode = total, results
	if total.Interrupted {
		return res, fmt.Errorf("%s: %w", what, benchrun.ErrStopped)
	}
	var per []string
	for i, r := range results {
		per = append(per, fmt.Sprintf("%s=%.0f", nodes[i].ID, r.Throughput))
	}
	b.log.Info("load done", "what", what, "req_per_s", fmt.Sprintf("%.0f", res.rps()), "p50_ms", ms(res.p50()),
		"p99_ms", ms(res.p99()), "errors", total.Errors, "error_kinds", total.ErrorBreakdown(), "per_node", per)
	return res, nil
}

// readCPU reads the machine's busy and total CPU ticks.
func readCPU() (busy, total uint64, ok bool) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	busy, total, err = cpuTicks(stat)
	return busy, total, err == nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
