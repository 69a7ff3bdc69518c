package upstream_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

// TestFeedHeartbeatsKeepTheCacheTrusted: a live core that has nothing to
// push still pushes heartbeats, so its feed never lapses: after the reset
// of the first connection, three leases pass without another.
func TestFeedHeartbeatsKeepTheCacheTrusted(t *testing.T) {
	var resets atomic.Int32
	r := newRig(t, item.Limits{}, func(_ []wire.Change, reset bool) {
		if reset {
			resets.Add(1)
		}
	})
	r.do(t, "GET", "/v1/items/x", "") // connects and subscribes
	eventually(t, "the reset of the first connection", func() bool { return resets.Load() > 0 })
	before := resets.Load()
	time.Sleep(3 * upstream.DefaultFeedLease)
	if n := resets.Load() - before; n != 0 {
		t.Fatalf("%d resets while the core was alive and idle: its heartbeats did not keep the feed", n)
	}
}

// TestSilentFeedLapses: a core that accepts the subscription and then
// pushes nothing — killed, hung or cut off, while QUIC would notice only
// at its idle timeout — loses the edge's trust once the lease lapses: the
// cache is told to reset, the lapse is counted, and the core is skipped
// instead of being called and waited for.
func TestSilentFeedLapses(t *testing.T) {
	coreCreds, edgeCreds := testCreds(t)
	srv, err := transport.NewServer(transport.LocalConfig(coreCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	var subscribed atomic.Int32
	srv.Handle(wire.MethodSubscribe, func(context.Context, *transport.Peer, []byte) ([]byte, error) {
		subscribed.Add(1)
		return nil, nil // and never pushes
	})
	go srv.Serve(context.Background())
	defer srv.Close()
	client, err := transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var resets atomic.Int32
	b, err := upstream.New(upstream.Config{Addrs: []string{srv.Addr().String()}, Client: client,
		OnChanges: func(_ []wire.Change, reset bool) {
			if reset {
				resets.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	b.Get(context.Background(), "acme", "x") // connects (the core has no item methods)
	eventually(t, "the subscription", func() bool { return subscribed.Load() == 1 && resets.Load() >= 1 })
	eventually(t, "the lapse", func() bool { return b.Metrics().Replication.FeedLapses == 1 })
	if n := resets.Load(); n < 2 {
		t.Fatalf("%d resets: the lapse did not reset the cache", n)
	}
	if _, err := b.Get(context.Background(), "acme", "x"); err == nil || !strings.Contains(err.Error(), "recently unreachable") {
		t.Fatalf("a call right after the lapse: %v, want the core skipped", err)
	}
	if b.Healthy() {
		t.Fatal("the backend reports healthy with its only core's feed lapsed")
	}
}

// TestFeedLeaseValidated: a lease no longer than the heartbeat would
// lapse healthy feeds.
func TestFeedLeaseValidated(t *testing.T) {
	_, err := upstream.New(upstream.Config{Addrs: []string{"127.0.0.1:1"}, Client: &transport.Client{},
		OnChanges: func([]wire.Change, bool) {}, FeedLease: wire.FeedHeartbeat})
	if err == nil || !strings.Contains(err.Error(), "FeedLease") {
		t.Fatalf("New with FeedLease = heartbeat: %v", err)
	}
}

// testCreds returns a core's and an edge's credentials from a new CA.
func testCreds(t *testing.T) (core, edge *pki.Bundle) {
	t.Helper()
	ca, err := pki.NewCA("test cluster")
	if err != nil {
		t.Fatal(err)
	}
	if core, err = ca.NewBundle("core-1", []string{"127.0.0.1"}); err == nil {
		edge, err = ca.NewBundle("edge-1", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return core, edge
}
