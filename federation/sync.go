package federation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// Blue/green sync: this cluster ("green") follows another ("blue") one
// way, for a migration (docs/design/20261206_federation.md, "Blue/green").
//
//	green, leader of partition g = b mod G       blue, leader of partition b
//	  Sync.pull(b): state from SyncState(g)
//	  copying: MethodSyncPage {b, need, cursor} ──▶ Committed(b), then PartitionPage
//	  following: MethodSyncChanges {b, from} ─────▶ waits ≤ 1 s for a write, SyncChanges
//	  values regrouped by green's partitions ─▶ each group's leader here:
//	      ApplyReplicated (resync: merged by the federation rule, no position)
//	  then SaveSyncState(g): the position, after every value before it is applied
//
// Each blue partition b is pulled by the leader of green's partition
// b mod G (G: green's partition count): the work spreads over green's
// nodes as their leaderships do, one puller per blue partition, and the
// state moves with the leadership, since it is stored in g's raft group.
//
// The copy needs no snapshot of blue: its first page answers the applied
// index L0 read before the page, every page holds every write through
// L0, and following then starts from L0, so what a page missed (written
// after L0) comes from the log. Merging is idempotent and states are
// ordered by their version vectors, so values read twice or out of order
// change nothing; a state is saved only after every value read before it
// is applied, and a restart (or a new leader of g) resumes from the last
// one saved: at least once, which the merge makes exactly once in effect.
// A position blue's log no longer holds (--log-keep) starts the copy over.

// syncSource names blue to ApplyReplicated: no region can have this name
// (ValidName), and sync batches move no region's position.
const syncSource = "~blue"

// SyncConfig configures a green node's side of a sync. From, Cluster and
// Client are required; every other zero field takes the default in its
// comment.
type SyncConfig struct {
	// From is the QUIC address (host:port) of any core of blue: it names
	// blue's partition leaders, and is asked again when a call fails.
	From string
	// Cluster is this node's (green) cluster: its leaderships decide which
	// blue partitions this node pulls, and values go to the leaders of
	// green's partitions through it.
	Cluster *cluster.Node
	// Client calls blue and green's other cores. Its certificate must be a
	// core's of blue's CA: green runs with blue's --cluster-secret.
	Client *transport.Client
	// CopyBytesPerSecond bounds the records this node copies per second,
	// all partitions together, during the initial copy (the live stream is
	// not bounded: it must keep up). Default DefaultSyncCopyRate.
	CopyBytesPerSecond int
	// PageBytes bounds the records of one page or change batch read from
	// blue. Default 256 KiB (at most 1 MiB).
	PageBytes int
	// MaxCopies bounds the blue partitions this node copies at once.
	// Default 4.
	MaxCopies int
	// CallTimeout bounds one call to blue. Default 10 s.
	CallTimeout time.Duration
	// RetryInterval is the pause after a failed call before the partition
	// is tried again. Default 500 ms.
	RetryInterval time.Duration
	// Logger receives the sync's events. Nil discards them.
	Logger *slog.Logger
}

// DefaultSyncCopyRate is the default CopyBytesPerSecond: 32 MiB/s, half
// the pace of the snapshots a cluster sends its own new replicas.
const DefaultSyncCopyRate = 32 << 20

