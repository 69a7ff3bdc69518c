package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/objstore"
)

// ErrFenced is wrapped by the error of a Store that found another writer
// on its prefix: a segment or MANIFEST it meant to write had been written
// by someone else. The store fails and writes nothing more.
var ErrFenced = errors.New("segment: another writer owns this prefix")

// Store is a tiers.Store kept in an object store as a log of immutable
// segments. See the package documentation for the design.
type Store struct {
	cfg   Config
	objs  *counting
	log   *slog.Logger
	cache *valueCache

	// backoff is the first delay between attempts of a segment Put; it
	// doubles each time. Tests shorten it.
	backoff time.Duration

	mu      sync.RWMutex
	tree    *btree.BTreeG[entry] // guarded by mu; written only by the writer goroutine
	segs    map[uint64]*segInfo  // guarded by mu; every stored, not yet collected segment
	live    int64                // guarded by mu; Stats.LiveBytes
	applied uint64               // guarded by mu; seq of the last segment reflected in tree
	iters   map[*iter]uint64     // guarded by mu; open iterators and the applied seq of their snapshot
	closed  atomic.Bool          // set last in Close; reads answer ErrClosed after it

	qmu      sync.Mutex
	qcond    *sync.Cond
	queue    []*request // guarded by qmu; batches waiting for the next segment, in Apply order
	failed   error      // guarded by qmu; once set, never cleared: every later write fails
	stopping bool       // guarded by qmu; Close has begun: no more Applies

	nextSeq     uint64 // writer goroutine only (set by Open before it starts)
	lastTrigger uint64 // writer goroutine only: seq at which the last checkpoint was started

	ckptMu      sync.Mutex // serialises checkpoints and collection
	manifestSeq uint64     // guarded by ckptMu; the checkpoint MANIFEST names
	// ckptRefs holds the segments the checkpoint MANIFEST names references:
	// recovery loads them, so they are kept. Guarded by ckptMu.
	ckptRefs     map[uint64]bool
	manifestETag string   // guarded by ckptMu
	pending      []victim // guarded by ckptMu; collectable segments waiting for old iterators
	ckptRunning  atomic.Bool

	compactMu sync.Mutex // serialises Compact

	writerDone chan struct{}
	stopc      chan struct{} // closed by Close to stop background work
	bg         sync.WaitGroup
}

// segInfo is what the store knows about one stored segment.
//
// Invariant: refs is the number of index entries with this seq, and live
// the sum of their record lengths (e.n), so a segment with no dead records
// has live == size - segOverhead.
type segInfo struct {
	size int64
	refs int
	live int64
}

// segOverhead is the bytes of a segment outside its records.
const segOverhead = segHeaderLen + trailerLen

// victim is a segment removed from segs, to be deleted once no iterator
// whose snapshot is older than gen is open.
type victim struct {
	seq uint64
	gen uint64
}

var _ tiers.Store = (*Store)(nil)

// Open opens the store kept in cfg.Objects, creating it if the prefix is
// empty, and recovers its index: the checkpoint MANIFEST names plus every
// later segment.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		objs:       &counting{Store: cfg.Objects},
		log:        cfg.Logger.With("component", "segment"),
		cache:      newValueCache(cfg.CacheBytes),
		backoff:    200 * time.Millisecond,
		tree:       btree.NewG(32, lessEntry),
		segs:       make(map[uint64]*segInfo),
		ckptRefs:   make(map[uint64]bool),
		iters:      make(map[*iter]uint64),
		writerDone: make(chan struct{}),
		stopc:      make(chan struct{}),
	}
	s.qcond = sync.NewCond(&s.qmu)
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	go s.writeLoop()
	if cfg.CompactInterval > 0 {
		s.bg.Add(1)
		go s.compactLoop()
	}
	return s, nil
}

