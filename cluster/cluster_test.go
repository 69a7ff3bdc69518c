package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

func testLogger(t testing.TB, id string) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("n", id)
}

// directory is a membership list the test edits.
type directory struct {
	mu    sync.Mutex
	peers []Peer
}

func (d *directory) Members() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.peers)
}

func (d *directory) set(peers []Peer) {
	d.mu.Lock()
	d.peers = peers
	d.mu.Unlock()
}

// member is one in-process node: QUIC server and client on loopback, a
// memory store, and a view of the shared directory.
type member struct {
	id     string
	node   *Node
	store  tiers.Store
	srv    *transport.Server
	client *transport.Client
}

type testCluster struct {
	t       testing.TB
	ca      *pki.CA
	dir     *directory
	members map[string]*member
	peers   map[string]Peer
	logKeep int // raft's LogKeep for nodes started from now on; 0 is 20
	// snapshotBytesPerSecond is Config.SnapshotBytesPerSecond for nodes
	// started from now on.
	snapshotBytesPerSecond int
	started                int // nodes started: every other one keeps its raft log in a raftlog of its own
	// readers are the ids started, or to be, as readers (Config.Reader).
	readers map[string]bool
	// profile and tuneWindow are Config.Profile and TuneWindow for nodes
	// started from now on.
	profile    string
	tuneWindow time.Duration
	// findTimeout is Config.FindTimeout for nodes started from now on.
	findTimeout time.Duration
}

func newTestCluster(t testing.TB) *testCluster {
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ca: ca, dir: &directory{}, members: map[string]*member{}, peers: map[string]Peer{}, readers: map[string]bool{}}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m.id)
		}
	})
	return c
}

