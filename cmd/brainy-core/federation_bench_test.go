package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
)

// BenchmarkFederation measures, through real brainy-core processes (make
// bench-federation), with 40 ms one way between two regions (relays):
//
//   - replication lag: eu-west takes 2,000 PUT/s, paced (open loop), for
//     BRAINY_FED_SECONDS (default 8); us-east reports how long after each
//     write its value was applied there (p50, p99 of its last 16,384);
//   - regional write throughput with federation on and off, in the same
//     run: closed-loop PUTs at 64 concurrent clients for 5 s against the
//     federated eu-west node and against a lone node without federation.
func BenchmarkFederation(b *testing.B) {
	for range b.N {
		benchFederation(b)
	}
}

func benchFederation(b *testing.B) {
	tb := testing.TB(b)
	regions, _ := wanFederation(tb, 131, []string{"eu-west", "us-east"}, 40*time.Millisecond)
	eu, us := regions[0].nodes[0], regions[1].nodes[0]

	// 1. Lag at a paced 2,000 writes/s.
	const rate = 2000
	dur := fedDuration(tb, 8*time.Second)
	jobs := make(chan int, 4096)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range jobs {
				code, _, err := tryDo("PUT", eu.URL(fmt.Sprintf("/v1/items/k%d", i%100000)), "application/json", fmt.Sprintf(`{"data":{"i":%d}}`, i))
				if err != nil || (code != 200 && code != 201) {
					failed.Add(1)
				}
			}
		})
	}
	start := time.Now()
	n := int(dur.Seconds() * rate)
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sent := time.Since(start)
	var p50, p99 float64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := metrics(tb, us)
		if m.Federation != nil && len(m.Federation.Regions) == 1 && m.Federation.Regions[0].InLagP99Ms > 0 {
			r := m.Federation.Regions[0]
			p50, p99 = r.InLagP50Ms, r.InLagP99Ms
			if em := metrics(tb, eu); em.Federation.Regions[0].LagMs == 0 {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.ReportMetric(p50, "lag-p50-ms")
	b.ReportMetric(p99, "lag-p99-ms")
	b.Logf("%d PUT/s paced for %v (%.0f/s achieved, %d failed): eu-west → us-east lag p50 %.1f ms, p99 %.1f ms (one-way delay 40 ms)",
		rate, dur, float64(n)/sent.Seconds(), failed.Load(), p50, p99)

	// 2. Throughput, federation on vs off.
	lone := coretest.StartCore(tb, bin, nil, "--bind", "127.0.0.139", "--storage", filepath.Join(tb.TempDir(), "lone"), "--partitions", "8")
	on := closedLoopPuts(tb, eu, 64, 5*time.Second)
	off := closedLoopPuts(tb, lone, 64, 5*time.Second)
	b.ReportMetric(on, "fed-on-put/s")
	b.ReportMetric(off, "fed-off-put/s")
	b.ReportMetric(on/off, "on/off")
	b.Logf("PUT/s at 64 clients: federation on %.0f, off %.0f: %.2f×", on, off, on/off)
}

// closedLoopPuts runs clients PUTting distinct keys for d and returns the
// acknowledged writes per second.
func closedLoopPuts(tb testing.TB, p *coretest.Process, clients int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				code, _, err := tryDo("PUT", p.URL(fmt.Sprintf("/v1/items/t%d-%d", c, i)), "application/json", `{"data":{"v":"0123456789012345678901234567890123456789"}}`)
				if err == nil && (code == 200 || code == 201) {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds()
}
