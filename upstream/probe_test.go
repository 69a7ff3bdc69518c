package upstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/upstream"
)

// TestProbesPickNearest: with two cores, one answering pings 60 ms late,
// the Backend measures both, reports their round trips, and starts
// requests at the near one, though the far one is configured first; when
// the near one stops answering, the far one takes over.
func TestProbesPickNearest(t *testing.T) {
	coreCreds, edgeCreds := testCreds(t)
	serve := func(delay time.Duration) *transport.Server {
		srv, err := transport.NewServer(transport.LocalConfig(coreCreds.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		srv.Handle(wire.MethodPing, func(context.Context, *transport.Peer, []byte) ([]byte, error) {
			time.Sleep(delay)
			return nil, nil
		})
		go srv.Serve(context.Background())
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	far, near := serve(60*time.Millisecond), serve(0)
	client, err := transport.NewClient(transport.LocalConfig(edgeCreds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	farAddr, nearAddr := far.Addr().String(), near.Addr().String()
	b, err := upstream.New(upstream.Config{Addrs: []string{farAddr, nearAddr}, Client: client, ProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	current := func() (addr string, rtts map[string]float64) {
		rtts = map[string]float64{}
		for _, n := range b.Metrics().Nodes.List {
			rtts[n.Address] = n.RTTMs
			if n.Healthy {
				addr = n.Address
			}
		}
		return addr, rtts
	}
	eventually(t, "both cores measured and the near one chosen", func() bool {
		a, rtts := current()
		return a == nearAddr && rtts[farAddr] > 0 && rtts[nearAddr] > 0
	})
	if _, rtts := current(); rtts[farAddr] < 50 || rtts[nearAddr] >= rtts[farAddr] {
		t.Fatalf("round trips %v: want the far core's >= 50 ms and the near one's smaller", rtts)
	}
	near.Close()
	eventually(t, "the far core taking over", func() bool { a, _ := current(); return a == farAddr })
}
