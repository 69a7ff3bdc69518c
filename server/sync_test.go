package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// syncPage encodes a MethodSyncPage request for the first page of part.
func syncPage(part int) []byte {
	b := binary.AppendUvarint([]byte{0}, uint64(part))
	b = binary.AppendUvarint(b, 0) // need
	b = binary.AppendUvarint(b, 0) // no cursor
	b = binary.AppendUvarint(b, 100)
	return binary.AppendUvarint(b, 1<<20)
}

// syncChanges encodes a MethodSyncChanges request from the log's start.
func syncChanges(part int) []byte {
	b := binary.AppendUvarint([]byte{0}, uint64(part))
	return append(b, 0, 0x80, 0x80, 0x40, 0) // from 0, 1 MiB, no wait
}

// TestSyncTrust: a cluster's data is read by blue/green sync only from a
// core certificate of its own CA (a green cluster started with its
// --cluster-secret): an edge of the same CA and a core of another CA are
// refused every sync method, and values handed to a green leader are taken
// only from members of its own cluster — not from a core of the same CA
// outside it (the blue cluster's, or a stolen one). A malformed request is
// refused; the real reader gets the item.
func TestSyncTrust(t *testing.T) {
	sec := secret(t)
	blue := start(t, "blue-0", sec)
	if _, err := blue.Cluster().Add(context.Background(), "acme", &item.Item{ID: "secret", Data: []byte(`"only for cores"`)}); err != nil {
		t.Fatal(err)
	}
	part := core.PartitionOf("acme", "secret", blue.Cluster().Core().Partitions())
	call := func(c *transport.Client, method uint16, req []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Call(ctx, blue.QUICAddr(), method, req)
	}
	edge := fedClient(t, sec, pki.RoleEdge, "edge-1")
	stranger := fedClient(t, secret(t), pki.RoleCore, "green-0") // another CA
	outsider := fedClient(t, sec, pki.RoleCore, "mallory")       // this CA, not a member
	apply := (&core.Command{Op: core.OpReplicate, Source: "~blue", Resync: true,
		Values: []core.RemoteValue{{Tenant: "acme", ID: "secret", Record: encodeRecord(t, time.Now().UnixNano(), "")}}}).
		AppendEncode(binary.AppendUvarint([]byte{0}, uint64(part)))
	for _, tc := range []struct {
		name   string
		client *transport.Client
		method uint16
		req    []byte
		want   string // "" for any error (a handshake refused)
	}{
		{"an edge asking for the partitions", edge, wire.MethodSyncInfo, nil, "cores of this cluster's CA only"},
		{"an edge reading a page", edge, wire.MethodSyncPage, syncPage(part), "cores of this cluster's CA only"},
		{"an edge reading the log", edge, wire.MethodSyncChanges, syncChanges(part), "cores of this cluster's CA only"},
		{"a core of another CA reading a page", stranger, wire.MethodSyncPage, syncPage(part), ""},
		{"a core of another CA reading the log", stranger, wire.MethodSyncChanges, syncChanges(part), ""},
		{"a core outside the cluster applying values", outsider, wire.MethodSyncApply, apply, "members of this cluster only"},
		{"a malformed page", outsider, wire.MethodSyncPage, []byte{0, 1, 2, 3, 4, 5, 6, 7}, "malformed"},
		{"a partition that does not exist", outsider, wire.MethodSyncPage, syncPage(1000), "no partition"},
	} {
		out, err := call(tc.client, tc.method, tc.req)
		if err == nil || (tc.want != "" && (!errors.Is(err, transport.ErrRemote) || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("%s: %v (%d bytes), want a refusal saying %q", tc.name, err, len(out), tc.want)
		}
		if bytes.Contains(out, []byte("only for cores")) {
			t.Errorf("%s: the item was sent", tc.name)
		}
	}
	// A core of the same CA, as a green cluster's, reads the item.
	out, err := call(outsider, wire.MethodSyncPage, syncPage(part))
	if err != nil || !bytes.Contains(out, []byte("only for cores")) {
		t.Fatalf("a core of the same CA reading a page: %v, %q", err, out)
	}
	if _, err := call(outsider, wire.MethodSyncChanges, syncChanges(part)); err != nil {
		t.Fatalf("a core of the same CA reading the log: %v", err)
	}
}
