package upstream

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/soullabs/brainy/internal/wire"
)

// Latency probing. With Config.ProbeInterval set, the Backend pings every
// core it knows (configured, and leaders the topology names) once per
// interval, jittered by ±20% so that many edges do not beat in step, and
// keeps per core a smoothed round trip and its mean deviation (as TCP's
// RTT estimator: gains 1/8 and 1/4). A probe that fails counts as a
// sample of "down": the core is skipped like one a call found unreachable.
//
// The configured core requests start with (when no leader is known) is
// the nearest healthy one; it changes only when another is nearer by more
// than 20% and 2 ms, so that jitter does not flap it.

// DefaultProbeInterval is the interval an edge probes at.
const DefaultProbeInterval = time.Second

// rtt is one core's estimate, in milliseconds; guarded by Backend.rttMu.
type rtt struct {
	srtt, dev float64
	samples   int
	// last holds the latest samples, for recent: the smoothed estimate
	// (gain 1/8) takes about seven rounds to follow a step, too slow to
	// move away from a region that became slow.
	last [3]float64
}

// sample folds one measured round trip into the estimate.
func (r *rtt) sample(ms float64) {
	if r.samples == 0 {
		r.srtt, r.dev = ms, ms/2
	} else {
		r.dev += (math.Abs(ms-r.srtt) - r.dev) / 4
		r.srtt += (ms - r.srtt) / 8
	}
	r.last[r.samples%len(r.last)] = ms
	r.samples++
}

// recent is the median of the last three samples (fewer at first): it
// follows a lasting change in two rounds and ignores one outlier.
func (r *rtt) recent() float64 {
	switch n := min(r.samples, len(r.last)); n {
	case 0:
		return 0
	case 1:
		return r.last[0]
	case 2:
		return (r.last[0] + r.last[1]) / 2
	}
	a, b, c := r.last[0], r.last[1], r.last[2]
	return max(min(a, b), min(max(a, b), c))
}

// probeLoop probes every interval until Close.
func (b *Backend) probeLoop() {
	defer b.done.Done()
	for {
		jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(b.cfg.ProbeInterval))
		t := time.NewTimer(b.cfg.ProbeInterval + jitter)
		select {
		case <-b.stop:
			t.Stop()
			return
		case <-t.C:
		}
		b.probeAll()
	}
}

// probeAll pings each known core once, in parallel, then picks the
// nearest configured core to start with.
func (b *Backend) probeAll() {
	addrs := append([]string(nil), b.cfg.Addrs...)
	b.routesMu.Lock()
	for _, r := range b.regions {
		for _, n := range r.nodes {
			addrs = append(addrs, n.addr)
		}
	}
	// Regions known only by name and addresses: probing connects, and the
	// subscription then brings their topologies.
	for name, as := range b.others {
		if _, known := b.regions[name]; !known {
			addrs = append(addrs, as...)
		}
	}
	b.routesMu.Unlock()
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, addr := range addrs {
		if !seen[addr] {
			seen[addr] = true
			wg.Go(func() { b.probe(addr) })
		}
	}
	wg.Wait()
	// Cores no longer known are forgotten: the maps stay as small as the
	// configuration and the topology.
	b.rttMu.Lock()
	for _, m := range []map[string]*rtt{b.rtts, b.reads} {
		for addr := range m {
			if !seen[addr] {
				delete(m, addr)
			}
		}
	}
	b.rttMu.Unlock()
	b.pickNearest()
	b.pickRegion()
}

// probe measures one round trip to addr.
func (b *Backend) probe(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(b.cfg.CallTimeout, b.cfg.ProbeInterval))
	defer cancel()
	start := time.Now()
	_, err := b.cfg.Client.Call(ctx, addr, wire.MethodPing, nil)
	if err != nil {
		b.markDown(addr, time.Now().Add(retryDown).UnixNano())
		return
	}
	ms := float64(time.Since(start)) / float64(time.Millisecond)
	b.rttMu.Lock()
	// The first ping that succeeds is not a sample: it usually paid for
	// dialling the core. It only makes the entry.
	if r := b.rtts[addr]; r != nil {
		r.sample(ms)
	} else {
		b.rtts[addr] = &rtt{}
	}
	b.rttMu.Unlock()
}

// rttOf returns addr's smoothed round trip in milliseconds (0: unknown).
func (b *Backend) rttOf(addr string) float64 {
	b.rttMu.Lock()
	defer b.rttMu.Unlock()
	if r := b.rtts[addr]; r != nil {
		return r.srtt
	}
	return 0
}

// recentRTTOf returns addr's recent round trip in milliseconds (0:
// unknown): what region choice goes by.
func (b *Backend) recentRTTOf(addr string) float64 {
	b.rttMu.Lock()
	defer b.rttMu.Unlock()
	if r := b.rtts[addr]; r != nil {
		return r.recent()
	}
	return 0
}

// pickNearest makes the nearest healthy configured core the one requests
// start with, with hysteresis.
func (b *Backend) pickNearest() {
	now := time.Now().UnixNano()
	cur := int(b.current.Load())
	best, bestRTT := -1, 0.0
	for i, addr := range b.cfg.Addrs {
		rt := b.rttOf(addr)
		if rt == 0 || b.downUntil[i].Load() > now {
			continue
		}
		if best < 0 || rt < bestRTT {
			best, bestRTT = i, rt
		}
	}
	if best < 0 || best == cur {
		return
	}
	curRTT := b.rttOf(b.cfg.Addrs[cur])
	if b.downUntil[cur].Load() > now || curRTT == 0 || (bestRTT < 0.8*curRTT && curRTT-bestRTT > 2) {
		b.log.Info("nearest core changed", "from", b.cfg.Addrs[cur], "from_rtt_ms", curRTT, "to", b.cfg.Addrs[best], "to_rtt_ms", bestRTT)
		b.current.Store(int32(best))
	}
}
