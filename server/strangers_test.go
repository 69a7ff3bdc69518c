package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/server"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// TestStrangersAreNeverPlaced tries to become a replica the way a process
// on the network would: joining the gossip without the key, and — with a
// leaked gossip key — announcing a member whose QUIC address shows a
// certificate from another CA, or announcing a genuine node's address
// under another name. None of them may ever hold a replica, while a
// genuine node joining at the same time is placed.
func TestStrangersAreNeverPlaced(t *testing.T) {
	sec := secret(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	gossipKey := base64.StdEncoding.EncodeToString(key)
	a := startWith(t, server.Config{NodeID: "node-a", ClusterSecret: sec, GossipKey: gossipKey})

	// Without the key: memberlist cannot even decrypt the join, so the
	// node must never list it as a member.
	if m, err := membership.Start(context.Background(), membership.Config{
		Meta:     membership.Meta{ID: "keyless", QUICAddr: "127.0.0.1:1", Role: "core"},
		BindAddr: "127.0.0.1", BindPort: membership.AnyPort, Peers: []string{a.GossipAddr()}, Broadcast: new(bool),
	}); err == nil {
		t.Cleanup(func() { m.Shutdown() })
	}

	// With the key, a QUIC server whose certificate comes from another CA.
	rogueCA, err := pki.NewCA("rogue")
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := rogueCA.NewBundleRole(pki.RoleCore, "evil-node", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	qcfg := transport.DefaultConfig(bundle.TLSConfig())
	qcfg.ListenAddr = "127.0.0.1:0"
	rogue, err := transport.NewServer(qcfg)
	if err != nil {
		t.Fatal(err)
	}
	go rogue.Serve(context.Background())
	t.Cleanup(func() { rogue.Close() })
	join := func(id, quicAddr string) {
		m, err := membership.Start(context.Background(), membership.Config{
			Meta:     membership.Meta{ID: id, QUICAddr: quicAddr, Role: "core"},
			BindAddr: "127.0.0.1", BindPort: membership.AnyPort, Peers: []string{a.GossipAddr()},
			Broadcast: new(bool), GossipKey: key,
		})
		if err != nil {
			t.Fatalf("%s joining with the key: %v", id, err)
		}
		t.Cleanup(func() { m.Shutdown() })
	}
	join("evil-node", rogue.Addr().String())
	// A genuine node, and a stranger announcing that node's address under
	// another name.
	b := startWith(t, server.Config{NodeID: "node-b", ClusterSecret: sec, GossipKey: gossipKey, Peers: []string{a.GossipAddr()}})
	join("evil-twin", b.QUICAddr())

	strangers := []string{"keyless", "evil-node", "evil-twin"}
	placed := func(s *server.Server, id string) bool {
		for _, p := range s.Cluster().Metrics().Partitions {
			if slices.Contains(p.Voters, id) || slices.Contains(p.Learners, id) {
				return true
			}
		}
		return false
	}
	// Until node-b is a voter everywhere, and for a while after (enough
	// reconcile rounds for anything proven to be placed), no stranger may
	// hold a replica as either node sees it.
	deadline := time.Now().Add(20 * time.Second)
	settled := time.Time{}
	for {
		for _, s := range []*server.Server{a, b} {
			for _, id := range strangers {
				if placed(s, id) {
					t.Fatalf("%s sees %s holding a replica", s.NodeID(), id)
				}
			}
			if slices.ContainsFunc(s.Cluster().Metrics().Nodes.List, func(n nodestats.Node) bool { return n.ID == "keyless" }) {
				t.Fatalf("%s lists a member that joined without the gossip key", s.NodeID())
			}
		}
		if settled.IsZero() && placedEverywhere(a, "node-b") {
			settled = time.Now()
		}
		if !settled.IsZero() && time.Since(settled) > 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("node-b, a genuine node, was never placed on every partition")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// placedEverywhere reports whether id is a voter of every partition, as s
// sees it.
func placedEverywhere(s *server.Server, id string) bool {
	parts := s.Cluster().Metrics().Partitions
	for _, p := range parts {
		if !slices.Contains(p.Voters, id) {
			return false
		}
	}
	return len(parts) > 0
}

// startWith runs one node in-process with cfg on free loopback ports.
func startWith(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	cfg.Storage, cfg.HTTPAddr, cfg.QUICAddr, cfg.GossipAddr = "memory", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Partitions, cfg.ShutdownTimeout, cfg.Logger = 16, 5*time.Second, testLogger(cfg.NodeID)
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting %s: %v", cfg.NodeID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with %v", cfg.NodeID, err)
		}
	})
	return s
}

// TestOffLoopbackNeedsCredentials: a node reachable from other hosts never
// makes up a CA (no other node would trust it) nor falls back on anything
// built in; it says what to pass instead. Nothing is bound: the refusal
// comes before any listener.
func TestOffLoopbackNeedsCredentials(t *testing.T) {
	dir := t.TempDir()
	_, err := server.New(context.Background(), server.Config{NodeID: "n1", Storage: dir,
		HTTPAddr: "127.0.0.1:0", QUICAddr: "0.0.0.0:0", GossipAddr: "0.0.0.0:0", Logger: testLogger("n1")})
	if err == nil || !strings.Contains(err.Error(), "--cluster-secret") {
		t.Fatalf("off loopback with no secret and no CA: %v, want a refusal naming --cluster-secret", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tls")); len(entries) > 0 {
		t.Errorf("the refused node wrote %d files of TLS material", len(entries))
	}
}
