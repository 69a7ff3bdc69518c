package federation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/wire"
)

// link streams the changes of the partitions this node leads to one other
// region.
//
// Per partition it keeps two positions in the partition's log: acked, how
// far the other region has applied it (what that region's answer said),
// and read, how far this node has looked for local writes. Between them
// lie only entries with nothing to send (other regions' batches, failed
// writes): a batch covers (acked, to], so the receiver's position never
// skips a change. Any error, and any new leadership here, forgets both:
// the next send asks the receiver where it is.
type link struct {
	f      *Federation
	region string
	sem    chan struct{} // bounds the partitions sending at once (Config.MaxInFlight)
	queued atomic.Int32  // partitions waiting for a slot in sem

	mu      sync.Mutex
	addrs   []string // the region's cores; guarded by mu
	next    int      // index in addrs of the core to call; guarded by mu
	parts   []partLink
	lastOK  time.Time // the last call that succeeded; guarded by mu
	lastErr time.Time // the last that failed; guarded by mu
	failing bool      // calls fail since the last success: logged once; guarded by mu

	rtt                    atomic.Int64 // nanoseconds
	sent, batches, resyncs atomic.Uint64
	resyncSent             atomic.Uint64  // values sent by resyncs
	rawBytes, wireBytes    atomic.Uint64  // batches' bytes before and after compression
	oldest                 []atomic.Int64 // per partition: hlc (ns) of the oldest value not yet acked, 0 if none
}

type partLink struct {
	inflight    bool
	known       bool // acked and read hold the receiver's position
	acked, read uint64
	retryAt     time.Time
}

func newLink(f *Federation, region string) *link {
	n := f.core.Partitions()
	return &link{f: f, region: region, sem: make(chan struct{}, f.cfg.MaxInFlight),
		parts: make([]partLink, n), oldest: make([]atomic.Int64, n)}
}

func (l *link) setAddrs(addrs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs = addrs
}

// addr is the region's core to call, "" when none is known.
func (l *link) addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.addrs) == 0 {
		return ""
	}
	return l.addrs[l.next%len(l.addrs)]
}

// failed moves to the region's next core and delays part's next try.
func (l *link) failed(part int, err error) {
	l.mu.Lock()
	l.next++
	l.lastErr = time.Now()
	pl := &l.parts[part]
	pl.known = false
	pl.inflight = false
	pl.retryAt = time.Now().Add(l.f.cfg.RetryInterval)
	first := !l.failing
	l.failing = true
	l.mu.Unlock()
	switch {
	case errors.Is(err, context.Canceled):
	case first:
		l.f.log.Warn("sending to a region fails; retrying", "peer_region", l.region, "partition", part, "err", err)
	default:
		l.f.log.Debug("sending to a region failed", "peer_region", l.region, "partition", part, "err", err)
	}
}

// run starts a send for every partition this node leads that has changes
// the region lacks, whenever the core commits.
func (l *link) run() {
	defer l.f.wg.Done()
	c := l.f.core
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		// Take the commit signal before looking, so that a commit after the
		// look still wakes the loop.
		_, changed := c.Committed(0)
		now := time.Now()
		l.mu.Lock()
		for p := range l.parts {
			pl := &l.parts[p]
			_, here, _ := l.f.cfg.Cluster.LeaderAddr(p)
			if !here {
				pl.known = false // a later leadership starts from the receiver's word
				l.oldest[p].Store(0)
				continue
			}
			if pl.inflight || now.Before(pl.retryAt) || len(l.addrs) == 0 {
				continue
			}
			if committed, _ := c.Committed(p); pl.known && committed <= pl.read {
				continue
			}
			pl.inflight = true
			l.f.wg.Add(1)
			go l.send(p)
		}
		l.mu.Unlock()
		select {
		case <-l.f.stop:
			return
		case <-changed:
			// Let the commits of the next millisecond join this look: it
			// bounds the looks (each asks every partition's leader) at a
			// thousand a second, whatever the commit rate.
			time.Sleep(time.Millisecond)
		case <-tick.C:
		}
	}
}

