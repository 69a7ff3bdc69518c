package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/server"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// startRegion runs a one-node region of federation "t" in-process.
func startRegion(t *testing.T, id, region, sec string, clock func() time.Time, peers ...string) *server.Server {
	t.Helper()
	return startWith(t, server.Config{NodeID: id, ClusterSecret: sec, Region: region, Federation: "t",
		FederationAddr: "127.0.0.1:0", FederationPeers: peers, Clock: clock})
}

// fedClient is a QUIC client holding a certificate of the federation's CA
// for name, as a rogue process that obtained one would.
func fedClient(t *testing.T, sec string, role pki.Role, name string) *transport.Client {
	t.Helper()
	ca, err := pki.DeriveCA([]byte(sec))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ca.NewBundleRole(role, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.NewClient(transport.LocalConfig(creds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// batch encodes a MethodFedApply request: one value for tenant acme's item
// id, with the clock time hlc, claiming to come from region source.
func batch(t *testing.T, forwarded bool, part int, source, id string, hlc int64) []byte {
	t.Helper()
	// A record as region source would have stored it: made by a node of
	// that region (any node: the encoding is the core's).
	rec := encodeRecord(t, hlc, source)
	cmd := &core.Command{Op: core.OpReplicate, Source: source, To: 1 << 20,
		Values: []core.RemoteValue{{Tenant: "acme", ID: id, Record: rec}}}
	flags := byte(0)
	if forwarded {
		flags = 1
	}
	return cmd.AppendEncode(binary.AppendUvarint(append([]byte(nil), flags), uint64(part)))
}

// encodeRecord builds a stored record (format 2) with data {"x":1}.
func encodeRecord(t *testing.T, hlc int64, origin string) []byte {
	t.Helper()
	b := []byte{2}
	b = binary.AppendUvarint(b, uint64(hlc))
	b = codec.AppendString(b, origin)
	b = binary.AppendVarint(b, hlc)
	b = binary.AppendVarint(b, hlc)
	b = codec.AppendString(b, "")
	b = codec.AppendString(b, `{"x":1}`)
	b = codec.AppendString(b, "")
	b = binary.AppendUvarint(b, 0) // no vector
	return binary.AppendUvarint(b, 0)
}

// TestFederationTrust: only cores of the region a batch claims to come
// from may deliver it; an edge certificate, a stranger's core certificate
// and a member of one region speaking for another are refused, as is a
// "forwarded" batch from outside the region and a malformed one; a real
// member's batch with a clock too far ahead is refused and counted, and
// drags no clock. The node serves on.
func TestFederationTrust(t *testing.T) {
	sec := secret(t)
	a := startRegion(t, "node-a", "eu", sec, nil)
	b := startRegion(t, "node-b", "us", sec, nil, a.Federation().GossipAddr())
	eventually(t, "the regions to find each other", 20*time.Second, func() bool {
		return len(a.Federation().Regions()) == 1 && len(b.Federation().Regions()) == 1
	})
	parts := a.Cluster().Core().Partitions()
	part := core.PartitionOf("acme", "victim", parts)
	call := func(c *transport.Client, req []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Call(ctx, a.QUICAddr(), wire.MethodFedApply, req)
		return err
	}
	now := time.Now().UnixNano()
	for _, tc := range []struct {
		name   string
		client *transport.Client
		req    []byte
		want   string
	}{
		{"an edge", fedClient(t, sec, pki.RoleEdge, "edge-1"), batch(t, false, part, "us", "victim", now), "cores only"},
		{"a stranger core", fedClient(t, sec, pki.RoleCore, "mallory"), batch(t, false, part, "us", "victim", now), "not a federation member"},
		{"us speaking for another region", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, part, "ap", "victim", now), "not a federation member"},
		{"us forwarding for another region", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, true, part, "ap", "victim", now), "not a federation member"},
		{"eu's own values sent back to it", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, part, "eu", "victim", now), "not a federation member"},
		{"garbage", fedClient(t, sec, pki.RoleCore, "node-b"), []byte{0, 1, 2, 3, 4, 5}, "malformed"},
		{"a partition that does not exist", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, parts+5, "us", "victim", now), "no partition"},
		{"the wrong partition", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, (part+1)%parts, "us", "victim", now), "partition counts differ"},
		{"a clock 10 s ahead", fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, part, "us", "victim", now+int64(10*time.Second)), "clock skew"},
	} {
		err := call(tc.client, tc.req)
		if !errors.Is(err, transport.ErrRemote) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := a.Cluster().Get(context.Background(), "acme", "victim"); !errors.Is(err, item.ErrNotFound) {
		t.Fatalf("a refused batch wrote: %v", err)
	}
	if got := a.Federation().Stats().SkewRefused; got != 1 {
		t.Fatalf("%d batches refused for skew, want 1", got)
	}
	// The refused future did not become eu's present: a write now has a
	// version of about now.
	it, err := a.Cluster().Add(context.Background(), "acme", &item.Item{ID: "after", Data: []byte(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	if hlc := versionTime(t, it.Version); hlc > time.Now().Add(time.Second).UnixNano() {
		t.Fatalf("eu's clock was dragged to %v by a refused batch", time.Unix(0, hlc))
	}
	// A real batch from us is applied.
	if err := call(fedClient(t, sec, pki.RoleCore, "node-b"), batch(t, false, part, "us", "victim", now)); err != nil {
		t.Fatalf("node-b's own batch: %v", err)
	}
	if _, err := a.Cluster().Get(context.Background(), "acme", "victim"); err != nil {
		t.Fatalf("node-b's batch was not applied: %v", err)
	}
}

func versionTime(t *testing.T, v string) int64 {
	t.Helper()
	var n int64
	for _, c := range strings.SplitN(v, ".", 2)[0] {
		d := strings.IndexRune("0123456789abcdefghijklmnopqrstuvwxyz", c)
		if d < 0 {
			t.Fatalf("version %q", v)
		}
		n = n*36 + int64(d)
	}
	return n
}

// TestFederationClockSkew: a region whose clock runs 3 s ahead (beyond
// the 500 ms allowed) has its values refused by the others, which report
// it; once real time catches up with its timestamps, they are applied.
func TestFederationClockSkew(t *testing.T) {
	sec := secret(t)
	a := startRegion(t, "node-a", "eu", sec, nil)
	fast := func() time.Time { return time.Now().Add(3 * time.Second) }
	b := startRegion(t, "node-b", "us", sec, fast, a.Federation().GossipAddr())
	eventually(t, "the regions to find each other", 20*time.Second, func() bool {
		return len(a.Federation().Regions()) == 1 && len(b.Federation().Regions()) == 1
	})
	if _, err := b.Cluster().Add(context.Background(), "acme", &item.Item{ID: "future", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "eu to refuse us's future values", 10*time.Second, func() bool {
		return a.Federation().Stats().SkewRefused > 0
	})
	if _, err := a.Cluster().Get(context.Background(), "acme", "future"); !errors.Is(err, item.ErrNotFound) {
		t.Fatalf("eu applied a value from 3 s in its future: %v", err)
	}
	eventually(t, "the value once its time has come", 15*time.Second, func() bool {
		_, err := a.Cluster().Get(context.Background(), "acme", "future")
		return err == nil
	})
}
