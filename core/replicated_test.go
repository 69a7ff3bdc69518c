package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/regmodel"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
)

// raftNet is an in-memory network between clustered nodes: messages are
// marshaled as on a wire and delivered in order per destination; a cut
// node neither sends nor receives.
type raftNet struct {
	mu    sync.Mutex
	nodes map[multiraft.NodeID]*Node
	cut   map[multiraft.NodeID]bool
	queue map[multiraft.NodeID]chan []multiraft.Message
}

func newRaftNet() *raftNet {
	return &raftNet{nodes: map[multiraft.NodeID]*Node{}, cut: map[multiraft.NodeID]bool{}, queue: map[multiraft.NodeID]chan []multiraft.Message{}}
}

func (nw *raftNet) attach(id multiraft.NodeID, n *Node) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.nodes[id] = n
	if nw.queue[id] == nil {
		q := make(chan []multiraft.Message, 4096)
		nw.queue[id] = q
		go func() {
			for msgs := range q {
				nw.mu.Lock()
				dst, cut := nw.nodes[id], nw.cut[id]
				nw.mu.Unlock()
				if !cut && dst != nil {
					dst.Step(msgs)
				}
			}
		}()
	}
}

func (nw *raftNet) setCut(id multiraft.NodeID, cut bool) {
	nw.mu.Lock()
	nw.cut[id] = cut
	nw.mu.Unlock()
}

type raftEndpoint struct {
	nw   *raftNet
	from multiraft.NodeID
}

func (e raftEndpoint) Send(to multiraft.NodeID, msgs []multiraft.Message) {
	e.nw.mu.Lock()
	q, drop := e.nw.queue[to], e.nw.cut[e.from] || e.nw.cut[to]
	e.nw.mu.Unlock()
	if drop || q == nil {
		return
	}
	out := make([]multiraft.Message, len(msgs))
	for i, m := range msgs {
		b, err := proto.Marshal(m.Msg)
		if err != nil {
			panic(err)
		}
		var back pb.Message
		if err := proto.Unmarshal(b, &back); err != nil {
			panic(err)
		}
		out[i] = multiraft.Message{Group: m.Group, Msg: &back}
	}
	select {
	case q <- out:
	default:
	}
}

// testCluster is three clustered nodes grown from one, the way a real
// cluster grows: node 1 bootstraps every partition alone and holds data
// before the others are added as learners and promoted.
type testCluster struct {
	t      *testing.T
	nw     *raftNet
	nodes  []*Node
	stores []tiers.Store
}

