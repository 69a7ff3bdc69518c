package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// churnMembers is how many gossip members join and leave the node in
// TestGossipChurnKeepsHeapBounded. The suite runs with the race detector,
// which slows the members (they run in the test process) several times
// over, so it churns this many; `make bench-churn` churns 10,000
// (BRAINY_CHURN_MEMBERS).
const churnMembers = 1_000

// churnBatch members are alive at once: enough that joins overlap, few
// enough that the test process keeps up with their gossip.
const churnBatch = 50

// TestGossipChurnKeepsHeapBounded churns gossip members through a real
// brainy-core, each looking like a core (a unique id, a core's metadata):
// it joins, the node lists it alive, it leaves, the node lists it gone,
// it shuts down. The node is one of two cores. Once the departed members
// are past every retention time, the node's metrics must list the two
// cores alone, its partitions must be back on them alone, and its live
// heap must be back within 20% of what it was before the churn.
func TestGossipChurnKeepsHeapBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("churns a thousand gossip members")
	}
	total := churnMembers
	if v := os.Getenv("BRAINY_CHURN_MEMBERS"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil || total < 1 {
			t.Fatalf("BRAINY_CHURN_MEMBERS=%q: want a positive number", v)
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// The churned members' QUIC address: a socket that takes packets and
	// answers none, as a core that died would.
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	// With profiles asked for, the node samples every 4 KiB allocated
	// rather than every 512 KiB, so that they name the small holders.
	var env []string
	if os.Getenv("BRAINY_CHURN_PROFILES") != "" {
		env = []string{"GODEBUG=memprofilerate=4096"}
	}
	start := func(args ...string) *coretest.Process {
		return coretest.StartCore(t, bin, env, append([]string{"--storage", t.TempDir(), "--broadcast", "false",
			"--gossip-key", base64.StdEncoding.EncodeToString(key), "--dead-after", "1s"}, args...)...)
	}
	p := start("--debug-addr", "127.0.0.1:0")
	debugAddr := logField(t, p, "serving profiles", "debug_addr")
	// A second core, which stays: the node is in a cluster, as it would
	// be under churn. (Memberlist also passes its news on only by gossip,
	// and keeps what it could not pass on while it has nobody to tell.)
	peer := start("--peers", p.GossipAddr)
	cores := map[string]bool{metrics(t, p).Nodes.Self: true, metrics(t, peer).Nodes.Self: true}
	waitSettled(t, p, cores)
	c := &churner{key: key, node: p.GossipAddr, quic: hole.LocalAddr().String()}

	// Warm up the code paths the churn takes, with a few members only:
	// what they leave behind until the node forgets them counts as the
	// start.
	const warmUp = 20
	c.batch(t, p, warmUp)
	waitSettled(t, p, cores)
	// The heap moves a little with the raft traffic between the cores:
	// start from the least of a few readings.
	before := liveHeap(t, debugAddr)
	for range 2 {
		before = min(before, liveHeap(t, debugAddr))
	}
	saveHeapProfile(t, debugAddr, "before")

	started := time.Now()
	for c.joined < warmUp+total {
		c.batch(t, p, min(churnBatch, warmUp+total-c.joined))
	}
	ended := time.Now()
	t.Logf("%d members joined and left in %v; node heap before %d bytes, right after %d",
		total, ended.Sub(started).Round(time.Second), before, liveHeap(t, debugAddr))

	// Memberlist and the membership keep a departed member for their dead
	// retention (30 s), the cluster for --dead-after and then as down for
	// a while: wait them out, then compare (a few readings, bounded: the
	// heap moves a little with the raft traffic between the cores).
	// Memberlist also queues each departed member's death notice until it
	// has gossiped it about four times (RetransmitMult × log10 of the
	// members left); some 35 fit in a gossip packet, which goes to the one
	// peer left five times a second, so the queue drains at about 40
	// members a second: allow that too.
	limit := before + before/5
	time.Sleep(time.Until(ended.Add(35 * time.Second)))
	deadline := time.Now().Add(60*time.Second + time.Duration(total/40)*time.Second)
	var after, listed int
	for {
		m := metrics(t, p)
		after, listed = liveHeap(t, debugAddr), len(m.Nodes.List)
		t.Logf("%v after the churn: node heap %d bytes, metrics list %d nodes, partitions on the cores alone: %v",
			time.Since(ended).Round(time.Second), after, listed, settled(m, cores))
		if (after <= limit && listed == 2 && settled(m, cores)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	saveHeapProfile(t, debugAddr, "after")
	if listed != 2 {
		t.Errorf("metrics list %d nodes after the churn, want the 2 cores", listed)
	}
	if m := metrics(t, p); !settled(m, cores) {
		t.Errorf("partitions not back on the cores alone after the churn: %+v", m.Partitions)
	}
	if after > limit {
		t.Errorf("node heap %d bytes after the churn, more than 120%% of %d before", after, before)
	}
}

// churner starts gossip members that look like cores, joins them to the
// node, and has them leave.
type churner struct {
	key    []byte
	node   string // the node's gossip address
	quic   string // the QUIC address the members announce
	joined int    // members started so far, which numbers the next
}

// batch starts n members, waits until the node lists every one of them
// as alive, then has them leave and waits until the node lists none.
func (c *churner) batch(t *testing.T, p *coretest.Process, n int) {
	t.Helper()
	ms := make([]*memberlist.Memberlist, n)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("churn-%06d", c.joined+i)
	}
	c.joined += n
	defer parallel(n, n, func(i int) {
		if ms[i] != nil {
			_ = ms[i].Shutdown()
		}
	})
	// The batch's first member joins the node and the others join it: a
	// joiner pulls the whole member list of whom it joins, and the node's
	// holds every member that left in the last 30 s, so joining the node
	// every time would make the churn quadratic.
	if ms[0] = c.start(t, ids[0], c.node); ms[0] == nil {
		t.FailNow()
	}
	first := ms[0].LocalNode().Address()
	parallel(n-1, 16, func(i int) { ms[i+1] = c.start(t, ids[i+1], first) })
	if t.Failed() {
		t.FailNow()
	}
	// The members gossip little (to spare the test's CPU), so rather than
	// wait for gossip to reach the node, the first pushes its member
	// list, which knows of all (once it merged the last joiner's), to the
	// node. A member the node still misses, or declared dead because it
	// answered a probe too late on a loaded machine, pushes its own list:
	// twice, as the first exchange may only tell it to refute.
	for deadline := time.Now().Add(10 * time.Second); ms[0].NumMembers() < n+2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	c.push(t, ms[0], c.node)
	for _, i := range nodeMisses(t, p, ids, true, 5*time.Second) {
		c.push(t, ms[i], c.node)
		c.push(t, ms[i], c.node)
	}
	if missed := nodeMisses(t, p, ids, true, 30*time.Second); len(missed) > 0 {
		t.Fatalf("the node does not list %d of %d joined members as alive after 30s", len(missed), n)
	}
	// Likewise each member leaves and pushes its list, which says so, to
	// the first, which pushes them all to the node.
	parallel(n-1, n, func(i int) {
		_ = ms[i+1].Leave(100 * time.Millisecond)
		c.push(t, ms[i+1], first)
	})
	_ = ms[0].Leave(100 * time.Millisecond)
	c.push(t, ms[0], c.node)
	if missed := nodeMisses(t, p, ids, false, 30*time.Second); len(missed) > 0 {
		t.Fatalf("the node still lists %d of %d departed members as alive after 30s", len(missed), n)
	}
}

// start creates member id on a free loopback port and joins it to addr.
func (c *churner) start(t *testing.T, id, addr string) *memberlist.Memberlist {
	meta, err := membership.Meta{ID: id, QUICAddr: c.quic, HTTPAddr: "127.0.0.1:1", Zone: "churn", Region: "test", Role: "core"}.AppendEncode(nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	conf := memberlist.DefaultLocalConfig()
	conf.Name = id
	conf.Label = membership.DefaultClusterName
	conf.SecretKey = c.key
	conf.BindAddr, conf.BindPort = "127.0.0.1", 0
	conf.Delegate = metaDelegate(meta)
	conf.Logger = log.New(io.Discard, "", 0)
	// A member lives for a second or so and its news travels by push
	// (see batch): it gossips to one member at a time, probes nobody,
	// never syncs on its own, and forgets departed members soon, since a
	// batch's first member is the one the others pull the list from.
	conf.GossipNodes, conf.RetransmitMult = 1, 1
	conf.ProbeInterval = time.Minute
	conf.PushPullInterval = 0
	conf.GossipToTheDeadTime = time.Second
	// Compressing every packet was most of a member's work; the node
	// takes either. A loaded machine may hold a join up for a while.
	conf.EnableCompression = false
	conf.TCPTimeout = 10 * time.Second
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Error(err)
		return nil
	}
	if _, err := ml.Join([]string{addr}); err != nil {
		_ = ml.Shutdown()
		t.Errorf("%s joining %s: %v", id, addr, err)
		return nil
	}
	return ml
}

// push exchanges m's member list with the member at addr (memberlist's
// push-pull, which is what a join does).
func (c *churner) push(t *testing.T, m *memberlist.Memberlist, addr string) {
	if _, err := m.Join([]string{addr}); err != nil {
		t.Errorf("%s pushing its member list to %s: %v", m.LocalNode().Name, addr, err)
	}
}

// metaDelegate announces a member's metadata; it carries nothing else.
type metaDelegate []byte

func (d metaDelegate) NodeMeta(int) []byte                  { return d }
func (d metaDelegate) NotifyMsg([]byte)                     {}
func (d metaDelegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d metaDelegate) LocalState(bool) []byte               { return nil }
func (d metaDelegate) MergeRemoteState(b []byte, join bool) {}

// parallel runs f(0) to f(n-1) on at most workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// nodeMisses waits up to timeout until the node's metrics list every one
// of ids as alive (or, with alive false, none of them), and returns the
// indexes of those still not as wanted.
func nodeMisses(t *testing.T, p *coretest.Process, ids []string, alive bool, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		listed := map[string]bool{}
		for _, n := range metrics(t, p).Nodes.List {
			listed[n.ID] = n.Healthy
		}
		var missed []int
		for i, id := range ids {
			if listed[id] != alive {
				missed = append(missed, i)
			}
		}
		if len(missed) == 0 || time.Now().After(deadline) {
			return missed
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled reports whether every partition in m has the cores, and only
// them, as voters: placement put no replica on a churned member, or took
// it away again.
func settled(m nodestats.Snapshot, cores map[string]bool) bool {
	for _, p := range m.Partitions {
		if len(p.Voters) != len(cores) || len(p.Learners) != 0 {
			return false
		}
		for _, v := range p.Voters {
			if !cores[v] {
				return false
			}
		}
	}
	return true
}

// waitSettled waits (up to a minute) until the node's partitions have
// settled on the cores.
func waitSettled(t *testing.T, p *coretest.Process, cores map[string]bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !settled(metrics(t, p), cores); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("partitions not on the cores %v alone after a minute: %+v", cores, metrics(t, p).Partitions)
		}
	}
}

// liveHeap forces a garbage collection in the node and returns the heap
// bytes in use after it, from the runtime.MemStats at the end of the
// debug heap profile. It collects twice, so that what the first collection
// moved to sync.Pool's victim caches is gone too.
func liveHeap(t *testing.T, debugAddr string) int {
	t.Helper()
	heap := -1
	for range 2 {
		resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			t.Fatal(err)
		}
		heap = -1
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
				heap, _ = strconv.Atoi(v)
			}
		}
		resp.Body.Close()
	}
	if heap <= 0 {
		t.Fatalf("no HeapAlloc in the heap profile of %s", debugAddr)
	}
	return heap
}

// saveHeapProfile writes the node's heap profile to
// $BRAINY_CHURN_PROFILES/name.pb.gz when that directory is set, so that
// `go tool pprof -base before.pb.gz after.pb.gz` names what the churn
// left behind.
func saveHeapProfile(t *testing.T, debugAddr, name string) {
	t.Helper()
	dir := os.Getenv("BRAINY_CHURN_PROFILES")
	if dir == "" {
		return
	}
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+name+".pb.gz", body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// logField returns field of the first JSON log line of p whose message is
// msg.
func logField(t *testing.T, p *coretest.Process, msg, field string) string {
	t.Helper()
	for line := range strings.SplitSeq(p.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			if v, ok := rec[field].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("no %q log line with %s:\n%s", msg, field, p.Log())
	return ""
}
