// Where the raft log lives: in the node's tiers.Store (storeLog), or in a
// dedicated raftlog.Log (dedicatedLog). The driver sees one interface.

package multiraft

import (
	"context"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
)

// logStore is where the node's raft logs — entries, hard states,
// compaction points — are persisted. The driver adds a cycle's
// operations, then writes them with one write call. Only the driver's
// goroutine uses it (and New before the driver starts).
//
// The operations that take a *group read g.first, the group's first
// entry before the operation (the caller moves it afterwards), and the
// store-backed log keeps g.persistedLast.
type logStore interface {
	// load returns what the log holds of group g.
	load(ctx context.Context, g GroupID) (persisted, error)
	// has reports whether the log holds anything of group g.
	has(ctx context.Context, g GroupID) (bool, error)

	setHardState(g GroupID, hs *pb.HardState) error
	// append stores ents (consecutive), dropping the group's persisted
	// entries from the first one's index on.
	append(g *group, ents []*pb.Entry) error
	// snapshot records that a snapshot at index (of term) replaced g's
	// log: every entry is gone, the log goes on at index+1.
	snapshot(g *group, index, term uint64)
	// compact drops g's entries up to index (of term).
	compact(g *group, index, term uint64)
	// remove drops everything of g.
	remove(g *group)

	// write (the store-kept log only) stores the operations added since
	// the last write, durably when sync. into, when not nil, is the
	// cycle's store batch, which the driver writes right after with the
	// state machine's writes: the operations go into it instead (one
	// atomic store write per cycle) and write returns storeSync = sync,
	// that store write must then be synced.
	write(ctx context.Context, into *tiers.Batch, sync bool) (storeSync bool, err error)

	// separate reports whether the log is written apart from the store
	// (the dedicated log). Such a log is not written with write but on
	// the logWriter's goroutine: the driver detaches each cycle's
	// operations, and the writer writes them with writeOps. load, has and
	// stats are then safe while a write runs.
	separate() bool
	// detach takes the operations added since the last detach (nil if
	// there are none).
	detach() *logOps
	// writeOps writes ops (nil: none) — synced when sync — and recycles
	// them.
	writeOps(ctx context.Context, ops *logOps, sync bool) error
	// stats returns the dedicated log's counters (zero for the store's).
	stats() raftlog.Stats
}

// logOps are the dedicated log's operations of one driver cycle.
type logOps struct {
	b raftlog.Batch
	// sb holds deletes of a removed group's in-store keys, written synced
	// to the store before the log records the removal (see remove).
	sb tiers.Batch
}

func (o *logOps) empty() bool { return o.b.Len() == 0 && o.sb.Len() == 0 }

// persisted is what a log holds of one group.
type persisted struct {
	found bool
	hs    *pb.HardState // nil if none was stored
	// compacted and compactedTerm are the index and term of the last
	// entry compacted away (0 and 0 if none was).
	compacted, compactedTerm uint64
	ents                     []*pb.Entry // the entries after compacted
}

// last returns the index of the last entry held (compacted if none).
func (p *persisted) last() uint64 {
	if len(p.ents) > 0 {
		return p.ents[len(p.ents)-1].GetIndex()
	}
	return p.compacted
}

// memoryStorage puts p into a fresh MemoryStorage: the compaction point
// as a snapshot marker with membership cs (what the state machine
// holds), the hard state, the entries. It returns the first and last
// entry index held.
//
// The hard state's commit is raised to applied, the state machine's
// applied index, when that is higher and within the log: every applied
// entry was committed, but with a dedicated log the state machine's
// store write and the log's commit update are two files, and a crash of
// the machine may keep the first (unsynced) and lose the second
// (unsynced too: a commit index alone needs no sync). raft refuses to
// start a replica whose applied index is past its commit.
func (p *persisted) memoryStorage(g GroupID, applied uint64, cs *pb.ConfState) (*raft.MemoryStorage, uint64, uint64, error) {
	ms := raft.NewMemoryStorage()
	first, last := uint64(1), p.last()
	if p.compacted > 0 {
		index, term := p.compacted, p.compactedTerm
		snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: &index, Term: &term, ConfState: cs}}
		if cs == nil {
			snap.Metadata.ConfState = &pb.ConfState{}
		}
		if err := ms.ApplySnapshot(snap); err != nil {
			return nil, 0, 0, fmt.Errorf("multiraft: group %d: %w", g, err)
		}
		first = index + 1
	}
	hs := p.hs
	if applied > hs.GetCommit() && applied <= last {
		term, vote := hs.GetTerm(), hs.GetVote()
		hs = &pb.HardState{Term: &term, Vote: &vote, Commit: &applied}
	}
	if hs != nil {
		if err := ms.SetHardState(hs); err != nil {
			return nil, 0, 0, fmt.Errorf("multiraft: group %d: %w", g, err)
		}
	}
	if len(p.ents) > 0 {
		if err := ms.Append(p.ents); err != nil {
			return nil, 0, 0, fmt.Errorf("multiraft: group %d: %w", g, err)
		}
	}
	return ms, first, last, nil
}

// dedicatedLog keeps the raft log in a raftlog.Log of its own. The store
// is written only on RemoveGroup's behalf (see remove).
type dedicatedLog struct {
	store tiers.Store
	cur   *logOps      // the driver's: operations added since the last detach
	free  chan *logOps // written operations, for reuse

	mu sync.Mutex // the driver's reads against the writer's writes
	l  *raftlog.Log
}

func newDedicatedLog(l *raftlog.Log, store tiers.Store) *dedicatedLog {
	return &dedicatedLog{l: l, store: store, cur: &logOps{}, free: make(chan *logOps, 4)}
}