// start starts node id and lists it in the directory once its QUIC server
// is up (as gossip would).
func (c *testCluster) start(id string) *member {
	creds, err := c.ca.NewBundle(id, []string{"127.0.0.1"})
	if err != nil {
		c.t.Fatal(err)
	}
	srv, err := transport.NewServer(transport.LocalConfig(creds.TLSConfig()))
	if err != nil {
		c.t.Fatal(err)
	}
	go srv.Serve(context.Background())
	client, err := transport.NewClient(transport.LocalConfig(creds.TLSConfig()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.peers[id] = Peer{ID: id, QUICAddr: srv.Addr().String(), Reader: c.readers[id]}
	c.publish()
	m := &member{id: id, store: memory.New(), srv: srv, client: client}
	logKeep := c.logKeep
	if logKeep == 0 {
		logKeep = 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc := core.Config{Store: m.store, NodeID: id, Partitions: 8, Logger: testLogger(c.t, id)}
	if c.started++; c.started%2 == 0 {
		cc.RaftLogDir = c.t.TempDir()
	}
	m.node, err = Start(ctx, Config{
		Core: cc, Server: srv, Client: client, Directory: c.dir,
		BootstrapWait: 300 * time.Millisecond, ReconcileInterval: 50 * time.Millisecond, DeadAfter: time.Second,
		TickInterval: 10 * time.Millisecond, Logger: testLogger(c.t, id), LogKeep: logKeep,
		SnapshotBytesPerSecond: c.snapshotBytesPerSecond, Reader: c.readers[id], Profile: c.profile, TuneWindow: c.tuneWindow,
		FindTimeout: c.findTimeout,
	})
	if err != nil {
		c.t.Fatalf("starting %s: %v", id, err)
	}
	c.members[id] = m
	return m
}

func (c *testCluster) publish() {
	var ps []Peer
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	c.dir.set(ps)
}

func (c *testCluster) stop(id string) {
	if c.members[id] == nil {
		return
	}
	delete(c.peers, id)
	c.publish()
	c.crash(id)
}

// crash stops member id without a word to the others: the directory
// still lists it; its peers find out by themselves.
func (c *testCluster) crash(id string) {
	m := c.members[id]
	m.node.Close()
	m.srv.Close()
	m.client.Close()
	m.store.Close()
	delete(c.members, id)
}

// waitPlacement waits until every partition, as each running member sees
// it, has want voters, all of them running members, and a learner on each
// running reader only.
func (c *testCluster) waitPlacement(want int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		leaders := map[int]bool{}
		var ms []Member
		var readers []string
		for id := range c.members {
			ms = append(ms, Member{ID: id, Raft: core.RaftID(id), Reader: c.readers[id]})
			if c.readers[id] {
				readers = append(readers, id)
			}
		}
		slices.Sort(readers)
		held := map[int]int{}
		for _, m := range c.members {
			for _, p := range m.node.Metrics().Partitions {
				held[p.ID]++
				if len(p.Voters) != want || !slices.Equal(slices.Sorted(slices.Values(p.Learners)), readers) {
					ok, last = false, fmt.Sprintf("%s sees partition %d with voters %v learners %v", m.id, p.ID, p.Voters, p.Learners)
				}
				var placed []string
				for _, r := range Place(p.ID, ms, want) {
					for id := range c.members {
						if core.RaftID(id) == r {
							placed = append(placed, id)
						}
					}
				}
				slices.Sort(placed)
				voters := slices.Sorted(slices.Values(p.Voters))
				if !slices.Equal(placed, voters) {
					ok, last = false, fmt.Sprintf("%s sees partition %d on %v, placed on %v", m.id, p.ID, p.Voters, placed)
				}
				for _, v := range p.Voters {
					if c.members[v] == nil {
						ok, last = false, fmt.Sprintf("%s sees partition %d on %s, which is gone", m.id, p.ID, v)
					}
				}
				if p.Leader != "" {
					leaders[p.ID] = true
				}
			}
		}
		for p := range 8 {
			if held[p] != want+len(readers) {
				ok, last = false, fmt.Sprintf("partition %d has %d replicas", p, held[p])
			}
		}
		if ok && len(leaders) == 8 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.logGroups()
	c.t.Fatalf("placement never settled on %d voters per partition: %s", want, last)
}

// logGroups logs every raft group as each member sees it.
func (c *testCluster) logGroups() {
	for id, m := range c.members {
		st, _ := m.node.Core().GroupStatus(context.Background())
		for _, g := range st {
			c.t.Logf("%s: partition %d term %d leader %x voters %x learners %x quiet %d applied %d",
				id, g.Group, g.Term, g.Leader, g.Voters, g.Learners, g.Quiet, g.Applied)
		}
	}
}

func (c *testCluster) readAll(ids []string, via *member) {
	c.t.Helper()
	for _, id := range ids {
		it, err := via.node.Get(context.Background(), "t", id)
		// A 503 while leaderships move is an answer a client retries.
		for deadline := time.Now().Add(10 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
			it, err = via.node.Get(context.Background(), "t", id)
		}
		if err != nil {
			c.t.Fatalf("%s: reading %s: %v", via.id, id, err)
		}
		if string(it.Data) != fmt.Sprintf("%q", id) {
			c.t.Fatalf("%s: %s holds %s", via.id, id, it.Data)
		}
	}
}

// readDuring reads ids round robin through the given members until the
// returned function is called, which reports the reads made and the first
// failure.
func (c *testCluster) readDuring(ids []string, via ...*member) func() (int, error) {
	stop := make(chan struct{})
	var reads, unavailable atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for _, m := range via {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[i%len(ids)]
				// A 503 (no leader for a while) is retried, as a client
				// honouring Retry-After does; the item must come back
				// within 10 s, and with the right value.
				it, err := m.node.Get(context.Background(), "t", id)
				for deadline := time.Now().Add(10 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
					unavailable.Add(1)
					time.Sleep(10 * time.Millisecond)
					it, err = m.node.Get(context.Background(), "t", id)
				}
				if err == nil && string(it.Data) != fmt.Sprintf("%q", id) {
					err = fmt.Errorf("%s holds %s", id, it.Data)
				}
				if err != nil {
					err = fmt.Errorf("%s: reading %s: %w", m.id, id, err)
					first.CompareAndSwap(nil, &err)
				}
				reads.Add(1)
			}
		})
	}
	return func() (int, error) {
		close(stop)
		wg.Wait()
		c.t.Logf("%d answers were 503 and retried", unavailable.Load())
		if e := first.Load(); e != nil {
			return int(reads.Load()), *e
		}
		return int(reads.Load()), nil
	}
}

