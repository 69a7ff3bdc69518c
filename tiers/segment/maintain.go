package segment

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// checkpoint writes the index as of the last applied segment to
// ckpt/<seq>, points MANIFEST at it with a compare-and-swap, and then
// collects what recovery no longer needs. It is a no-op for the index
// (but still collects) when MANIFEST already names the last segment.
func (s *Store) checkpoint(ctx context.Context) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if err := s.err(); err != nil {
		return err
	}
	s.mu.Lock()
	snap, seq := s.tree.Clone(), s.applied
	s.mu.Unlock()
	if seq > s.manifestSeq {
		start := time.Now()
		body := encodeCheckpoint(seq, snap)
		if _, err := s.objs.Put(ctx, ckptKey(seq), body, objstore.Cond{}); err != nil {
			return fmt.Errorf("segment: writing checkpoint %d: %w", seq, err)
		}
		mbody := encodeManifest(seq)
		etag, err := s.objs.Put(ctx, manifestKey, mbody, objstore.Cond{IfMatch: s.manifestETag})
		if err != nil && !errors.Is(err, objstore.ErrPreconditionFailed) {
			// The swap may have happened without our hearing of it: if
			// MANIFEST now holds exactly our body, it did.
			if got, getETag, gerr := s.objs.Get(ctx, manifestKey); gerr == nil && bytes.Equal(got, mbody) {
				etag, err = getETag, nil
			}
		}
		if errors.Is(err, objstore.ErrPreconditionFailed) {
			err = fmt.Errorf("segment: MANIFEST changed since this store last wrote it: %w", ErrFenced)
			s.fail(err)
			return err
		}
		if err != nil {
			return fmt.Errorf("segment: updating MANIFEST to checkpoint %d: %w", seq, err)
		}
		s.manifestSeq, s.manifestETag = seq, etag
		s.ckptRefs = make(map[uint64]bool)
		snap.Ascend(func(e entry) bool {
			s.ckptRefs[e.seq] = true
			return true
		})
		s.log.Info("checkpoint", "seq", seq, "keys", snap.Len(), "bytes", len(body), "took", time.Since(start))
	}
	return s.collect(ctx)
}

// collect deletes segments that neither recovery nor any reader needs, and
// checkpoints older than MANIFEST's. Caller holds ckptMu.
//
// A segment is collectable when MANIFEST's checkpoint is at or after it and
// does not reference it: recovery loads that checkpoint and replays only
// later segments. The current index cannot reference it either (entries
// only move to newer segments), which refs == 0 double-checks.
func (s *Store) collect(ctx context.Context) error {
	k := s.manifestSeq
	s.mu.Lock()
	for seq, info := range s.segs {
		if seq <= k && !s.ckptRefs[seq] && info.refs == 0 {
			delete(s.segs, seq)
			s.pending = append(s.pending, victim{seq: seq, gen: s.applied})
		}
	}
	oldest := uint64(math.MaxUint64)
	for _, gen := range s.iters {
		oldest = min(oldest, gen)
	}
	var doomed []uint64
	keep := s.pending[:0]
	for _, v := range s.pending {
		if v.gen <= oldest {
			doomed = append(doomed, v.seq)
		} else {
			keep = append(keep, v)
		}
	}
	s.pending = keep
	s.mu.Unlock()

	var errs []error
	for _, seq := range doomed {
		if err := s.objs.Delete(ctx, segKey(seq)); err != nil {
			s.pending = append(s.pending, victim{seq: seq})
			errs = append(errs, fmt.Errorf("segment: deleting %s: %w", segKey(seq), err))
		}
	}
	var old []string
	if err := s.objs.List(ctx, ckptPrefix, func(key string, _ int64) error {
		if seq, err := parseSeq(ckptPrefix, key); err == nil && seq < k {
			old = append(old, key)
		}
		return nil
	}); err != nil {
		errs = append(errs, fmt.Errorf("segment: listing checkpoints: %w", err))
	}
	for _, key := range old {
		if err := s.objs.Delete(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("segment: deleting %s: %w", key, err))
		}
	}
	if len(doomed) > 0 || len(old) > 0 {
		s.log.Debug("collected", "segments", len(doomed), "checkpoints", len(old))
	}
	return errors.Join(errs...)
}

// Compact rewrites the live records of segments whose live bytes have
// fallen below Config.CompactRatio of their size into new segments,
// through the same queue as Apply, and then checkpoints, which lets the
// rewritten segments be deleted. The background compactor calls it every
// Config.CompactInterval; tests call it directly.
func (s *Store) Compact(ctx context.Context) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	for range 64 {
		n, err := s.compactRound(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	return s.checkpoint(ctx)
}

// compactRound rewrites up to about SegmentBytes of live records and
// returns how many segments it emptied.
func (s *Store) compactRound(ctx context.Context) (int, error) {
	type cand struct {
		seq        uint64
		live, size int64
	}
	var cands []cand
	s.mu.Lock()
	for seq, info := range s.segs {
		if info.refs > 0 && float64(info.live) < s.cfg.CompactRatio*float64(info.size-segOverhead) {
			cands = append(cands, cand{seq, info.live, info.size})
		}
	}
	if len(cands) == 0 {
		s.mu.Unlock()
		return 0, nil
	}
	snap := s.tree.Clone()
	s.mu.Unlock()

	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.seq, b.seq) })
	chosen := map[uint64]bool{}
	budget := int64(0)
	for _, c := range cands {
		if len(chosen) > 0 && budget+c.live > int64(s.cfg.SegmentBytes) {
			break
		}
		chosen[c.seq] = true
		budget += c.live
	}
	bySeg := map[uint64][]entry{}
	snap.Ascend(func(e entry) bool {
		if chosen[e.seq] {
			bySeg[e.seq] = append(bySeg[e.seq], e)
		}
		return true
	})
	r := &request{done: make(chan error, 1)}
	for seq, ents := range bySeg {
		body, _, err := s.objs.Get(ctx, segKey(seq))
		if err != nil {
			return 0, fmt.Errorf("segment: compaction reading %s: %w", segKey(seq), err)
		}
		for _, e := range ents {
			if e.off+e.n > int64(len(body)) {
				return 0, corrupt("%s ends before the record of %q at %d", segKey(seq), e.key, e.off)
			}
			v, err := checkRecord(body[e.off:e.off+e.n], e)
			if err != nil {
				return 0, err
			}
			if err := r.add(false, e.key, v); err != nil {
				return 0, err
			}
			r.from = append(r.from, loc{e.seq, e.off})
		}
	}
	if len(r.recs) == 0 {
		return 0, nil
	}
	if err := s.enqueue(r); err != nil {
		return 0, err
	}
	if err := <-r.done; err != nil {
		return 0, err
	}
	s.log.Debug("compacted", "segments", len(chosen), "records", len(r.recs), "bytes", len(r.buf))
	return len(chosen), nil
}

// compactLoop runs Compact every CompactInterval until Close.
func (s *Store) compactLoop() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopc
		cancel()
	}()
	t := time.NewTicker(s.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
			if err := s.Compact(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("compaction failed", "err", err)
			}
		}
	}
}
