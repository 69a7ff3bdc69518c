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

func hardStateKey(g GroupID) []byte { return groupPrefix(g, 'h') }

// HardStateKey is the store key of group g's hard state: present once the
// group has persisted anything on this node.
func HardStateKey(g GroupID) []byte { return hardStateKey(g) }

// loadGroup reads a group's persisted log into a fresh MemoryStorage.
// It reports whether the group had any state.
func loadGroup(ctx context.Context, store tiers.Store, g GroupID) (*raft.MemoryStorage, uint64, bool, error) {
	ms := raft.NewMemoryStorage()
	found := false
	hs, err := store.Get(ctx, hardStateKey(g))
	switch {
	case err == nil:
		var st pb.HardState
		if err := proto.Unmarshal(hs, &st); err != nil {
			return nil, 0, false, fmt.Errorf("multiraft: group %d hard state: %w", g, err)
		}
		if err := ms.SetHardState(&st); err != nil {
			return nil, 0, false, err
		}
		found = true
	case !errors.Is(err, tiers.ErrNotFound):
		return nil, 0, false, fmt.Errorf("multiraft: group %d hard state: %w", g, err)
	}
	prefix := groupPrefix(g, 'e')
	end := groupPrefix(g, 'e'+1)
	it, err := store.NewIter(ctx, prefix, end)
	if err != nil {
		return nil, 0, false, err
	}
	defer it.Close()
	var ents []*pb.Entry
	for it.Next() {
		var e pb.Entry
		if err := proto.Unmarshal(it.Value(), &e); err != nil {
			return nil, 0, false, fmt.Errorf("multiraft: group %d entry: %w", g, err)
		}
		ents = append(ents, &e)
	}
	if err := it.Err(); err != nil {
		return nil, 0, false, err
	}
	var last uint64
	if len(ents) > 0 {
		if err := ms.Append(ents); err != nil {
			return nil, 0, false, err
		}
		last = ents[len(ents)-1].GetIndex()
		found = true
	}
	return ms, last, found, nil
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
