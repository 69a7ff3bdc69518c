package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// leaders returns every partition's leader as m sees it.
func leaders(m *member) map[int]string {
	out := map[int]string{}
	for _, p := range m.node.Metrics().Partitions {
		out[p.ID] = p.Leader
	}
	return out
}

// sendRaft sends one raft message for group g from a client holding a
// certificate for name, minted by the cluster's CA.
func sendRaft(t *testing.T, c *testCluster, name, to string, g int, msg *pb.Message) error {
	t.Helper()
	client := clientAs(t, c, pki.RoleCore, name)
	b, err := appendRaft(nil, []multiraft.Message{{Group: multiraft.GroupID(g), Msg: msg}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = client.Call(ctx, c.peers[to].QUICAddr, wire.MethodRaft, b)
	return err
}

// TestHostileRaftMessages: a process holding a certificate from the
// cluster's CA tries to take partitions over with raft messages. A message
// claiming another member's id, or from a stranger, is refused and changes
// no leader; a member's heartbeat asking a follower to commit far past its
// log, which would make raft panic, is dropped and the node keeps serving.
func TestHostileRaftMessages(t *testing.T) {
	c := newTestCluster(t)
	a := c.start("a")
	c.start("b")
	c.start("c")
	c.waitPlacement(3)
	if _, err := a.node.Add(context.Background(), "t", &item.Item{ID: "x", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	before := leaders(a)
	victim := c.members["b"]

	// Forged: mallory's certificate, a message claiming to be from a's id
	// with a term no election reached. Then mallory as itself: not a member.
	forged := &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), From: new(uint64(core.RaftID("a"))),
		To: new(uint64(core.RaftID("b"))), Term: new(uint64(1 << 30))}
	for p := range 8 {
		if err := sendRaft(t, c, "mallory", "b", p, forged); !errors.Is(err, transport.ErrRemote) {
			t.Fatalf("a raft message with a forged sender was accepted: %v", err)
		}
	}
	own := &pb.Message{Type: pb.MessageType_MsgVote.Enum(), From: new(uint64(core.RaftID("mallory"))),
		To: new(uint64(core.RaftID("b"))), Term: new(uint64(1 << 30)), Index: new(uint64(1 << 40)), LogTerm: new(uint64(1 << 30))}
	if err := sendRaft(t, c, "mallory", "b", 3, own); !errors.Is(err, transport.ErrRemote) {
		t.Fatalf("a raft message from a stranger was accepted: %v", err)
	}

	// A member's own certificate (as a rogue process holding it would), a
	// heartbeat with an absurd commit: raft would panic in commitTo.
	// At b's own term where c leads, so that only the commit check stands
	// between the message and raft's commitTo; elsewhere without a term.
	terms := map[int]uint64{}
	st, err := victim.node.Core().GroupStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st {
		terms[int(g.Group)] = g.Term
	}
	for p := range 8 {
		crash := &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), From: new(uint64(core.RaftID("c"))),
			To: new(uint64(core.RaftID("b"))), Commit: new(uint64(1 << 40))}
		if before[p] == "c" {
			crash.Term = new(terms[p])
		}
		_ = sendRaft(t, c, "c", "b", p, crash)
	}
	time.Sleep(300 * time.Millisecond) // a few driver cycles and heartbeats
	if _, err := victim.node.Get(context.Background(), "t", "x"); err != nil {
		t.Fatalf("b after the hostile messages: %v", err)
	}
	if after := leaders(a); len(after) != len(before) {
		t.Fatalf("partitions lost: %v then %v", before, after)
	}
	// Every partition on b has a leader among the members. Not at one
	// instant: on a loaded machine an election may be under way for
	// reasons of its own, so wait for each to settle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		unsettled := map[int]string{}
		for p, l := range leaders(victim) {
			if l == "mallory" {
				t.Fatalf("partition %d is led by mallory", p)
			}
			if l == "" {
				unsettled[p] = l
			}
		}
		if len(unsettled) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions without a leader 10 s after the hostile messages: %v", unsettled)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := victim.node.Metrics().Replication.RejectedMessages; r < 9 {
		t.Errorf("b counted %d rejected raft messages, want at least 9", r)
	}
}

