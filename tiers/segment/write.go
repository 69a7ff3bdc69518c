package segment

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/objstore"
)

// putAttempts bounds the tries of one segment Put. With the default backoff
// (200 ms doubling) the last try starts about 3 s after the first.
const putAttempts = 5

// request is one Apply (or one compaction rewrite) waiting for a segment.
type request struct {
	buf  []byte    // encoded records, as they will appear in the segment
	recs []recMeta // one per record in buf
	// from is set for a compaction rewrite: from[i] is where record i's
	// value lives now. The writer drops a record whose key has moved on.
	from  []loc
	state atomic.Int32 // queued, taken or cancelled
	done  chan error   // buffered; receives the outcome once
}

type recMeta struct {
	off  int // in buf
	n    int
	klen int
	del  bool
}

const (
	queued = iota
	taken
	cancelled
)

func (r *request) add(del bool, key, value []byte) error {
	if len(key) > maxRecordPart || len(value) > maxRecordPart {
		return fmt.Errorf("segment: a write of %d key and %d value bytes exceeds the %d-byte record limit", len(key), len(value), maxRecordPart)
	}
	off := len(r.buf)
	r.buf = appendRecord(r.buf, del, key, value)
	r.recs = append(r.recs, recMeta{off: off, n: len(r.buf) - off, klen: len(key), del: del})
	return nil
}

// Apply implements tiers.Store. The batch is encoded on the caller's
// goroutine and queued; the writer goroutine puts every queued batch into
// the next segment (group commit), and Apply returns once that segment is
// stored and its writes are visible to readers.
//
// sync is ignored: every Apply is durable when it returns, since an object
// store offers nothing cheaper than storing the segment, and sharing the
// segment already amortises its cost.
//
// If ctx ends while the batch is still queued, Apply withdraws it and
// returns ctx.Err(); once the writer has taken it, Apply waits for the
// outcome, so that an error always means the batch was not applied.
func (s *Store) Apply(ctx context.Context, b *tiers.Batch, _ bool) error {
	if b.Len() == 0 {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		if s.stopping {
			return tiers.ErrClosed
		}
		return s.failed
	}
	r := &request{buf: make([]byte, 0, b.Size()+b.Len()*recHeaderLen), done: make(chan error, 1)}
	if err := b.Each(func(del bool, key, value []byte) error { return r.add(del, key, value) }); err != nil {
		return err
	}
	if err := s.enqueue(r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, cancelled) {
			return ctx.Err()
		}
		return <-r.done
	}
}

func (s *Store) enqueue(r *request) error {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.stopping {
		return tiers.ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	s.queue = append(s.queue, r)
	s.qcond.Signal()
	return nil
}

// writeLoop is the writer goroutine: the only one that writes segments or
// changes the index. It exits when Close has begun and the queue is empty,
// or when the store fails.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	for {
		s.qmu.Lock()
		for len(s.queue) == 0 && !s.stopping && s.failed == nil {
			s.qcond.Wait()
		}
		if s.failed != nil || len(s.queue) == 0 {
			s.qmu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(s.queue) && (n == 0 || size+len(s.queue[n].buf) <= s.cfg.SegmentBytes) {
			size += len(s.queue[n].buf)
			n++
		}
		reqs := s.queue[:n:n]
		s.queue = append([]*request(nil), s.queue[n:]...)
		s.qmu.Unlock()

		if err := s.commit(reqs); err != nil {
			for _, r := range reqs {
				r.done <- err
			}
			s.fail(err)
			return
		}
		for _, r := range reqs {
			r.done <- nil
		}
	}
}

// commit writes one segment holding reqs, in order, and applies it.
func (s *Store) commit(reqs []*request) error {
	seq := s.nextSeq
	body := appendHeader(make([]byte, 0, segHeaderLen+s.cfg.SegmentBytes/64), seq)
	var recs []record
	var touched map[string]struct{} // keys written earlier in this segment, when a rewrite needs them
	for _, r := range reqs {
		if r.from != nil {
			touched = make(map[string]struct{})
			break
		}
	}
	if touched != nil {
		// Rewrites check the index, which only this goroutine changes; the
		// read lock orders those reads with NewIter's Clone.
		s.mu.RLock()
	}
	for _, r := range reqs {
		if !r.state.CompareAndSwap(queued, taken) {
			continue
		}
		for i, m := range r.recs {
			key := r.buf[m.off+recHeaderLen : m.off+recHeaderLen+m.klen]
			if r.from != nil {
				// A rewrite must not resurrect a value overwritten or deleted
				// since compaction read it, neither in an earlier segment nor
				// earlier in this one.
				if _, ok := touched[string(key)]; ok {
					continue
				}
				if e, ok := s.tree.Get(entry{key: key}); !ok || (loc{e.seq, e.off}) != r.from[i] {
					continue
				}
			} else if touched != nil {
				touched[string(key)] = struct{}{}
			}
			recs = append(recs, record{Del: m.del, Off: int64(len(body)), Len: int64(m.n)})
			body = append(body, r.buf[m.off:m.off+m.n]...)
		}
	}
	if touched != nil {
		s.mu.RUnlock()
	}
	if len(recs) == 0 {
		return nil
	}
	body = appendTrailer(body, len(recs))
	for i := range recs {
		r := &recs[i]
		rb := body[r.Off : r.Off+r.Len]
		klen := int(binary.LittleEndian.Uint32(rb[5:]))
		r.Key = rb[recHeaderLen : recHeaderLen+klen]
		if !r.Del {
			r.Value = rb[recHeaderLen+klen:]
		}
	}
	if err := s.putSegment(seq, body); err != nil {
		return err
	}
	s.nextSeq++
	s.applySegment(seq, int64(len(body)), recs)
	if s.cache != nil {
		for _, r := range recs {
			if !r.Del {
				s.cache.add(loc{seq, r.Off}, bytes.Clone(r.Value))
			}
		}
	}
	if seq-s.lastTrigger >= uint64(s.cfg.CheckpointEvery) && s.ckptRunning.CompareAndSwap(false, true) {
		s.lastTrigger = seq
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			defer s.ckptRunning.Store(false)
			if err := s.checkpoint(context.Background()); err != nil {
				s.log.Warn("checkpoint failed; the next one will retry", "seq", seq, "err", err)
			}
		}()
	}
	return nil
}

// putSegment stores a segment, create-only. A failed Put is retried with
// the same bytes; if a retry finds the object already there (an earlier
// try succeeded without our hearing of it), identical bytes count as
// success. Anything else there means another writer.
func (s *Store) putSegment(seq uint64, body []byte) error {
	ctx := context.Background()
	key := segKey(seq)
	delay := s.backoff
	for attempt := 1; ; attempt++ {
		_, err := s.objs.Put(ctx, key, body, objstore.Cond{IfNoneMatch: true})
		if err == nil {
			return nil
		}
		if errors.Is(err, objstore.ErrPreconditionFailed) {
			if attempt == 1 {
				return fmt.Errorf("segment: %s already exists: %w", key, ErrFenced)
			}
			got, _, gerr := s.objs.Get(ctx, key)
			if gerr == nil {
				if bytes.Equal(got, body) {
					return nil
				}
				return fmt.Errorf("segment: %s was written by someone else during a retry: %w", key, ErrFenced)
			}
			err = gerr
		}
		if attempt >= putAttempts {
			return fmt.Errorf("segment: writing %s failed %d times: %w", key, attempt, err)
		}
		s.log.Warn("segment put failed; retrying", "seq", seq, "attempt", attempt, "err", err)
		time.Sleep(delay)
		delay *= 2
	}
}