func (s *Store) recover(ctx context.Context) error {
	body, etag, err := s.objs.Get(ctx, manifestKey)
	var m manifest
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		etag, err = s.objs.Put(ctx, manifestKey, encodeManifest(0), objstore.Cond{IfNoneMatch: true})
		if errors.Is(err, objstore.ErrPreconditionFailed) {
			return fmt.Errorf("segment: MANIFEST appeared while creating the store: %w", ErrFenced)
		}
		if err != nil {
			return fmt.Errorf("segment: creating MANIFEST: %w", err)
		}
	case err != nil:
		return fmt.Errorf("segment: reading MANIFEST: %w", err)
	default:
		if m, err = decodeManifest(body); err != nil {
			return err
		}
	}
	s.manifestSeq, s.manifestETag = m.Checkpoint, etag

	var last uint64
	if err := s.objs.List(ctx, segPrefix, func(key string, size int64) error {
		seq, err := parseSeq(segPrefix, key)
		if err != nil {
			return err
		}
		s.segs[seq] = &segInfo{size: size}
		last = max(last, seq)
		return nil
	}); err != nil {
		return fmt.Errorf("segment: listing segments: %w", err)
	}

	if k := m.Checkpoint; k > 0 {
		body, _, err := s.objs.Get(ctx, ckptKey(k))
		if err != nil {
			return fmt.Errorf("segment: reading checkpoint %d named by MANIFEST: %w", k, err)
		}
		seq, entries, err := decodeCheckpoint(body)
		if err != nil {
			return fmt.Errorf("segment: %s: %w", ckptKey(k), err)
		}
		if seq != k {
			return corrupt("%s holds checkpoint %d", ckptKey(k), seq)
		}
		for _, e := range entries {
			info := s.segs[e.seq]
			if info == nil {
				return fmt.Errorf("segment: checkpoint %d references %s, which is missing", k, segKey(e.seq))
			}
			if e.off+e.n > info.size {
				return corrupt("checkpoint %d: record at %d+%d is past the end of %s (%d bytes)", k, e.off, e.n, segKey(e.seq), info.size)
			}
			s.tree.ReplaceOrInsert(e)
			s.ckptRefs[e.seq] = true
			info.refs++
			info.live += e.n
			s.live += e.liveBytes()
		}
	}
	s.applied = m.Checkpoint
	for seq := m.Checkpoint + 1; seq <= last; seq++ {
		if s.segs[seq] == nil {
			return fmt.Errorf("segment: %s is missing: checkpoint %d is followed by segments up to %d, and recovery needs every one", segKey(seq), m.Checkpoint, last)
		}
		size, recs, err := s.readSegment(ctx, seq)
		if err != nil {
			return err
		}
		s.applySegment(seq, size, recs)
	}
	s.nextSeq = max(m.Checkpoint, last) + 1
	s.lastTrigger = m.Checkpoint
	s.log.Info("opened", "location", s.cfg.Location, "checkpoint", m.Checkpoint,
		"replayed", s.applied-m.Checkpoint, "keys", s.tree.Len(), "live_bytes", s.live)
	return nil
}

// applySegment makes a stored segment's records visible, in order. The
// caller is the writer goroutine or Open.
func (s *Store) applySegment(seq uint64, size int64, recs []record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.segs[seq]
	if info == nil {
		info = &segInfo{size: size}
		s.segs[seq] = info
	}
	for _, r := range recs {
		if r.Del {
			if old, ok := s.tree.Delete(entry{key: r.Key}); ok {
				s.unref(old)
			}
			continue
		}
		e := entry{key: bytes.Clone(r.Key), seq: seq, off: r.Off, n: r.Len}
		if old, ok := s.tree.ReplaceOrInsert(e); ok {
			s.unref(old)
		}
		info.refs++
		info.live += e.n
		s.live += e.liveBytes()
	}
	s.applied = seq
}

// unref drops an index entry's share of its segment. Caller holds mu.
func (s *Store) unref(e entry) {
	info := s.segs[e.seq]
	info.refs--
	info.live -= e.n
	s.live -= e.liveBytes()
}

