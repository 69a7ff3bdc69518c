// Moving a raft log kept in the store (by a node before the dedicated
// log) into the dedicated log.

package multiraft

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
)

// migrate moves the raft state store holds under storeLog's keys into l,
// once: when l holds no group and store holds raft keys, every group's
// compaction point, entries and hard state are copied into l with one
// synced write; then the keys are deleted from store with a synced write.
//
// An interrupted migration is redone on the next start: a crash before
// the log's write returned leaves l empty (a batch is replayed whole or
// not at all) and the keys in place, so the copy starts over; a crash
// after it leaves keys that a non-empty l makes leftovers, which are
// deleted without copying. Nothing writes raft keys to store once l is in
// use, so a non-empty l holds everything they held and more.
func migrate(ctx context.Context, store tiers.Store, l *raftlog.Log, log *slog.Logger) error {
	groups, keys, err := storedRaftKeys(ctx, store)
	if err != nil {
		return fmt.Errorf("multiraft: listing the raft keys of the store: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	if len(l.Groups()) == 0 {
		var b raftlog.Batch
		entries := 0
		for _, g := range groups {
			p, err := loadGroup(ctx, store, g)
			if err != nil {
				return err
			}
			if !p.found {
				continue
			}
			lg := raftlog.GroupID(g)
			if p.compacted > 0 {
				b.Snapshot(lg, p.compacted, p.compactedTerm)
			}
			b.Append(lg, p.ents)
			if p.hs != nil {
				b.SetHardState(lg, p.hs)
			}
			entries += len(p.ents)
		}
		if err := l.Write(&b, true); err != nil {
			return fmt.Errorf("multiraft: moving the raft log out of the store: %w", err)
		}
		log.Info("moved the raft log from the store into the dedicated log", "groups", len(groups), "entries", entries)
	} else {
		log.Warn("deleting raft keys left in the store by an interrupted move to the dedicated log", "keys", len(keys))
	}
	var db tiers.Batch
	for _, k := range keys {
		db.Delete(k)
	}
	if err := store.Apply(ctx, &db, true); err != nil {
		return fmt.Errorf("multiraft: deleting the raft keys of the store: %w", err)
	}
	return nil
}

// storedRaftKeys lists the keys storeLog writes — r<group>e<index>,
// r<group>h, r<group>t — that store holds, and their groups in ascending
// order.
func storedRaftKeys(ctx context.Context, store tiers.Store) ([]GroupID, [][]byte, error) {
	it, err := store.NewIter(ctx, []byte{'r'}, []byte{'r' + 1})
	if err != nil {
		return nil, nil, err
	}
	var groups []GroupID
	var keys [][]byte
	for it.Next() {
		k := it.Key()
		if !isRaftKey(k) {
			continue
		}
		keys = append(keys, bytes.Clone(k))
		if g := GroupID(binary.BigEndian.Uint32(k[1:5])); len(groups) == 0 || groups[len(groups)-1] != g {
			groups = append(groups, g)
		}
	}
	return groups, keys, errors.Join(it.Err(), it.Close())
}

func isRaftKey(k []byte) bool {
	switch {
	case len(k) == 6 && (k[5] == 'h' || k[5] == 't'):
		return true
	case len(k) == 14 && k[5] == 'e':
		return true
	}
	return false
}
