package raftlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
)

// GroupID names a raft group (multiraft's GroupID).
type GroupID uint32

// Errors.
var (
	// ErrCorrupt: a segment holds what no crash leaves — a bad record or
	// header in a segment before the last, a missing segment, a record
	// that passes its checksum but does not decode. Open refuses the log:
	// data would be lost.
	ErrCorrupt = errors.New("raftlog: corrupt log")
	// ErrBadBatch: Write refused a batch that breaks a rule of Batch's
	// methods; nothing of it was written, and the log is still usable.
	ErrBadBatch = errors.New("raftlog: invalid batch")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("raftlog: closed")
)

// maxBatchBytes bounds one batch's encoding, so that offsets in a
// segment (at most 1 GiB before its last batch) fit 32 bits.
const maxBatchBytes = 1 << 30

// Log is the raft log of many groups in one directory. Its methods must
// be called from one goroutine (the raft driver's): a Log is not safe for
// concurrent use.
type Log struct {
	cfg  Config
	fs   fileSystem
	log  *slog.Logger
	lock io.Closer

	// Invariant: segs is sorted by seq with no gaps; the last is the one
	// written to. Only the last may end in a torn record, since every
	// other was synced before the next was created.
	segs   []*segment
	groups map[GroupID]*group
	// gcDue: an operation may have let the oldest segment go (gc runs
	// after the next sync, see gc).
	gcDue bool
	// dirty: something was written since the last sync.
	dirty bool
	// err is the failure that stopped the log (sticky): after a failed
	// write or sync what the file holds is unknown, so nothing more is
	// written; reopening recovers what is valid.
	err    error
	closed bool

	fragBytes int              // the payload bound writes use: maxRecordBytes (tests lower it)
	views     map[GroupID]view // check's scratch
	wbuf      []byte           // framing scratch for a batch split into records
	ckpt      Batch            // checkpoint scratch
	rbuf      []byte           // replay's record buffer
	pending   []op             // replay's batch being read
	arena     arena            // replay's entry data
	stats     Stats
}

// Stats counts what the log holds and did since Open.
type Stats struct {
	Segments int   // segment files
	Bytes    int64 // their total size
	Groups   int   // groups with state
	Writes   uint64
	Syncs    uint64
	// Rolls counts moves to a new segment; RewrittenBytes the live entry
	// bytes those moves copied forward; DeletedSegments the segments
	// garbage-collected.
	Rolls           uint64
	RewrittenBytes  uint64
	DeletedSegments uint64
	// TornBytes is what Open cut off the last segment's tail: writes a
	// crash interrupted (none of them had returned from a synced Write).
	TornBytes int64
}

func (l *Log) path(seq uint64) string { return filepath.Join(l.cfg.Dir, segmentName(seq)) }

func (l *Log) cur() *segment { return l.segs[len(l.segs)-1] }

// segment returns the segment with sequence number seq, or nil.
func (l *Log) segment(seq uint64) *segment {
	if len(l.segs) == 0 || seq < l.segs[0].seq {
		return nil
	}
	i := seq - l.segs[0].seq
	if i >= uint64(len(l.segs)) {
		return nil
	}
	return l.segs[i]
}

// Write stores b: its operations are checked (ErrBadBatch, nothing
// written), then written with one write call. With sync, Write returns
// once the batch, and every unsynced one before it, is durable
// (fdatasync); without, the batch is in the operating system's hands and
// a crash of the machine may lose it (and every later one) — not a crash
// of the process alone.
//
// Any other error stops the log: every later Write fails with it, and the
// log must be closed and reopened, which recovers every batch whose synced
// Write returned.
//
// When the current segment is full, Write first moves to a new one (see
// the package doc), so that one Write in many costs a few more fsyncs.
// After a synced Write, segments that nothing needs any more are deleted.
func (l *Log) Write(b *Batch, sync bool) error {
	if l.closed {
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	if len(b.ops) == 0 {
		if sync && l.dirty {
			if err := l.sync(); err != nil {
				return l.fail(err)
			}
		}
		return nil
	}
	if b.Size() > maxBatchBytes {
		return fmt.Errorf("%w: %d bytes exceed the batch limit of %d", ErrBadBatch, b.Size(), maxBatchBytes)
	}
	if err := l.check(b); err != nil {
		return err
	}
	if l.cur().size >= l.cfg.SegmentBytes {
		if err := l.roll(); err != nil {
			return l.fail(err)
		}
	}
	s := l.cur()
	if err := l.writeBatch(s, b); err != nil {
		return l.fail(err)
	}
	for i := range b.ops {
		l.apply(&b.ops[i], s)
	}
	l.stats.Writes++
	if sync {
		if err := l.sync(); err != nil {
			return l.fail(err)
		}
		if l.gcDue {
			if err := l.gc(); err != nil {
				return l.fail(err)
			}
		}
	}
	return nil
}

func (l *Log) fail(err error) error {
	l.err = fmt.Errorf("raftlog: stopped, reopen the log to recover: %w", err)
	return l.err
}

func (l *Log) sync() error {
	if err := l.cur().f.Sync(); err != nil {
		return err
	}
	l.dirty = false
	l.stats.Syncs++
	return nil
}

var zeroHeader [recHeaderLen]byte

// writeBatch frames b as one record, or as several split between
// operations when it is larger than a record may be, writes it at the end
// of segment s, and sets each operation's offset.
func (l *Log) writeBatch(s *segment, b *Batch) error {
	base := s.size
	l.dirty = true
	payload := b.buf[recHeaderLen:]
	if len(payload) <= l.fragBytes {
		putRecordHeader(b.buf[:recHeaderLen], recFull, payload)
		for i := range b.ops {
			b.ops[i].off = base + int64(b.ops[i].pos)
		}
		if _, err := s.f.WriteAt(b.buf, base); err != nil {
			return err
		}
		s.size += int64(len(b.buf))
		return nil
	}
	w := l.wbuf[:0]
	for i := 0; i < len(b.ops); {
		start := b.ops[i].pos
		j := i + 1 // check made every operation fit a record
		for j < len(b.ops) && b.ops[j].pos+b.ops[j].n-start <= l.fragBytes {
			j++
		}
		end := b.ops[j-1].pos + b.ops[j-1].n
		typ := byte(recMiddle)
		switch {
		case i == 0:
			typ = recFirst
		case j == len(b.ops):
			typ = recLast
		}
		at := len(w)
		w = append(w, zeroHeader[:]...)
		w = append(w, b.buf[start:end]...)
		putRecordHeader(w[at:at+recHeaderLen], typ, w[at+recHeaderLen:])
		for k := i; k < j; k++ {
			b.ops[k].off = base + int64(at+recHeaderLen+b.ops[k].pos-start)
		}
		i = j
	}
	l.wbuf = w
	if _, err := s.f.WriteAt(w, base); err != nil {
		return err
	}
	s.size += int64(len(w))
	return nil
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	st := l.stats
	st.Segments = len(l.segs)
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	st.Groups = len(l.groups)
	return st
}

// Close syncs what was written and releases the files. Closing twice
// does nothing.
func (l *Log) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	if l.err == nil && l.dirty {
		errs = append(errs, l.sync())
	}
	for _, s := range l.segs {
		errs = append(errs, s.f.Close())
	}
	errs = append(errs, l.lock.Close())
	l.segs, l.groups = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
	return nil
}

// Groups returns the groups the log holds state for, in ascending order.
func (l *Log) Groups() []GroupID {
	gs := make([]GroupID, 0, len(l.groups))
	for g := range l.groups {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	return gs
}
