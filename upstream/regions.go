package upstream

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
)

// Regions. Cores of a federation push topologies naming their region
// (wire.Topology.Region); the Backend keeps one merged view per region and
// sends requests to one region's leaders: the nearest. A region's distance
// is the smallest recent round trip (probe.go) among its cores that answer
// probes. The chosen region changes at once when none of its cores answers
// (the failover), and otherwise only when another has been nearer by more
// than 20% and 2 ms for regionSwitchRounds probe rounds in a row, so that
// jitter does not flap it.
//
// An edge needs one core's address: the cores' pushes name the other
// regions' cores (wire.Topology.Others), which probing then connects to,
// and whose own pushes bring their regions' topologies.
//
// Requests do not wait for the region to change: one whose leader is down,
// or does not answer, goes to the other regions' leaders, nearest first
// (elsewhere), and a read waiting on a core whose feed fell silent is sent
// there too (suspect.go).

// regionSwitchRounds is how many probe rounds in a row another region must
// be clearly nearer before requests move to it.
const regionSwitchRounds = 3

// regionRTT returns r's distance in milliseconds: the nearest of its
// cores that are up and measured (by their recent round trips); 0 when
// none is.
func (b *Backend) regionRTT(r *routes, now int64) float64 {
	best := 0.0
	for _, n := range r.nodes {
		if n.down.Load() > now {
			continue
		}
		if rt := b.recentRTTOf(n.addr); rt > 0 && (best == 0 || rt < best) {
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
	out := &nodestats.Routing{Region: *cur, Rescued: b.rescues.Load()}
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

// learnOthers records the other regions a pushed topology names, so that
// probes reach them (and their cores then push their own topologies)
// though only one region's cores were configured. Called with routesMu
// held.
func (b *Backend) learnOthers(t *wire.Topology) {
	for _, r := range t.Others {
		if _, known := b.others[r.Region]; !known && len(b.others) >= wire.MaxTopologyRegions {
			continue
		}
		b.others[r.Region] = r.Addrs
	}
}

// elsewhere returns where a request about to goes when the leader the
// chosen region names (tried; "" when none) did not answer: in every
// region, nearest first, the partition's leader or, when that is unknown
// or down, the region's first core up. The chosen region is among them:
// it may have changed meanwhile (a failover), or name another leader.
func (b *Backend) elsewhere(to itemrpc.Target, tried string, now int64) []routeNode {
	type option struct {
		n   routeNode
		rtt float64
	}
	var opts []option
	up := func(n routeNode) bool { return n.addr != tried && n.down.Load() <= now }
	b.routesMu.Lock()
	for _, r := range b.regions {
		if len(r.nodes) == 0 {
			continue
		}
		pick := -1
		if to.ID != "" {
			if l := r.leaders[wire.PartitionOf(to.Tenant, to.ID, r.partitions)]; l.node >= 0 && up(r.nodes[l.node]) {
				pick = l.node
			}
		}
		for i := 0; pick < 0 && i < len(r.nodes); i++ {
			if up(r.nodes[i]) {
				pick = i
			}
		}
		if pick >= 0 {
			opts = append(opts, option{r.nodes[pick], b.regionRTT(r, now)})
		}
	}
	b.routesMu.Unlock()
	slices.SortFunc(opts, func(a, c option) int {
		switch {
		case a.rtt == c.rtt:
			return 0
		case a.rtt == 0:
			return 1
		case c.rtt == 0:
			return -1
		}
		return cmp.Compare(a.rtt, c.rtt)
	})
	out := make([]routeNode, len(opts))
	for i, o := range opts {
		out[i] = o.n
	}
	return out
}

// multiRegion reports whether the Backend knows more than one region: only
// then may a read waiting on a silent core go elsewhere (suspect.go).
func (b *Backend) multiRegion() bool { return b.regionCount.Load() > 1 }