// send brings the region up to date with partition p, batch by batch.
func (l *link) send(p int) {
	defer l.f.wg.Done()
	l.queued.Add(1)
	select {
	case l.sem <- struct{}{}:
		l.queued.Add(-1)
	case <-l.f.stop:
		l.queued.Add(-1)
		l.failed(p, context.Canceled)
		return
	}
	defer func() { <-l.sem }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := l.catchUp(ctx, p); err != nil {
		l.failed(p, err)
		return
	}
	l.mu.Lock()
	l.parts[p].inflight = false
	l.mu.Unlock()
}

func (l *link) catchUp(ctx context.Context, p int) error {
	l.mu.Lock()
	pl := l.parts[p]
	l.mu.Unlock()
	if !pl.known {
		pos, err := l.position(ctx, p)
		if err != nil {
			return err
		}
		pl.acked, pl.read, pl.known = pos, pos, true
	}
	save := func() {
		l.mu.Lock()
		l.parts[p].acked, l.parts[p].read, l.parts[p].known = pl.acked, pl.read, true
		l.mu.Unlock()
	}
	// Batches are pipelined: up to pipelineDepth in flight, each starting
	// where the one before it ends (sentTo), so that a change waits for
	// one trip to the region, not for the batches before it to come back.
	// The receiver applies them in order (its inbox holds a batch until
	// its position reaches the batch's start); answers are taken in order.
	type flight struct {
		to   uint64
		done chan flightResult
	}
	var flights []flight
	sentTo := pl.acked
	// A partition that never stops changing would keep its slot (sem)
	// forever and starve the others: past yieldAfter, if another partition
	// waits for a slot, it launches nothing more, lands its batches and
	// gives the slot up (run restarts it). With none waiting it goes on:
	// landing a pipeline holds every new change for a round trip.
	yield := time.Now().Add(yieldAfter)
	// Batches are paced a round trip's pacedPerTrip-th apart: sent as
	// fast as changes come, a busy partition would fill the pipeline with
	// small batches in a fraction of a round trip and then hold every
	// change for the rest of it; paced, a change waits at most a gap.
	var lastSend time.Time
	gap := time.Duration(l.rtt.Load()) / pacedPerTrip
	pacer := time.NewTimer(time.Hour)
	pacer.Stop()
	defer pacer.Stop()
	for {
		committed, changed := l.f.core.Committed(p)
		wait := time.Duration(0)
		if len(flights) > 0 {
			wait = gap - time.Since(lastSend)
		}
		if len(flights) < pipelineDepth && pl.read < committed && wait <= 0 && (time.Now().Before(yield) || l.queued.Load() == 0) {
			ch, err := l.f.core.LocalChanges(ctx, p, pl.read, l.f.cfg.BatchBytes)
			if errors.Is(err, multiraft.ErrCompacted) {
				if len(flights) > 0 {
					err = errors.New("federation: the log was compacted under batches in flight")
				} else if err = l.resync(ctx, p, pl.acked); err == nil {
					l.mu.Lock()
					l.parts[p].known = false // ask again: the copy moved the position
					l.mu.Unlock()
					return nil
				}
			}
			if err != nil {
				return err
			}
			pl.read = ch.To
			if len(ch.Values) == 0 {
				continue
			}
			l.noteOldest(p, ch.Values)
			f := flight{to: ch.To, done: make(chan flightResult, 1)}
			cmd := &core.Command{Op: core.OpReplicate, Source: l.f.cfg.Region, From: sentTo, To: ch.To, Values: ch.Values}
			go func() {
				a, err := l.apply(ctx, p, cmd)
				f.done <- flightResult{a, err, len(cmd.Values)}
			}()
			flights = append(flights, f)
			sentTo = ch.To
			lastSend = time.Now()
			continue
		}
		if len(flights) == 0 {
			if pl.read >= committed {
				l.oldest[p].Store(0)
			}
			save()
			return nil
		}
		var r flightResult
		var paced <-chan time.Time
		if wait > 0 && pl.read < committed && len(flights) < pipelineDepth {
			pacer.Reset(wait)             // Go 1.23 timers: no stale tick after Stop or Reset
			paced, changed = pacer.C, nil // sending is due at the timer, not before
		}
		select {
		case r = <-flights[0].done:
			pacer.Stop()
		case <-paced:
			continue
		case <-changed:
			if len(flights) < pipelineDepth {
				time.Sleep(time.Millisecond) // let the next millisecond's commits join
			}
			continue // more to send while the batches fly
		case <-ctx.Done():
			return ctx.Err()
		}
		to := flights[0].to
		flights = flights[1:]
		switch {
		case r.err != nil:
			// Later batches may still land; they are applied once or
			// refused as gaps, and the next send asks where the region is.
			return r.err
		case r.a.gap:
			return fmt.Errorf("federation: region %s holds partition %d through %d only", l.region, p, r.a.position)
		}
		l.sent.Add(uint64(r.values))
		pl.acked = max(pl.acked, r.a.position, to)
		if len(flights) == 0 {
			l.oldest[p].Store(0)
		}
		save()
	}
}

