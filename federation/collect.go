package federation

import (
	"context"
	"time"
)

// Tombstone collection. A delete leaves a tombstone so that an older value
// arriving later (a slow batch, a copy from a region that was away) does
// not bring the item back. Tombstones are kept RegionDeadAfter, the time
// within which every region is taken to have received every delete — the
// rule Cassandra's gc_grace_seconds follows — and then each partition's
// leader removes its old ones through raft (core.CollectTombstones). From
// then on the partition drops an unknown value older than the newest
// tombstone it removed, logging it as a conflict's loser: it may be one of
// the deleted values. A region away longer than RegionDeadAfter may hold
// values whose deletes the others no longer remember; it must be resynced
// from empty storage when it returns.
//
// Keeping tombstones until every region has acknowledged the delete would
// free them sooner, but a delete relayed through a third region, and a
// batch sent before the delete was applied and still in flight, make that
// acknowledgement subtle to define; the time rule is simple and safe.

// collect runs the collection every CollectInterval.
func (f *Federation) collect() {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.CollectInterval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.collectOnce()
		}
	}
}

// collectOnce removes the tombstones older than RegionDeadAfter from every
// partition this node leads, a batch at a time.
func (f *Federation) collectOnce() {
	horizon := time.Now().Add(-f.cfg.RegionDeadAfter).UnixNano()
	for p := range f.core.Partitions() {
		if _, here, _ := f.cfg.Cluster.LeaderAddr(p); !here {
			continue
		}
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), f.cfg.CallTimeout)
			n, err := f.core.CollectTombstones(ctx, p, horizon)
			cancel()
			f.collected.Add(uint64(n))
			if err != nil {
				f.log.Warn("collecting tombstones", "partition", p, "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
	}
}
