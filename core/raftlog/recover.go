// Open: replaying the segments, and what a crash left at the tail.

package raftlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
)

// Open opens the log in cfg.Dir, creating it if empty, and replays it:
// afterwards Groups, State, Entries and Load describe every batch whose
// Write returned before the last close or crash (synced ones at least;
// unsynced ones if they reached the disk).
//
// A crash can leave the last segment ending in part of a batch, or in
// garbage; Open cuts the tail there, at the end of the last whole valid
// batch, and logs it (Stats.TornBytes). Anything else wrong — an invalid
// record in an earlier segment, a missing segment, a record that passes
// its checksum but does not decode — is an ErrCorrupt error: the log is
// not opened rather than opened without data it held.
func Open(cfg Config) (*Log, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		cfg:       cfg,
		fs:        cfg.fs,
		log:       cfg.Logger.With("component", "raftlog"),
		groups:    map[GroupID]*group{},
		views:     map[GroupID]view{},
		fragBytes: maxRecordBytes,
	}
	if err := l.open(); err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		if l.lock != nil {
			l.lock.Close()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if err := l.fs.MkdirAll(l.cfg.Dir); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	lock, err := l.fs.Lock(filepath.Join(l.cfg.Dir, "LOCK"))
	if err != nil {
		return err
	}
	l.lock = lock
	names, err := l.fs.List(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	var seqs []uint64
	for _, n := range names {
		if seq, ok := parseSegmentName(n); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	if len(seqs) == 0 {
		s, err := l.createSegment(1)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		return l.syncDir()
	}
	for i, seq := range seqs {
		if i > 0 && seq != seqs[i-1]+1 {
			return fmt.Errorf("%w: segment %d is missing (found %d and %d)", ErrCorrupt, seqs[i-1]+1, seqs[i-1], seq)
		}
		if seq > 1<<32-1 {
			return fmt.Errorf("%w: segment number %d out of range", ErrCorrupt, seq)
		}
	}
	for i, seq := range seqs {
		f, err := l.fs.OpenRW(l.path(seq))
		if err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		s := &segment{seq: seq, f: f, maxIndex: map[GroupID]uint64{}}
		l.segs = append(l.segs, s)
		last := i == len(seqs)-1
		if err := l.replay(s, last); err != nil {
			return err
		}
		if !last && seq > 1 && !s.checkpointed {
			return fmt.Errorf("%w: segment %d does not begin with a checkpoint", ErrCorrupt, seq)
		}
	}
	l.pending, l.rbuf, l.arena = nil, nil, arena{}
	for g, s := range l.groups {
		if len(s.locs) > 0 && s.first != s.trunc+1 {
			return fmt.Errorf("%w: group %d: entries resume at %d after compaction to %d (a segment's records are missing)", ErrCorrupt, g, s.first, s.trunc)
		}
	}
	if s := l.cur(); s.seq > 1 && !s.checkpointed {
		// A crash interrupted the move to this segment: finish it.
		if err := l.writeCheckpoint(s, nil); err != nil {
			return err
		}
	}
	// What replay read may be in the page cache only (a crash of the
	// process, not of the machine): make it durable before relying on it.
	if err := l.sync(); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	l.stats.Syncs = 0
	return l.gc()
}

// createSegment creates segment seq and writes its header (not synced).
func (l *Log) createSegment(seq uint64) (*segment, error) {
	if seq > 1<<32-1 {
		return nil, fmt.Errorf("raftlog: out of segment numbers")
	}
	f, err := l.fs.Create(l.path(seq))
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	if _, err := f.WriteAt(encodeHeader(seq), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	return &segment{seq: seq, f: f, size: headerLen, maxIndex: map[GroupID]uint64{}}, nil
}

func (l *Log) syncDir() error {
	if err := l.fs.SyncDir(l.cfg.Dir); err != nil {
		return fmt.Errorf("raftlog: sync %s: %w", l.cfg.Dir, err)
	}
	return nil
}

// replay reads segment s and applies its batches. In the last segment,
// the first invalid record, or a batch the file ends inside, ends the
// log: the file is cut there. In any other it is an error.
func (l *Log) replay(s *segment, last bool) error {
	size, err := s.f.Size()
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if size > 1<<32-1 {
		// Offsets are 32 bits: no segment written here grows past 2 GiB.
		return fmt.Errorf("%w: segment %d is %d bytes", ErrCorrupt, s.seq, size)
	}
	torn := func(at int64, why string) error {
		if !last {
			return fmt.Errorf("%w: segment %d: %s at offset %d", ErrCorrupt, s.seq, why, at)
		}
		return l.cutTail(s, size, at, why)
	}
	var h [headerLen]byte
	if size < headerLen {
		return torn(0, "short header")
	}
	if _, err := s.f.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if err := checkHeader(h[:], s.seq); errors.Is(err, errTornHeader) {
		return torn(0, "bad header")
	} else if err != nil {
		return err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, headerLen, size-headerLen), 256<<10)
	off, good := int64(headerLen), int64(headerLen) // good: the end of the last whole batch
	l.pending = l.pending[:0]
	inBatch, batches := false, 0
	var rh [recHeaderLen]byte
	for off < size {
		if size-off < recHeaderLen {
			return torn(good, "short record header")
		}
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		n, typ := int64(binary.LittleEndian.Uint32(rh[:])), rh[4]
		if typ < recFull || typ > recLast {
			return torn(good, fmt.Sprintf("record type %d", typ))
		}
		if n > maxRecordBytes || n > size-off-recHeaderLen {
			return torn(good, fmt.Sprintf("record length %d", n))
		}
		if int64(cap(l.rbuf)) < n {
			l.rbuf = make([]byte, n)
		}
		payload := l.rbuf[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		if recordCRC(rh[:], payload) != binary.LittleEndian.Uint32(rh[5:]) {
			return torn(good, "checksum mismatch")
		}
		// A valid record: from here on, anything wrong is not a crash's.
		switch {
		case (typ == recFull || typ == recFirst) && inBatch:
			return fmt.Errorf("%w: segment %d: a batch interrupted at offset %d", ErrCorrupt, s.seq, off)
		case (typ == recMiddle || typ == recLast) && !inBatch:
			return fmt.Errorf("%w: segment %d: a batch's continuation without its start at offset %d", ErrCorrupt, s.seq, off)
		}
		inBatch = typ == recFirst || typ == recMiddle
		base := off + recHeaderLen
		for p := 0; p < len(payload); {
			o, k, err := decodeOp(payload[p:], true, &l.arena)
			if err != nil {
				return fmt.Errorf("%w (segment %d, offset %d)", err, s.seq, base+int64(p))
			}
			if o.kind == opCheckpoint && (batches > 0 || len(l.pending) > 0) {
				return fmt.Errorf("%w: segment %d: a checkpoint after its first batch", ErrCorrupt, s.seq)
			}
			o.off = base + int64(p)
			l.pending = append(l.pending, o)
			p += k
		}
		off = base + n
		if !inBatch {
			if len(l.pending) > 0 && l.pending[0].kind == opCheckpoint {
				s.checkpointed = true
				if n := len(l.segs); n > 1 && uint64(l.segs[n-2].size) != l.pending[0].a {
					return fmt.Errorf("%w: segment %d is %d bytes, segment %d's checkpoint says %d", ErrCorrupt, l.segs[n-2].seq, l.segs[n-2].size, s.seq, l.pending[0].a)
				}
			}
			for i := range l.pending {
				l.apply(&l.pending[i], s)
				l.pending[i] = op{}
			}
			l.pending = l.pending[:0]
			good = off
			batches++
		}
	}
	if inBatch {
		return torn(good, "a batch the file ends inside")
	}
	s.size = size
	return nil
}

// cutTail truncates the last segment at (the end of its last whole
// batch) and continues writing there; at 0 the header goes too and is
// rewritten.
func (l *Log) cutTail(s *segment, size, at int64, why string) error {
	l.pending = l.pending[:0]
	l.log.Warn("cutting a torn tail off the last segment", "segment", s.seq, "offset", at, "bytes", size-at, "reason", why)
	l.stats.TornBytes += size - at
	if err := s.f.Truncate(at); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if at == 0 {
		if _, err := s.f.WriteAt(encodeHeader(s.seq), 0); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		at = headerLen
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	s.size = at
	return nil
}