func (d *dedicatedLog) load(_ context.Context, g GroupID) (persisted, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.l.State(raftlog.GroupID(g)); !ok {
		return persisted{}, nil
	}
	st, ents, err := d.l.Load(raftlog.GroupID(g))
	if err != nil {
		return persisted{}, fmt.Errorf("multiraft: group %d: %w", g, err)
	}
	return persisted{found: true, hs: st.HardState, compacted: st.Compacted, compactedTerm: st.CompactedTerm, ents: ents}, nil
}

func (d *dedicatedLog) has(_ context.Context, g GroupID) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.l.State(raftlog.GroupID(g))
	return ok, nil
}

func (d *dedicatedLog) stats() raftlog.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.l.Stats()
}

func (d *dedicatedLog) setHardState(g GroupID, hs *pb.HardState) error {
	d.cur.b.SetHardState(raftlog.GroupID(g), hs)
	return nil
}

func (d *dedicatedLog) append(g *group, ents []*pb.Entry) error {
	d.cur.b.Append(raftlog.GroupID(g.id), ents) // drops the overwritten tail itself
	return nil
}

func (d *dedicatedLog) snapshot(g *group, index, term uint64) {
	d.cur.b.Snapshot(raftlog.GroupID(g.id), index, term)
}

func (d *dedicatedLog) compact(g *group, index, term uint64) {
	d.cur.b.Compact(raftlog.GroupID(g.id), index, term)
}

// remove drops g from the log. What the state machine wrote to drop the
// group's data went to the store unsynced: it must be durable before the
// log forgets the group, or a crash could leave the state machine's state
// of a group the log no longer has (raft refuses to start a replica
// whose applied index is past its log). So write syncs the store first —
// with the deletes of the group's in-store keys, which also gives the
// store something to sync (an empty batch is not written).
func (d *dedicatedLog) remove(g *group) {
	d.cur.b.Remove(raftlog.GroupID(g.id))
	d.cur.sb.Delete(hardStateKey(g.id))
	d.cur.sb.Delete(truncatedKey(g.id))
}

func (d *dedicatedLog) write(context.Context, *tiers.Batch, bool) (bool, error) {
	panic("multiraft: the dedicated log is written by the log writer (writeOps)")
}

func (d *dedicatedLog) separate() bool { return true }

func (d *dedicatedLog) detach() *logOps {
	if d.cur.empty() {
		return nil
	}
	ops := d.cur
	select {
	case d.cur = <-d.free:
	default:
		d.cur = &logOps{}
	}
	return ops
}

func (d *dedicatedLog) writeOps(ctx context.Context, ops *logOps, sync bool) error {
	if ops == nil {
		ops = &logOps{}
	}
	defer func() {
		ops.b.Reset()
		ops.sb.Reset()
		select {
		case d.free <- ops:
		default:
		}
	}()
	if ops.sb.Len() > 0 {
		if err := d.store.Apply(ctx, &ops.sb, true); err != nil {
			return err
		}
	}
	if ops.b.Len() == 0 && !sync {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.l.Write(&ops.b, sync)
}

// storeLog keeps the raft log in the node's tiers.Store, under the keys
// of storage.go: what a node on an object store does (it has no local
// disk for a log of its own), and every node did before the dedicated
// log.
type storeLog struct {
	store tiers.Store
	b     tiers.Batch // the operations added since the last write
}

func (s *storeLog) load(ctx context.Context, g GroupID) (persisted, error) {
	return loadGroup(ctx, s.store, g)
}

func (s *storeLog) has(ctx context.Context, g GroupID) (bool, error) {
	_, err := s.store.Get(ctx, hardStateKey(g))
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

func (s *storeLog) setHardState(g GroupID, hs *pb.HardState) error {
	data, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	s.b.Set(hardStateKey(g), data)
	return nil
}

func (s *storeLog) append(g *group, ents []*pb.Entry) error {
	last, err := appendToBatch(&s.b, g.id, ents, g.persistedLast)
	if err != nil {
		return err
	}
	g.persistedLast = last
	return nil
}

func (s *storeLog) snapshot(g *group, index, term uint64) {
	for i := max(g.first, 1); i <= g.persistedLast; i++ {
		s.b.Delete(entryKey(g.id, i))
	}
	s.b.Set(truncatedKey(g.id), encodeTruncated(index, term))
	g.persistedLast = index
}

func (s *storeLog) compact(g *group, index, term uint64) {
	for i := max(g.first, 1); i <= index; i++ {
		s.b.Delete(entryKey(g.id, i))
	}
	s.b.Set(truncatedKey(g.id), encodeTruncated(index, term))
}

func (s *storeLog) remove(g *group) {
	s.b.Delete(hardStateKey(g.id))
	for i := max(g.first, 1); i <= g.persistedLast; i++ {
		s.b.Delete(entryKey(g.id, i))
	}
	s.b.Delete(truncatedKey(g.id))
}

func (s *storeLog) write(ctx context.Context, into *tiers.Batch, sync bool) (bool, error) {
	defer s.b.Reset()
	if into != nil {
		into.Append(&s.b)
		return sync, nil
	}
	if s.b.Len() == 0 {
		return false, nil
	}
	return false, s.store.Apply(ctx, &s.b, sync)
}

func (s *storeLog) separate() bool { return false }

func (s *storeLog) detach() *logOps { panic("multiraft: the store-kept log is written with write") }

func (s *storeLog) writeOps(context.Context, *logOps, bool) error {
	panic("multiraft: the store-kept log is written with write")
}

func (s *storeLog) stats() raftlog.Stats { return raftlog.Stats{} }
