package multiraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

// crashPoint is the moment a simulated crash hits: the at-th write to the
// store or the log. Whatever is written from then on is lost, as if the
// process had died there (the node goes on, but nothing it does counts).
type crashPoint struct {
	ops      atomic.Int64
	at       atomic.Int64 // 0: not armed
	frozen   atomic.Bool
	onFreeze func()
	once     sync.Once
}

// step counts a write about to be made and reports whether the crash has
// happened (this write is then lost).
func (c *crashPoint) step() bool {
	if c.ops.Add(1) == c.at.Load() {
		c.freeze()
	}
	return c.frozen.Load()
}

// arm makes the crash hit at the k-th write from now.
func (c *crashPoint) arm(k int64) { c.at.Store(c.ops.Load() + k) }

func (c *crashPoint) freeze() {
	c.once.Do(func() {
		c.frozen.Store(true)
		if c.onFreeze != nil {
			c.onFreeze()
		}
	})
}

// crashStore is a tiers.Store whose unsynced writes a crash may keep or
// lose: live has every write, durable those a synced write made durable,
// pending the unsynced ones since.
type crashStore struct {
	mu      sync.Mutex
	cp      *crashPoint
	live    *memory.Store
	durable *memory.Store
	pending []*tiers.Batch
}

func newCrashStore() *crashStore {
	return &crashStore{live: memory.New(), durable: memory.New()}
}

func (s *crashStore) store() *memory.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

func (s *crashStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	return s.store().Get(ctx, key)
}

func (s *crashStore) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	return s.store().NewIter(ctx, lower, upper)
}

func (s *crashStore) Stats() tiers.Stats { return s.store().Stats() }

func (s *crashStore) Close() error { return nil }

func (s *crashStore) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.live.Apply(ctx, b, sync); err != nil {
		return err
	}
	if s.cp != nil && s.cp.step() {
		return nil // after the crash: lost
	}
	c := &tiers.Batch{}
	c.Append(b)
	s.pending = append(s.pending, c)
	if sync {
		for _, p := range s.pending {
			if err := s.durable.Apply(ctx, p, true); err != nil {
				return err
			}
		}
		s.pending = nil
	}
	return nil
}