// EnsureDefaults fills zero fields with their defaults.
func (c *SyncConfig) EnsureDefaults() {
	if c.CopyBytesPerSecond == 0 {
		c.CopyBytesPerSecond = DefaultSyncCopyRate
	}
	if c.PageBytes == 0 {
		c.PageBytes = 256 << 10
	}
	if c.MaxCopies == 0 {
		c.MaxCopies = 4
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *SyncConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.From); err != nil {
		errs = append(errs, fmt.Errorf("sync from %q: want host:port", c.From))
	}
	if c.Cluster == nil || c.Client == nil {
		errs = append(errs, errors.New("Cluster and Client are required"))
	}
	if c.CopyBytesPerSecond < 0 || c.PageBytes < 0 || c.PageBytes > maxSyncBytes || c.MaxCopies < 0 || c.CallTimeout < 0 || c.RetryInterval < 0 {
		errs = append(errs, errors.New("CopyBytesPerSecond, MaxCopies, CallTimeout and RetryInterval must not be negative, PageBytes must be 0 to 1 MiB"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("federation: invalid sync config: %w", errors.Join(errs...))
	}
	return nil
}

// Sync is a green node's side of a blue/green sync: the pullers of the
// blue partitions this node is responsible for.
type Sync struct {
	cfg     SyncConfig
	log     *slog.Logger
	core    *core.Node
	limiter *rate.Limiter // the copy's bytes per second
	copies  chan struct{} // bounds the partitions copying at once
	started time.Time

	mu     sync.Mutex
	blue   syncInfo        // blue's partitions and their leaders' addresses; guarded by mu
	infoOK time.Time       // when blue was last asked; zero: ask again; guarded by mu
	pulls  map[int]*puller // blue partition → its puller, running or not; guarded by mu

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// puller is one blue partition's pull on this node.
type puller struct {
	blue, owner int         // the blue partition, and the green one whose leader pulls it
	running     atomic.Bool // a pull goroutine runs
	following   atomic.Bool // the copy is done
	copied      atomic.Uint64
	behindSince atomic.Int64 // Unix ns since when green lacks changes blue has; 0 caught up
}

// StartSync starts following blue. Every core of green should run it (the
// pullers go where the leaderships are); every core must serve the sync
// methods (ServeSync) for the values to reach the leaders of its partitions.
func StartSync(cfg SyncConfig) (*Sync, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sync{cfg: cfg, log: cfg.Logger.With("component", "sync", "sync_from", cfg.From), core: cfg.Cluster.Core(),
		limiter: rate.NewLimiter(rate.Limit(cfg.CopyBytesPerSecond), max(cfg.CopyBytesPerSecond, cfg.PageBytes)),
		copies:  make(chan struct{}, cfg.MaxCopies), started: time.Now(), pulls: map[int]*puller{}, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	s.log.Info("following another cluster (blue/green sync)")
	return s, nil
}

// Close stops the pullers. What they applied stays, and their positions
// are where the next start resumes.
func (s *Sync) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

// run starts a puller for every blue partition whose green owner this
// node leads, and asks blue where its leaders are now and then.
func (s *Sync) run() {
	defer s.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	failing := false
	for {
		s.mu.Lock()
		stale := time.Since(s.infoOK) > 5*time.Second
		s.mu.Unlock()
		if stale {
			if err := s.refreshInfo(); err != nil {
				if !failing {
					s.log.Warn("cannot reach the cluster to follow; retrying", "err", err)
				}
				failing = true
			} else if failing {
				s.log.Info("reached the cluster to follow again")
				failing = false
			}
		}
		s.mu.Lock()
		for b := range s.blue.partitions {
			p := s.pulls[b]
			if p == nil {
				p = &puller{blue: b, owner: b % s.core.Partitions()}
				s.pulls[b] = p
			}
			if _, here, _ := s.cfg.Cluster.LeaderAddr(p.owner); here && !p.running.Load() {
				p.running.Store(true)
				s.wg.Add(1)
				go s.pull(p, s.blue.partitions)
			}
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// refreshInfo asks blue for its partitions' leaders: From, else any
// leader it named before (From may be down).
func (s *Sync) refreshInfo() error {
	s.mu.Lock()
	addrs := []string{s.cfg.From}
	for _, l := range s.blue.leaders {
		if l != "" && l != s.cfg.From {
			addrs = append(addrs, l)
		}
	}
	known := s.blue.partitions
	s.mu.Unlock()
	var errs []error
	for _, addr := range addrs[:min(len(addrs), 4)] {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
		out, err := s.cfg.Client.Call(ctx, addr, wire.MethodSyncInfo, nil)
		cancel()
		if err == nil {
			var in syncInfo
			if in, err = decodeSyncInfo(out); err == nil {
				if known != 0 && in.partitions != known {
					return fmt.Errorf("federation: the cluster at %s has %d partitions, not %d as before: not the same cluster", addr, in.partitions, known)
				}
				for i, l := range in.leaders {
					if l == "" {
						in.leaders[i] = addr // the core asked, or unknown: ask it
					}
				}
				s.mu.Lock()
				s.blue, s.infoOK = in, time.Now()
				s.mu.Unlock()
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return errors.Join(errs...)
}

// forgetInfo makes the next look ask blue where its leaders are.
func (s *Sync) forgetInfo() {
	s.mu.Lock()
	s.infoOK = time.Time{}
	s.mu.Unlock()
}

// callBlue calls the leader of blue partition b (as last known), else From.
func (s *Sync) callBlue(ctx context.Context, b int, method uint16, req []byte) ([]byte, error) {
	s.mu.Lock()
	addr := s.cfg.From
	if b < len(s.blue.leaders) {
		addr = s.blue.leaders[b]
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	return s.cfg.Client.Call(ctx, addr, method, req)
}

// syncState is a puller's position in its blue partition, stored in its
// green owner partition (core.SaveSyncState):
//
//	byte format (1), byte phase, uvarint start, uvarint pos, bytes cursor, uvarint copied
type syncState struct {
	phase  byte   // phaseNew, phaseCopying or phaseFollowing
	start  uint64 // the blue applied index read before the copy's first page (L0)
	pos    uint64 // following: blue's log is applied here through pos
	cursor []byte // copying: the next page starts after this key
	copied uint64 // values the copy has applied (for the metrics)
}

const (
	phaseNew = iota
	phaseCopying
	phaseFollowing
)

func (st *syncState) encode() []byte {
	b := []byte{1, st.phase}
	b = binary.AppendUvarint(b, st.start)
	b = binary.AppendUvarint(b, st.pos)
	b = codec.AppendBytes(b, st.cursor)
	return binary.AppendUvarint(b, st.copied)
}

func decodeSyncState(b []byte) (syncState, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	format, phase := d.Byte(), d.Byte()
	st := syncState{phase: phase, start: d.Uvarint(), pos: d.Uvarint(), cursor: d.Bytes(), copied: d.Uvarint()}
	if d.Err != nil || len(d.B) != 0 || format != 1 || phase > phaseFollowing {
		return syncState{}, errors.New("federation: malformed sync state")
	}
	st.cursor = append([]byte(nil), st.cursor...)
	return st, nil
}

// stateName names blue partition b's state: blue's partition count is in
// it, so a blue of another shape starts afresh rather than resume at
// positions of another log.
func stateName(blueParts, b int) string { return fmt.Sprintf("sync/%d/%d", blueParts, b) }

// pull brings green up to date with blue partition p.blue, page by page
// and then change by change, while this node leads p.owner.
func (s *Sync) pull(p *puller, blueParts int) {
	defer s.wg.Done()
	defer p.running.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	log := s.log.With("blue_partition", p.blue, "partition", p.owner)
	name := stateName(blueParts, p.blue)
	leads := func() bool { _, here, _ := s.cfg.Cluster.LeaderAddr(p.owner); return here }
	p.behindSince.Store(time.Now().UnixNano())

	var st syncState
	for {
		raw, found, err := s.core.SyncState(ctx, p.owner, name)
		if err == nil && found {
			st, err = decodeSyncState(raw)
		}
		if err == nil {
			break
		}
		log.Warn("reading the sync state", "err", err)
		if !s.pause(ctx) || !leads() {
			return
		}
	}
	p.copied.Store(st.copied)
	p.following.Store(st.phase == phaseFollowing)
	switch st.phase {
	case phaseCopying:
		log.Info("resuming a blue partition's copy", "items_copied", st.copied, "start", st.start)
	case phaseFollowing:
		log.Info("resuming a blue partition's changes", "items_copied", st.copied, "position", st.pos)
	}
	failing := false
	var saved time.Time
	savedPos := st.pos
	for ctx.Err() == nil && leads() {
		var err error
		if st.phase == phaseFollowing {
			err = s.follow(ctx, p, &st, log)
			// The position moves with every write to blue; saving it every
			// time would cost a raft write per answer. A restart reads again
			// at most 250 ms of changes: merging them again changes nothing.
			if err == nil && st.phase == phaseFollowing && st.pos != savedPos && time.Since(saved) >= 250*time.Millisecond {
				if err = s.core.SaveSyncState(ctx, p.owner, name, st.encode()); err == nil {
					saved, savedPos = time.Now(), st.pos
				}
			} else if err == nil && st.phase != phaseFollowing {
				err = s.core.SaveSyncState(ctx, p.owner, name, st.encode()) // copying again: say so
			}
		} else if err = s.copyPage(ctx, p, &st, log); err == nil {
			err = s.core.SaveSyncState(ctx, p.owner, name, st.encode())
		}
		switch {
		case err == nil:
			if failing {
				log.Info("pulling a blue partition works again")
				failing = false
			}
			continue
		case ctx.Err() != nil:
			return
		case !failing:
			log.Warn("pulling a blue partition fails; retrying", "err", err)
			failing = true
		default:
			log.Debug("pulling a blue partition failed", "err", err)
		}
		s.forgetInfo()
		if !s.pause(ctx) {
			return
		}
	}
}

// pause waits RetryInterval; false when the sync stops meanwhile.
func (s *Sync) pause(ctx context.Context) bool {
	t := time.NewTimer(s.cfg.RetryInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// copyPage copies blue partition p.blue's next page into green.
func (s *Sync) copyPage(ctx context.Context, p *puller, st *syncState, log *slog.Logger) error {
	select {
	case s.copies <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.copies }()
	req := syncPageReq{need: st.start, cursor: st.cursor, maxItems: maxSyncPageItems, maxBytes: s.cfg.PageBytes}
	out, err := s.callBlue(ctx, p.blue, wire.MethodSyncPage, req.append(appendHeader(nil, false, p.blue)))
	if err != nil {
		return err
	}
	a, err := decodePageAnswer(out)
	if err != nil {
		return err
	}
	if st.phase == phaseNew {
		st.start, st.phase = a.committed, phaseCopying
	}
	size := 0
	for i := range a.values {
		size += a.values[i].Size()
	}
	if err := s.limiter.WaitN(ctx, min(size, s.limiter.Burst())); err != nil {
		return err
	}
	if err := s.apply(ctx, a.values); err != nil {
		return err
	}
	st.cursor = a.next
	st.copied += uint64(len(a.values))
	p.copied.Store(st.copied)
	if a.next == nil {
		st.phase, st.pos, st.cursor = phaseFollowing, st.start, nil
		p.following.Store(true)
		log.Info("copied a blue partition; following its changes", "items_copied", st.copied, "position", st.start)
	}
	return nil
}

// follow applies blue partition p.blue's next changes.
func (s *Sync) follow(ctx context.Context, p *puller, st *syncState, log *slog.Logger) error {
	asked := time.Now()
	req := syncChangesReq{from: st.pos, maxBytes: s.cfg.PageBytes, waitMs: 1000}
	out, err := s.callBlue(ctx, p.blue, wire.MethodSyncChanges, req.append(appendHeader(nil, false, p.blue)))
	if err != nil {
		return err
	}
	a, err := decodeChangesAnswer(out)
	if err != nil {
		return err
	}
	if a.compacted {
		log.Warn("blue's log no longer holds this green's position (see --log-keep there): copying the partition again", "position", st.pos)
		*st = syncState{copied: st.copied}
		p.following.Store(false)
		return nil
	}
	if len(a.values) > 0 && p.behindSince.Load() == 0 {
		// Behind since before the request at most: it waited for them.
		p.behindSince.Store(asked.UnixNano())
	}
	if err := s.apply(ctx, a.values); err != nil {
		return err
	}
	st.pos = max(st.pos, a.to)
	if st.pos >= a.committed {
		p.behindSince.Store(0)
	} else if p.behindSince.Load() == 0 {
		p.behindSince.Store(asked.UnixNano())
	}
	return nil
}

// maxApplyBytes bounds the values of one ApplyReplicated: one raft entry,
// well within a transport frame when it goes to the followers.
const maxApplyBytes = 512 << 10

// apply merges values into green, each at the leader of its green
// partition, all groups at once; it returns once every one is applied.
func (s *Sync) apply(ctx context.Context, values []core.RemoteValue) error {
	if len(values) == 0 {
		return nil
	}
	parts := s.core.Partitions()
	groups := map[int][][]core.RemoteValue{}
	sizes := map[int]int{}
	for _, v := range values {
		g := core.PartitionOf(v.Tenant, v.ID, parts)
		chunks := groups[g]
		if len(chunks) == 0 || sizes[g]+v.Size() > maxApplyBytes {
			chunks, sizes[g] = append(chunks, nil), 0
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], v)
		sizes[g] += v.Size()
		groups[g] = chunks
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for g, chunks := range groups {
		wg.Go(func() {
			for _, chunk := range chunks {
				if err := s.applyTo(ctx, g, chunk); err != nil {
					errs <- fmt.Errorf("partition %d: %w", g, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

// applyTo merges values of green partition g at its leader.
func (s *Sync) applyTo(ctx context.Context, g int, values []core.RemoteValue) error {
	addr, here, ok := s.cfg.Cluster.LeaderAddr(g)
	switch {
	case here:
		_, err := s.core.ApplyReplicated(ctx, g, syncSource, 0, 0, true, values)
		return err
	case !ok:
		return fmt.Errorf("%w: partition %d has no leader", core.ErrNotLeader, g)
	}
	cmd := &core.Command{Op: core.OpReplicate, Source: syncSource, Resync: true, Values: values}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	_, err := s.cfg.Client.Call(ctx, addr, wire.MethodSyncApply, cmd.AppendEncode(appendHeader(nil, false, g)))
	return err
}

// Stats is the sync section of the node's metrics: for the blue
// partitions this node pulls (those whose green owner it leads).
func (s *Sync) Stats() *nodestats.Sync {
	out := &nodestats.Sync{From: s.cfg.From, State: "following"}
	now := time.Now()
	var lag time.Duration
	s.mu.Lock()
	known := s.blue.partitions > 0
	for _, p := range s.pulls {
		out.ItemsCopied += p.copied.Load()
		if _, here, _ := s.cfg.Cluster.LeaderAddr(p.owner); !here {
			continue
		}
		out.Partitions++
		if !p.running.Load() || !p.following.Load() {
			out.State = "copying"
		}
		if !p.running.Load() {
			lag = max(lag, now.Sub(s.started))
		} else if b := p.behindSince.Load(); b != 0 {
			lag = max(lag, now.Sub(time.Unix(0, b)))
		}
	}
	s.mu.Unlock()
	if !known {
		// Blue has not answered yet: nothing is known to be copied.
		out.State = "copying"
		lag = now.Sub(s.started)
	}
	out.LagMs = ms(lag)
	return out
}