// Get implements tiers.Store: one index lookup and, unless the value is
// cached, one range read of its record.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		s.mu.RLock()
		if s.closed.Load() {
			s.mu.RUnlock()
			return nil, tiers.ErrClosed
		}
		e, ok := s.tree.Get(entry{key: key})
		s.mu.RUnlock()
		if !ok {
			return nil, tiers.ErrNotFound
		}
		v, err := s.readValue(ctx, e)
		// The key may have been overwritten and its old segment collected
		// between the lookup and the read; the index then has a newer entry.
		if errors.Is(err, objstore.ErrNotFound) && attempt < 3 {
			continue
		}
		return v, err
	}
}

// readValue returns a copy of the value of e's record.
func (s *Store) readValue(ctx context.Context, e entry) ([]byte, error) {
	l := loc{e.seq, e.off}
	if v, ok := s.cache.get(l); ok {
		return bytes.Clone(v), nil
	}
	b, err := s.objs.GetRange(ctx, segKey(e.seq), e.off, e.n)
	if err != nil {
		return nil, fmt.Errorf("segment: reading %q from %s: %w", e.key, segKey(e.seq), err)
	}
	v, err := checkRecord(b, e)
	if err != nil {
		return nil, err
	}
	s.cache.add(l, v)
	return bytes.Clone(v), nil
}

// checkRecord decodes the record of e from b and checks that it is e's.
func checkRecord(b []byte, e entry) ([]byte, error) {
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("segment: %s at offset %d: %w", segKey(e.seq), e.off, err)
	}
	if r.Del || r.Len != e.n || !bytes.Equal(r.Key, e.key) {
		return nil, corrupt("%s at offset %d holds key %q, want %q", segKey(e.seq), e.off, r.Key, e.key)
	}
	return r.Value, nil
}

// readSegment reads segment seq whole and checks it: its size and records
// (aliasing the read bytes).
func (s *Store) readSegment(ctx context.Context, seq uint64) (int64, []record, error) {
	body, _, err := s.objs.Get(ctx, segKey(seq))
	if err != nil {
		return 0, nil, fmt.Errorf("segment: reading %s: %w", segKey(seq), err)
	}
	got, recs, err := decodeSegment(body)
	if err != nil {
		return 0, nil, fmt.Errorf("segment: %s: %w", segKey(seq), err)
	}
	if got != seq {
		return 0, nil, corrupt("%s holds segment %d", segKey(seq), got)
	}
	return int64(len(body)), recs, nil
}

// Stats implements tiers.Store. LiveBytes counts the keys and values of
// live keys, not the segments' total (which includes dead records until
// compaction).
func (s *Store) Stats() tiers.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return tiers.Stats{Backend: "segment", Location: s.cfg.Location, LiveBytes: s.live}
}

// Requests returns the object-store calls issued since Open.
func (s *Store) Requests() Requests { return s.objs.snapshot() }

// Close implements tiers.Store. It waits for queued Applies, stops
// background work, and writes a checkpoint if segments were written since
// the last one, so the next Open replays nothing. If the store failed, it
// returns that error (and writes no checkpoint). It does not close
// Config.Objects. Closing twice is a no-op; Close must not race other
// calls' start (as with core, which closes the store after its node stops).
func (s *Store) Close() error { return s.shutdown(true) }

// shutdown stops the store; without checkpoint it leaves the objects as a
// crash would (tests use this to check recovery).
func (s *Store) shutdown(checkpoint bool) error {
	s.qmu.Lock()
	if s.stopping {
		s.qmu.Unlock()
		return nil
	}
	s.stopping = true
	s.qcond.Broadcast()
	s.qmu.Unlock()
	<-s.writerDone
	close(s.stopc)
	s.bg.Wait()
	err := s.err()
	if checkpoint && err == nil {
		err = s.checkpoint(context.Background())
	}
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	return err
}

// err returns the error that failed the store, if any.
func (s *Store) err() error {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.failed
}

// fail records the first fatal error and fails every queued write with it.
func (s *Store) fail(err error) {
	s.qmu.Lock()
	if s.failed == nil {
		s.failed = err
		s.log.Error("store failed; writes are refused from now on", "err", err)
	}
	err = s.failed
	q := s.queue
	s.queue = nil
	s.qmu.Unlock()
	for _, r := range q {
		r.done <- err
	}
}