// restart is the store after the crash: what was durable, and the
// unsynced writes before the crash too unless lose.
func (s *crashStore) restart(t *testing.T, lose bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !lose {
		for _, p := range s.pending {
			if err := s.durable.Apply(context.Background(), p, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.pending = nil
	s.live = memory.New()
	it, err := s.durable.NewIter(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b tiers.Batch
	for it.Next() {
		b.Set(it.Key(), it.Value())
	}
	it.Close()
	if err := s.live.Apply(context.Background(), &b, true); err != nil {
		t.Fatal(err)
	}
}

// imagedLog keeps, in image, a copy of the dedicated log's directory as
// of its last synced write before the crash: what survives a crash that
// loses every unsynced write.
type imagedLog struct {
	logStore
	cp         *crashPoint
	dir, image string
	t          *testing.T
}

func (l *imagedLog) writeOps(ctx context.Context, ops *logOps, sync bool) error {
	lost := l.cp.step()
	err := l.logStore.writeOps(ctx, ops, sync)
	if err == nil && sync && !lost {
		copyLogFiles(l.t, l.dir, l.image)
	}
	return err
}

// copyLogFiles makes the segment files of directory to those of from.
func copyLogFiles(t *testing.T, from, to string) {
	segments := func(dir string) map[string]int64 {
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, de := range des {
			if filepath.Ext(de.Name()) == ".rlog" {
				info, err := de.Info()
				if err != nil {
					t.Fatal(err)
				}
				out[de.Name()] = info.Size()
			}
		}
		return out
	}
	have, want := segments(to), segments(from)
	for name := range have {
		if _, ok := want[name]; !ok {
			if err := os.Remove(filepath.Join(to, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, size := range want {
		if have[name] == size {
			continue // segments only grow: same size, same bytes
		}
		src, err := os.Open(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// storeSM is a state machine that persists its commands and applied
// index in the store (unlike recorder), as core's does: after a restart
// it knows what was durable, and entries after it are applied again.
type storeSM struct {
	store   tiers.Store
	mu      sync.Mutex
	applied map[GroupID]uint64
	cs      map[GroupID]*pb.ConfState
	cmds    map[GroupID][]string
	touched map[GroupID]bool
	b       tiers.Batch
	errs    []string
}

// Keys: s<group:4>a applied index, s<group:4>m membership,
// s<group:4>c<index:8> the command applied at index.
func smKey(g GroupID, kind byte, index ...uint64) []byte {
	k := binary.BigEndian.AppendUint32([]byte{'s'}, uint32(g))
	k = append(k, kind)
	for _, i := range index {
		k = binary.BigEndian.AppendUint64(k, i)
	}
	return k
}

func loadStoreSM(t *testing.T, store tiers.Store) *storeSM {
	sm := &storeSM{store: store, applied: map[GroupID]uint64{}, cs: map[GroupID]*pb.ConfState{}, cmds: map[GroupID][]string{}, touched: map[GroupID]bool{}}
	it, err := store.NewIter(context.Background(), []byte{'s'}, []byte{'t'})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.Next() {
		k, v := it.Key(), it.Value()
		g := GroupID(binary.BigEndian.Uint32(k[1:5]))
		switch k[5] {
		case 'a':
			sm.applied[g] = binary.BigEndian.Uint64(v)
		case 'm':
			var cs pb.ConfState
			if err := proto.Unmarshal(v, &cs); err != nil {
				t.Fatal(err)
			}
			sm.cs[g] = &cs
		case 'c':
			sm.cmds[g] = append(sm.cmds[g], string(v))
		}
	}
	return sm
}

func (sm *storeSM) next(g GroupID, index uint64) bool {
	if index != sm.applied[g]+1 {
		sm.errs = append(sm.errs, fmt.Sprintf("group %d: index %d applied after %d", g, index, sm.applied[g]))
		return false
	}
	sm.applied[g], sm.touched[g] = index, true
	return true
}

func (sm *storeSM) Apply(g GroupID, index uint64, data []byte) any {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.next(g, index) && data != nil {
		sm.cmds[g] = append(sm.cmds[g], string(data))
		sm.b.Set(smKey(g, 'c', index), data)
	}
	return nil
}

func (sm *storeSM) ApplyConfState(g GroupID, index uint64, cs *pb.ConfState) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.next(g, index) {
		sm.cs[g] = cs
		data, _ := proto.Marshal(cs)
		sm.b.Set(smKey(g, 'm'), data)
	}
}

func (sm *storeSM) Applied(g GroupID) (uint64, *pb.ConfState) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.applied[g], sm.cs[g]
}

func (sm *storeSM) ApplySnapshot(context.Context, GroupID, NodeID, *pb.Snapshot) (func(), error) {
	return nil, errors.New("storeSM takes no snapshots")
}

func (sm *storeSM) Flush(b *tiers.Batch) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for g := range sm.touched {
		sm.b.Set(smKey(g, 'a'), binary.BigEndian.AppendUint64(nil, sm.applied[g]))
	}
	clear(sm.touched)
	b.Append(&sm.b)
	sm.b.Reset()
}

func (sm *storeSM) Commit() error { return nil }

func (sm *storeSM) commands(g GroupID) []string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return slices.Clone(sm.cmds[g])
}

type nowhere struct{}

func (nowhere) Send(NodeID, []Message) {}

// TestCrashLosesNoCommittedEntry crashes a node under writes, at a random
// write to its store or log, again and again: a node that is the only
// voter of its groups, and a node of three, which comes back behind the
// others and catches up from them (a follower gets entries that are
// committed already, and applies them in the cycle that stores them).
//
// At each crash the store keeps or loses (at random) its unsynced
// writes; the dedicated log loses all of its own, while the store may
// keep its later ones — the case of a state machine whose applied index
// is past the log's commit index (invariant (b) of the package doc), and,
// when the crash hits between a cycle's two writes, of the order of the
// log write and the store write (a). Small LogKeep: the crashing node,
// alone, compacts its logs all along, which must never cut entries whose
// state machine writes a crash can lose (c). Each restart must succeed and keep
// every acknowledged write, each applied once, in order.
func TestCrashLosesNoCommittedEntry(t *testing.T) {
	forEachLog(t, func(t *testing.T, dedicated bool) {
		t.Run("alone", func(t *testing.T) { testCrash(t, dedicated, 1) })
		t.Run("of3", func(t *testing.T) { testCrash(t, dedicated, 3) })
	})
}

// proposeSeen proposes data in g through n, or through the node that
// leads g when n does not, and returns once n has applied it.
func proposeSeen(ctx context.Context, n *Node, nodes []*Node, g GroupID, data string) error {
	for {
		via := n
		if lead := n.Leader(g); lead != 0 && int(lead) < len(nodes) && nodes[lead] != nil {
			via = nodes[lead]
		}
		_, err := via.Propose(ctx, g, []byte(data))
		switch {
		case err == nil:
			return n.ReadIndex(ctx, g)
		case errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader):
			time.Sleep(time.Millisecond)
		default:
			return err
		}
	}
}

func testCrash(t *testing.T, dedicated bool, voters int) {
	rounds := 30
	if testing.Short() {
		rounds = 10
	}
	groups := []GroupID{1, 2, 3}
	var ids []NodeID
	for i := range voters {
		ids = append(ids, NodeID(i+1))
	}
	ctx := context.Background()
	// Nodes 2 and 3 never crash, and keep their logs long: node 1 catches
	// up from them.
	nw := newNetwork()
	nodes := make([]*Node, voters+1)
	for _, id := range ids[1:] {
		n, err := New(Config{ID: id, Store: memory.New(), Transport: endpoint{nw, id}, StateMachine: newRecorder(), TickInterval: 2 * time.Millisecond, LogKeep: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		for _, g := range groups {
			if err := n.OpenGroup(ctx, g, ids); err != nil {
				t.Fatal(err)
			}
		}
		nw.attach(id, n)
		nodes[id] = n
	}
	store := newCrashStore()
	dir, image := t.TempDir(), t.TempDir()
	rng := rand.New(rand.NewPCG(1, uint64(voters)))
	acked := map[GroupID][]string{}
	var ackMu sync.Mutex
	var kept, lost, raised int
	for round := 0; round <= rounds; round++ {
		cp := &crashPoint{onFreeze: func() { nw.setDown(1, true) }} // a dead node sends nothing
		store.cp = cp
		sm := loadStoreSM(t, store)
		// Alone, node 1 compacts all along (c). With peers it keeps its log:
		// a follower it left behind would need a snapshot, which the test
		// state machines here do not copy.
		keep := 5
		if voters > 1 {
			keep = 1 << 20
		}
		cfg := Config{ID: 1, Store: store, Transport: endpoint{nw, 1}, StateMachine: sm, TickInterval: 2 * time.Millisecond, LogKeep: keep}
		var l *raftlog.Log
		commits := map[GroupID]uint64{}
		if dedicated {
			var err error
			if l, err = raftlog.Open(raftlog.Config{Dir: dir, SegmentBytes: 8 << 10}); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			copyLogFiles(t, dir, image) // Open's own writes are durable
			for _, g := range groups {
				if st, ok := l.State(raftlog.GroupID(g)); ok {
					commits[g] = st.HardState.GetCommit()
				}
			}
			cfg.Log = l
			cfg.wrapLog = func(ls logStore) logStore { return &imagedLog{logStore: ls, cp: cp, dir: dir, image: image, t: t} }
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, g := range groups {
			if err := n.OpenGroup(ctx, g, ids); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if applied, _ := sm.Applied(g); dedicated && applied > commits[g] {
				raised++
			}
		}
		nw.attach(1, n)
		nodes[1] = n
		// Every write acknowledged before is there, once, in order.
		for _, g := range groups {
			check := fmt.Sprintf("check-%d-%d", round, g)
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := proposeSeen(pctx, n, nodes, g, check)
			cancel()
			if err != nil {
				for id, nd := range nodes {
					if nd != nil {
						st, _ := nd.Status(ctx)
						t.Logf("node %d: %+v", id, st)
					}
				}
				t.Fatalf("round %d: group %d: %v", round, g, err)
			}
			got := sm.commands(g)
			ackMu.Lock()
			want := slices.Clone(acked[g])
			ackMu.Unlock()
			seen := map[string]bool{}
			for _, c := range got {
				if seen[c] {
					t.Fatalf("round %d: group %d applied %q twice", round, g, c)
				}
				seen[c] = true
			}
			for _, c := range want {
				if !seen[c] {
					t.Fatalf("round %d: group %d lost the acknowledged write %q (holds %d commands)", round, g, c, len(got))
				}
			}
		}
		sm.mu.Lock()
		if len(sm.errs) > 0 {
			t.Fatalf("round %d: %v", round, sm.errs)
		}
		sm.mu.Unlock()
		if round == rounds {
			n.Close()
			if l != nil {
				l.Close()
			}
			break
		}
		// Write from a goroutine per group and node until the crash.
		cp.arm(1 + rng.Int64N(300))
		var wg sync.WaitGroup
		for _, g := range groups {
			for _, id := range ids {
				wg.Go(func() {
					for i := 0; !cp.frozen.Load(); i++ {
						cmd := fmt.Sprintf("r%d-g%d-n%d-%d", round, g, id, i)
						pctx, cancel := context.WithTimeout(ctx, time.Second)
						_, err := nodes[id].Propose(pctx, g, []byte(cmd))
						cancel()
						if errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader) {
							time.Sleep(time.Millisecond)
						}
						// An answer of node 1 counts if it came before the
						// crash; the others' answer for the cluster.
						if err == nil && (id != 1 || !cp.frozen.Load()) {
							ackMu.Lock()
							acked[g] = append(acked[g], cmd)
							ackMu.Unlock()
						}
					}
				})
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for !cp.frozen.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cp.freeze()
		n.Close()
		wg.Wait()
		loseStore := rng.IntN(2) == 0
		if loseStore {
			lost++
		} else {
			kept++
		}
		store.restart(t, loseStore)
		if dedicated {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// The log loses every write after its last synced one.
			copyLogFiles(t, image, dir)
		}
	}
	total := 0
	for _, g := range groups {
		total += len(acked[g])
	}
	t.Logf("%d crashes (store kept its unsynced writes %d times, lost them %d), %d acknowledged writes; %d groups restarted with a commit index raised to the applied one",
		rounds, kept, lost, total, raised)
	// Alone, node 1 writes a commit index unsynced in most cycles, and
	// restarts past it in every run; with peers that is rarer (a few in
	// 30 crashes, sometimes none), so only the lone voter insists.
	if dedicated && voters == 1 && raised == 0 {
		t.Errorf("no restart found the state machine past the log's commit index: the test no longer tests that")
	}
}
