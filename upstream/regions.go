package upstream

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/soullabs/brainy/internal/nodestats"
)

// Regions. Cores of a federation push topologies naming their region
// (wire.Topology.Region); the Backend keeps one merged view per region and
// sends requests to one region's leaders: the nearest. A region's distance
// is the smallest smoothed round trip among its cores that answer probes.
// The chosen region changes at once when none of its cores answers (the
// failover), and otherwise only when another has been nearer by more than
// 20% and 2 ms for regionSwitchRounds probe rounds in a row, so that
// jitter does not flap it.

// regionSwitchRounds is how many probe rounds in a row another region must
// be clearly nearer before requests move to it.
const regionSwitchRounds = 3

// regionRTT returns r's distance in milliseconds: the nearest of its
// cores that are up and measured; 0 when none is.
func (b *Backend) regionRTT(r *routes, now int64) float64 {
	best := 0.0
	for _, n := range r.nodes {
		if n.down.Load() > now {
			continue
		}
		if rt := b.rttOf(n.addr); rt > 0 && (best == 0 || rt < best) {
			best = rt
		}
	}
	return best
}

// pickRegion moves requests to the nearest region, with hysteresis.
func (b *Backend) pickRegion() {
	now := time.Now().UnixNano()
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	cur := b.region.Load()
	if cur == nil || len(b.regions) < 2 {
		return
	}
	best, bestRTT := "", math.Inf(1)
	for name, r := range b.regions {
		if rt := b.regionRTT(r, now); rt > 0 && (rt < bestRTT || rt == bestRTT && name < best) {
			best, bestRTT = name, rt
		}
	}
	curRTT := b.regionRTT(b.regions[*cur], now)
	switch {
	case best == "" || best == *cur:
		b.closer = 0
		return
	case curRTT == 0:
		// No core of the chosen region answers: fail over now.
	case bestRTT < 0.8*curRTT && curRTT-bestRTT > 2:
		if best != b.candidate {
			b.candidate, b.closer = best, 0
		}
		if b.closer++; b.closer < regionSwitchRounds {
			return
		}
	default:
		b.closer = 0
		return
	}
	b.log.Info("routing to another region", "from", *cur, "from_rtt_ms", curRTT, "to", best, "to_rtt_ms", bestRTT)
	b.region.Store(&best)
	b.routes.Store(b.regions[best])
	b.closer = 0
}

// routing is the Backend's region section of its metrics: nil when the
// cores it knows are of one region or none.
func (b *Backend) routing() *nodestats.Routing {
	now := time.Now().UnixNano()
	b.routesMu.Lock()
	defer b.routesMu.Unlock()
	cur := b.region.Load()
	if cur == nil || len(b.regions) == 1 && *cur == "" {
		return nil
	}
	out := &nodestats.Routing{Region: *cur}
	for name, r := range b.regions {
		rr := nodestats.RouteRegion{Name: name, Nodes: len(r.nodes), RTTMs: b.regionRTT(r, now)}
		for _, n := range r.nodes {
			if n.down.Load() <= now {
				rr.Up++
			}
		}
		out.Regions = append(out.Regions, rr)
	}
	slices.SortFunc(out.Regions, func(a, c nodestats.RouteRegion) int { return cmp.Compare(a.Name, c.Name) })
	return out
}