func newTestCluster(t *testing.T, parts int, before func(n *Node)) *testCluster {
	c := &testCluster{t: t, nw: newRaftNet()}
	for i := range 3 {
		id := multiraft.NodeID(i + 1)
		s := memory.New()
		cfg := Config{Store: s, Partitions: parts, CacheBytes: 8 << 10,
			Raft: &RaftConfig{ID: id, Transport: raftEndpoint{c.nw, id}, Bootstrap: i == 0, TickInterval: 5 * time.Millisecond,
				LogKeep: 20, FetchPartition: c.fetch}}
		if i == 1 {
			cfg.RaftLogDir = t.TempDir() // one node keeps its raft log in a log of its own
		}
		n, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nw.attach(id, n)
		c.nodes, c.stores = append(c.nodes, n), append(c.stores, s)
		if i == 0 && before != nil {
			before(n)
		}
	}
	t.Cleanup(func() {
		for i, n := range c.nodes {
			n.Close()
			c.stores[i].Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for p := range parts {
		for _, typ := range []pb.ConfChangeType{pb.ConfChangeType_ConfChangeAddLearnerNode, pb.ConfChangeType_ConfChangeAddNode} {
			for _, id := range []uint64{2, 3} {
				cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: typ.Enum(), NodeId: proto.Uint64(id)}}}
				err := c.nodes[0].ChangeReplicas(ctx, p, cc)
				for errors.Is(err, multiraft.ErrNoLeader) {
					time.Sleep(5 * time.Millisecond)
					err = c.nodes[0].ChangeReplicas(ctx, p, cc)
				}
				if err != nil {
					t.Fatalf("partition %d: %v node %d: %v", p, typ, id, err)
				}
			}
		}
	}
	// A replica its leader has not filled yet (opened by a message, its
	// snapshot not installed: raft may already know the snapshot's voters,
	// but nothing is applied) answers as no replica (a cluster asks
	// another); here, wait until all are filled.
	filled := func(st []multiraft.GroupStatus) bool {
		if len(st) < parts {
			return false
		}
		for _, g := range st {
			if len(g.Voters) == 0 || g.Applied == 0 {
				return false
			}
		}
		return true
	}
	for i, n := range c.nodes {
		for st, _ := n.GroupStatus(ctx); !filled(st); st, _ = n.GroupStatus(ctx) {
			if ctx.Err() != nil {
				t.Fatalf("node %d holds %d of %d partitions", i+1, len(st), parts)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return c
}

// fetch serves FetchPartition from the node with raft id from.
func (c *testCluster) fetch(ctx context.Context, from multiraft.NodeID, part int, index uint64, fn func(key, value []byte) error) error {
	c.nw.mu.Lock()
	src := c.nw.nodes[from]
	c.nw.mu.Unlock()
	if src == nil {
		return fmt.Errorf("no node %d", from)
	}
	st, err := src.GroupStatus(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(st, func(g multiraft.GroupStatus) bool { return int(g.Group) == part && g.Applied >= index }) {
		return fmt.Errorf("node %d holds no replica of partition %d at %d", from, part, index)
	}
	it, err := src.PartitionSnapshot(ctx, part)
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Err()
}

// TestClusterReplicatesFromOneNode: items a node held alone are on every
// replica once two nodes join, with the same versions, and a write through
// the leader is read through any node.
func TestClusterReplicatesFromOneNode(t *testing.T) {
	ctx := context.Background()
	const before = 200
	versions := map[string]string{}
	c := newTestCluster(t, 4, func(n *Node) {
		for i := range before {
			it, err := n.Add(ctx, "t", &item.Item{ID: fmt.Sprint("old-", i), Data: json.RawMessage(`1`)})
			if err != nil {
				t.Fatal(err)
			}
			versions[it.ID] = it.Version
		}
	})
	// A write through a follower is refused, unmade (the cluster package
	// routes it to the leader); through the leader it is made.
	in := &item.Item{ID: "new", Data: json.RawMessage(`"via its leader"`)}
	lead := c.nodes[0].Leader(PartitionOf("t", in.ID, 4))
	for deadline := time.Now().Add(10 * time.Second); lead == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		lead = c.nodes[0].Leader(PartitionOf("t", in.ID, 4))
	}
	for i, n := range c.nodes {
		if multiraft.NodeID(i+1) == lead {
			continue
		}
		if _, err := n.Add(ctx, "t", in); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("write through follower %d: got %v, want ErrNotLeader", i+1, err)
		}
	}
	it, err := c.nodes[lead-1].Add(ctx, "t", in)
	if err != nil {
		t.Fatalf("write through the leader: %v", err)
	}
	versions["new"] = it.Version
	for i, n := range c.nodes {
		for id, v := range versions {
			got, err := n.Get(ctx, "t", id)
			if err != nil {
				t.Fatalf("node %d: %s: %v", i+1, id, err)
			}
			if got.Version != v {
				t.Fatalf("node %d: %s has version %s, written as %s", i+1, id, got.Version, v)
			}
		}
		if m := n.Metrics(); m.Storage.Items != before+1 {
			t.Errorf("node %d holds %d items, want %d", i+1, m.Storage.Items, before+1)
		}
	}
	// 200 writes in 4 partitions with a 20-entry log: nodes 2 and 3 could
	// only catch up by snapshot.
	for i, n := range c.nodes[1:] {
		if n.RaftStats().SnapshotsInstalled == 0 {
			t.Errorf("node %d caught up without a snapshot", i+2)
		}
	}
}

// TestClusterLinearizable runs the porcupine check of TestLinearizable on
// a three-node cluster, each client talking to a random node, while a
// nemesis cuts one node's links at a time.
func TestClusterLinearizable(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runClusterLinearizable(t, seed)
		})
	}
}