// pipelineDepth bounds the batches of one partition in flight to a region;
// pacedPerTrip is how many a busy partition sends per round trip: half, so
// that a round trip twice as long as the last measured (a slow apply over
// there) does not fill the pipeline and hold new changes back.
const (
	pipelineDepth = 16
	pacedPerTrip  = 8
)

// yieldAfter is how long a partition may send before it gives its slot
// (Config.MaxInFlight) to others.
const yieldAfter = 200 * time.Millisecond

type flightResult struct {
	a      applied
	err    error
	values int
}

// noteOldest records the oldest clock time among values about to be sent,
// for the region's lag.
func (l *link) noteOldest(p int, values []core.RemoteValue) {
	if l.oldest[p].Load() != 0 {
		return
	}
	oldest := int64(0)
	for i := range values {
		if t := values[i].Time(); t != 0 && (oldest == 0 || t < oldest) {
			oldest = t
		}
	}
	l.oldest[p].Store(oldest)
}

// resync brings the region's partition p up to this one's when the log no
// longer holds where the region is: it compares the partition's digest
// with the region's (core.PartitionDigest) and sends every item and
// tombstone of the ranges that differ, as of one consistent read, then
// moves the position to the applied index the digest reflects. A change
// made after that index is in the log past it and streams as usual.
func (l *link) resync(ctx context.Context, p int, acked uint64) error {
	l.resyncs.Add(1)
	// The finest digest here, folded to the resolution this partition's
	// size calls for: the region computes only that one.
	local, applied, values, err := l.f.core.PartitionDigest(ctx, p, core.MaxDigestBits)
	if err != nil {
		return err
	}
	b := core.DigestBits(values)
	local = core.FoldDigest(local, b)
	remote, err := l.digest(ctx, p, b)
	if err != nil {
		return err
	}
	differ := make([]bool, len(local))
	ranges := 0
	for i := range local {
		if local[i] != remote[i] {
			differ[i] = true
			ranges++
		}
	}
	l.f.log.Info("resyncing a partition by digest: the log no longer holds the region's position",
		"peer_region", l.region, "partition", p, "position", acked, "ranges_differing", ranges, "ranges", len(local))
	var batch []core.RemoteValue
	size := 0
	flush := func(to uint64) error {
		a, err := l.apply(ctx, p, &core.Command{Op: core.OpReplicate, Source: l.f.cfg.Region,
			From: acked, To: to, Resync: true, Values: batch})
		if err != nil {
			return err
		}
		if a.gap {
			return fmt.Errorf("federation: region %s refused a copy of partition %d as a gap", l.region, p)
		}
		l.sent.Add(uint64(len(batch)))
		l.resyncSent.Add(uint64(len(batch)))
		batch, size = batch[:0], 0
		return nil
	}
	if ranges > 0 {
		// A second read, as of a later state: what changed since the
		// digest is newer and merges the same way; the position moves only
		// to the digest's index.
		if _, err := l.f.core.PartitionValues(ctx, p, func(v core.RemoteValue) error {
			if !differ[core.DigestBucket(v.Tenant, v.ID, b)] {
				return nil
			}
			batch = append(batch, v)
			if size += v.Size(); size >= l.f.cfg.BatchBytes {
				return flush(0)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return flush(applied)
}

// digest asks the region for partition p's digest of 2^b ranges.
func (l *link) digest(ctx context.Context, p, b int) ([]uint64, error) {
	req := append(codec.AppendString(appendHeader(nil, false, p), l.f.cfg.Region), byte(b))
	out, err := l.call(ctx, wire.MethodFedDigest, req)
	if err != nil {
		return nil, err
	}
	if len(out) != 8<<b {
		return nil, fmt.Errorf("federation: a digest of %d bytes from region %s, want %d", len(out), l.region, 8<<b)
	}
	d := make([]uint64, 1<<b)
	for i := range d {
		d[i] = binary.LittleEndian.Uint64(out[8*i:])
	}
	return d, nil
}

// position asks the region how far it has applied partition p's log.
func (l *link) position(ctx context.Context, p int) (uint64, error) {
	req := codec.AppendString(appendHeader(nil, false, p), l.f.cfg.Region)
	out, err := l.call(ctx, wire.MethodFedPosition, req)
	if err != nil {
		return 0, err
	}
	pos, n := binary.Uvarint(out)
	if n <= 0 || n != len(out) {
		return 0, errors.New("federation: malformed position answer")
	}
	return pos, nil
}

// apply sends one batch.
func (l *link) apply(ctx context.Context, p int, cmd *core.Command) (applied, error) {
	raw := cmd.AppendEncode(nil)
	req := append(binary.AppendUvarint([]byte{flagCompressed}, uint64(p)), s2.Encode(nil, raw)...)
	l.rawBytes.Add(uint64(len(raw)))
	l.wireBytes.Add(uint64(len(req)))
	out, err := l.call(ctx, wire.MethodFedApply, req)
	if err != nil {
		return applied{}, err
	}
	a, err := decodeApplied(out)
	if err != nil {
		return a, err
	}
	l.batches.Add(1)
	l.answered()
	return a, nil
}

// answered records a call the region answered: it is healthy.
func (l *link) answered() {
	l.mu.Lock()
	now := time.Now()
	away := now.Sub(l.lastOK)
	seen := !l.lastOK.IsZero()
	l.lastOK = now
	recovered := l.failing
	l.failing = false
	l.mu.Unlock()
	if !recovered {
		return
	}
	l.f.log.Info("sending to a region works again", "peer_region", l.region, "away", away.Round(time.Second))
	if seen && away > l.f.cfg.RegionDeadAfter {
		// Its deletes' tombstones, and ours, may be collected by now: it
		// may hold items deleted here that nothing can remove from it.
		l.f.log.Error("a region was unreachable for longer than --region-dead-after: it may hold items deleted elsewhere; wipe its storage and let it copy the others",
			"peer_region", l.region, "away", away.Round(time.Second), "region_dead_after", l.f.cfg.RegionDeadAfter)
	}
}

// ping measures the round trip to the region's current core. A region
// this node has nothing to send to is healthy as long as it answers.
func (l *link) ping() {
	addr := l.addr()
	if addr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if _, err := l.f.cfg.Client.Call(ctx, addr, wire.MethodPing, nil); err != nil {
		l.mu.Lock()
		l.lastErr = time.Now()
		l.mu.Unlock()
		return
	}
	l.rtt.Store(int64(time.Since(start)))
	l.answered()
}

func (l *link) call(ctx context.Context, method uint16, req []byte) ([]byte, error) {
	addr := l.addr()
	if addr == "" {
		return nil, fmt.Errorf("federation: no core of region %s is known", l.region)
	}
	ctx, cancel := context.WithTimeout(ctx, l.f.cfg.CallTimeout)
	defer cancel()
	return l.f.cfg.Client.Call(ctx, addr, method, req)
}

func (l *link) status() Region {
	l.mu.Lock()
	r := Region{Name: l.region, Nodes: len(l.addrs),
		Healthy: len(l.addrs) > 0 && (l.lastErr.IsZero() || l.lastOK.After(l.lastErr))}
	l.mu.Unlock()
	r.RTT = time.Duration(l.rtt.Load())
	r.Sent, r.Batches, r.Resyncs, r.ResyncSent = l.sent.Load(), l.batches.Load(), l.resyncs.Load(), l.resyncSent.Load()
	r.BytesRaw, r.BytesSent = l.rawBytes.Load(), l.wireBytes.Load()
	now := time.Now().UnixNano()
	for p := range l.oldest {
		if o := l.oldest[p].Load(); o != 0 && now > o {
			r.Lag = max(r.Lag, time.Duration(now-o))
		}
	}
	return r
}
