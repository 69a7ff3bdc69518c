package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/federation"
	"github.com/soullabs/brainy/internal/wire"
)

// Region detection. A core started with --federation but without --region
// is placed by latency, before it joins any cluster:
//
//  1. It joins the federation's gossip pool under a throwaway name and role
//     ("probe", which federation ignores), on a port of its own, long enough
//     to learn the other cores (a join brings the whole member list), then
//     leaves.
//  2. It pings up to three cores of every region, all at once, several
//     times each; a region's distance is its nearest core's best round trip
//     (the first ping, which pays for the handshake, is not counted).
//  3. The nearest region within Config.RegionRTT is its region; it asks that
//     region's cores for their regional gossip addresses
//     (cluster.Info.GossipAddr) and joins them. With none that near it is a
//     region of its own, "auto-" and its id, and says why in the log.
//
// The region is stored with the data (core: a store keeps its region), so
// a restart does not move a node to another region because the network
// changed: only a new store is placed.

// DefaultRegionRTT is Config.RegionRTT when zero.
const DefaultRegionRTT = 5 * time.Millisecond

// Bounds of detection.
const (
	regionDetectWait = 10 * time.Second // for the pool to show a core
	regionPings      = 4                // per core, the first not counted
	regionPingWait   = time.Second      // per ping
	regionPingCores  = 3                // cores pinged per region
)

// placeRegion settles s.cfg.Region for a node started without one: the
// store's, or one measured (detectRegion). Peers found are added to the
// regional gossip's when none were configured.
func (s *Server) placeRegion(ctx context.Context) error {
	if s.cfg.Region != "" {
		return nil
	}
	stored, err := core.StoredRegion(ctx, s.store)
	if err != nil {
		return err
	}
	if stored != "" {
		s.log.Info("region from the store", "component", "main", "region", stored)
		s.cfg.Region = stored
	}
	if s.cfg.Federation == "" {
		return nil
	}
	region, peers, err := s.detectRegion(ctx, stored)
	if err != nil {
		return err
	}
	s.cfg.Region = region
	if len(s.cfg.Peers) == 0 {
		s.cfg.Peers = peers
	}
	return nil
}

// detectRegion measures the federation's regions and returns the nearest
// within RegionRTT (or stored, when not empty: a stored region only needs
// its peers) and its cores' gossip addresses.
func (s *Server) detectRegion(ctx context.Context, stored string) (string, []string, error) {
	g, err := s.cfg.federationGossip()
	if err != nil {
		return "", nil, err
	}
	if g.GossipKey, err = s.federationKey(); err != nil {
		return "", nil, err
	}
	g.BindPort = 0 // the federation's port is the real membership's, later
	g.Meta = membership.Meta{ID: s.nodeID + "-probe", Role: "probe"}
	g.ClusterName = federation.GossipClusterName(s.cfg.Federation)
	federation.WANGossip(&g)
	off := false
	g.Broadcast = &off
	g.Logger = s.log
	pool, err := membership.Start(ctx, g)
	if err != nil {
		return "", nil, fmt.Errorf("region detection: federation gossip: %w", err)
	}
	cores := map[string][]string{} // region → QUIC addresses
	deadline := time.Now().Add(regionDetectWait)
	for len(cores) == 0 && time.Now().Before(deadline) {
		for _, m := range pool.Members() {
			if membership.IsCore(m.Meta.Role) && m.Meta.Region != "" && m.Meta.QUICAddr != "" && m.State == membership.StateAlive {
				cores[m.Meta.Region] = append(cores[m.Meta.Region], m.Meta.QUICAddr)
			}
		}
		if len(cores) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	_ = pool.Leave(time.Second)
	_ = pool.Shutdown()

	// Every region at once, a few cores of each: a large federation takes
	// the time of its farthest region's pings, not their sum.
	rtts := map[string]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for region, addrs := range cores {
		for _, addr := range addrs[:min(len(addrs), regionPingCores)] {
			wg.Go(func() {
				if rt, ok := s.bestPing(ctx, addr); ok {
					mu.Lock()
					if old, seen := rtts[region]; !seen || rt < old {
						rtts[region] = rt
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	best, bestRTT := "", time.Duration(math.MaxInt64)
	for region, rt := range rtts {
		if rt < bestRTT || rt == bestRTT && region < best {
			best, bestRTT = region, rt
		}
	}
	measured := make([]string, 0, len(rtts))
	for r, rt := range rtts {
		measured = append(measured, fmt.Sprintf("%s=%.2fms", r, float64(rt)/float64(time.Millisecond)))
	}
	region := stored
	switch {
	case stored != "":
	case best != "" && bestRTT <= s.cfg.RegionRTT:
		region = best
		s.log.Info("region detected: the nearest within --region-rtt", "component", "main", "region", region,
			"rtt", bestRTT, "region_rtt", s.cfg.RegionRTT, "measured", measured)
	default:
		region = autoRegion(s.nodeID)
		s.log.Warn("no region's cores answer within --region-rtt: this node is a region of its own; pass --region to choose",
			"component", "main", "region", region, "region_rtt", s.cfg.RegionRTT, "measured", measured)
	}
	return region, s.gossipPeers(ctx, cores[region]), nil
}

// bestPing returns the best of the round trips of regionPings pings to
// addr after the first.
func (s *Server) bestPing(ctx context.Context, addr string) (time.Duration, bool) {
	best, ok := time.Duration(math.MaxInt64), false
	for i := range regionPings {
		cctx, cancel := context.WithTimeout(ctx, regionPingWait)
		start := time.Now()
		_, err := s.qclient.Call(cctx, addr, wire.MethodPing, nil)
		rt := time.Since(start)
		cancel()
		if err != nil {
			return 0, false
		}
		if i > 0 && rt < best {
			best, ok = rt, true
		}
	}
	return best, ok
}

// gossipPeers asks the cores at addrs for their regional gossip addresses.
func (s *Server) gossipPeers(ctx context.Context, addrs []string) []string {
	var peers []string
	for _, addr := range addrs {
		cctx, cancel := context.WithTimeout(ctx, regionPingWait)
		b, err := s.qclient.Call(cctx, addr, wire.MethodClusterInfo, nil)
		cancel()
		var in cluster.Info
		if err != nil || json.Unmarshal(b, &in) != nil || in.GossipAddr == "" {
			continue
		}
		peers = append(peers, in.GossipAddr)
	}
	return peers
}

// autoRegion names the region of a node that is near no other: "auto-" and
// as much of its id as a region name holds.
func autoRegion(id string) string {
	name := strings.Trim(nonName.ReplaceAllString(strings.ToLower(id), "-"), "-")
	if name == "" {
		name = "node"
	}
	r := "auto-" + name
	if len(r) > 32 {
		r = strings.TrimRight(r[:32], "-")
	}
	return r
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)
