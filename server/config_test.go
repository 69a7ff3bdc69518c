package server

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/k8snode"
)

// fakeNodeAPI stands in for the Kubernetes API server on 127.0.0.1: node
// n1 has zone label z1. It returns how to reach it, and how to reach a
// closed port with the same token and CA.
func fakeNodeAPI(t *testing.T) (up, down k8snode.Config) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/n1" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"kind":"Status","message":"forbidden"}`, http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"kind":"Node","metadata":{"name":"n1","labels":{"topology.kubernetes.io/zone":"z1"}}}`))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	up.CAFile, up.TokenFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(up.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(up.TokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	up.Host, up.Port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down = up
	_, down.Port, _ = net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return up, down
}

// TestConfigZoneFromNode: --zone node:NAME becomes the node's zone label
// (logged) before gossip announces it; a literal zone stays; a bad name
// fails validation and an unreachable API server fails New, saying what.
func TestConfigZoneFromNode(t *testing.T) {
	up, down := fakeNodeAPI(t)
	ctx := context.Background()

	var logs bytes.Buffer
	c := Config{Zone: "node:n1", kubernetes: up, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := c.resolveZone(ctx); err != nil || c.Zone != "z1" {
		t.Fatalf("node:n1: zone %q, %v", c.Zone, err)
	}
	if l := logs.String(); !strings.Contains(l, `msg="zone from the Kubernetes node"`) || !strings.Contains(l, "node=n1") || !strings.Contains(l, "zone=z1") {
		t.Errorf("log: %s", l)
	}

	c = Config{Zone: "eu-west-1a", kubernetes: down}
	if err := c.resolveZone(ctx); err != nil || c.Zone != "eu-west-1a" {
		t.Fatalf("a literal zone: %q, %v", c.Zone, err)
	}

	for zone, want := range map[string]string{"node:": "no node name", "node:$(NODE_NAME)": "unexpanded variable", "node:a/b": "DNS subdomain"} {
		c := Config{Zone: zone}
		c.EnsureDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--zone") || !strings.Contains(err.Error(), want) {
			t.Errorf("--zone %s: %v", zone, err)
		}
	}

	node := func(zone string, k k8snode.Config) Config {
		return Config{NodeID: "node-z", Storage: "memory", HTTPAddr: "127.0.0.1:0", QUICAddr: "127.0.0.1:0",
			GossipAddr: "127.0.0.1:0", Partitions: 4, Zone: zone, kubernetes: k}
	}
	_, err := New(ctx, node("node:n1", down))
	if err == nil || !strings.Contains(err.Error(), "--zone node:n1: reading the zone label of Kubernetes node n1") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("New with the API server unreachable: %v", err)
	}
	t.Log(err)

	s, err := New(ctx, node("node:n1", up))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.members.LocalNode().Meta.Zone; got != "z1" {
		t.Errorf("gossip announces zone %q, want z1", got)
	}
}

// TestConfigVectorIndexBounds: HNSW settings that would make every vector
// cost megabytes (or a find search the whole graph for nothing) are
// refused, naming the flag; sane ones pass.
func TestConfigVectorIndexBounds(t *testing.T) {
	for _, v := range []core.VectorIndexConfig{{M: 100000}, {M: -1}, {EfConstruction: 1 << 20}, {EfSearch: 1 << 20}} {
		c := Config{VectorIndex: v}
		c.EnsureDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--vector-m") {
			t.Errorf("%+v: %v", v, err)
		}
	}
	c := Config{VectorIndex: core.VectorIndexConfig{M: 32, EfConstruction: 400, EfSearch: 200}}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("sane settings refused: %v", err)
	}
}
