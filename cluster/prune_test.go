package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

// TestPruneForgetsDepartedMembers: of hundreds of members that came and
// went, prune keeps the ones placement still counts (gone for less than
// DeadAfter) and at most maxDownMembers of the others, the most recently
// seen, and none after downForDeadAfters*DeadAfter; it drops their
// forwarders, raft senders and QUIC connections, but not a connection a
// live member uses (a node restarted under a new id at the same address).
func TestPruneForgetsDepartedMembers(t *testing.T) {
	ca, err := pki.DeriveCA([]byte("a test cluster secret, 32 bytes."))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ca.NewBundle("self", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// Connections that never idle out here: a connection that goes must
	// have been closed by prune.
	cfg := transport.LocalConfig(creds.TLSConfig())
	cfg.IdleTimeout, cfg.KeepAlivePeriod = time.Hour, time.Second
	serve := func() string {
		srv, err := transport.NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.Handle(wire.MethodClusterInfo, func(context.Context, *transport.Peer, []byte) ([]byte, error) { return nil, nil })
		go srv.Serve(context.Background())
		t.Cleanup(func() { srv.Close() })
		return srv.Addr().String()
	}
	client, err := transport.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	const deadAfter = time.Minute
	now := time.Now()
	n := &Node{cfg: Config{DeadAfter: deadAfter, Client: client}, log: slog.New(slog.DiscardHandler),
		lastSeen: map[string]time.Time{}, peers: map[string]Peer{}, forward: map[string]*upstream.Backend{}}
	n.net = newRaftNet(raftSenders(client), n.addrOf, n.log)
	defer n.net.close()
	connect := func(addr string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.Call(ctx, addr, wire.MethodClusterInfo, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := n.forwarder(addr); err != nil {
			t.Fatal(err)
		}
	}
	add := func(id, addr string, seen time.Time) {
		n.lastSeen[id], n.peers[id] = seen, Peer{ID: id, QUICAddr: addr}
	}

	// Alive: one member at its own address, one at the address a departed
	// member had.
	live, shared := serve(), serve()
	add("live", live, now)
	add("restarted", shared, now)
	alive := map[multiraft.NodeID]Peer{core.RaftID("live"): n.peers["live"], core.RaftID("restarted"): n.peers["restarted"]}
	n.alive.Store(&alive)
	// Gone for a while, still counted by placement.
	add("recent", "127.0.0.1:1", now.Add(-deadAfter/2))
	// Gone for longer than DeadAfter, connected to and sent raft messages
	// to while they were here.
	departed := serve()
	add("departed", departed, now.Add(-5*deadAfter))
	add("old-restarted", shared, now.Add(-5*deadAfter))
	for _, addr := range []string{live, shared, departed} {
		connect(addr)
	}
	for _, id := range []string{"live", "recent", "departed"} {
		n.net.Send(core.RaftID(id), nil)
	}
	// Hundreds more gone past DeadAfter (but after those two), one second
	// apart; and some so long ago that they are not even reported down.
	for i := range 200 {
		add(fmt.Sprint("churned-", i), "127.0.0.1:1", now.Add(-deadAfter-time.Duration(i+1)*time.Second))
	}
	for i := range 10 {
		add(fmt.Sprint("ancient-", i), "127.0.0.1:1", now.Add(-downForDeadAfters*deadAfter-time.Second))
	}

	n.prune(now)

	for _, id := range []string{"live", "restarted", "recent"} {
		if _, ok := n.peers[id]; !ok {
			t.Errorf("%s, which placement still counts, was forgotten", id)
		}
	}
	if len(n.peers) != 3 {
		t.Errorf("%d peers kept, want the 3 placement counts", len(n.peers))
	}
	for i := range 200 {
		id := fmt.Sprint("churned-", i)
		// The down list is the most recent: churned-0 to
		// churned-(maxDownMembers-1).
		if _, kept := n.lastSeen[id]; kept != (i < maxDownMembers) {
			t.Errorf("%s (gone %v) kept as down: %v", id, deadAfter+time.Duration(i+1)*time.Second, kept)
		}
	}
	if got, want := len(n.lastSeen), 3+maxDownMembers; got != want {
		t.Errorf("%d members in lastSeen, want %d: the 3 counted and %d down", got, want, maxDownMembers)
	}
	if len(n.forward) != 2 || n.forward[live] == nil || n.forward[shared] == nil {
		t.Errorf("forwarders to %v kept, want only those to the live addresses %s and %s", keys(n.forward), live, shared)
	}
	n.net.Send(core.RaftID("departed"), nil) // raft still talking to it: no sender again
	n.net.mu.Lock()
	senders := keys(n.net.peers)
	n.net.mu.Unlock()
	if len(senders) != 2 {
		t.Errorf("raft senders to %v kept, want those to live and recent (%x, %x)", senders, core.RaftID("live"), core.RaftID("recent"))
	}
	// departed's connection is closed; the two live members' stay.
	if c := client.Metrics().Connections; c != 2 {
		t.Fatalf("%d pooled connections after prune, want 2 (to the live members)", c)
	}
	if d := client.Metrics().Dials; d != 3 {
		t.Fatalf("%d dials: a live member's connection was dropped and dialled again", d)
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSubscribesToMembersOnly: a connection to a core that is not a member
// of this cluster (another region's, in a federation) is not subscribed to
// — a subscription tells edges that changes were lost — and a member's is.
func TestSubscribesToMembersOnly(t *testing.T) {
	c := newTestCluster(t)
	a := c.start("a")
	b := c.start("b")
	if a.node.isMemberAddr("127.0.0.1:1") {
		t.Fatal("a stranger's address counts as a member's")
	}
	if !a.node.isMemberAddr(b.srv.Addr().String()) {
		t.Fatal("a member's address does not count")
	}
	sub := a.node.Core().SubscribeChanges(8)
	defer sub.Close()
	sub.Lost()
	a.node.subscribePeer(b.srv.Addr().String())
	deadline := time.Now().Add(5 * time.Second)
	for !sub.Lost() {
		if time.Now().After(deadline) {
			t.Fatal("connecting to a member did not subscribe to it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
