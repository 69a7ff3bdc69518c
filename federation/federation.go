// Package federation joins regional clusters into one federation: every
// region accepts reads and writes for every item, and each partition's
// leader streams what local writes changed to the same partition in every
// other region, where it is applied through that region's raft group.
//
//	region A, partition p's leader                     region B, any core
//	  core.Committed(p) advances ──▶ link(B).send(p):
//	    core.LocalChanges(p, read) — the log's local writes ─▶ the items' records
//	    MethodFedApply {p, From: acked, To, values} ──QUIC──▶ handleApply
//	                                                       └▶ p's leader in B (one hop)
//	                                                          core.ApplyReplicated: one raft
//	                                                          command merges every value and
//	                                                          stores A's position (To)
//	    acked = read = position ◀──────────────────────── answer
//
// Regions find each other through a gossip pool of their own (memberlist,
// WAN timings, port 7947), apart from each region's LAN pool: members
// announce their region and QUIC address. The pool is encrypted with the
// same key as the regional one when the clusters share a secret.
//
// Delivery is at least once and applying is idempotent: the receiver keeps
// each source partition's position in the same raft apply as the values
// (core/federation.go), the sender re-asks it after any error or new
// leadership, and values merge as states (last writer wins by hybrid clock
// and region, version vectors telling replacement from conflict), so a
// resend, a reorder or a relay changes nothing. Nothing is sent twice on
// purpose, and nothing is lost: a partition's position moves only over
// changes the receiver holds.
//
// Deletes leave tombstones, kept RegionDeadAfter (collect.go).
//
// A region whose position a log no longer holds is resynced by digest
// (link.resync, core/digest.go): only the ranges that differ cross.
//
// Reads and lists may ask every region (global.go).
//
// Blue/green sync (sync.go, syncserve.go) reuses the merge one way: a
// cluster follows another, whatever their partition counts.
//
// Not yet here (docs/design/20261206_federation.md): compression.
package federation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/wire"
)

// Federation is a node's part in a federation: its gossip membership, the
// links streaming its partitions' changes to every other region, and the
// handlers applying theirs.
type Federation struct {
	cfg     Config
	log     *slog.Logger
	core    *core.Node
	members *membership.Membership

	regionOf atomic.Pointer[map[string]string] // federation member id → region, refreshed by watch

	mu      sync.Mutex
	links   map[string]*link       // other region → link; guarded by mu
	inLag   map[string]*lagSamples // other region → lag of its values applied here; guarded by mu
	inboxes map[inboxKey]*inbox    // batches waiting here, by source region and partition; guarded by mu
	closed  bool                   // Close began: no goroutine may start; guarded by mu

	received  atomic.Uint64 // batches applied here for other regions
	collected atomic.Uint64 // tombstones removed by partitions this node led
	skewLog   *rate.Limiter // a skewed region's every batch is refused: log some
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start joins the federation and starts streaming. The cluster's core must
// have been opened with Region set to cfg.Region and Federated on.
func Start(ctx context.Context, cfg Config) (*Federation, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.Cluster.Core()
	if c.Region() != cfg.Region {
		return nil, fmt.Errorf("federation: the core's region is %q, not %q", c.Region(), cfg.Region)
	}
	f := &Federation{cfg: cfg, log: cfg.Logger.With("component", "federation", "region", cfg.Region),
		core: c, links: map[string]*link{}, inLag: map[string]*lagSamples{}, inboxes: map[inboxKey]*inbox{},
		stop: make(chan struct{}), skewLog: rate.NewLimiter(rate.Every(time.Minute), 1)}
	f.regionOf.Store(&map[string]string{})
	cfg.Server.Handle(wire.MethodFedPosition, f.handlePosition)
	cfg.Server.Handle(wire.MethodFedApply, f.handleApply)
	cfg.Server.Handle(wire.MethodFedDigest, f.handleDigest)
	cfg.Server.Handle(wire.MethodFedVersion, f.handleVersion)
	cfg.Server.Handle(wire.MethodFedList, f.handleList)
	cfg.Server.Handle(wire.MethodFedMeta, f.handleMeta)
	cfg.Server.Handle(wire.MethodFedFind, f.handleFind)
	cfg.Gossip.Logger = cfg.Logger
	m, err := membership.Start(ctx, cfg.Gossip)
	if err != nil {
		return nil, fmt.Errorf("federation gossip: %w", err)
	}
	f.members = m
	f.refresh()
	f.wg.Add(2)
	go f.watch()
	go f.collect()
	f.log.Info("joined the federation", "federation", cfg.Name, "gossip_addr", m.LocalNode().Addr, "peers", cfg.Gossip.Peers)
	return f, nil
}

// GossipAddr returns where the federation gossip listens.
func (f *Federation) GossipAddr() string { return f.members.LocalNode().Addr }

// Close stops the links and leaves the federation's gossip. Later calls
// return the first's result.
func (f *Federation) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.stop)
		f.wg.Wait()
		_ = f.members.Leave(time.Second)
		f.closeErr = f.members.Shutdown()
	})
	return f.closeErr
}

// watch keeps the regions' links in step with the gossip, and measures
// each region's round trip.
func (f *Federation) watch() {
	defer f.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-f.members.Events():
		case <-t.C:
			for _, l := range f.allLinks() {
				l.ping()
			}
		}
		f.refresh()
	}
}

