package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// BenchmarkFederation measures, through real brainy-core processes (make
// bench-federation), with 40 ms one way between two regions (relays):
//
//   - replication lag: eu-west takes 2,000 PUT/s (BRAINY_FED_RATE), paced
//     (open loop), for BRAINY_FED_SECONDS (default 8); us-east reports how long after each
//     write its value was applied there (p50, p99 of its last 16,384);
//   - regional write throughput with federation on and off, in the same
//     run: closed-loop PUTs at 64 concurrent clients for 5 s against the
//     federated eu-west node and against a lone node without federation;
//   - catch-up: us-east is killed while eu-west takes closed-loop PUTs for
//     BRAINY_FED_AWAY seconds (default 20), then restarted; the new items
//     over the time from the restart until us-east holds them all.
func BenchmarkFederation(b *testing.B) {
	for range b.N {
		benchFederation(b)
	}
}

func benchFederation(b *testing.B) {
	tb := testing.TB(b)
	delay := 40 * time.Millisecond
	if v := os.Getenv("BRAINY_FED_DELAY_MS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			tb.Fatalf("BRAINY_FED_DELAY_MS=%q: want milliseconds", v)
		}
		delay = time.Duration(n) * time.Millisecond
	}
	regions, relays := wanFederation(tb, 181, []string{"eu-west", "us-east"}, delay)
	eu, us := regions[0].nodes[0], regions[1].nodes[0]

	// 1. Lag at a paced 2,000 writes/s.
	pace := 2000
	if v := os.Getenv("BRAINY_FED_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("BRAINY_FED_RATE=%q: want writes per second", v)
		}
		pace = n
	}
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
	n := int(dur.Seconds()) * pace
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(pace))))
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
	b.Logf("%d PUT/s paced for %v (%.0f/s achieved, %d failed): eu-west → us-east lag p50 %.1f ms, p99 %.1f ms (one-way delay %v)",
		pace, dur, float64(n)/sent.Seconds(), failed.Load(), p50, p99, delay)
	for addr, r := range relays {
		s := r.Stats()
		b.Logf("relay to %s: %d datagrams (%d B) to it, %d dropped; %d back, %d dropped",
			addr, s.ToTarget.Datagrams, s.ToTarget.Bytes, s.ToTarget.DroppedDatagrams, s.ToClient.Datagrams, s.ToClient.DroppedDatagrams)
	}

	// 2. Throughput, federation on vs off.
	lone := coretest.StartCore(tb, bin, nil, "--bind", "127.0.0.189", "--storage", filepath.Join(tb.TempDir(), "lone"), "--partitions", "8")
	cpuOn := cpuTime(tb, eu.Pid())
	on := closedLoopPuts(tb, eu, "on", 64, 5*time.Second)
	cpuOn = cpuTime(tb, eu.Pid()) - cpuOn
	cpuOff := cpuTime(tb, lone.Pid())
	off := closedLoopPuts(tb, lone, "off", 64, 5*time.Second)
	cpuOff = cpuTime(tb, lone.Pid()) - cpuOff
	// On one machine the other region's node takes CPU from the writer:
	// the CPU the writing node spends per write says what federation
	// costs it, whatever the other region costs its own machine.
	perOn, perOff := cpuOn.Seconds()*1e6/(on*5), cpuOff.Seconds()*1e6/(off*5)
	b.ReportMetric(on, "fed-on-put/s")
	b.ReportMetric(off, "fed-off-put/s")
	b.ReportMetric(on/off, "on/off")
	b.ReportMetric(perOff/perOn, "cpu-off/on")
	b.Logf("PUT/s at 64 clients: federation on %.0f, off %.0f: %.2f×; the writing node's CPU per write %.0f µs on, %.0f µs off (%.2f× the writes per CPU second)",
		on, off, on/off, perOn, perOff, perOff/perOn)

	// 3. Catch-up of a region that was away (BRAINY_FED_AWAY=0 skips it).
	away := 20 * time.Second
	if v := os.Getenv("BRAINY_FED_AWAY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			tb.Fatalf("BRAINY_FED_AWAY=%q: %v", v, err)
		}
		away = time.Duration(n) * time.Second
	}
	if away == 0 {
		return
	}
	waitFor(tb, 60*time.Second, func() (bool, string) {
		e, u := metrics(tb, eu).Storage.Items, metrics(tb, us).Storage.Items
		return e == u, fmt.Sprintf("us-east holds %d items of %d before the kill", u, e)
	})
	before := metrics(tb, us).Storage.Items
	regions[1].nodes[0].Kill()
	written := closedLoopPuts(tb, eu, "away", 64, away) * away.Seconds()
	want := metrics(tb, eu).Storage.Items
	restart := time.Now()
	us = coretest.StartCore(tb, bin, nil, regions[1].args[0]...)
	waitFor(tb, 10*time.Minute, func() (bool, string) {
		got := metrics(tb, us).Storage.Items
		return got == want, fmt.Sprintf("us-east holds %d of %d items", got, want)
	})
	took := time.Since(restart)
	rate := float64(want-before) / took.Seconds()
	resyncs := metrics(tb, eu).Federation.Regions[0].Resyncs
	b.ReportMetric(rate, "catch-up-items/s")
	b.Logf("catch-up: %d items written in %v away (%.0f acknowledged), all in us-east %v after its restart: %.0f items/s (%d partitions resynced by digest)",
		want-before, away, written, took.Round(time.Millisecond), rate, resyncs)
}

