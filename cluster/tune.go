package cluster

import (
	"sync"
	"time"

	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tuning"
)

// DefaultTuneWindow is Config.TuneWindow's default.
const DefaultTuneWindow = 5 * time.Second

// hotState is a node's part in hot reads (leases.go) and self-tuning.
type hotState struct {
	sketch *hotness
	leases *leaseTable // as a leader
	copies *hotCopies  // as a holder
	// duration is the lease a leader grants: the profile's, at most half
	// an election timeout (see leases.go).
	duration time.Duration

	mu      sync.Mutex
	profile tuning.Profile // in force; guarded by mu
	tuner   *tuning.Tuner  // nil unless auto; guarded by mu
	last    struct{ reads, writes, hits, misses uint64 }
}

func (h *hotState) share() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.profile.HotShare
}

// startTuning sets the node's profile (Config.Profile) and, under auto,
// starts the loop that moves it.
func (n *Node) startTuning() error {
	p, err := tuning.Lookup(n.cfg.Profile)
	if err != nil {
		return err
	}
	n.hot = &hotState{sketch: newHotness(), leases: newLeaseTable(), copies: newHotCopies(),
		duration: min(p.LeaseDuration, n.core.ElectionTimeout()/2), profile: p}
	if n.cfg.Profile == tuning.Auto {
		n.hot.tuner = tuning.NewTuner()
	}
	n.apply(p)
	n.log.Info("profile", "profile", n.cfg.Profile, "settings", p.String(), "lease", n.hot.duration)
	return nil
}

// apply puts profile p's settings in force.
func (n *Node) apply(p tuning.Profile) {
	n.hot.mu.Lock()
	n.hot.profile = p
	n.hot.mu.Unlock()
	// A reader's own cache (Config.Core.CacheBytes) is a floor.
	n.core.SetCacheBytes(max(p.CacheBytes, n.cfg.Core.CacheBytes))
	on := p.HotReads && !n.cfg.NoHotReads
	if n.hotReads.Swap(on) && !on {
		n.hot.copies.clear()
	}
	n.followerReads.Store(p.FollowerReads)
}

// tuneLoop starts a hot-item window every TuneWindow and, under auto,
// feeds the tuner one sample per window.
func (n *Node) tuneLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.TuneWindow)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.hot.sketch.rotate()
		n.hot.leases.prune(time.Now())
		if n.hot.tuner != nil {
			n.tune()
		}
	}
}

// tune feeds the tuner the last window and applies its choice.
func (n *Node) tune() {
	// The mix asked of this node, not what its core served: a core sees
	// the writes of the partitions it leads only, and the reads of any.
	reads, writes := n.asked.reads.Load(), n.asked.writes.Load()
	cache := n.core.CacheStats()
	h := n.hot
	h.mu.Lock()
	s := tuning.Sample{Reads: reads - h.last.reads, Writes: writes - h.last.writes,
		CacheHits: cache.Hits - h.last.hits, CacheMisses: cache.Misses - h.last.misses}
	h.last.reads, h.last.writes, h.last.hits, h.last.misses = reads, writes, cache.Hits, cache.Misses
	name, changed := h.tuner.Observe(s)
	_, reason := h.tuner.Decisions()
	h.mu.Unlock()
	if !changed {
		return
	}
	p, _ := tuning.Lookup(name)
	n.apply(p)
	n.log.Info("self-tuning", "profile", name, "reason", reason, "settings", p.String())
}

// tuningStats is the tuning section of the node's metrics.
func (n *Node) tuningStats() *nodestats.Tuning {
	h := n.hot
	h.mu.Lock()
	defer h.mu.Unlock()
	t := &nodestats.Tuning{Profile: n.cfg.Profile, Active: h.profile.Name, CacheBytes: h.profile.CacheBytes,
		HotReads: n.hotReads.Load(), FollowerReads: n.followerReads.Load(), FollowerReadsServed: n.followerRead.Load(), HotKeys: h.leases.size(), LeasesGranted: h.leases.granted.Load(),
		Invalidations: h.leases.invalidations.Load(), HotHits: h.copies.hits.Load()}
	if h.tuner != nil {
		t.Decisions, t.Reason = h.tuner.Decisions()
		last := h.tuner.Last()
		t.ReadShare, t.HitRatio = last.ReadShare(), last.HitRatio()
	}
	return t
}