func runClusterLinearizable(t *testing.T, seed uint64) {
	c := newTestCluster(t, 2, nil)
	ctx := context.Background()
	var stop atomic.Bool
	var nemesis sync.WaitGroup
	nemesis.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 99))
		for !stop.Load() {
			id := multiraft.NodeID(rng.IntN(3) + 1)
			c.nw.setCut(id, true)
			time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
			c.nw.setCut(id, false)
			time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
		}
	})
	const clients, opsEach, keys = 6, 150, 3
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(cl)))
			lastSeen := map[string]string{}
			for i := range opsEach {
				in := regmodel.Input{Key: fmt.Sprint("k", rng.IntN(keys)), Value: fmt.Sprintf("%d-%d", cl, i)}
				r := rng.IntN(10)
				call := time.Since(start).Nanoseconds()
				var out regmodel.Output
				var err error
				// A write through a node that does not lead the key's
				// partition is refused unmade (ErrNotLeader): the client
				// tries another node, as the cluster package's router does.
				for try := 0; ; try++ {
					out, err = linearizableOp(ctx, c.nodes[rng.IntN(3)], &in, r, lastSeen)
					if !errors.Is(err, ErrNotLeader) || try == 100 {
						break
					}
				}
				ret := time.Since(start).Nanoseconds()
				switch {
				case err == nil:
				case errors.Is(err, item.ErrUnavailable):
					// Timed out: it may or may not have happened.
					out = regmodel.Output{Unknown: true}
					ret = regmodel.EndOfTime
				default:
					t.Error(err)
					return
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	nemesis.Wait()
	unknown := 0
	for _, op := range history {
		if op.Output.(regmodel.Output).Unknown {
			unknown++
		}
	}
	t.Logf("seed %d: %d operations, %d with unknown outcome", seed, len(history), unknown)
	switch res, report := regmodel.Check(history, 60*time.Second); res {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Fatalf("seed %d: the history of %d operations is not linearizable\n%s", seed, len(history), report)
	default:
		t.Fatalf("seed %d: linearizability check inconclusive (%v)", seed, res)
	}
}

// TestRaftLogMovesOutOfTheStore: a clustered node on disk that kept its
// raft log in its store (compacted, so with truncation points) restarts
// with a dedicated raft log: every item is there with its version, the
// store's raft keys are gone, and the node goes on taking writes — across
// a further restart too.
func TestRaftLogMovesOutOfTheStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(logDir string) (*Node, tiers.Store) {
		t.Helper()
		store, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "data")})
		if err != nil {
			t.Fatal(err)
		}
		n, err := Open(ctx, Config{Store: store, Partitions: 4, RaftLogDir: logDir,
			Raft: &RaftConfig{ID: 1, Transport: noTransport{}, Bootstrap: true, LogKeep: 10}})
		if err != nil {
			t.Fatal(err)
		}
		return n, store
	}
	raftKeys := func(store tiers.Store) int {
		it, err := store.NewIter(ctx, []byte{'r'}, []byte{'s'})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		keys := 0
		for it.Next() {
			keys++
		}
		return keys
	}
	versions := map[string]string{}
	write := func(n *Node, prefix string, count int) {
		for i := range count {
			id := fmt.Sprint(prefix, i%40)
			it, _, err := n.Put(ctx, "t", &item.Item{ID: id, Data: json.RawMessage(fmt.Sprint(i))}, item.Cond{})
			if err != nil {
				t.Fatal(err)
			}
			versions[id] = it.Version
		}
	}
	check := func(n *Node) {
		t.Helper()
		for id, v := range versions {
			got, err := n.Get(ctx, "t", id)
			if err != nil || got.Version != v {
				t.Fatalf("%s: %+v, %v; want version %s", id, got, err, v)
			}
		}
	}
	n, store := open("")
	write(n, "old-", 200)
	n.Close()
	if raftKeys(store) == 0 {
		t.Fatal("the store holds no raft log")
	}
	store.Close()

	logDir := filepath.Join(dir, "data", "raftlog")
	for round := range 2 {
		n, store = open(logDir)
		check(n)
		if k := raftKeys(store); k != 0 {
			t.Fatalf("round %d: %d raft keys left in the store", round, k)
		}
		write(n, fmt.Sprint("new-", round, "-"), 100)
		check(n)
		n.Close()
		store.Close()
	}
}
