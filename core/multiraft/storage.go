package multiraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/tiers"
)

func groupPrefix(g GroupID, kind byte) []byte {
	k := make([]byte, 0, 14)
	k = append(k, 'r')
	k = binary.BigEndian.AppendUint32(k, uint32(g))
	return append(k, kind)
}

func entryKey(g GroupID, index uint64) []byte {
	return binary.BigEndian.AppendUint64(groupPrefix(g, 'e'), index)
}

// syncKey is never set: a synced store write that has nothing else to
// write deletes it.
var syncKey = []byte{'r'}

func hardStateKey(g GroupID) []byte { return groupPrefix(g, 'h') }

// truncatedKey holds the index and term of the last entry compacted away.
func truncatedKey(g GroupID) []byte { return groupPrefix(g, 't') }

func encodeTruncated(index, term uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
}

func isNotFound(err error) bool { return errors.Is(err, tiers.ErrNotFound) }

// loadGroup reads a group's log from store: the truncation point, the
// hard state and the entries after the truncation point.
func loadGroup(ctx context.Context, store tiers.Store, g GroupID) (persisted, error) {
	var p persisted
	tr, err := store.Get(ctx, truncatedKey(g))
	switch {
	case err == nil:
		if len(tr) != 16 {
			return p, fmt.Errorf("multiraft: group %d: corrupt truncation point", g)
		}
		p.compacted, p.compactedTerm = binary.BigEndian.Uint64(tr), binary.BigEndian.Uint64(tr[8:])
		p.found = true
	case !isNotFound(err):
		return p, fmt.Errorf("multiraft: group %d truncation point: %w", g, err)
	}
	hs, err := store.Get(ctx, hardStateKey(g))
	switch {
	case err == nil:
		var st pb.HardState
		if err := proto.Unmarshal(hs, &st); err != nil {
			return p, fmt.Errorf("multiraft: group %d hard state: %w", g, err)
		}
		p.hs, p.found = &st, true
	case !isNotFound(err):
		return p, fmt.Errorf("multiraft: group %d hard state: %w", g, err)
	}
	prefix := groupPrefix(g, 'e')
	end := groupPrefix(g, 'e'+1)
	it, err := store.NewIter(ctx, prefix, end)
	if err != nil {
		return p, err
	}
	defer it.Close()
	for it.Next() {
		var e pb.Entry
		if err := proto.Unmarshal(it.Value(), &e); err != nil {
			return p, fmt.Errorf("multiraft: group %d entry: %w", g, err)
		}
		if e.GetIndex() <= p.compacted {
			continue // compacted, its delete not yet persisted
		}
		p.ents = append(p.ents, &e)
	}
	if err := it.Err(); err != nil {
		return p, err
	}
	if len(p.ents) > 0 {
		p.found = true
	}
	return p, nil
}

// appendToBatch records entries (which may overwrite a conflicting tail)
// and deletes any persisted entries past the new last index.
func appendToBatch(b *tiers.Batch, g GroupID, ents []*pb.Entry, persistedLast uint64) (uint64, error) {
	if len(ents) == 0 {
		return persistedLast, nil
	}
	for _, e := range ents {
		data, err := proto.Marshal(e)
		if err != nil {
			return 0, err
		}
		b.Set(entryKey(g, e.GetIndex()), data)
	}
	last := ents[len(ents)-1].GetIndex()
	for i := last + 1; i <= persistedLast; i++ {
		b.Delete(entryKey(g, i))
	}
	return last, nil
}

// storage is the raft log in memory (a copy of the persisted one) with the
// membership the state machine persisted: raft reads it at start, and
// entries after the applied index replay the changes since.
type storage struct {
	*raft.MemoryStorage
	cs       *pb.ConfState
	snapshot func() (*pb.Snapshot, error) // set once the group exists
}

// Snapshot is what raft sends a follower that needs compacted entries. It
// is made when asked, at the state machine's applied index with its
// membership, and carries no data: the follower fetches the state from
// this node (StateMachine.ApplySnapshot), then as new as it is by then.
func (s *storage) Snapshot() (*pb.Snapshot, error) {
	if s.snapshot == nil {
		return s.MemoryStorage.Snapshot()
	}
	return s.snapshot()
}

func (s *storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs, cs, err := s.MemoryStorage.InitialState()
	if err == nil && s.cs != nil {
		cs = s.cs
	}
	return hs, cs, err
}