// call sends one request to member to from a certificate of role and name
// minted by the cluster's CA.
func call(t *testing.T, c *testCluster, role pki.Role, name, to string, method uint16, body []byte) ([]byte, error) {
	t.Helper()
	client := clientAs(t, c, role, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Call(ctx, c.peers[to].QUICAddr, method, body)
}

// TestEdgeCertificatesCannotCallClusterMethods: an edge's certificate
// reads and writes items, but every cluster method — raft, snapshots,
// group info, partition lists, cluster info — refuses it, whatever name it
// carries (here a member's).
func TestEdgeCertificatesCannotCallClusterMethods(t *testing.T) {
	c := newTestCluster(t)
	c.start("a")
	if _, err := c.members["a"].node.Add(context.Background(), "t", &item.Item{ID: "x", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	raftBatch, err := appendRaft(nil, []multiraft.Message{{Group: 0, Msg: &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(),
		From: new(uint64(core.RaftID("a"))), To: new(uint64(core.RaftID("a")))}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name   string
		method uint16
		body   []byte
	}{
		{"raft", wire.MethodRaft, raftBatch},
		{"snapshot", wire.MethodSnapshot, []byte{0}},
		{"group info", wire.MethodGroupInfo, []byte{0}},
		{"partition list", wire.MethodListPartitions, nil},
		{"cluster info", wire.MethodClusterInfo, nil},
		// An edge must not take leases (it would never be told to drop
		// them) nor drop a core's.
		{"hot get", wire.MethodHotGet, wire.AppendRequest(nil, &wire.Request{Tenant: "t", ID: "x"})},
		{"hot invalidate", wire.MethodHotInvalidate, nil},
	} {
		_, err := call(t, c, pki.RoleEdge, "a", "a", m.method, m.body)
		var re *transport.RemoteError
		if !errors.As(err, &re) || re.Code != wire.CodeForbidden {
			t.Errorf("%s with an edge certificate: %v (want CodeForbidden)", m.name, err)
		}
	}
	// Items are what an edge is for.
	out, err := call(t, c, pki.RoleEdge, "edge-1", "a", wire.MethodGet, wire.AppendRequest(nil, &wire.Request{Tenant: "t", ID: "x"}))
	if err != nil {
		t.Fatalf("GET with an edge certificate: %v", err)
	}
	if it, _, err := wire.DecodeItem(out); err != nil || it.ID != "x" {
		t.Fatalf("GET with an edge certificate: %v %v", it, err)
	}
	// A core's certificate still gets cluster info.
	if _, err := call(t, c, pki.RoleCore, "b", "a", wire.MethodClusterInfo, nil); err != nil {
		t.Fatalf("cluster info with a core certificate: %v", err)
	}
}

// TestHandlerPanicsAreCounted: a handler that panics on what a peer sent
// costs that one request (an internal error), not the node, and shows in
// the node's metrics.
func TestHandlerPanicsAreCounted(t *testing.T) {
	c := newTestCluster(t)
	a := c.start("a")
	const method = 60000
	a.srv.Handle(method, func(context.Context, *transport.Peer, []byte) ([]byte, error) { panic("a bug a peer found") })
	_, err := call(t, c, pki.RoleCore, "b", "a", method, nil)
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Code != transport.CodeInternal {
		t.Fatalf("calling a panicking handler: %v (want CodeInternal)", err)
	}
	if got := a.node.Metrics().Operations.HandlerPanics; got != 1 {
		t.Errorf("a counted %d handler panics, want 1", got)
	}
	if _, err := a.node.Add(context.Background(), "t", &item.Item{ID: "x", Data: []byte(`1`)}); err != nil {
		t.Fatalf("a after the panic: %v", err)
	}
}

// TestSnapshotBeyondTheSender: a snapshot session opens only if the
// sender's replica has applied the snapshot's index, so a replica told to
// install one its sender cannot serve (a lying peer's MsgSnap) fails
// before it has deleted anything of its own.
func TestSnapshotBeyondTheSender(t *testing.T) {
	c := newTestCluster(t)
	a := c.start("a")
	if _, err := a.node.Add(context.Background(), "t", &item.Item{ID: "x", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	part := core.PartitionOf("t", "x", 8)
	keys := 0
	count := func(_, _ []byte) error { keys++; return nil }
	if err := a.node.fetchPartition(context.Background(), core.RaftID("a"), part, 1<<40, count); err == nil || keys != 0 {
		t.Fatalf("a snapshot past the sender's log: %v, %d keys", err, keys)
	}
	if err := a.node.fetchPartition(context.Background(), core.RaftID("a"), part, 1, count); err != nil || keys == 0 {
		t.Fatalf("a snapshot the sender holds: %v, %d keys", err, keys)
	}
}

// clientAs returns a QUIC client holding a certificate of role and name
// minted by the cluster's CA, closed when t ends.
func clientAs(t testing.TB, c *testCluster, role pki.Role, name string) *transport.Client {
	t.Helper()
	creds, err := c.ca.NewBundleRole(role, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := transport.NewClient(transport.LocalConfig(creds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