// refresh rebuilds the member → region map and starts a link to every
// region seen for the first time. A link outlives its region's absence:
// it keeps trying, so the region catches up when it returns.
func (f *Federation) refresh() {
	regionOf := map[string]string{}
	addrs := map[string][]string{}
	public := map[string]string{}
	for _, m := range f.members.Members() {
		if !membership.IsCore(m.Meta.Role) || m.Meta.Region == "" || m.Meta.QUICAddr == "" {
			continue
		}
		regionOf[m.Meta.ID] = m.Meta.Region
		switch {
		case m.Meta.Region == f.cfg.Region:
			public[m.Meta.ID] = m.Meta.QUICAddr
		case m.State == membership.StateAlive || m.State == membership.StateSuspect:
			addrs[m.Meta.Region] = append(addrs[m.Meta.Region], m.Meta.QUICAddr)
		}
	}
	f.regionOf.Store(&regionOf)
	// Subscribers (edges) learn the federation from the topology the
	// cluster pushes them.
	out := cluster.Outside{Public: public}
	for region, as := range addrs {
		out.Others = append(out.Others, wire.RegionCores{Region: region, Addrs: as})
	}
	f.cfg.Cluster.SetOutside(out)
	f.mu.Lock()
	defer f.mu.Unlock()
	for region, as := range addrs {
		slices.Sort(as)
		l := f.links[region]
		if l == nil {
			if len(f.links) >= core.MaxRegions-1 {
				f.log.Warn("ignoring a region: the federation has the most regions it may", "region", region, "max", core.MaxRegions)
				continue
			}
			l = newLink(f, region)
			f.links[region] = l
			f.wg.Add(1)
			go l.run()
			f.log.Info("region found", "peer_region", region, "nodes", len(as))
		}
		l.setAddrs(as)
	}
	for region, l := range f.links {
		if _, ok := addrs[region]; !ok {
			l.setAddrs(nil)
		}
	}
}

// allLinks returns the links to every region known, by name.
func (f *Federation) allLinks() []*link {
	f.mu.Lock()
	defer f.mu.Unlock()
	links := make([]*link, 0, len(f.links))
	for _, l := range f.links {
		links = append(links, l)
	}
	slices.SortFunc(links, func(a, b *link) int { return cmp.Compare(a.region, b.region) })
	return links
}

// Region is how a node sees another region of its federation.
type Region struct {
	Name string
	// Nodes is how many of its cores the federation gossip lists alive.
	Nodes int
	// Healthy: its last call (a batch, or the ping every second) succeeded.
	Healthy bool
	// RTT is the last measured round trip to it.
	RTT time.Duration
	// Lag is, for the partitions this node leads, how old the oldest
	// change not yet applied there is (0 when it has them all).
	Lag time.Duration
	// InLagP50 and InLagP99 are how long after their writes that region's
	// values were applied here (of the last 16384 applied through this node).
	InLagP50, InLagP99 time.Duration
	// Sent counts the values applied there from this node; Batches the
	// batches; Resyncs the partitions resynced by digest because the log
	// no longer held the region's position (see link.resync), and
	// ResyncSent the values those sent (of Sent).
	Sent, Batches, Resyncs, ResyncSent uint64
	// BytesRaw and BytesSent count the batches' bytes sent to it before
	// and after compression.
	BytesRaw, BytesSent uint64
}

// Regions lists the other regions this node knows, by name.
func (f *Federation) Regions() []Region {
	links := f.allLinks()
	out := make([]Region, 0, len(links))
	for _, l := range links {
		r := l.status()
		f.mu.Lock()
		s := f.inLag[r.Name]
		f.mu.Unlock()
		if s != nil {
			r.InLagP50, r.InLagP99 = s.quantiles()
		}
		out = append(out, r)
	}
	return out
}

// goroutine counts a goroutine about to start in wg, unless Close began
// (then it must not start: Close may be waiting on wg).
func (f *Federation) goroutine() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

var errClosed = errors.New("federation: shutting down")

// errCaller refuses a federation call from a core that is not a member
// of another region (or of this one, forwarding).
var errCaller = errors.New("federation: the caller is not a federation member of the region it speaks for")

// Stats is the federation section of the node's metrics.
func (f *Federation) Stats() *nodestats.Federation {
	rs := f.core.ReplicationStats()
	out := &nodestats.Federation{Name: f.cfg.Name, Region: f.cfg.Region, Regions: []nodestats.Region{},
		Replaced: rs.Replaced, Conflicts: rs.Conflicts, SkewRefused: rs.SkewRefused, Received: f.received.Load(),
		TombstonesCollected: f.collected.Load()}
	for _, r := range f.Regions() {
		out.Regions = append(out.Regions, nodestats.Region{Name: r.Name, Nodes: r.Nodes, Healthy: r.Healthy,
			RTTMs: ms(r.RTT), LagMs: ms(r.Lag), InLagP50Ms: ms(r.InLagP50), InLagP99Ms: ms(r.InLagP99), Sent: r.Sent, Resyncs: r.Resyncs, ResyncSent: r.ResyncSent,
			BytesRaw: r.BytesRaw, BytesSent: r.BytesSent})
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