// listAll pages through the whole list via one member, 7 at a time.
func (c *testCluster) listAll(ids []string, via *member) {
	c.t.Helper()
	var got []string
	cursor := ""
	for {
		p, err := via.node.List(context.Background(), "t", item.ListOptions{Limit: 7, Cursor: cursor})
		for deadline := time.Now().Add(10 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
			p, err = via.node.List(context.Background(), "t", item.ListOptions{Limit: 7, Cursor: cursor})
		}
		if err != nil {
			c.t.Fatalf("%s: list: %v", via.id, err)
		}
		for _, it := range p.Items {
			got = append(got, it.ID)
		}
		if p.Cursor == "" {
			break
		}
		cursor = p.Cursor
	}
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s: list holds %d items, want %d (first %v)", via.id, len(got), len(want), got[:min(5, len(got))])
	}
}

// TestGrowAddRemove: a node holding data alone is joined by two more and
// every partition gets three voters on three nodes, with the data on all;
// a fourth node takes its share (forwarding covers the partitions it does
// not hold); removing a node re-creates its replicas on the others.
func TestGrowAddRemove(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	var ids []string
	for i := range 300 {
		id := fmt.Sprint("item-", i)
		data, _ := json.Marshal(id)
		if _, err := n1.node.Add(context.Background(), "t", &item.Item{ID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c.start("node-2")
	c.start("node-3")
	c.waitPlacement(3)
	// 300 items in 8 partitions with a 20-entry log: the new nodes could
	// only catch up by snapshots streamed over QUIC.
	for _, id := range []string{"node-2", "node-3"} {
		if r := c.members[id].node.Metrics().Replication; r.SnapshotsInstalled == 0 || r.SnapshotBytes == 0 {
			t.Errorf("%s caught up without snapshots: %+v", id, r)
		}
	}
	for _, m := range c.members {
		c.readAll(ids, m)
		if got := m.node.Metrics().Storage.Items; got != 300 {
			t.Errorf("%s holds %d items, want all 300", m.id, got)
		}
	}

	// Readers run through the whole move: every item stays readable (see
	// readDuring).
	readers := c.readDuring(ids, c.members["node-1"], c.members["node-3"])
	n4 := c.start("node-4")
	c.waitPlacement(3)
	if reads, err := readers(); err != nil {
		t.Fatalf("during the move to four nodes: %v", err)
	} else {
		t.Logf("%d reads during the move, all answered", reads)
	}
	if got := n4.node.Metrics().Shards.Replicas; got == 0 || got == 8 {
		t.Errorf("node-4 holds %d of 8 partitions; it should hold a share", got)
	}
	for _, m := range c.members {
		c.readAll(ids, m)
		c.listAll(ids, m)
	}
	// A subscriber of node-4 hears of a change to a partition node-4 does
	// not hold (relayed from the nodes that do).
	sub := n4.node.Core().SubscribeChanges(1024)
	defer sub.Close()
	held := map[int]bool{}
	for _, p := range n4.node.Metrics().Partitions {
		held[p.ID] = true
	}
	relayed := ""
	for i := 0; relayed == ""; i++ {
		if id := fmt.Sprint("relayed-", i); !held[core.PartitionOf("t", id, 8)] {
			relayed = id
		}
	}
	if _, err := c.members["node-1"].node.Add(context.Background(), "t", &item.Item{ID: relayed, Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(10 * time.Second); ; {
		select {
		case batch := <-sub.C():
			if slices.ContainsFunc(batch, func(ch wire.Change) bool { return ch.ID == relayed }) {
				goto heard
			}
			continue
		case <-deadline:
			t.Fatalf("node-4's subscribers never heard of %s, written to a partition node-4 does not hold", relayed)
		}
	}
heard:
	// An edge talking to node-4 alone reads every item: node-4 forwards
	// what it does not hold, one hop.
	edge, err := upstream.New(upstream.Config{Addrs: []string{n4.srv.Addr().String()}, Client: n4.client})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		it, err := edge.Get(context.Background(), "t", id)
		for deadline := time.Now().Add(10 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
			it, err = edge.Get(context.Background(), "t", id)
		}
		if err != nil || string(it.Data) != fmt.Sprintf("%q", id) {
			t.Fatalf("edge via node-4: %s: %v %v", id, it, err)
		}
	}

	c.stop("node-2")
	c.waitPlacement(3)
	for _, m := range c.members {
		c.readAll(ids, m)
	}
}