// cpuTime is a process's user and system CPU time so far.
func cpuTime(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command (in parentheses, which may hold spaces):
	// utime and stime are the 12th and 13th, in clock ticks (100 Hz).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// closedLoopPuts runs clients PUTting distinct keys for d and returns the
// acknowledged writes per second.
func closedLoopPuts(tb testing.TB, p *coretest.Process, prefix string, clients int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				code, _, err := tryDo("PUT", p.URL(fmt.Sprintf("/v1/items/%s%d-%d", prefix, c, i)), "application/json", `{"data":{"v":"0123456789012345678901234567890123456789"}}`)
				if err == nil && (code == 200 || code == 201) {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds()
}

// countedPuts writes n new items to p from 64 clients (ids prefix0..n-1)
// and returns the rate.
func countedPuts(tb testing.TB, p *coretest.Process, prefix string, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				code, body, err := tryDo("PUT", p.URL(fmt.Sprintf("/v1/items/%s%d", prefix, i)), "application/json", `{"data":{"v":"0123456789012345678901234567890123456789"}}`)
				if err != nil || (code != 200 && code != 201) {
					tb.Errorf("put %s%d: %d %s %v", prefix, i, code, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkFederationResync measures the digest resync: two regions hold
// BRAINY_FED_RESYNC_ITEMS items (default 1,000,000); us-east is killed, a
// hundredth of them are rewritten in eu-west, whose logs (a small
// --log-keep) no longer reach back; us-east restarts and is resynced by digest. It
// reports the time to converge and the values and bytes sent, against what
// streaming every item cost.
func BenchmarkFederationResync(b *testing.B) {
	for range b.N {
		benchFederationResync(b)
	}
}

func benchFederationResync(b *testing.B) {
	tb := testing.TB(b)
	items := 1_000_000
	if v := os.Getenv("BRAINY_FED_RESYNC_ITEMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			tb.Fatalf("BRAINY_FED_RESYNC_ITEMS=%q: want at least 100", v)
		}
		items = n
	}
	// The logs keep a quarter of the rewrites per partition (8): the
	// returning region's positions are gone, and only a resync helps.
	changed := items / 100
	logKeep := max(changed/8/4, 5)
	regions, _ := wanFederation(tb, 186, []string{"eu-west", "us-east"}, 10*time.Millisecond, "--log-keep", strconv.Itoa(logKeep))
	eu := regions[0].nodes[0]
	link := func() nodestats.Region { return metrics(tb, eu).Federation.Regions[0] }
	rate := countedPuts(tb, eu, "i", items)
	waitFor(tb, 10*time.Minute, func() (bool, string) {
		u := metrics(tb, regions[1].nodes[0]).Storage.Items
		return u == uint64(items), fmt.Sprintf("us-east holds %d of %d items", u, items)
	})
	loaded := link()
	b.Logf("%d items written at %.0f PUT/s and streamed to us-east: %d values, %d bytes sent (%d before compression)",
		items, rate, loaded.Sent, loaded.BytesSent, loaded.BytesRaw)

	regions[1].nodes[0].Kill()
	countedPuts(tb, eu, "i", changed) // rewrites of existing items
	restart := time.Now()
	us := coretest.StartCore(tb, bin, nil, regions[1].args[0]...)
	want := dumpOf(tb, eu)
	waitFor(tb, 10*time.Minute, func() (bool, string) {
		r := link()
		if r.Resyncs == loaded.Resyncs {
			return false, "no resync yet"
		}
		return r.LagMs == 0 && metrics(tb, us).Storage.Items == uint64(items), fmt.Sprintf("lag %v ms", r.LagMs)
	})
	took := time.Since(restart)
	if got := dumpOf(tb, us); got != want {
		tb.Fatalf("us-east differs from eu-west after the resync")
	}
	r := link()
	sent, sentBytes := r.Sent-loaded.Sent, r.BytesSent-loaded.BytesSent
	b.ReportMetric(took.Seconds(), "resync-s")
	b.ReportMetric(float64(r.ResyncSent-loaded.ResyncSent), "resync-values")
	b.ReportMetric(float64(sentBytes)/float64(loaded.BytesSent), "bytes-vs-full")
	b.Logf("resync after %d of %d items changed: converged %v after the restart (process start included); %d partitions resynced, %d values sent (%d by the resync), %d bytes: %.3f of streaming every item (%d bytes)",
		changed, items, took.Round(time.Millisecond), r.Resyncs-loaded.Resyncs, sent, r.ResyncSent-loaded.ResyncSent, sentBytes,
		float64(sentBytes)/float64(loaded.BytesSent), loaded.BytesSent)
}

// dumpOf returns a digest of every item p lists (ids, versions, data).
func dumpOf(tb testing.TB, p *coretest.Process) string {
	d, ok := dumpItems(tb, p)
	if !ok {
		tb.Fatalf("%s does not list", p.Addr)
	}
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(d)) {
		fmt.Fprintf(h, "%s=%s\n", k, d[k])
	}
	return fmt.Sprintf("%d items, %x", len(d), h.Sum(nil))
}
